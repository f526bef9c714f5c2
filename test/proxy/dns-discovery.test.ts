/**
 * DNS discovery of a subset, proven with real name resolution changes: the subset is found by
 * the name `payment-v1.mesh.test`, and the test changes what that name resolves to while
 * traffic flows.
 *
 * The host's /etc/hosts is never touched. Every process of this test (the upstream apps, two
 * payment sidecars, the order sidecars and a socket forwarder) runs inside a network namespace
 * that the test creates, started with `ip netns exec`, which bind-mounts
 * /etc/netns/<ns>/hosts over /etc/hosts for those processes only. glibc's getaddrinfo (behind
 * Node's dns.lookup) re-reads that file on every lookup, so rewriting it in place (same inode:
 * the bind mount follows the inode, not the name) is a DNS change the sidecar sees on its next
 * lookup. /etc/netns/<ns>/resolv.conf points at 127.0.0.1 inside the namespace, where nothing
 * listens, so a name missing from the hosts file fails fast and never leaves the namespace.
 *
 * Endpoint A is payment's sidecar on 127.0.0.2 and endpoint B the same on 127.0.0.3 (both on
 * the namespace's loopback, same inbound port, as the pods of a headless Service). The test
 * process stays in the host namespace and talks to listeners inside through unix sockets
 * (a forwarder inside the namespace; unix socket paths are not namespaced).
 *
 * Needs root and `ip netns`; skipped otherwise with the reason printed.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Agent, request } from 'undici';
import type { SidecarConfigInput } from '../../src/config';
import { cleanup, onCleanup, ORDER_ID, PAYMENT_ID, PROXY_BUNDLE, sleep, SidecarPorts, SidecarProcess, tempDir, TestPki, workloadConfig } from './harness';

const NS = `tm-dns-${process.pid}`;
const NS_ETC = `/etc/netns/${NS}`;
const HOSTNAME = 'payment-v1.mesh.test';
const EXEC_TIMEOUT_MS = 10_000;
// The namespace is fresh and private to this test file, so fixed ports cannot collide with
// other test files; each sidecar has its own loopback address.
const PORTS: SidecarPorts = { outbound: 15001, inbound: 15006, admin: 15020 };
const ADDR_A = '127.0.0.2';
const ADDR_B = '127.0.0.3';
const ADDR_ORDER_INTERVAL = '127.0.0.1';
const ADDR_ORDER_CONNECT = '127.0.0.4';
const APP_PORT_A = 18001;
const APP_PORT_B = 18002;
/** Refresh interval of the sidecar that must follow the name by re-resolving on the interval. */
const REFRESH_MS = 1500;
/** Slack over REFRESH_MS for a lookup and the next request on a machine shared by many test runs. */
const SLACK_MS = 1500;
const REQUEST_GAP_MS = 50;

/** Why the test cannot run here, or undefined when it can. */
function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root';
  const probe = `tm-dns-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
  } catch (e) {
    return `cannot create a network namespace with "ip netns add": ${(e as Error).message.split('\n')[0]}`;
  }
  try {
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
  } catch {
    // best effort: the probe namespace holds no process
  }
  return undefined;
}

const reason = unavailableReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED dns-discovery: the real DNS re-resolution test needs root and ip netns: ${reason}`);
}
const describeReal = reason ? describe.skip : describe;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: EXEC_TIMEOUT_MS });
}

/** Removes the namespace and its /etc/netns files; safe to call twice. */
function removeNamespace(): void {
  try {
    sh('ip', ['netns', 'del', NS]);
  } catch {
    // already gone
  }
  rmSync(NS_ETC, { recursive: true, force: true });
}

/**
 * Sets what the namespace's /etc/hosts says for HOSTNAME (undefined: the name is removed).
 * Written in place, never renamed: `ip netns exec` bind-mounted this very inode over /etc/hosts.
 */
function setHosts(address: string | undefined): void {
  const lines = ['127.0.0.1 localhost', '::1 localhost'];
  if (address) lines.push(`${address} ${HOSTNAME}`);
  writeFileSync(path.join(NS_ETC, 'hosts'), lines.join('\n') + '\n');
}

/** Two apps answering with their name (body and x-app), inside the namespace. */
const APPS = `
const http = require('http');
const apps = JSON.parse(process.argv[1]);
let ready = 0;
for (const [port, name] of Object.entries(apps)) {
  http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { res.writeHead(200, { 'x-app': name }); res.end(name); });
  }).listen(Number(port), '127.0.0.1', () => { if (++ready === Object.keys(apps).length) console.log('ready'); });
}
setTimeout(() => process.exit(0), 300000).unref(); // never outlive the test
`;

/** Unix socket -> TCP address inside the namespace, so the test process can reach listeners there. */
const FORWARDER = `
const net = require('net');
const routes = JSON.parse(process.argv[1]);
let ready = 0;
for (const [socketPath, [host, port]] of Object.entries(routes)) {
  net.createServer((c) => {
    const u = net.connect(port, host);
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  }).listen(socketPath, () => { if (++ready === Object.keys(routes).length) console.log('ready'); });
}
setTimeout(() => process.exit(0), 300000).unref(); // never outlive the test
`;

/** Spawns a helper script in the namespace and waits for it to print "ready". */
function startInNamespace(script: string, arg: unknown): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', script, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  onCleanup(() => {
    child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`helper in ${NS} not ready within 10 s: ${stderr}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`helper in ${NS} exited with ${code}: ${stderr}`));
    });
  });
}

/** An HTTP client whose every connection goes through a forwarder socket into the namespace. */
function agentFor(socketPath: string): Agent {
  const agent = new Agent({ connect: { socketPath } });
  onCleanup(() => agent.destroy());
  return agent;
}

/** Spawns a sidecar in the namespace (readiness is checked by the caller). */
function spawnSidecarInNamespace(dir: string, name: string, config: SidecarConfigInput): SidecarProcess {
  const configFile = path.join(dir, `${name}.json`);
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  // `ip netns exec` execs the command, so the child's pid is the sidecar's own.
  const child = spawn('ip', ['netns', 'exec', NS, process.execPath, PROXY_BUNDLE, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p = new SidecarProcess(child, configFile, PORTS);
  onCleanup(() => p.stop('SIGKILL', 2000).then(() => undefined));
  return p;
}

/** Polls a sidecar's /healthz/ready through its admin forwarder until 200 (bounded). */
async function waitReadyVia(p: SidecarProcess, admin: Agent, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.exitCode !== null) throw new Error(`sidecar exited with ${p.exitCode}:\n${p.stderr.join('\n')}`);
    try {
      const r = await request('http://admin/healthz/ready', { dispatcher: admin });
      await r.body.text();
      if (r.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`sidecar ${p.configFile} not ready within ${timeoutMs} ms:\n${p.stderr.join('\n')}`);
}

/** One request through an order sidecar to "payment": status, which app answered, when. */
interface Sample {
  readonly at: number;
  readonly status: number;
  readonly app: string;
  readonly body: string;
}

async function callPayment(outbound: Agent): Promise<Sample> {
  try {
    const r = await request('http://payment/pay', { dispatcher: outbound, headers: { host: 'payment' }, headersTimeout: 5000, bodyTimeout: 5000 });
    const body = await r.body.text();
    return { at: Date.now(), status: r.statusCode, app: String(r.headers['x-app'] ?? ''), body };
  } catch (e) {
    return { at: Date.now(), status: 0, app: '', body: (e as Error).message };
  }
}

/** Sends requests one after another (REQUEST_GAP_MS apart) until `done` says so or maxMs pass. */
async function traffic(outbound: Agent, maxMs: number, done: (samples: Sample[]) => boolean = () => false): Promise<Sample[]> {
  const samples: Sample[] = [];
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    samples.push(await callPayment(outbound));
    if (done(samples)) break;
    await sleep(REQUEST_GAP_MS);
  }
  return samples;
}

/** Requests until one is answered by `app` (bounded); returns the samples sent. */
async function waitServedBy(outbound: Agent, app: string, timeoutMs: number): Promise<Sample[]> {
  const samples = await traffic(outbound, timeoutMs, (s) => s[s.length - 1].app === app);
  if (samples[samples.length - 1]?.app !== app) {
    throw new Error(`no request served by ${app} within ${timeoutMs} ms; last: ${JSON.stringify(samples.slice(-3))}`);
  }
  return samples;
}

function describeSamples(samples: Sample[]): string {
  return samples.map((s) => `${s.status}:${s.app || '-'}`).join(' ');
}

function failureLogs(p: SidecarProcess): number {
  return p.stderr.filter((l) => l.includes('DNS discovery failed') && l.includes(HOSTNAME)).length;
}

describeReal('DNS discovery re-resolves the subset hostname (real /etc/hosts changes in a network namespace)', () => {
  let dir: string;
  let pki: TestPki;
  let paymentA: SidecarProcess;
  let orderConfig: (name: string, address: string, refreshIntervalMs: number) => Promise<SidecarConfigInput>;
  /** Starts a payment sidecar in front of an app port, reachable for readiness via sockets[`<last letter of name>-admin`]. */
  let startPayment: (name: string, address: string, appPort: number) => Promise<SidecarProcess>;
  /** Forwarder sockets of the listeners the test talks to. */
  const sockets: Record<string, string> = {};

  beforeAll(async () => {
    dir = tempDir('tm-dns-discovery-');
    removeNamespace(); // a leftover of a killed earlier run with the same pid
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    mkdirSync(NS_ETC, { recursive: true });
    // Nothing listens on 127.0.0.1:53 in the namespace: a name not in the hosts file fails in
    // milliseconds (connection refused) instead of waiting for a resolver timeout.
    writeFileSync(path.join(NS_ETC, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    setHosts(ADDR_A);

    await startInNamespace(APPS, { [APP_PORT_A]: 'A', [APP_PORT_B]: 'B' });
    for (const name of ['a-admin', 'b-admin', 'oi-admin', 'oc-admin', 'oi-out', 'oc-out']) sockets[name] = path.join(dir, `${name}.sock`);
    await startInNamespace(FORWARDER, {
      [sockets['a-admin']]: [ADDR_A, PORTS.admin],
      [sockets['b-admin']]: [ADDR_B, PORTS.admin],
      [sockets['oi-admin']]: [ADDR_ORDER_INTERVAL, PORTS.admin],
      [sockets['oc-admin']]: [ADDR_ORDER_CONNECT, PORTS.admin],
      [sockets['oi-out']]: [ADDR_ORDER_INTERVAL, PORTS.outbound],
      [sockets['oc-out']]: [ADDR_ORDER_CONNECT, PORTS.outbound],
    });

    pki = await TestPki.create(dir);
    const payment = async (name: string, address: string, appPort: number): Promise<SidecarProcess> => {
      const base = workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: PORTS, tls: await pki.workload(name, PAYMENT_ID), appPort });
      const p = spawnSidecarInNamespace(dir, name, { ...base, listeners: { ...base.listeners, bindAddress: address } });
      await waitReadyVia(p, agentFor(sockets[`${name.slice(-1)}-admin`]));
      return p;
    };
    startPayment = payment;
    paymentA = await payment('payment-a', ADDR_A, APP_PORT_A);
    await payment('payment-b', ADDR_B, APP_PORT_B);

    orderConfig = async (name, address, refreshIntervalMs) => {
      const base = workloadConfig({
        name: 'order',
        identity: ORDER_ID,
        ports: PORTS,
        tls: await pki.workload(name, ORDER_ID),
        appPort: 18000, // order's own app is never called here
        services: [{
          name: 'payment',
          namespace: 'shop',
          hosts: ['payment'],
          port: 8080,
          subsets: [{ name: 'v1', identity: PAYMENT_ID, discovery: { type: 'dns', hostname: HOSTNAME, port: PORTS.inbound, refreshIntervalMs } }],
          routes: [{ name: 'all', destinations: [{ subset: 'v1', weight: 100 }] }],
        }],
      });
      return { ...base, listeners: { ...base.listeners, bindAddress: address } };
    };
  }, 60_000);

  afterAll(async () => {
    await cleanup();
    removeNamespace();
    expect(existsSync(NS_ETC)).toBe(false);
  }, 30_000);

  describe('re-resolution on the interval', () => {
    let order: SidecarProcess;
    let outbound: Agent;

    beforeAll(async () => {
      setHosts(ADDR_A);
      order = spawnSidecarInNamespace(dir, 'order-interval', await orderConfig('order-interval', ADDR_ORDER_INTERVAL, REFRESH_MS));
      await waitReadyVia(order, agentFor(sockets['oi-admin']));
      outbound = agentFor(sockets['oi-out']);
      // The first lookup runs in the background at startup; wait for it to have served A.
      await waitServedBy(outbound, 'A', 5000);
    }, 30_000);

    test('a changed record moves traffic from A to B within the refresh interval, with no failed request', async () => {
      const before = await traffic(outbound, 10_000, (s) => s.length === 10);
      expect(describeSamples(before)).toBe(Array(10).fill('200:A').join(' '));

      const changedAt = Date.now();
      setHosts(ADDR_B);
      // Keep going for a while after the first B to see that traffic stays on B.
      const samples = await traffic(outbound, REFRESH_MS + SLACK_MS + 1500, (s) => {
        const firstB = s.findIndex((x) => x.app === 'B');
        return firstB >= 0 && s.length - firstB >= 10;
      });
      // A stayed up throughout, so every request succeeded: on A, then (moved, not split) only on B.
      expect(describeSamples(samples)).toMatch(/^(200:A )*(200:B ){9}200:B$/);
      const firstB = samples.findIndex((s) => s.app === 'B');
      expect(samples[firstB].at - changedAt).toBeLessThanOrEqual(REFRESH_MS + SLACK_MS);
    });

    test('a failed lookup (name removed) keeps the last endpoints serving', async () => {
      setHosts(ADDR_B);
      await waitServedBy(outbound, 'B', REFRESH_MS + SLACK_MS);
      const failuresBefore = failureLogs(order);

      setHosts(undefined);
      // At least two failed lookups on the interval, proven by the sidecar's own warning.
      const samples = await traffic(outbound, 3 * REFRESH_MS + 2 * SLACK_MS, () => failureLogs(order) >= failuresBefore + 2);
      const failuresAfter = failureLogs(order);
      expect(failuresAfter - failuresBefore).toBeGreaterThanOrEqual(2);
      expect(order.stderr.filter((l) => l.includes('DNS discovery failed')).slice(-1)[0]).toContain(HOSTNAME);
      expect(samples.length).toBeGreaterThan(5);
      expect(describeSamples(samples)).toMatch(/^(200:B )*200:B$/);
    });
  });

  describe('re-resolution after a connect failure', () => {
    /** Far beyond the test's length: only a connect failure can trigger the next lookup. */
    const LONG_REFRESH_MS = 600_000;
    let order: SidecarProcess;
    let outbound: Agent;
    /** When the sidecar was seen serving A: its startup lookup happened before this. */
    let servedAt: number;

    beforeAll(async () => {
      setHosts(ADDR_A);
      order = spawnSidecarInNamespace(dir, 'order-connect', await orderConfig('order-connect', ADDR_ORDER_CONNECT, LONG_REFRESH_MS));
      await waitReadyVia(order, agentFor(sockets['oc-admin']));
      outbound = agentFor(sockets['oc-out']);
      await waitServedBy(outbound, 'A', 5000);
      servedAt = Date.now();
    }, 30_000);

    test("A's listener closed: the connect failure triggers a lookup that finds B", async () => {
      setHosts(ADDR_B);
      // Without a connect failure nothing re-resolves: traffic stays on A (A is still up).
      const stillA = await traffic(outbound, 10_000, (s) => s.length === 10);
      expect(describeSamples(stillA)).toBe(Array(10).fill('200:A').join(' '));
      // Lookups are rate-limited to one a second: a connect failure within a second of the
      // startup lookup would not re-resolve, so make sure that lookup is older than that.
      await sleep(Math.max(0, servedAt + 1200 - Date.now()));

      const killedAt = Date.now();
      await paymentA.stop('SIGKILL', 2000);
      const samples = await traffic(outbound, 5000, (s) => {
        const firstB = s.findIndex((x) => x.app === 'B');
        return firstB >= 0 && s.length - firstB >= 10;
      });
      // The request that meets the closed listener fails (no retries are configured) and
      // triggers the lookup; at most one more may meet a pooled connection to A that died with
      // it. Then only B.
      expect(describeSamples(samples)).toMatch(/^(503:- ){1,2}(200:B ){9}200:B$/);
      const firstB = samples.findIndex((s) => s.app === 'B');
      expect(samples[firstB - 1].body).toMatch(/^upstream connect error: .*ECONNREFUSED/);
      expect(samples[firstB].at - killedAt).toBeLessThan(3000);
    });
  });
  describe('a connect failure within a second of the last lookup', () => {
    /** Far beyond the test's length: only connect failures can trigger lookups. */
    const LONG_REFRESH_MS = 600_000;
    const ADDR_E = '127.0.0.5';
    const ADDR_C = '127.0.0.6';
    const ADDR_ORDER_FAST = '127.0.0.7';
    let paymentE: SidecarProcess;
    let paymentC: SidecarProcess;
    let outbound: Agent;

    beforeAll(async () => {
      await startInNamespace(APPS, { 18003: 'E', 18004: 'C' });
      for (const name of ['e-admin', 'c-admin', 'of-admin', 'of-out']) sockets[name] = path.join(dir, `${name}.sock`);
      await startInNamespace(FORWARDER, {
        [sockets['e-admin']]: [ADDR_E, PORTS.admin],
        [sockets['c-admin']]: [ADDR_C, PORTS.admin],
        [sockets['of-admin']]: [ADDR_ORDER_FAST, PORTS.admin],
        [sockets['of-out']]: [ADDR_ORDER_FAST, PORTS.outbound],
      });
      [paymentE, paymentC] = await Promise.all([startPayment('payment-e', ADDR_E, 18003), startPayment('payment-c', ADDR_C, 18004)]);
      setHosts(ADDR_E);
      const order = spawnSidecarInNamespace(dir, 'order-fast', await orderConfig('order-fast', ADDR_ORDER_FAST, LONG_REFRESH_MS));
      await waitReadyVia(order, agentFor(sockets['of-admin']));
      outbound = agentFor(sockets['of-out']);
      await waitServedBy(outbound, 'E', 5000);
      // Let the startup lookup fall out of the one-second rate-limit window.
      await sleep(1200);
    }, 60_000);

    test('the re-resolve it asks for runs at the end of the rate-limit window, not at the next interval', async () => {
      // Lookup 1: E dies while the name says C; its connect failure re-resolves to C.
      setHosts(ADDR_C);
      await paymentE.stop('SIGKILL', 2000);
      let trigger: (Sample & { sentAt: number }) | undefined;
      for (let i = 0; i < 5 && !trigger; i++) {
        const sentAt = Date.now();
        const s = await callPayment(outbound);
        if (/ECONNREFUSED/.test(s.body)) trigger = { ...s, sentAt };
      }
      expect(trigger?.status).toBe(503);
      await waitServedBy(outbound, 'C', 2000);

      // C dies right after that lookup, and the name now says B. The connect failure to C asks
      // for a re-resolve inside the rate-limit window of lookup 1 (which started after
      // trigger.sentAt).
      setHosts(ADDR_B);
      await paymentC.stop('SIGKILL', 2000);
      let failedOnC: Sample | undefined;
      for (let i = 0; i < 3 && !failedOnC; i++) {
        const s = await callPayment(outbound);
        if (/ECONNREFUSED/.test(s.body)) failedOnC = s;
      }
      expect(failedOnC?.status).toBe(503);
      if (failedOnC!.at - trigger!.sentAt >= 1000) {
        throw new Error(`setup too slow to test the rate-limit window: the failure on C came ${failedOnC!.at - trigger!.sentAt} ms after lookup 1`);
      }

      // No traffic now: only a lookup the sidecar scheduled itself can find B. Lookup 1 started
      // less than a second before failedOnC, so the deferred lookup is due by failedOnC + 1 s.
      await sleep(Math.max(0, failedOnC!.at + 1500 - Date.now()));
      const after = await traffic(outbound, 5000, (s) => s.length === 5);
      // Without the deferred lookup the first request would meet C's closed port again (503).
      expect(describeSamples(after)).toBe(Array(5).fill('200:B').join(' '));
    });
  });
});
