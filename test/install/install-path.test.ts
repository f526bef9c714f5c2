import { ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as YAML from 'yaml';
import { INFRA_DEPENDENCIES, INFRA_DEV_DEPENDENCIES } from '../../src/local/init';
import { alive } from '../process-support';

/**
 * The install path, walked as a user walks it: `npm pack` this checkout, install the tarball
 * into a fresh infra repo next to cdk8s, let `npx typemesh init` write the repo's chart and
 * plan, add cdk8s-cli, ts-node and TypeScript, `cdk8s synth` the chart, `npx typemesh up` the
 * plan, send a request through the mesh, stop it with SIGINT, and find no process left. It
 * fails when the tarball
 * lacks lib/, the declarations, the bin or the sidecar bundle, or ships what a user does not
 * need. It packs a fresh copy of this working tree (see freshCheckout).
 *
 * Needs the npm registry (the user's dependencies come from it): skipped, with the reason
 * printed, only when `npm ping` fails.
 */

const ROOT = path.resolve(__dirname, '../..');
/** Bounds for the slow steps (registry downloads, a cold `cdk8s synth`): a hang fails, a slow machine does not. */
const STEP_TIMEOUT_MS = 5 * 60_000;

/** Bounded, quiet installs that reuse npm's cache. */
const NPM_FLAGS = ['--no-audit', '--no-fund', '--prefer-offline'];
const execFileP = promisify(execFile);
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; files: string[] };

function registryUnreachable(): string | undefined {
  const ping = spawnSync('npm', ['ping', '--fetch-retries=0', '--fetch-timeout=30000'], { encoding: 'utf8', timeout: 60_000 });
  if (ping.status === 0) return undefined;
  return `npm ping failed (${ping.error?.message ?? `exit ${ping.status}`}): ${(ping.stderr ?? '').trim().split('\n').slice(-2).join(' ')}`;
}
const skipReason = registryUnreachable();
if (skipReason) process.stderr.write(`test/install/install-path.test.ts skipped: the npm registry is unreachable: ${skipReason}\n`);
const describeInstall = skipReason ? describe.skip : describe;

/** The environment of a user's shell: none of the outer `npm test`'s package or lifecycle variables. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_(package|lifecycle)_/.test(k) && k !== 'INIT_CWD') env[k] = v;
  }
  return { ...env, NO_UPDATE_NOTIFIER: '1' };
}

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { cwd, env: userEnv(), timeout: STEP_TIMEOUT_MS, maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).on('timeout', function (this: http.ClientRequest) { this.destroy(new Error(`GET ${url} timed out`)); });
  });
}

/** Processes whose command line mentions `dir/` (the infra repo: its apps, its node_modules' sidecars and CLI). */
function processesUnder(dir: string): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter((l) => l.includes(`${dir}/`));
}

/** True when `pid` still runs something from `dir/` (so a reused pid is never touched). */
function runsUnder(pid: number, dir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${dir}/`);
  } catch {
    return false;
  }
}

/**
 * A copy of this working tree as a fresh clone would have it (tracked and new files, nothing
 * ignored: no lib/, no dist/), sharing node_modules. Packing there proves the prepack step
 * builds everything, and its compile and bundle do not rewrite the dist/proxy bundle that
 * other test files are running sidecars from.
 */
function freshCheckout(dest: string): string {
  const ls = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  if (ls.status !== 0) throw new Error(`git ls-files failed in ${ROOT}: ${ls.stderr}`);
  for (const f of ls.stdout.split('\0').filter(Boolean)) {
    if (!existsSync(path.join(ROOT, f))) continue; // deleted, not yet committed
    mkdirSync(path.dirname(path.join(dest, f)), { recursive: true });
    copyFileSync(path.join(ROOT, f), path.join(dest, f));
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dest, 'node_modules'), 'dir');
  return dest;
}

describeInstall('install path: npm pack, npm install, cdk8s synth, typemesh up', () => {
  jest.setTimeout(4 * STEP_TIMEOUT_MS);
  let work = '';
  let infra = '';
  let tarball = '';
  let packedFiles: string[] = [];
  let initOutput = '';
  let up: ChildProcess | undefined;
  const upPids: number[] = [];

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'typemesh-install-'));
    infra = path.join(work, 'infra');
    // --json lists the files; prepack (compile + bundle) runs first, as for `npm publish`.
    const out = await run('npm', ['pack', '--json', '--pack-destination', work], freshCheckout(path.join(work, 'checkout')));
    const packed = (JSON.parse(out.slice(out.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>)[0];
    tarball = path.join(work, packed.filename);
    packedFiles = packed.files.map((f) => f.path).sort();

    // A fresh infra repo, as `mkdir infra && npm init -y` leaves it; then the steps README.md
    // "Install" and `typemesh init` give.
    mkdirSync(infra, { recursive: true });
    writeFileSync(path.join(infra, 'package.json'), `${JSON.stringify({ name: 'infra', version: '0.0.0', private: true }, null, 2)}\n`);
    await run('npm', ['install', ...NPM_FLAGS, tarball, ...INFRA_DEPENDENCIES], infra);
    initOutput = await run('npx', ['--no-install', 'typemesh', 'init'], infra);
    await run('npm', ['install', ...NPM_FLAGS, '--save-dev', ...INFRA_DEV_DEPENDENCIES], infra);
  });

  afterAll(() => {
    // Only what this test started: the runner's process group and the pids it printed.
    if (up?.pid !== undefined && up.exitCode === null && up.signalCode === null) {
      try { process.kill(-up.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    for (const pid of upPids) if (runsUnder(pid, infra)) process.kill(pid, 'SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball ships lib/ with declarations, the bin and the sidecar bundle, and nothing else', () => {
    for (const f of ['package.json', 'lib/index.js', 'lib/index.d.ts', 'lib/pulumi/index.js', 'lib/pulumi/index.d.ts', 'lib/local/cli.js', 'dist/proxy/typemesh-proxy.js']) {
      expect(packedFiles).toContain(f);
    }
    const allowed = (f: string): boolean => /^lib\/.+\.(js|d\.ts)$/.test(f) || ['package.json', 'README.md', 'LICENSE', 'API.md', 'dist/proxy/typemesh-proxy.js'].includes(f);
    expect(packedFiles.filter((f) => !allowed(f))).toEqual([]);
    // Every compiled module comes with its declarations.
    const js = packedFiles.filter((f) => f.startsWith('lib/') && f.endsWith('.js'));
    expect(js.filter((f) => !packedFiles.includes(f.replace(/\.js$/, '.d.ts')))).toEqual([]);
  });

  test('the installed package resolves, and its bin is an executable node script', async () => {
    const installed = path.join(infra, 'node_modules', pkg.name);
    const bin = path.join(infra, 'node_modules/.bin/typemesh');
    expect(existsSync(bin)).toBe(true);
    accessSync(bin, constants.X_OK);
    expect(readFileSync(path.join(installed, 'lib/local/cli.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const exports = await run(process.execPath, ['-e', 'const t = require("typemesh"); console.log(typeof t.Mesh, typeof t.MeshService, typeof t.defineLocalPlan)'], infra);
    expect(exports.trim()).toBe('function function function');
    // Usage on stderr, exit 2: the bin runs at all.
    const help = spawnSync('npx', ['--no-install', 'typemesh'], { cwd: infra, env: userEnv(), encoding: 'utf8', timeout: STEP_TIMEOUT_MS });
    expect(help.status).toBe(2);
    expect(help.stderr).toContain('typemesh up <plan module>');
  });

  test('typemesh init wrote the repo, says what to install next, and overwrites nothing', () => {
    for (const f of ['main.ts', 'local.ts', 'app.js', 'cdk8s.yaml', 'tsconfig.json']) expect(existsSync(path.join(infra, f))).toBe(true);
    expect(initOutput).toContain(`npm install --save-dev ${INFRA_DEV_DEPENDENCIES.join(' ')}`);
    const before = readFileSync(path.join(infra, 'main.ts'), 'utf8');
    const again = spawnSync('npx', ['--no-install', 'typemesh', 'init'], { cwd: infra, env: userEnv(), encoding: 'utf8', timeout: STEP_TIMEOUT_MS });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('already has main.ts, local.ts, app.js, cdk8s.yaml, tsconfig.json');
    expect(readFileSync(path.join(infra, 'main.ts'), 'utf8')).toBe(before);
  });

  test('cdk8s synth of a user chart writes Deployments with the sidecar injected', async () => {
    await run('npx', ['cdk8s', 'synth', '--no-check-upgrade'], infra);
    const docs = YAML.parseAllDocuments(readFileSync(path.join(infra, 'dist/infra.k8s.yaml'), 'utf8')).map((d) => d.toJS() as {
      kind: string; metadata: { name: string; namespace?: string };
      spec?: { template?: { spec?: {
        containers?: Array<{ name: string; image: string }>;
        initContainers?: Array<{ name: string; image: string; restartPolicy?: string }>;
      } } };
    });
    const front = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'front-v1');
    expect(front?.metadata.namespace).toBe('infra');
    const pod = front?.spec?.template?.spec;
    expect(pod?.containers?.map((c) => `${c.name} ${c.image}`)).toEqual(['app example.com/front:1']);
    // The proxy is a native sidecar: an init container that keeps running (restartPolicy
    // Always), after the interception step, so the app starts only once it is ready.
    expect(pod?.initContainers?.map((c) => `${c.name} ${c.image} ${c.restartPolicy ?? '-'}`)).toEqual([
      `typemesh-init ghcr.io/typemesh/proxy:${pkg.version} -`,
      `typemesh-proxy ghcr.io/typemesh/proxy:${pkg.version} Always`,
    ]);
    expect(docs.filter((d) => d.kind === 'Deployment').map((d) => d.metadata.name).sort()).toEqual(['back-v1', 'front-v1']);
  });

  test('npx typemesh up runs the plan from the installed package, serves a request through the mesh, and SIGINT leaves no process', async () => {
    // Its own process group, as a shell's foreground job: Ctrl-C signals the whole group.
    up = spawn('npx', ['--no-install', 'typemesh', 'up', 'local.ts'], { cwd: infra, env: userEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    up.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    up.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const exited = new Promise<string>((resolve) => up!.once('close', (code, signal) => resolve(signal ?? `exit ${code}`)));

    // Ready when it says so, or failed when it exits first (bounded: a hang fails the test).
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`typemesh up not ready after ${STEP_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`)), STEP_TIMEOUT_MS);
      const check = (): void => {
        if (stdout.includes('Ctrl-C to stop.')) { clearTimeout(timer); resolve(); }
      };
      up!.stdout!.on('data', check);
      void exited.then((end) => { clearTimeout(timer); reject(new Error(`typemesh up ended (${end}) before ready:\n${stdout}\n${stderr}`)); });
      check();
    });

    // One line per instance: `<id> <address> outbound :<port> inbound :<port> (mTLS) admin <url> app :<port> pids <app>/<sidecar>`.
    const instances = new Map<string, { address: string; app: number; admin: string; pids: number[] }>();
    for (const m of stdout.matchAll(/^(\S+)\s+(\d+\.\d+\.\d+\.\d+)\s+outbound :\d+\s+inbound :\d+ \(mTLS\)\s+admin (\S+)\s+app :(\d+)\s+pids (\d+)\/(\d+)$/gm)) {
      instances.set(m[1], { address: m[2], admin: m[3], app: Number(m[4]), pids: [Number(m[5]), Number(m[6])] });
      upPids.push(Number(m[5]), Number(m[6]));
    }
    expect([...instances.keys()].sort()).toEqual(['back/v1#0', 'front/v1#0']);
    const workDir = /^logs and configs: (\S+)$/m.exec(stdout)?.[1];
    expect(workDir && existsSync(workDir)).toBe(true);

    // Into front's app (as a port-forward would), which calls http://back through its sidecar:
    // the answer comes from back's app, over mTLS, authorized by back.allowFrom(front).
    const front = instances.get('front/v1#0')!;
    const res = await get(`http://${front.address}:${front.app}/`);
    expect(res.status).toBe(200);
    const answer = JSON.parse(res.body) as { pod: string; back: { status: number; body: string } };
    expect(answer.pod).toBe('front-v1-0');
    expect(answer.back.status).toBe(200);
    expect(JSON.parse(answer.back.body)).toEqual({ pod: 'back-v1-0', path: '/hello' });
    // back's sidecar counted it: the request crossed the mesh, not a shortcut to back's app.
    const metrics = await get(`${instances.get('back/v1#0')!.admin}/metrics`);
    expect(metrics.body.split('\n').filter((l) => l.startsWith('typemesh_requests_total{') && l.includes('front')).length).toBeGreaterThan(0);

    // Ctrl-C: SIGINT to the foreground group.
    process.kill(-up.pid!, 'SIGINT');
    const end = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), STEP_TIMEOUT_MS).unref())]);
    // npx, signalled with its child, ends by SIGINT once the child is done (a shell shows 130);
    // the runner itself says it stopped cleanly.
    expect(['exit 0', 'SIGINT']).toContain(end);
    expect(stdout).toContain('typemesh: stopped');
    expect(stderr).not.toMatch(/again, killing everything/);
    expect(upPids.filter(alive)).toEqual([]);
    expect(processesUnder(infra)).toEqual([]);
    expect(existsSync(workDir!)).toBe(false);
  });

  test('TypeScript 7 (what `npm i typescript` brings): npm names the supported range, and typemesh up says what to install', async () => {
    const infra7 = path.join(work, 'infra-ts7');
    mkdirSync(infra7, { recursive: true });
    writeFileSync(path.join(infra7, 'package.json'), `${JSON.stringify({ name: 'infra-ts7', version: '0.0.0', private: true }, null, 2)}\n`);
    // `typescript` without a range, as a user types it. (With an explicit `typescript@7`, npm
    // refuses the install outright: ERESOLVE, naming the same range.)
    const deps = [...INFRA_DEPENDENCIES, ...INFRA_DEV_DEPENDENCIES].map((d) => (d.startsWith('typescript@') ? 'typescript' : d));
    const install = spawnSync('npm', ['install', ...NPM_FLAGS, tarball, ...deps], { cwd: infra7, env: userEnv(), encoding: 'utf8', timeout: STEP_TIMEOUT_MS });
    expect(install.status).toBe(0);
    const tsc = JSON.parse(readFileSync(path.join(infra7, 'node_modules/typescript/package.json'), 'utf8')) as { version: string };
    // The premise: the registry's latest TypeScript is outside the supported range (7.x when written).
    expect(Number(tsc.version.split('.')[0])).toBeGreaterThanOrEqual(6);
    expect(install.stderr).toContain(`peerOptional typescript@"${(pkg as { peerDependencies?: Record<string, string> }).peerDependencies?.typescript}" from typemesh`);
    await run('npx', ['--no-install', 'typemesh', 'init'], infra7);
    const upTs7 = spawnSync('npx', ['--no-install', 'typemesh', 'up', 'local.ts'], { cwd: infra7, env: userEnv(), encoding: 'utf8', timeout: STEP_TIMEOUT_MS });
    expect(upTs7.status).toBe(1);
    expect(upTs7.stderr).toContain('typemesh supports typescript >=5.0 <6: run `npm install --save-dev typescript@~5.9`');
  });
});
