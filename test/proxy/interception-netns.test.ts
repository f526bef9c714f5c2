/**
 * The generated iptables rules, applied for real inside network namespaces that this test
 * creates and removes, proven with real sockets: a "pod" namespace gets the rules, a
 * "peer" namespace plays another pod connected by a veth pair. Every address used exists
 * only inside these two namespaces, so no packet reaches the host's interfaces.
 *
 * Needs root, `ip netns` and iptables (iptables-nft or legacy); skipped otherwise with the
 * reason printed. CI runs as root with iptables installed.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { generateInterceptionScript } from '../../src/proxy-image/interception';

const ROOT = path.resolve(__dirname, '../..');
const POD = `tm-test-${process.pid}`;
const PEER = `tm-test-${process.pid}-peer`;
const VETH_POD = `tm${process.pid}a`;
const VETH_PEER = `tm${process.pid}b`;
// A /30 that exists only on the veth pair between the two namespaces.
const POD_IP = '10.255.255.1';
const PEER_IP = '10.255.255.2';
const PROXY_UID = 1337;
const EXEC_TIMEOUT_MS = 10_000;

/** Why the real test cannot run here, or undefined when it can. */
function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root';
  if (!existsSync('/usr/sbin/iptables') && !existsSync('/sbin/iptables')) return 'iptables is not installed (apt-get install iptables)';
  if (!existsSync('/usr/bin/setpriv')) return 'setpriv (util-linux) is not installed';
  const probe = `tm-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
  } catch (e) {
    return `cannot create a network namespace: ${(e as Error).message.split('\n')[0]}`;
  }
  try {
    execFileSync('ip', ['netns', 'exec', probe, 'iptables', '-w', '-t', 'nat', '-L', '-n'], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    return undefined;
  } catch (e) {
    return `iptables does not work in a network namespace: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
  }
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

/** Listeners that answer every connection with their own name, then close. */
const SERVER = `
const net = require('net');
const listeners = JSON.parse(process.argv[1]);
let ready = 0;
for (const [port, name] of Object.entries(listeners)) {
  net.createServer((s) => s.end(name + '\\n')).listen(Number(port), '0.0.0.0', () => {
    if (++ready === Object.keys(listeners).length) console.log('ready');
  });
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

  function natRules(): string[] {
    return sh('ip', ['netns', 'exec', POD, 'iptables-save', '-t', 'nat']).split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'tm-interception-'));
    sh('ip', ['netns', 'add', POD]);
    sh('ip', ['netns', 'add', PEER]);
    // The veth pair is created directly inside the two namespaces, never on the host.
    sh('ip', ['-n', POD, 'link', 'add', VETH_POD, 'type', 'veth', 'peer', 'name', VETH_PEER, 'netns', PEER]);
    sh('ip', ['-n', POD, 'addr', 'add', `${POD_IP}/30`, 'dev', VETH_POD]);
    sh('ip', ['-n', PEER, 'addr', 'add', `${PEER_IP}/30`, 'dev', VETH_PEER]);
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

    it('leaves the admin port, the listeners and excluded or unlisted inbound ports alone', () => {
      expect(connect(PEER, POD_IP, 15020)).toBe('proxy-admin');
      expect(connect(PEER, POD_IP, 15006)).toBe('proxy-inbound');
      expect(connect(PEER, POD_IP, 9090)).toBe('app-9090');
      expect(connect(PEER, POD_IP, 81)).toBe('real-81');
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
      expect(connect(POD, '127.0.0.2', 80)).toBe('real-80');
      expect(connect(PEER, POD_IP, 8080)).toBe('app-8080');
      // Cleaning twice is fine too.
      sh('ip', ['netns', 'exec', POD, node, cli, '--clean']);
    });
  });
});
