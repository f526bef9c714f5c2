/**
 * Bundles what the bench runs as plain `node` processes: the sidecar (same esbuild options as
 * the `bundle:proxy` task, to the same dist/proxy/typemesh-proxy.js) and the bench's own
 * upstream and load generator (into the run's temp directory), so no process under
 * measurement pays for ts-node.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { buildSync } from 'esbuild';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const PROXY_ENTRY = path.join(REPO_ROOT, 'src/proxy-image/main.ts');
export const PROXY_BUNDLE = path.join(REPO_ROOT, 'dist/proxy/typemesh-proxy.js');

/** `readable` keeps comments and lines: esbuild's `// path` module comments are how bench/profile-summary.ts maps a profile to source files. */
function bundle(entry: string, outfile: string, readable = false): void {
  buildSync({ entryPoints: [entry], bundle: true, platform: 'node', target: 'node20', minifyWhitespace: !readable, outfile, logLevel: 'warning' });
}

/**
 * The bundled sidecar, rebuilt from source when the source exists; undefined when there is
 * neither. `forProfile` builds it without --minify-whitespace, for --cpu-prof runs.
 */
export function bundleProxy(forProfile = false): string | undefined {
  if (existsSync(PROXY_ENTRY)) bundle(PROXY_ENTRY, PROXY_BUNDLE, forProfile);
  return existsSync(PROXY_BUNDLE) ? PROXY_BUNDLE : undefined;
}

/** The bench's helper processes, bundled into dir. */
export function bundleHelpers(dir: string): { upstream: string; loadGenerator: string } {
  const upstream = path.join(dir, 'bench-upstream.js');
  const loadGenerator = path.join(dir, 'bench-load-generator.js');
  bundle(path.join(__dirname, '..', 'upstream.ts'), upstream);
  bundle(path.join(__dirname, '..', 'load-generator.ts'), loadGenerator);
  return { upstream, loadGenerator };
}

/** A floor proxy of bench/floors, bundled into dir. */
export function bundleFloor(source: string, dir: string): string {
  const out = path.join(dir, `bench-${source.replace(/\.ts$/, '.js')}`);
  bundle(path.join(__dirname, '..', 'floors', source), out);
  return out;
}
