/**
 * typemesh-cni-install (src/cni/install.ts) run as the installer DaemonSet runs it: the
 * bundle the image carries, started with node, against a temporary directory laid out like a
 * node's /opt/cni/bin and /etc/cni/net.d. It must chain typemesh-cni into the first conflist
 * once however often it runs, take it out again, refuse files it cannot understand without
 * touching them, wait for a conflist that is not there yet, and leave a plugin a runtime can
 * actually execute.
 */
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const EXEC_TIMEOUT_MS = 60_000;
const ENTRY = { type: 'typemesh-cni', capabilities: { 'io.kubernetes.cri.pod-annotations': true } };

/** A node's conflist as containerd's default install writes it. */
const CONTAINERD_CONFLIST = {
  cniVersion: '1.0.0',
  name: 'containerd-net',
  plugins: [
    { type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.0.0/16' }]] } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
};

let tmp: string;
let source: string;
let installer: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'tm-cni-install-'));
  // The sidecar image's /app: the installer's and the plugin's bundles and the wrapper.
  source = path.join(tmp, 'app');
  mkdirSync(source);
  for (const [entry, out] of [['src/cni/install.ts', 'typemesh-cni-install.js'], ['src/cni/typemesh-cni.ts', 'typemesh-cni.js']]) {
    execFileSync(path.join(ROOT, 'node_modules/.bin/esbuild'), [entry, '--bundle', '--platform=node', '--log-level=warning', `--outfile=${path.join(source, out)}`], { cwd: ROOT, timeout: EXEC_TIMEOUT_MS });
  }
  copyFileSync(path.join(ROOT, 'src/cni/typemesh-cni.sh'), path.join(source, 'typemesh-cni.sh'));
  installer = path.join(source, 'typemesh-cni-install.js');
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A fresh node: bin and conf directories, the conf directory holding these files. */
function node(files: Record<string, unknown> = { '10-containerd-net.conflist': CONTAINERD_CONFLIST }): { bin: string; conf: string } {
  const dir = mkdtempSync(path.join(tmp, 'node-'));
  const bin = path.join(dir, 'opt/cni/bin');
  const conf = path.join(dir, 'etc/cni/net.d');
  mkdirSync(bin, { recursive: true });
  mkdirSync(conf, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(conf, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return { bin, conf };
}

function args(n: { bin: string; conf: string }, command: string, extra: string[] = []): string[] {
  return [installer, command, '--cni-bin-dir', n.bin, '--cni-conf-dir', n.conf, '--source-dir', source, ...extra];
}

function cli(n: { bin: string; conf: string }, command: string, extra: string[] = []) {
  return spawnSync(process.execPath, args(n, command, extra), { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
}

const read = (file: string) => readFileSync(file, 'utf8');
const plugins = (file: string) => (JSON.parse(read(file)) as { plugins: Array<{ type: string }> }).plugins;

describe('typemesh-cni-install', () => {
  it('install chains typemesh-cni last into the first conflist and leaves a plugin a runtime can run', () => {
    const n = node({
      '10-containerd-net.conflist': CONTAINERD_CONFLIST,
      '20-other.conflist': { ...CONTAINERD_CONFLIST, name: 'other' },
    });
    const r = cli(n, 'install');
    expect([r.status, r.stderr]).toEqual([0, '']);
    const first = path.join(n.conf, '10-containerd-net.conflist');
    expect(JSON.parse(read(first))).toEqual({ ...CONTAINERD_CONFLIST, plugins: [...CONTAINERD_CONFLIST.plugins, ENTRY] });
    // Only the first conflist is the node's network; the others are not touched.
    expect(JSON.parse(read(path.join(n.conf, '20-other.conflist')))).toEqual({ ...CONTAINERD_CONFLIST, name: 'other' });
    // No temporary file left for a runtime to trip over.
    expect(readdirSync(n.conf).sort()).toEqual(['10-containerd-net.conflist', '20-other.conflist']);

    // The runtime finds the plugin by its type in the bin directory and runs it.
    const version = spawnSync(path.join(n.bin, 'typemesh-cni'), [], {
      input: JSON.stringify({ cniVersion: '1.0.0' }), encoding: 'utf8', timeout: EXEC_TIMEOUT_MS,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'VERSION' },
    });
    expect([version.status, version.stderr]).toEqual([0, '']);
    expect(JSON.parse(version.stdout)).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    expect(cli(n, 'check').status).toBe(0);
  });

  it('install is idempotent: a second run changes no byte, and a stale entry is replaced, not doubled', () => {
    const n = node({
      '10-net.conflist': { ...CONTAINERD_CONFLIST, plugins: [CONTAINERD_CONFLIST.plugins[0], { type: 'typemesh-cni', old: true }, CONTAINERD_CONFLIST.plugins[1]] },
    });
    const file = path.join(n.conf, '10-net.conflist');
    expect(cli(n, 'install').status).toBe(0);
    const once = read(file);
    expect(plugins(file).map((p) => p.type)).toEqual(['bridge', 'portmap', 'typemesh-cni']);
    expect(plugins(file)[2]).toEqual(ENTRY);
    const again = cli(n, 'install');
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('already chains typemesh-cni');
    expect(read(file)).toBe(once);
  });

  it('--pod-options-dir goes into the entry', () => {
    const n = node();
    expect(cli(n, 'install', ['--pod-options-dir', '/var/run/typemesh/pods']).status).toBe(0);
    expect(plugins(path.join(n.conf, '10-containerd-net.conflist')).at(-1)).toEqual({ ...ENTRY, podOptionsDir: '/var/run/typemesh/pods' });
  });

  it('uninstall restores the conflist and removes the plugin; twice is fine', () => {
    const n = node();
    const file = path.join(n.conf, '10-containerd-net.conflist');
    expect(cli(n, 'install').status).toBe(0);
    const r = cli(n, 'uninstall');
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(read(file))).toEqual(CONTAINERD_CONFLIST);
    expect(existsSync(path.join(n.bin, 'typemesh-cni'))).toBe(false);
    expect(existsSync(path.join(n.bin, 'typemesh-cni.d'))).toBe(false);
    const check = cli(n, 'check');
    expect(check.status).toBe(1);
    expect(check.stderr).toContain('typemesh-cni is missing');
    expect(cli(n, 'uninstall').status).toBe(0);
    expect(JSON.parse(read(file))).toEqual(CONTAINERD_CONFLIST);
  });

  it.each([
    ['not JSON', '{ "cniVersion": "1.0.0", "plugins": [ ', /10-net\.conflist is not valid JSON .*nothing was changed/],
    ['no plugins array', JSON.stringify({ cniVersion: '1.0.0', name: 'x', type: 'bridge' }), /10-net\.conflist has no "plugins" array/],
    ['an unsupported cniVersion', JSON.stringify({ ...CONTAINERD_CONFLIST, cniVersion: '0.3.1' }), /cniVersion "0\.3\.1", which typemesh-cni does not support \(0\.4\.0, 1\.0\.0, 1\.1\.0\)/],
    ['no network plugin', JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [] }), /no network plugin for typemesh-cni to chain after/],
  ])('a conflist with %s is refused with a clear error and left as it was', (_what, content, message) => {
    const n = node({ '10-net.conflist': content });
    const r = cli(n, 'install');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(read(path.join(n.conf, '10-net.conflist'))).toBe(content);
    expect(cli(n, 'check').status).toBe(1);
  });

  it('a node with only a single-plugin .conf is refused: there is no chain to join', () => {
    const n = node({ '10-bridge.conf': { cniVersion: '1.0.0', name: 'bridge', type: 'bridge' } });
    const r = cli(n, 'install');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/10-bridge\.conf is a single-plugin network config: .*convert it to a \.conflist/);
  });

  it('no conflist yet: install fails at once by default, and waits with --wait-seconds until one appears', async () => {
    const n = node({});
    const r = cli(n, 'install');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`no .conflist in ${n.conf}: the node's network plugin has not written its config yet`);

    const waiting = spawn(process.execPath, args(n, 'install', ['--wait-seconds', '600']), { stdio: ['ignore', 'pipe', 'pipe'] });
    await outputContaining(waiting, 'waiting for the node\'s network plugin');
    writeFileSync(path.join(n.conf, '10-containerd-net.conflist'), JSON.stringify(CONTAINERD_CONFLIST));
    expect(await exitOf(waiting)).toBe(0);
    expect(plugins(path.join(n.conf, '10-containerd-net.conflist')).at(-1)).toEqual(ENTRY);
  });

  it('run: installs, puts the entry back when the conflist is rewritten without it, and leaves it chained on SIGTERM (fail closed)', async () => {
    const n = node();
    const file = path.join(n.conf, '10-containerd-net.conflist');
    const daemon = spawn(process.execPath, args(n, 'run', ['--recheck-seconds', '1']), { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await outputContaining(daemon, 'watching the conflist');
      expect(cli(n, 'check').status).toBe(0);
      // The node's network plugin writes its config again (an upgrade, a restart).
      writeFileSync(file, JSON.stringify(CONTAINERD_CONFLIST));
      await outputContaining(daemon, 'installing again');
      await outputContaining(daemon, `chained typemesh-cni into ${file}`);
      expect(plugins(file).at(-1)).toEqual(ENTRY);
    } finally {
      daemon.kill('SIGTERM');
    }
    expect(await exitOf(daemon)).toBe(0);
    // A stopped installer (a DaemonSet update, a crash) leaves meshed pods intercepted: the
    // entry and the plugin stay until an explicit uninstall.
    expect(plugins(file).at(-1)).toEqual(ENTRY);
    expect(existsSync(path.join(n.bin, 'typemesh-cni'))).toBe(true);
    expect(cli(n, 'check').status).toBe(0);
    expect(cli(n, 'uninstall').status).toBe(0);
    expect(JSON.parse(read(file))).toEqual(CONTAINERD_CONFLIST);
    expect(existsSync(path.join(n.bin, 'typemesh-cni'))).toBe(false);
  });

  it('bad arguments exit 2 with the usage', () => {
    const n = node();
    const r = cli(n, 'instal');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('Usage: typemesh-cni-install');
  });
});

/** Resolves once the process has written `text` to stdout after what earlier calls waited for (rejects if it exits first). */
function outputContaining(child: ChildProcess, text: string): Promise<void> {
  let seen = collected.get(child);
  if (!seen) {
    const s = { out: '', from: 0, changed: () => undefined as void };
    seen = s;
    collected.set(child, s);
    child.stdout!.on('data', (d: Buffer) => {
      s.out += d.toString();
      s.changed();
    });
    child.once('exit', () => s.changed());
  }
  const s = seen;
  return new Promise((resolve, reject) => {
    s.changed = () => {
      const at = s.out.indexOf(text, s.from);
      if (at >= 0) {
        s.from = at + text.length;
        resolve();
      } else if (child.exitCode !== null || child.signalCode !== null) {
        reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before printing ${JSON.stringify(text)}; stdout: ${s.out}`));
      }
    };
    s.changed();
  });
}

const collected = new WeakMap<ChildProcess, { out: string; from: number; changed: () => void }>();

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}
