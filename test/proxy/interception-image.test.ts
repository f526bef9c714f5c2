/**
 * The sidecar image's Dockerfile. Docker cannot run on this machine, so this checks its
 * structure, then does for real what the image does: runs the Dockerfile's own esbuild
 * commands (into a temp dir instead of /build/dist), writes its own entrypoint wrappers
 * (into the temp dir instead of /usr/local/bin and /app) and runs each wrapper with --help.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const DOCKERFILE = path.join(ROOT, 'src/proxy-image/Dockerfile');
const IGNOREFILE = path.join(ROOT, 'src/proxy-image/Dockerfile.dockerignore');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Instructions of a Dockerfile: continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ');
  return joined.split('\n').map((l) => l.trim()).filter((l) => l !== '').map((l) => {
    const [keyword, ...rest] = l.split(/\s+/);
    return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
  });
}

/** The stages, each its FROM args and its instructions. */
function stages(instructions: Instruction[]): Array<{ from: string; body: Instruction[] }> {
  const out: Array<{ from: string; body: Instruction[] }> = [];
  for (const i of instructions) {
    if (i.keyword === 'FROM') out.push({ from: i.args, body: [] });
    else out[out.length - 1]?.body.push(i);
  }
  return out;
}

const EXPECTED_BUNDLES: Record<string, string> = {
  'dist/proxy/typemesh-proxy.js': 'src/proxy-image/main.ts',
  'dist/proxy/typemesh-init.js': 'src/proxy-image/interception/cli.ts',
};

const dockerfile = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
const [build, runtime] = stages(dockerfile);

/** The esbuild commands of the build stage: argv after "npx esbuild", by outfile. */
function esbuildCommands(): Map<string, string[]> {
  const commands = new Map<string, string[]>();
  for (const run of build.body.filter((i) => i.keyword === 'RUN')) {
    for (const part of run.args.split('&&').map((s) => s.trim())) {
      if (!part.startsWith('npx esbuild ')) continue;
      const argv = part.slice('npx esbuild '.length).split(/\s+/);
      const outfile = argv.find((a) => a.startsWith('--outfile='))!.slice('--outfile='.length);
      commands.set(outfile, argv);
    }
  }
  return commands;
}

describe('the sidecar Dockerfile', () => {
  it('has a node:20 build stage and a node:20 runtime stage', () => {
    expect(stages(dockerfile).map((s) => s.from)).toEqual(['node:20-bookworm-slim AS build', 'node:20-bookworm-slim AS runtime']);
  });

  it('installs dependencies reproducibly in the build stage', () => {
    const runs = build.body.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs.some((r) => r.startsWith('npm ci '))).toBe(true);
  });

  it('bundles the proxy and typemesh-init from their entry points', () => {
    const commands = esbuildCommands();
    expect([...commands.keys()].sort()).toEqual(Object.keys(EXPECTED_BUNDLES).sort());
    for (const [outfile, argv] of commands) {
      expect(argv[0]).toBe(EXPECTED_BUNDLES[outfile]);
      expect(argv).toEqual(expect.arrayContaining(['--bundle', '--platform=node', '--target=node20']));
    }
    expect(existsSync(path.join(ROOT, EXPECTED_BUNDLES['dist/proxy/typemesh-init.js']))).toBe(true);
  });

  it('copies only the bundles into the runtime stage, installs iptables and runs as uid 1337', () => {
    const copies = runtime.body.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    expect(copies).toEqual(['--from=build /build/dist/proxy/ /app/']);
    const runs = runtime.body.filter((i) => i.keyword === 'RUN').map((i) => i.args).join(' ');
    expect(runs).toMatch(/apt-get install -y --no-install-recommends iptables/);
    expect(runs).toMatch(/useradd --system --uid 1337 --gid 1337/);
    const users = runtime.body.filter((i) => i.keyword === 'USER');
    expect(users.map((u) => u.args)).toEqual(['1337:1337']);
    // USER comes after every RUN: nothing after it needs root.
    const lastRun = runtime.body.map((i) => i.keyword).lastIndexOf('RUN');
    expect(runtime.body.indexOf(users[0])).toBeGreaterThan(lastRun);
    expect(runtime.body.find((i) => i.keyword === 'ENTRYPOINT')?.args).toBe('["typemesh-proxy"]');
  });

  it('sends to the build context exactly what the build stage copies', () => {
    const ignore = readFileSync(IGNOREFILE, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const sources = build.body.filter((i) => i.keyword === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.sort()).toEqual(['package-lock.json', 'package.json', 'src', 'tsconfig.json']);
    for (const s of sources) {
      expect(ignore).toContain(s === 'src' ? '!src/**' : `!${s}`);
    }
  });

  describe('built for real: the Dockerfile\'s bundles and wrappers', () => {
    let tmp: string;
    beforeAll(() => {
      tmp = mkdtempSync(path.join(tmpdir(), 'tm-image-'));
      mkdirSync(path.join(tmp, 'app'));
      mkdirSync(path.join(tmp, 'bin'));
    });
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    /** Runs the Dockerfile's esbuild command for outfile, writing into tmp/app. */
    function bundle(outfile: string): void {
      const argv = esbuildCommands().get(outfile)!.map((a) => (a.startsWith('--outfile=') ? `--outfile=${path.join(tmp, 'app', path.basename(outfile))}` : a));
      execFileSync(path.join(ROOT, 'node_modules/.bin/esbuild'), argv, { cwd: ROOT, stdio: 'pipe', timeout: 60_000 });
    }

    /** Runs the Dockerfile's wrapper-writing RUN with the image paths mapped into tmp. */
    function writeWrappers(): void {
      const run = runtime.body.find((i) => i.keyword === 'RUN' && i.args.includes('/usr/local/bin/typemesh-proxy'))!;
      const script = run.args.replace(/\/usr\/local\/bin\//g, `${tmp}/bin/`).replace(/\/app\//g, `${tmp}/app/`);
      execFileSync('sh', ['-e', '-c', script], { stdio: 'pipe', timeout: 10_000 });
    }

    it('typemesh-init builds and its wrapper runs --help', () => {
      bundle('dist/proxy/typemesh-init.js');
      writeWrappers();
      const out = execFileSync(path.join(tmp, 'bin/typemesh-init'), ['--help'], { encoding: 'utf8', timeout: 10_000 });
      expect(out).toContain('Usage: typemesh-init');
      // And the bundle really generates a script without a TypeScript toolchain.
      const script = execFileSync(path.join(tmp, 'bin/typemesh-init'), ['--app-ports', '8080', '--dry-run'], { encoding: 'utf8', timeout: 10_000 });
      expect(script).toContain('iptables -w -t nat -A TYPEMESH_INBOUND -p tcp --dport 8080 -j TYPEMESH_IN_REDIRECT');
    });

    const proxyEntry = path.join(ROOT, EXPECTED_BUNDLES['dist/proxy/typemesh-proxy.js']);
    if (!existsSync(proxyEntry)) {
      // eslint-disable-next-line no-console
      console.warn(`SKIPPED typemesh-proxy bundle check: ${proxyEntry} does not exist yet (the proxy core is written in parallel)`);
    }
    (existsSync(proxyEntry) ? it : it.skip)('typemesh-proxy builds and its wrapper runs --help', () => {
      bundle('dist/proxy/typemesh-proxy.js');
      writeWrappers();
      const out = execFileSync(path.join(tmp, 'bin/typemesh-proxy'), ['--help'], { encoding: 'utf8', timeout: 10_000 });
      expect(out.length).toBeGreaterThan(0);
    });
  });
});
