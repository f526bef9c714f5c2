/**
 * Finds (and when needed builds) the sidecar's one-file bundle, the same file the image
 * runs, so local instances start as plain `node typemesh-proxy.js` processes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

/** The project's root: the nearest directory above `from` whose package.json is named typemesh. */
export function findProjectRoot(from: string = __dirname): string {
  let dir = path.resolve(from);
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'typemesh') return dir;
      } catch {
        // Not ours; keep walking up.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the typemesh project root above ${from}`);
    dir = parent;
  }
}

/**
 * The sidecar bundle's path under the project root. The same path in a source checkout
 * (`npx projen bundle:proxy` writes it) and in the installed package (package.json's
 * `files` ships it; its prepack builds it), so `typemesh up` finds it in both.
 */
export const PROXY_BUNDLE = 'dist/proxy/typemesh-proxy.js';
const PROXY_ENTRY = 'src/proxy-image/main.ts';

/**
 * Returns the path of the sidecar bundle. Bundles src/proxy-image/main.ts with esbuild when
 * the bundle is missing, or when `rebuild` is set and a source file is newer than it.
 */
export function ensureProxyBundle(options: { readonly root?: string; readonly rebuild?: boolean } = {}): string {
  // An explicit bundle (a release build, or a patched one under test) wins.
  const explicit = process.env.TYPEMESH_PROXY_BUNDLE;
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`TYPEMESH_PROXY_BUNDLE=${explicit} does not exist`);
    return explicit;
  }
  const root = options.root ?? findProjectRoot();
  const bundle = path.join(root, PROXY_BUNDLE);
  const entry = path.join(root, PROXY_ENTRY);
  const haveSources = existsSync(entry);
  const stale = options.rebuild === true && haveSources && !isFresh(root, PROXY_BUNDLE, ['src/proxy-image', 'src/config']);
  if (existsSync(bundle) && !stale) return bundle;
  if (!haveSources) {
    // An installed package: it ships the bundle and no sources, so the package is damaged or
    // was packed without its prepack step. Only a reinstall or an explicit bundle helps here.
    throw new Error(`the sidecar bundle ${bundle} is missing from the installed typemesh package (${root}): `
      + 'reinstall it (`npm install typemesh`; a tarball must come from `npm pack`, whose prepack step builds the bundle), '
      + 'or point TYPEMESH_PROXY_BUNDLE at a typemesh-proxy.js');
  }
  bundleWithEsbuild(root, PROXY_ENTRY, PROXY_BUNDLE);
  return bundle;
}

/**
 * Bundles one TypeScript entry for Node 20 with the project's esbuild. `--minify-whitespace`
 * drops comments and indentation (names stay, and the source map maps back): a few non-ASCII
 * comments in dependencies otherwise make V8 hold the whole 3.4 MB sidecar bundle as two-byte
 * text (6.8 MB); whitespace-minified it is 2.4 MB of one-byte text, about 4 MB less RSS.
 */
export function bundleWithEsbuild(root: string, entry: string, outfile: string): void {
  const esbuild = path.join(root, 'node_modules/.bin/esbuild');
  if (!existsSync(esbuild)) throw new Error(`esbuild is not installed in ${root}/node_modules: run \`npm ci\``);
  execFileSync(esbuild, [entry, '--bundle', '--platform=node', '--target=node20', '--minify-whitespace', `--outfile=${outfile}`, '--log-level=warning', '--sourcemap'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}

/** True when `outfile` exists and is newer than every file under `sourceDirs`. */
export function isFresh(root: string, outfile: string, sourceDirs: readonly string[]): boolean {
  const out = path.join(root, outfile);
  if (!existsSync(out)) return false;
  const builtAt = statSync(out).mtimeMs;
  const newer = (dir: string): boolean => {
    if (!existsSync(dir)) return false;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory() ? newer(p) : statSync(p).mtimeMs > builtAt) return true;
    }
    return false;
  };
  return !sourceDirs.some((d) => newer(path.join(root, d)));
}
