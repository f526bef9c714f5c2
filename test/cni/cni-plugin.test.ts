/**
 * typemesh-cni invoked exactly as a container runtime invokes a chained plugin: the
 * executable found by its "type" in a CNI bin directory (the sh wrapper beside
 * typemesh-cni.d/{node,typemesh-cni.js}), CNI_* in the environment, the network config with
 * the previous plugin's result on stdin, against network namespaces this test creates
 * (`tmcni-<pid>-*`) and removes. The rules it writes are compared with those typemesh-init
 * (the init container's entrypoint, bundled as the image bundles it) writes into another
 * namespace for the same flags, as iptables-save and ip6tables-save print them.
 *
 * Needs root, `ip netns`, nsenter and iptables; skipped otherwise with the reason printed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { netnsUnavailableReason } from '../netns-support';

const ROOT = path.resolve(__dirname, '../..');
const PREFIX = `tmcni-${process.pid}`;
const EXEC_TIMEOUT_MS = 30_000;
const ANNOTATION = 'typemesh.io/interception-args';
const CAPABILITY = 'io.kubernetes.cri.pod-annotations';

function unavailableReason(): string | undefined {
  return netnsUnavailableReason(PREFIX, {
    timeoutMs: EXEC_TIMEOUT_MS,
    extra: () => {
      for (const tool of ['/usr/sbin/iptables', '/usr/sbin/iptables-save', '/usr/bin/nsenter']) {
        if (!existsSync(tool) && !existsSync(tool.replace('/usr', ''))) return `${path.basename(tool)} is not installed`;
      }
      return undefined;
    },
  });
}

const reason = unavailableReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED cni-plugin: invoking typemesh-cni for real needs root, ip netns, nsenter and iptables: ${reason}`);
}
const describeReal = reason ? describe.skip : describe;

/** A previous plugin's result (what e.g. the ptp or bridge plugin printed). */
const PREV_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:f4:00:05', sandbox: '/var/run/netns/x' }],
  ips: [{ address: '10.244.0.5/24', gateway: '10.244.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0' }],
  dns: { nameservers: ['10.96.0.10'] },
};

/** The shop's order pod: app port 8080, calls mesh services on port 80. */
const ORDER_FLAGS = '--proxy-uid 1337 --outbound-port 15001 --inbound-port 15006 --admin-port 15020 --app-ports 8080 --outbound-ports 80';

interface Invocation {
  readonly stdout: string;
  readonly stderr: string;
  readonly status: number | null;
}

describeReal('typemesh-cni, invoked as a container runtime invokes it', () => {
  let tmp: string;
  let binDir: string;
  let initBundle: string;
  const namespaces: string[] = [];

  function netns(suffix: string): string {
    const name = `${PREFIX}-${suffix}`;
    execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    namespaces.push(name);
    return name;
  }

  function natRules(ns: string, tool: 'iptables-save' | 'ip6tables-save' = 'iptables-save'): string {
    const dump = execFileSync('ip', ['netns', 'exec', ns, tool, '-t', 'nat'], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
    // Comments carry timestamps; counters are [packets:bytes].
    return dump.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '')).join('\n');
  }

  /** Both families' nat tables, as the kernel holds them. */
  function tables(ns: string): string {
    return `${natRules(ns)}\n--- ipv6 ---\n${natRules(ns, 'ip6tables-save')}`;
  }

  /** Runs the plugin as a runtime does: exec <CNI bin dir>/<type>, CNI_* env, config on stdin. */
  function invoke(command: string, config: Record<string, unknown>, env: Record<string, string> = {}): Invocation {
    const r = spawnSync(path.join(binDir, 'typemesh-cni'), [], {
      input: JSON.stringify(config),
      encoding: 'utf8',
      // Runtimes pass a small environment of their own, not the test's.
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_PATH: binDir, CNI_IFNAME: 'eth0', ...env },
      timeout: EXEC_TIMEOUT_MS,
    });
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  }

  function podEnv(ns: string, pod = 'order-7d9f-abcde'): Record<string, string> {
    return {
      CNI_CONTAINERID: `sandbox-${ns}`,
      CNI_NETNS: `/var/run/netns/${ns}`,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pod};K8S_POD_INFRA_CONTAINER_ID=sandbox-${ns}`,
    };
  }

  function networkConfig(annotations?: Record<string, string>, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name: 'k8s-pod-network',
      type: 'typemesh-cni',
      capabilities: { [CAPABILITY]: true },
      ...(annotations ? { runtimeConfig: { [CAPABILITY]: annotations } } : {}),
      prevResult: PREV_RESULT,
      ...extra,
    };
  }

  /** What the init container does for these flags, in a namespace of its own. */
  function rulesOfInitContainer(flags: string): string {
    const ns = netns(`init${namespaces.length}`);
    execFileSync('ip', ['netns', 'exec', ns, process.execPath, initBundle, ...flags.split(' ')], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    return tables(ns);
  }

  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'tmcni-'));
    // The layout the installer writes into /opt/cni/bin.
    binDir = path.join(tmp, 'bin');
    const pluginDir = path.join(binDir, 'typemesh-cni.d');
    mkdirSync(pluginDir, { recursive: true });
    copyFileSync(path.join(ROOT, 'src/cni/typemesh-cni.sh'), path.join(binDir, 'typemesh-cni'));
    chmodSync(path.join(binDir, 'typemesh-cni'), 0o755);
    symlinkSync(process.execPath, path.join(pluginDir, 'node'));
    const esbuild = path.join(ROOT, 'node_modules/.bin/esbuild');
    const flags = ['--bundle', '--platform=node', '--target=node20', '--minify-whitespace', '--log-level=warning'];
    execFileSync(esbuild, ['src/cni/typemesh-cni.ts', ...flags, `--outfile=${path.join(pluginDir, 'typemesh-cni.js')}`], { cwd: ROOT, stdio: 'pipe', timeout: 60_000 });
    initBundle = path.join(tmp, 'typemesh-init.js');
    execFileSync(esbuild, ['src/proxy-image/interception/cli.ts', ...flags, `--outfile=${initBundle}`], { cwd: ROOT, stdio: 'pipe', timeout: 60_000 });
  });

  afterAll(() => {
    for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('answers VERSION with the versions it supports', () => {
    const r = invoke('VERSION', { cniVersion: '1.0.0' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.0.0', supportedVersions: expect.arrayContaining(['0.4.0', '1.0.0', '1.1.0']) });
  });

  it('ADD of a meshed pod writes the init container\'s rules and passes prevResult on unchanged; CHECK agrees; DEL removes them, twice', () => {
    const ns = netns('order');
    const pristine = tables(ns);
    const expected = rulesOfInitContainer(ORDER_FLAGS);
    expect(expected).toContain('-A TYPEMESH_OUTPUT -p tcp -m tcp --dport 80 -j TYPEMESH_REDIRECT');

    const add = invoke('ADD', networkConfig({ [ANNOTATION]: ORDER_FLAGS, 'other/annotation': 'x' }), podEnv(ns));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(JSON.parse(add.stdout)).toEqual(PREV_RESULT);
    expect(tables(ns)).toBe(expected);

    expect(invoke('CHECK', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), podEnv(ns))).toMatchObject({ status: 0, stdout: '' });

    // A runtime may retry ADD: the rules are replaced, not doubled.
    expect(invoke('ADD', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), podEnv(ns)).status).toBe(0);
    expect(tables(ns)).toBe(expected);

    const del = invoke('DEL', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), podEnv(ns));
    expect(del).toMatchObject({ status: 0, stdout: '' });
    expect(tables(ns)).toBe(pristine);
    expect(invoke('DEL', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), podEnv(ns)).status).toBe(0);
    expect(tables(ns)).toBe(pristine);
  });

  it('the rules it writes capture for real: the app\'s call to a mesh port lands on 15001, the proxy uid\'s does not', () => {
    const ns = netns('sockets');
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'], { timeout: EXEC_TIMEOUT_MS });
    expect(invoke('ADD', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), podEnv(ns)).status).toBe(0);
    // Listeners on 15001 (the outbound proxy) and on 127.0.0.2:80 (where the app dials);
    // one client as the app (uid 0), one as the proxy (uid 1337).
    const script = `
      const net = require('net');
      const serve = (port, host, name) => new Promise((r) => net.createServer((s) => s.end(name)).listen(port, host, r));
      // A child process per client, so the uid is the connecting socket's owner.
      const dial = (uid) => new Promise((resolve) => {
        const code = "const s=require('net').connect(80,'127.0.0.2');let d='';s.on('data',(c)=>d+=c);s.on('end',()=>{console.log(d)});s.on('error',(e)=>console.log(e.code))";
        require('child_process').execFile(process.execPath, ['-e', code], { uid, encoding: 'utf8', timeout: 10000 }, (e, out) => resolve(e ? 'failed: ' + e.message : out.trim()));
      });
      (async () => {
        await serve(15001, '0.0.0.0', 'outbound-proxy');
        await serve(80, '127.0.0.2', 'real-destination');
        console.log(JSON.stringify({ app: await dial(0), proxy: await dial(1337) }));
        process.exit(0);
      })();
    `;
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
    expect(JSON.parse(out)).toEqual({ app: 'outbound-proxy', proxy: 'real-destination' });
  });

  it('leaves a pod without the annotation alone and passes prevResult on', () => {
    const ns = netns('plain');
    const pristine = tables(ns);
    const add = invoke('ADD', networkConfig({ 'some/other': 'annotation' }), podEnv(ns));
    expect(add.status).toBe(0);
    expect(JSON.parse(add.stdout)).toEqual(PREV_RESULT);
    expect(tables(ns)).toBe(pristine);
    expect(invoke('CHECK', networkConfig({}), podEnv(ns)).status).toBe(0);
  });

  it('reads the flags from <podOptionsDir>/<namespace>/<pod> when the runtime passes no annotations', () => {
    const ns = netns('file');
    const flags = '--app-ports 9090 --outbound-ports 80,8080 --exclude-outbound-cidrs 169.254.169.254/32';
    const dir = path.join(tmp, 'pods');
    mkdirSync(path.join(dir, 'shop'), { recursive: true });
    writeFileSync(path.join(dir, 'shop', 'payment-0'), `${flags}\n`);
    const add = invoke('ADD', networkConfig(undefined, { podOptionsDir: dir }), podEnv(ns, 'payment-0'));
    expect(add.status).toBe(0);
    expect(tables(ns)).toBe(rulesOfInitContainer(flags));
  });

  it('CHECK reports a pod whose rules were changed behind its back', () => {
    const ns = netns('drift');
    expect(invoke('ADD', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), podEnv(ns)).status).toBe(0);
    execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-w', '-t', 'nat', '-D', 'TYPEMESH_OUTPUT', '-p', 'tcp', '--dport', '80', '-j', 'TYPEMESH_REDIRECT'], { timeout: EXEC_TIMEOUT_MS });
    const check = invoke('CHECK', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), podEnv(ns));
    expect(check.status).not.toBe(0);
    const error = JSON.parse(check.stdout) as { code: number; msg: string; details: string };
    expect(error.code).toBe(102);
    expect(error.msg).toContain('shop/order-7d9f-abcde');
    expect(error.details).toContain('--dport 80 -j TYPEMESH_REDIRECT');
  });

  it('refuses invalid flags with a CNI error naming the pod and the annotation, writing nothing', () => {
    const ns = netns('bad');
    const pristine = tables(ns);
    const r = invoke('ADD', networkConfig({ [ANNOTATION]: '--app-ports 15001' }), podEnv(ns));
    expect(r.status).not.toBe(0);
    const error = JSON.parse(r.stdout) as { cniVersion: string; code: number; msg: string; details: string };
    expect(error).toMatchObject({ cniVersion: '1.0.0', code: 100 });
    expect(error.msg).toContain('pod shop/order-7d9f-abcde');
    expect(error.msg).toContain(ANNOTATION);
    expect(error.details).toContain('15001');
    expect(tables(ns)).toBe(pristine);
  });

  it('returns CNI errors for a missing namespace, a missing CNI_NETNS and an unsupported version; DEL of a gone namespace succeeds', () => {
    const gone = { ...podEnv('never-created'), CNI_NETNS: `/var/run/netns/${PREFIX}-never-created` };
    expect(JSON.parse(invoke('ADD', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), gone).stdout)).toMatchObject({ code: 3 });
    expect(invoke('DEL', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), gone)).toMatchObject({ status: 0, stdout: '' });
    const noNetns = invoke('ADD', networkConfig({ [ANNOTATION]: ORDER_FLAGS }), { CNI_CONTAINERID: 'x' });
    expect(noNetns.status).not.toBe(0);
    expect(JSON.parse(noNetns.stdout)).toMatchObject({ code: 4 });
    const old = invoke('ADD', { ...networkConfig({ [ANNOTATION]: ORDER_FLAGS }), cniVersion: '0.3.1' }, podEnv('x'));
    expect(old.status).not.toBe(0);
    expect(JSON.parse(old.stdout)).toMatchObject({ code: 1 });
    const garbage = spawnSync(path.join(binDir, 'typemesh-cni'), [], { input: 'not json', encoding: 'utf8', env: { PATH: '/usr/bin:/bin', CNI_COMMAND: 'ADD' }, timeout: EXEC_TIMEOUT_MS });
    expect(JSON.parse(garbage.stdout)).toMatchObject({ code: 6 });
  });
});
