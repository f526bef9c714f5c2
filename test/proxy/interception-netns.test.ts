/**
 * The generated iptables rules, applied for real inside network namespaces that this test
 * creates and removes, proven with real sockets: a "pod" namespace gets the rules, a
 * "peer" namespace plays another pod connected by a veth pair. Every address used (IPv4 and
 * IPv6) exists only inside these two namespaces, so no packet reaches the host's interfaces.
 * The first part puts plain listeners on the proxy's ports; the second runs the real sidecar
 * (uid 1337) and attacks it from the peer namespace as an outsider on the pod network would.
 *
 * Needs root, `ip netns` and iptables (iptables-nft or legacy); skipped otherwise with the
 * reason printed. CI runs as root with iptables installed.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseSidecarConfig, SidecarConfigInput } from '../../src/config';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { bundleWithEsbuild } from '../../src/local/proxy-bundle';
import { generateInterceptionScript, interceptionArgsFor, parseInterceptionArgs } from '../../src/proxy-image/interception';
import { netnsUnavailableReason } from '../netns-support';

const ROOT = path.resolve(__dirname, '../..');
const POD = `tm5a-${process.pid}-pod`;
const PEER = `tm5a-${process.pid}-peer`;
const VETH_POD = `tm5a${process.pid}a`;
const VETH_PEER = `tm5a${process.pid}b`;
// A /30 and a /64 that exist only on the veth pair between the two namespaces.
const POD_IP = '10.255.255.1';
const PEER_IP = '10.255.255.2';
const POD_IP6 = 'fd00:5a::1';
const PEER_IP6 = 'fd00:5a::2';
const PROXY_UID = 1337;
const EXEC_TIMEOUT_MS = 10_000;

/** Why the real test cannot run here, or undefined when it can. */
function unavailableReason(): string | undefined {
  return netnsUnavailableReason(`tm5a-${process.pid}`, {
    iptables: ['iptables', 'ip6tables'],
    timeoutMs: EXEC_TIMEOUT_MS,
    extra: () => {
      if (!existsSync('/usr/sbin/iptables') && !existsSync('/sbin/iptables')) return 'iptables is not installed (apt-get install iptables)';
      if (!existsSync('/usr/bin/setpriv')) return 'setpriv (util-linux) is not installed';
      return undefined;
    },
  });
}

const reason = unavailableReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED interception-netns: the real iptables test needs root, ip netns and iptables: ${reason}`);
}
const describeReal = reason ? describe.skip : describe;

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: EXEC_TIMEOUT_MS });
}

/** Listeners (0.0.0.0 and ::) that answer every connection with their own name, then close. */
const SERVER = `
const net = require('net');
const listeners = JSON.parse(process.argv[1]);
let ready = 0;
for (const [port, name] of Object.entries(listeners)) {
  for (const host of ['0.0.0.0', '::']) {
    net.createServer((s) => s.end(name + '\\n')).listen({ port: Number(port), host, ipv6Only: host === '::' }, () => {
      if (++ready === 2 * Object.keys(listeners).length) console.log('ready');
    });
  }
}
setTimeout(() => process.exit(0), 120000).unref(); // never outlive the test
`;

/** Connects, prints what the server said (or the error code). */
const CLIENT = `
const s = require('net').connect(Number(process.argv[2]), process.argv[1]);
let data = '';
s.setTimeout(3000, () => { console.log('timeout'); process.exit(0); });
s.on('data', (d) => { data += d; });
s.on('end', () => { console.log(data.trim()); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });
`;

describeReal('interception rules in a real network namespace', () => {
  let tmp: string;
  const servers: ChildProcess[] = [];
  const node = process.execPath;

  /** Where a TCP connection from `ns` (as root, or as the proxy's uid) to host:port lands. */
  function connect(ns: string, host: string, port: number, opts: { asProxy?: boolean } = {}): string {
    const cmd = opts.asProxy
      ? ['setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', node]
      : [node];
    return sh('ip', ['netns', 'exec', ns, ...cmd, '-e', CLIENT, host, String(port)]).trim();
  }

  function startServer(ns: string, listeners: Record<number, string>): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', ns, node, '-e', SERVER, JSON.stringify(listeners)], { stdio: ['ignore', 'pipe', 'inherit'] });
    servers.push(child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server in ${ns} not ready within 10 s`)), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`server in ${ns} exited with ${code}`)));
    });
  }

  function natRules(save = 'iptables-save'): string[] {
    return sh('ip', ['netns', 'exec', POD, save, '-t', 'nat']).split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'tm-interception-'));
    sh('ip', ['netns', 'add', POD]);
    sh('ip', ['netns', 'add', PEER]);
    // The veth pair is created directly inside the two namespaces, never on the host.
    sh('ip', ['-n', POD, 'link', 'add', VETH_POD, 'type', 'veth', 'peer', 'name', VETH_PEER, 'netns', PEER]);
    sh('ip', ['-n', POD, 'addr', 'add', `${POD_IP}/30`, 'dev', VETH_POD]);
    sh('ip', ['-n', PEER, 'addr', 'add', `${PEER_IP}/30`, 'dev', VETH_PEER]);
    // nodad: the addresses are usable at once, without duplicate address detection's delay.
    sh('ip', ['-n', POD, 'addr', 'add', `${POD_IP6}/64`, 'dev', VETH_POD, 'nodad']);
    sh('ip', ['-n', PEER, 'addr', 'add', `${PEER_IP6}/64`, 'dev', VETH_PEER, 'nodad']);
    for (const [ns, dev] of [[POD, VETH_POD], [PEER, VETH_PEER]]) {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
    // The pod: the proxy's listeners, the app's ports, and "real" destinations on loopback
    // (127.0.0.2 and 127.0.0.3 are loopback but not 127.0.0.1, so they are captured).
    await startServer(POD, {
      15001: 'proxy-outbound', 15006: 'proxy-inbound', 15020: 'proxy-admin',
      8080: 'app-8080', 9090: 'app-9090', 80: 'real-80', 81: 'real-81', 82: 'real-82',
    });
    await startServer(PEER, { 80: 'peer-80' });
  }, 60_000);

  afterAll(() => {
    for (const child of servers) child.kill('SIGKILL');
    for (const ns of [POD, PEER]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
      } catch {
        // already gone
      }
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('without rules, every connection reaches its destination (the baseline)', () => {
    expect(connect(POD, '127.0.0.2', 80)).toBe('real-80');
    expect(connect(PEER, POD_IP, 8080)).toBe('app-8080');
    expect(connect(PEER, POD_IP6, 8080)).toBe('app-8080');
  });

  describe('with app port 8080, outbound ports 80 and 8080, inbound port 9090 excluded', () => {
    beforeAll(() => {
      const script = path.join(tmp, 'interception.sh');
      writeFileSync(script, generateInterceptionScript({ appPorts: [8080], outboundPorts: [80, 8080], excludeInboundPorts: [9090] }));
      sh('ip', ['netns', 'exec', POD, 'sh', '-e', script]);
    });

    it('redirects the app\'s outbound TCP to a mesh port to the outbound listener', () => {
      expect(connect(POD, '127.0.0.2', 80)).toBe('proxy-outbound');
      expect(connect(POD, '127.0.0.2', 8080)).toBe('proxy-outbound');
      // Wherever it was going: the peer's real server is never reached.
      expect(connect(POD, PEER_IP, 80)).toBe('proxy-outbound');
    });

    it('leaves the proxy uid\'s own connections alone', () => {
      expect(connect(POD, '127.0.0.2', 80, { asProxy: true })).toBe('real-80');
      expect(connect(POD, PEER_IP, 80, { asProxy: true })).toBe('peer-80');
    });

    it('leaves 127.0.0.1 and ports that are not mesh ports alone', () => {
      expect(connect(POD, '127.0.0.1', 80)).toBe('real-80');
      expect(connect(POD, '127.0.0.2', 81)).toBe('real-81');
    });

    it('redirects inbound TCP to the app port to the inbound listener', () => {
      expect(connect(PEER, POD_IP, 8080)).toBe('proxy-inbound');
    });

    it('captures every other inbound port too: undeclared ones and the outbound port', () => {
      // 81 is no app port: an app listening on it undeclared must not be reachable directly.
      expect(connect(PEER, POD_IP, 81)).toBe('proxy-inbound');
      // From outside, 15001 reaches the mTLS listener, never the outbound proxy.
      expect(connect(PEER, POD_IP, 15001)).toBe('proxy-inbound');
    });

    it('leaves the admin port, the inbound port and excluded inbound ports alone', () => {
      expect(connect(PEER, POD_IP, 15020)).toBe('proxy-admin');
      expect(connect(PEER, POD_IP, 15006)).toBe('proxy-inbound');
      expect(connect(PEER, POD_IP, 9090)).toBe('app-9090');
    });

    it('does the same for IPv6', () => {
      expect(connect(PEER, POD_IP6, 8080)).toBe('proxy-inbound');
      expect(connect(PEER, POD_IP6, 81)).toBe('proxy-inbound');
      expect(connect(PEER, POD_IP6, 15001)).toBe('proxy-inbound');
      expect(connect(PEER, POD_IP6, 15020)).toBe('proxy-admin');
      expect(connect(PEER, POD_IP6, 9090)).toBe('app-9090');
      expect(connect(POD, PEER_IP6, 80)).toBe('proxy-outbound');
      expect(connect(POD, '::1', 80)).toBe('real-80');
      expect(connect(POD, PEER_IP6, 80, { asProxy: true })).toBe('peer-80');
      expect(natRules('ip6tables-save')).toContain('-A TYPEMESH_OUTPUT -d ::1/128 -j RETURN');
    });
  });

  describe('typemesh-init rerun with all outbound TCP captured (idempotent), then --clean', () => {
    let cli: string;
    beforeAll(() => {
      cli = path.join(tmp, 'typemesh-init.js');
      sh(path.join(ROOT, 'node_modules/.bin/esbuild'), [
        path.join(ROOT, 'src/proxy-image/interception/cli.ts'), '--bundle', '--platform=node', '--target=node20', `--outfile=${cli}`, '--log-level=warning',
      ]);
    });

    it('replaces the earlier rules instead of adding to them', () => {
      const args = ['--app-ports', '8080', '--exclude-outbound-ports', '81', '--exclude-outbound-cidrs', '127.0.0.3/32'];
      sh('ip', ['netns', 'exec', POD, node, cli, ...args]);
      const once = natRules();
      sh('ip', ['netns', 'exec', POD, node, cli, ...args]);
      expect(natRules()).toEqual(once);
      expect(once.filter((l) => l === '-A OUTPUT -p tcp -j TYPEMESH_OUTPUT')).toHaveLength(1);
      expect(once.filter((l) => l === '-A PREROUTING -p tcp -j TYPEMESH_INBOUND')).toHaveLength(1);
      // The earlier run's rule on port 80 is gone: all TCP is captured now.
      expect(once).not.toContain('-A TYPEMESH_OUTPUT -p tcp -m tcp --dport 80 -j TYPEMESH_REDIRECT');
    });

    it('captures every outbound port except the excluded port and CIDR', () => {
      expect(connect(POD, '127.0.0.2', 82)).toBe('proxy-outbound');
      expect(connect(POD, '127.0.0.2', 81)).toBe('real-81');
      expect(connect(POD, '127.0.0.3', 80)).toBe('real-80');
      expect(connect(POD, '127.0.0.2', 80, { asProxy: true })).toBe('real-80');
      expect(connect(PEER, POD_IP, 8080)).toBe('proxy-inbound');
    });

    it('--clean removes every chain and jump, and traffic flows directly again', () => {
      sh('ip', ['netns', 'exec', POD, node, cli, '--clean']);
      expect(natRules().filter((l) => l.includes('TYPEMESH'))).toEqual([]);
      expect(natRules('ip6tables-save').filter((l) => l.includes('TYPEMESH'))).toEqual([]);
      expect(connect(POD, '127.0.0.2', 80)).toBe('real-80');
      expect(connect(PEER, POD_IP, 8080)).toBe('app-8080');
      // Cleaning twice is fine too.
      sh('ip', ['netns', 'exec', POD, node, cli, '--clean']);
    });
  });
});

/**
 * iptables-legacy locks /run/xtables.lock, which a read-only root cannot create: the script
 * must still install its rules there (issue 13). A private mount namespace gives the script a
 * read-only, empty /run and its own /tmp; iptables and ip6tables are the legacy ones.
 */
const legacyReason = reason ?? (existsSync('/usr/sbin/iptables-legacy') && existsSync('/usr/sbin/ip6tables-legacy') && existsSync('/usr/bin/unshare') && existsSync('/usr/bin/nsenter')
  ? undefined : 'iptables-legacy, ip6tables-legacy, unshare or nsenter missing');
(legacyReason ? describe.skip : describe)('the script under iptables-legacy on a read-only /run', () => {
  const NS = `tm5a-${process.pid}-ro`;
  beforeAll(() => {
    sh('ip', ['netns', 'add', NS]);
  });
  afterAll(() => {
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    } catch {
      // already gone
    }
  });

  it('falls back to a writable lock file and installs every rule', () => {
    const script = generateInterceptionScript({ appPorts: [8080], outboundPorts: [80] });
    const inside = [
      // A fresh /tmp is mounted privately (and writable, like /dev/shm in a pod): the fallback lands there.
      'mount -t tmpfs -o ro,size=1m tmpfs /run', 'mount -t tmpfs -o size=1m tmpfs /tmp',
      'mkdir /tmp/bin', 'ln -s /usr/sbin/iptables-legacy /tmp/bin/iptables', 'ln -s /usr/sbin/ip6tables-legacy /tmp/bin/ip6tables',
      'export PATH=/tmp/bin:$PATH',
      // Without the fallback, iptables-legacy itself fails here.
      'if iptables -w -t nat -L -n >/dev/null 2>&1; then echo "lock-ok"; else echo "lock-fails"; fi',
      'sh -e -s', // the script, on stdin
      'echo "v4 $(iptables-legacy-save -t nat | grep -c TYPEMESH)"', 'echo "v6 $(ip6tables-legacy-save -t nat | grep -c TYPEMESH)"',
    ].join(' && ');
    const out = sh('nsenter', [`--net=/run/netns/${NS}`, 'unshare', '-m', 'sh', '-c', inside], script);
    const rules = script.split('\n').filter((l) => l.startsWith('iptables ') && / -A /.test(l)).length;
    // iptables-save lists each chain (":CHAIN") and each rule mentioning TYPEMESH.
    const expected = 4 + rules;
    expect(out.split('\n').filter((l) => l !== '')).toEqual(['lock-fails', `v4 ${expected}`, `v6 ${expected}`]);
  });
});

/**
 * The real sidecar (bundled, uid 1337) in a pod namespace with the rules generated from its
 * config, attacked from a peer namespace on the same link, as anyone on the pod network could.
 */
describeReal('the sidecar behind the generated rules, seen from another pod', () => {
  const NS = `tm5a-${process.pid}-sc`;
  const NS_PEER = `tm5a-${process.pid}-scp`;
  const VETH = `tm5a${process.pid}c`;
  const VETH_P = `tm5a${process.pid}d`;
  const IP = '10.255.254.1';
  const IP_PEER = '10.255.254.2';
  const IP6 = 'fd00:5b::1';
  const IP6_PEER = 'fd00:5b::2';
  const node = process.execPath;
  const children: ChildProcess[] = [];
  let tmp: string;
  let ca: LocalCertificateAuthority;
  let client: { certFile: string; keyFile: string; caFile: string };
  let sidecarLog = '';

  /** The app: 8080 (declared) and 9999 (undeclared) on 0.0.0.0 and ::, each request appended to a file. */
  const APP = `
const http = require('http'); const fs = require('fs');
const [log] = process.argv.slice(1);
let ready = 0;
for (const port of [8080, 9999]) for (const host of ['0.0.0.0', '::']) {
  http.createServer((req, res) => {
    fs.appendFileSync(log, JSON.stringify({ port, url: req.url, xfcc: req.headers['x-forwarded-client-cert'] }) + '\\n');
    res.end('app:' + port + ' ' + req.url);
  }).listen({ port, host, ipv6Only: host === '::' }, () => { if (++ready === 4) console.log('ready'); });
}
setTimeout(() => process.exit(0), 300000).unref();
`;

  /** The peer's own server on port 80: the destination of tunnels and of the pod's outbound calls. */
  const PEER_SERVER = `
const http = require('http'); const fs = require('fs');
const [log] = process.argv.slice(1);
let ready = 0;
for (const host of ['0.0.0.0', '::']) {
  const s = http.createServer((req, res) => res.end('peer-80'));
  s.on('connection', (c) => fs.appendFileSync(log, c.remoteAddress + '\\n'));
  s.listen({ port: 80, host, ipv6Only: host === '::' }, () => { if (++ready === 2) console.log('ready'); });
}
setTimeout(() => process.exit(0), 300000).unref();
`;

  const appLog = (): Array<{ port: number; url: string; xfcc?: string }> => readLines(path.join(tmp, 'app.log')).map((l) => JSON.parse(l));
  const peerConnections = (): string[] => readLines(path.join(tmp, 'peer.log'));
  function readLines(file: string): string[] {
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
  }

  /** curl in a namespace: the status code (0 when no HTTP response came back) and the body. */
  function curl(ns: string, args: string[]): { status: number; body: string } {
    try {
      const out = sh('ip', ['netns', 'exec', ns, 'curl', '-sS', '-m', '5', '-w', '\n%{http_code}', ...args]);
      const nl = out.lastIndexOf('\n');
      return { status: Number(out.slice(nl + 1)), body: out.slice(0, nl) };
    } catch (e) {
      const out = String((e as { stdout?: string }).stdout ?? '');
      return { status: Number(out.slice(out.lastIndexOf('\n') + 1)) || 0, body: '' };
    }
  }
  /** curl over mTLS with the peer's mesh certificate (-k: the pod certificate names no IP address). */
  const mtls = (url: string): string[] => ['--cert', client.certFile, '--key', client.keyFile, '-k', url];

  function spawnIn(ns: string, args: string[]): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    child.stderr!.on('data', (d: Buffer) => { sidecarLog += d.toString(); });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${args.join(' ').slice(0, 80)} not ready in ${ns} within 15 s:\n${sidecarLog}`)), 15_000);
      child.stdout!.on('data', (d: Buffer) => {
        if (/ready/.test(d.toString())) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`${args.join(' ').slice(0, 80)} exited with ${code}:\n${sidecarLog}`)));
    });
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'tm5a-sidecar-'));
    chmodSync(tmp, 0o755); // the sidecar runs as uid 1337 and reads its files here
    for (const ns of [NS, NS_PEER]) sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', NS, 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', VETH_P, 'netns', NS_PEER]);
    for (const [ns, dev, ip, ip6] of [[NS, VETH, IP, IP6], [NS_PEER, VETH_P, IP_PEER, IP6_PEER]]) {
      sh('ip', ['-n', ns, 'addr', 'add', `${ip}/30`, 'dev', dev]);
      sh('ip', ['-n', ns, 'addr', 'add', `${ip6}/64`, 'dev', dev, 'nodad']);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }

    ca = await LocalCertificateAuthority.create();
    const pod = await ca.writeWorkloadFiles(path.join(tmp, 'payment'), { spiffeId: 'spiffe://cluster.local/ns/shop/sa/payment', dnsNames: ['payment'] });
    client = await ca.writeWorkloadFiles(path.join(tmp, 'order'), { spiffeId: 'spiffe://cluster.local/ns/shop/sa/order', dnsNames: ['order'] });
    for (const dir of ['payment', 'order']) chmodSync(path.join(tmp, dir), 0o755);
    chmodSync(pod.keyFile, 0o644); // a test key, readable by the sidecar's uid
    const input: SidecarConfigInput = {
      apiVersion: 'typemesh.io/v1alpha1',
      kind: 'SidecarConfig',
      workload: {
        name: 'payment', namespace: 'shop', version: 'v1', serviceAccount: 'payment',
        identity: 'spiffe://cluster.local/ns/shop/sa/payment', trustDomain: 'cluster.local', appPorts: [{ name: 'http', port: 8080 }],
      },
      // As the constructs write it: every address, the outbound listener's loopback by default.
      listeners: { bindAddress: '0.0.0.0' },
      tls: pod,
      inbound: { app: { address: '127.0.0.1', port: 8080 }, probes: [{ portName: 'http', kind: 'readyz', path: '/healthz' }] },
      outbound: { services: [], passthrough: true },
      telemetry: { metrics: { enabled: true }, accessLog: { enabled: false } },
    };
    const config = parseSidecarConfig(input, 'netns sidecar config');
    const configFile = path.join(tmp, 'sidecar.json');
    writeFileSync(configFile, JSON.stringify(input));
    chmodSync(configFile, 0o644);

    // The init container's rules from this config; port 80 captured too, so the pod's
    // outbound calls to the peer go through the sidecar.
    const options = { ...parseInterceptionArgs(interceptionArgsFor(config)).options, captureOutbound: true, outboundPorts: [80] };
    const script = path.join(tmp, 'interception.sh');
    writeFileSync(script, generateInterceptionScript(options));
    sh('ip', ['netns', 'exec', NS, 'sh', '-e', script]);

    // Our own bundle: the shared dist/ may be rebuilt by another jest run meanwhile.
    const bundle = path.join(tmp, 'typemesh-proxy.js');
    bundleWithEsbuild(ROOT, 'src/proxy-image/main.ts', bundle);
    chmodSync(bundle, 0o644);

    await spawnIn(NS, [node, '-e', APP, path.join(tmp, 'app.log')]);
    await spawnIn(NS_PEER, [node, '-e', PEER_SERVER, path.join(tmp, 'peer.log')]);
    const sidecar = spawn('ip', ['netns', 'exec', NS, 'setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', node, bundle, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(sidecar);
    for (const stream of [sidecar.stdout!, sidecar.stderr!]) stream.on('data', (d: Buffer) => { sidecarLog += d.toString(); });
    // Ready when the admin port answers from inside the pod (bounded: 100 tries).
    for (let i = 0; i < 100 && curl(NS, ['http://127.0.0.1:15020/healthz/ready']).status !== 200; i++) {
      if (sidecar.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (curl(NS, ['http://127.0.0.1:15020/healthz/ready']).status !== 200) throw new Error(`sidecar not ready:\n${sidecarLog}`);
  }, 120_000);

  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    for (const ns of [NS, NS_PEER]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
      } catch {
        // already gone
      }
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** The local addresses the pod's kernel lists as listening on a port (from /proc/net/tcp{,6}). */
  function listening(port: number): string[] {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    const out: string[] = [];
    for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
      for (const line of sh('ip', ['netns', 'exec', NS, 'cat', file]).split('\n').slice(1)) {
        const [, local, , state] = line.trim().split(/\s+/);
        if (state !== '0A' || !local?.endsWith(`:${hex}`)) continue; // 0A: LISTEN
        const addr = local.split(':')[0];
        out.push(v6 ? (addr === '0'.repeat(32) ? '::' : addr === '0'.repeat(24) + '01000000' ? '::1' : addr) : addr.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join('.'));
      }
    }
    return out.sort();
  }

  it('listens for the outbound port on loopback only; inbound and admin on every address of both families', () => {
    expect(listening(15001)).toEqual(['127.0.0.1', '::1']);
    expect(listening(15006)).toEqual(['0.0.0.0', '::']);
    expect(listening(15020)).toEqual(['0.0.0.0', '::']);
  });

  it('POD_IP:15001 from outside is no proxy: plaintext gets no answer, the app sees nothing', () => {
    const before = appLog().length;
    for (const host of [IP, `[${IP6}]`]) {
      const r = curl(NS_PEER, ['-X', 'POST', '-H', 'Host: payment-service', '--data', '{}', `http://${host}:15001/process`]);
      expect(r.status).toBe(0);
    }
    expect(appLog().length).toBe(before);
  });

  it('POD_IP:15001 from outside is the mTLS listener: a mesh certificate is served by the app as an inbound call', () => {
    const r = curl(NS_PEER, mtls(`https://${IP}:15001/via-15001`));
    expect(r).toEqual({ status: 200, body: 'app:8080 /via-15001' });
    // The app saw the caller's identity (the inbound listener's doing), not the pod's own.
    expect(appLog().at(-1)!.xfcc).toContain('URI=spiffe://cluster.local/ns/shop/sa/order');
  });

  it('CONNECT through POD_IP:15001 opens no tunnel', () => {
    const before = peerConnections().length;
    for (const target of [`${IP_PEER}:80`, `[${IP6_PEER}]:80`]) {
      const r = curl(NS_PEER, ['-p', '-x', `http://${IP}:15001`, `http://${target}/`]);
      expect(r.status).toBe(0);
    }
    expect(peerConnections().length).toBe(before);
  });

  it('an undeclared app port (9999) is captured: it reaches the sidecar, never the app directly', () => {
    const before = appLog().length;
    expect(curl(NS_PEER, [`http://${IP}:9999/direct`]).status).toBe(0);
    expect(curl(NS_PEER, [`http://[${IP6}]:9999/direct`]).status).toBe(0);
    expect(appLog().length).toBe(before);
    // With a mesh certificate it is the inbound listener, which forwards to the declared app port.
    expect(curl(NS_PEER, mtls(`https://${IP}:9999/via-9999`))).toEqual({ status: 200, body: 'app:8080 /via-9999' });
    expect(appLog().filter((l) => l.port === 9999)).toEqual([]);
  });

  it('IPv6 to the app\'s :: port is intercepted like IPv4', () => {
    const before = appLog().length;
    expect(curl(NS_PEER, [`http://[${IP6}]:8080/direct`]).status).toBe(0);
    expect(appLog().length).toBe(before);
    expect(curl(NS_PEER, mtls(`https://[${IP6}]:8080/over-ipv6`))).toEqual({ status: 200, body: 'app:8080 /over-ipv6' });
  });

  it('the admin port answers outsiders only readiness, metrics and the declared probe', () => {
    for (const host of [IP, `[${IP6}]`]) {
      const admin = (p: string): number => curl(NS_PEER, [`http://${host}:15020${p}`]).status;
      expect(admin('/healthz/ready')).toBe(200);
      expect(admin('/metrics')).toBe(200);
      expect(admin('/config_dump')).toBe(403);
      expect(admin('/clusters')).toBe(403);
      expect(admin('/app-health/http/livez')).toBe(404); // not declared
      const before = appLog().length;
      expect(admin('/app-health/http/readyz?path=/admin/delete-everything%3Fconfirm=yes')).toBe(200);
      expect(admin('/app-health/http/readyz')).toBe(200);
      // The app received the declared path twice, and nothing a client named.
      expect(appLog().slice(before).map((l) => l.url)).toEqual(['/healthz', '/healthz']);
    }
    // Inside the pod (loopback), the config dump is served.
    expect(curl(NS, ['http://127.0.0.1:15020/config_dump']).status).toBe(200);
    expect(curl(NS, ['http://[::1]:15020/clusters']).status).toBe(200);
  });

  it('inside the pod, transparent (IPv4 and IPv6) and explicit outbound calls still go through the loopback listener', () => {
    /** Connections the outbound listener accepted so far, from its own metrics. */
    const outboundConnections = (): number => {
      // reporter="source": the outbound side's connections (the inbound side reports "destination").
      const lines = curl(NS, ['http://127.0.0.1:15020/metrics']).body.split('\n').filter((l) => l.startsWith('typemesh_tcp_connections_opened_total{') && l.includes('reporter="source"'));
      return lines.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    };
    const before = outboundConnections();
    expect(curl(NS, [`http://${IP_PEER}/`])).toEqual({ status: 200, body: 'peer-80' });
    // ip6tables REDIRECT sends this to [::1]:15001: only the ::1 listener makes it work.
    expect(curl(NS, [`http://[${IP6_PEER}]/`])).toEqual({ status: 200, body: 'peer-80' });
    expect(curl(NS, ['-x', 'http://127.0.0.1:15001', `http://${IP_PEER}/`])).toEqual({ status: 200, body: 'peer-80' });
    // All three went through the outbound listener.
    expect(outboundConnections() - before).toBe(3);
  });

  it('even without the rules, nothing outside the pod reaches the outbound listener', () => {
    const clean = path.join(tmp, 'clean.sh');
    writeFileSync(clean, generateInterceptionScript({}, { clean: true }));
    sh('ip', ['netns', 'exec', NS, 'sh', '-e', clean]);
    try {
      expect(connectFrom(NS_PEER, IP, 15001)).toBe('ECONNREFUSED');
      expect(connectFrom(NS_PEER, IP6, 15001)).toBe('ECONNREFUSED');
    } finally {
      sh('ip', ['netns', 'exec', NS, 'sh', '-e', path.join(tmp, 'interception.sh')]);
    }
  });

  function connectFrom(ns: string, host: string, port: number): string {
    return sh('ip', ['netns', 'exec', ns, node, '-e', CLIENT, host, String(port)]).trim();
  }
});
