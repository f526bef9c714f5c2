/**
 * The attacker suite's world: a meshed pod laid out in network namespaces exactly as a
 * cluster lays it out, and the positions an attacker can take around it.
 *
 *   tmsec-<run>-hub   a bridge (tmsecbr0) and nothing else; every namespace below hangs off it
 *   tmsec-<run>-app   the attacked pod "payment": its app (recording-app.ts, 0.0.0.0 and :: on
 *                     8080 and the undeclared 9999) and its sidecar (the bundled proxy, uid 1337),
 *                     with the iptables rules the init container installs, generated from the
 *                     sidecar config by interceptionArgsFor + generateInterceptionScript
 *   tmsec-<run>-peer  the peer pod "order": the same, with a valid mesh identity; its app may
 *                     POST /process on payment, and payment may POST /process on it
 *   tmsec-<run>-atk   an attacker on the pod network: no sidecar, no certificate, root
 *
 * Clients run as agents inside the namespaces (netns-agent.ts): `attacker` (root, atk),
 * `podApp` (uid 1000 in the attacked pod: what the app container, or a process that took
 * it over, can do), `peerApp` (uid 1000 in the peer pod: its normal traffic goes through
 * its sidecar) and `peerRogue` (uid 1337 in the peer pod holding the peer's key: the
 * strongest "another pod" attacker, one that took over a whole pod with its identity).
 *
 * payment's policy (targetConfig): DENY /admin and /admin/* for everyone; DENY DELETE for
 * everyone; ALLOW order to POST /process; ALLOW order to GET everything else (so the DENY
 * rule, not the default, is what a disguised /admin must meet); ALLOW order any method on
 * /orders/* (so only the DENY stops a disguised DELETE there); ALLOW anyone, plaintext
 * included, to GET /public.
 *
 * Every address lives only on the hub's bridge (10.251.x.0/24 and fd00:251:x::/64); the
 * hub has no link to the host, so no packet can leave these namespaces. The jest process
 * itself stays in the host namespace and only talks to the agents over pipes.
 *
 * Needs root, iproute2, iptables and setpriv; `securitySkipReason()` says why not.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { buildSync } from 'esbuild';
import { parseSidecarConfig, SidecarConfigInput } from '../../src/config';
// The init container's arguments come from the same function the constructs use (pod-contract),
// and typemesh-init turns them into the script exactly as below.
import { interceptionArgsFor } from '../../src/config/pod-contract';
import { generateInterceptionScript, parseInterceptionArgs } from '../../src/proxy-image/interception';
import { netnsUnavailableReason } from '../netns-support';
import type { AgentChunk, AgentTls, ExchangeRequest, ExchangeResult, H2Request, H2Result } from './netns-agent';
import { LeafFiles, SecurityCa } from './pki';

export const ROOT = path.resolve(__dirname, '../..');
const PROXY_BUNDLE = path.join(ROOT, 'dist/proxy/typemesh-proxy.js');
export const TRUST_DOMAIN = 'cluster.local';
/** The attacked workload. */
export const TARGET_ID = 'spiffe://cluster.local/ns/shop/sa/payment';
/** The peer workload: the only caller payment's policy allows (POST /process). */
export const PEER_ID = 'spiffe://cluster.local/ns/shop/sa/order';
/** The proxy's ports as the chart sets them, the app's declared port and an undeclared one. */
export const PORTS = { outbound: 15001, inbound: 15006, admin: 15020, app: 8080, undeclared: 9999 } as const;
export const PROXY_UID = 1337;
/** The uid of the app containers' processes (anything but 0 and 1337). */
export const APP_UID = 1000;
/**
 * Short head timeout for the sidecars (TYPEMESH_REQUEST_HEAD_TIMEOUT_MS), so slowloris
 * tests see the server close a connection within seconds rather than the 60 s default.
 */
export const HEAD_TIMEOUT_MS = 2000;
/**
 * Short TLS handshake timeout for the sidecars (TYPEMESH_HANDSHAKE_TIMEOUT_MS), for the same
 * reason; a little longer than the head timeout, as real handshakes between the sidecars must
 * never hit it on a loaded machine.
 */
export const HANDSHAKE_TIMEOUT_MS = 2500;
const EXEC_TIMEOUT_MS = 15_000;

/** Why the suite cannot run here, or undefined when it can. */
export function securitySkipReason(): string | undefined {
  return netnsUnavailableReason(`tmsec-${process.pid}`, {
    timeoutMs: EXEC_TIMEOUT_MS,
    extra: () => {
      for (const [bin, pkg] of [['iptables', 'iptables'], ['ip', 'iproute2'], ['setpriv', 'util-linux']]) {
        try {
          execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
        } catch {
          return `${bin} is not installed (apt-get install ${pkg})`;
        }
      }
      if (!existsSync(PROXY_BUNDLE)) return `the sidecar bundle ${PROXY_BUNDLE} is missing (jest's globalSetup builds it)`;
      return undefined;
    },
  });
}

/**
 * Deletes the namespaces of runs whose jest worker is gone (killed before its afterAll), so
 * they do not pile up. Namespaces of live workers, this one's included, are left alone.
 */
function removeOrphanNamespaces(): void {
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
  for (const name of names) {
    const m = /^tmsec-(\d+)-[a-z0-9]+-(?:hub|app|peer|atk)$/.exec(name);
    if (!m || existsSync(`/proc/${m[1]}`)) continue;
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    } catch {
      // gone meanwhile
    }
  }
}

/** `describe`, or `describe.skip` with the reason printed, for every file of the suite. */
export function describeSecurity(title: string, fn: () => void): void {
  const reason = securitySkipReason();
  if (reason) {
    // eslint-disable-next-line no-console
    console.warn(`SKIPPED security suite (${title}): it builds a pod in network namespaces and needs root, iproute2, iptables and setpriv: ${reason}`);
    describe.skip(title, fn);
  } else {
    describe(title, fn);
  }
}

function sh(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: EXEC_TIMEOUT_MS });
  } catch (e) {
    const err = e as { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr ?? (e as Error).message}`);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A process started inside a namespace, with its output lines kept. */
class NsProcess {
  public readonly lines: string[] = [];
  public readonly stderr: string[] = [];
  public exited = false;
  constructor(public readonly name: string, public readonly child: ChildProcess, private readonly onLine?: (line: string) => void) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      if (this.onLine) this.onLine(l);
      else this.lines.push(l);
    });
    readline.createInterface({ input: child.stderr! }).on('line', (l) => {
      this.stderr.push(l);
      if (this.stderr.length > 400) this.stderr.splice(0, 100);
    });
    child.once('exit', () => (this.exited = true));
  }

  public stop(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 3000);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.child.kill('SIGKILL');
    });
  }
}

function spawnIn(ns: string, uid: number | undefined, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  // setpriv execs the command, and `ip netns exec` execs setpriv: the child's pid is the command's.
  const asUid = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--pdeathsig', 'KILL', '--'];
  return spawn('ip', ['netns', 'exec', ns, ...asUid, command, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

/**
 * Copies the sidecar bundle, waiting while another jest run (other test files start their own
 * globalSetup) is rewriting it: esbuild writes the source-map comment last, so a copy that
 * ends with it is whole.
 */
async function copyWholeBundle(from: string, to: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    copyFileSync(from, to);
    if (readFileSync(to, 'latin1').trimEnd().split('\n').pop()!.startsWith('//# sourceMappingURL=')) return;
    await sleep(250);
  }
  throw new Error(`${from} stayed incomplete for 10 s (a bundle being rebuilt?)`);
}

/** A client inside one namespace (see netns-agent.ts). */
export class Agent {
  public static async start(label: string, ns: string, uid: number | undefined, bundle: string): Promise<Agent> {
    const agent = new Agent(label, spawnIn(ns, uid, process.execPath, [bundle]));
    await agent.ready;
    return agent;
  }

  private readonly proc: NsProcess;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private readonly ready: Promise<void>;

  private constructor(public readonly label: string, child: ChildProcess) {
    let markReady!: () => void;
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      child.once('exit', (code) => reject(new Error(`agent ${label} exited with ${code}`)));
    });
    this.proc = new NsProcess(label, child, (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; id?: number; result?: unknown; error?: string };
      if (msg.ready) return markReady();
      const p = this.pending.get(msg.id!);
      if (!p) return;
      this.pending.delete(msg.id!);
      if (msg.error) p.reject(new Error(`agent ${label}: ${msg.error}`));
      else p.resolve(msg.result);
    });
    child.once('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error(`agent ${label} exited: ${this.proc.stderr.join('\n')}`));
      this.pending.clear();
    });
  }

  /** Connects from this agent's namespace and uid, sends, and reports what came back. */
  public exchange(req: ExchangeRequest): Promise<ExchangeResult> {
    return this.command('exchange', req) as Promise<ExchangeResult>;
  }

  /** One HTTP/2 request over TLS, headers sent as given (a lower-case :method included). */
  public h2(req: H2Request): Promise<H2Result> {
    return this.command('h2', req) as Promise<H2Result>;
  }

  private command(op: string, args: unknown): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.child.stdin!.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }

  /** Sends one message (a string, or chunks) and waits for the server to answer and/or close. */
  public send(host: string, port: number, data: string | readonly AgentChunk[], opts: { tls?: AgentTls; timeoutMs?: number } = {}): Promise<ExchangeResult> {
    return this.exchange({ host, port, tls: opts.tls, chunks: typeof data === 'string' ? [{ data }] : data, timeoutMs: opts.timeoutMs ?? 5000 });
  }

  public stop(): Promise<void> {
    this.proc.child.stdin!.end();
    return this.proc.stop();
  }
}

/** One thing the app saw. */
export interface AppEvent {
  /** 'complete': the request's body was read to its end (the app would act on it). */
  readonly type: 'connection' | 'request' | 'complete';
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
  readonly remote?: string;
  readonly method?: string;
  readonly url?: string;
  readonly headers?: Record<string, string | string[]>;
}

type AuthorizationRuleInput = NonNullable<NonNullable<SidecarConfigInput['inbound']['authorization']>['rules']>[number];

/** Marks the normal client's requests, so they are told apart from attacks. */
export const NORMAL_HEADER = 'x-suite-normal-client';

/** A pod: its app's events and its sidecar. */
export class Pod {
  public readonly events: AppEvent[] = [];
  public app!: NsProcess;
  public sidecar!: NsProcess;
  constructor(public readonly name: string, public readonly ns: string, public readonly ip: string, public readonly ip6: string) {}

  /** Everything the app saw since `mark` (an index into events) that the normal client did not send. */
  public foreignEventsSince(mark: number): AppEvent[] {
    return this.events.slice(mark).filter((e) => {
      if (e.type === 'request' || e.type === 'complete') return e.headers?.[NORMAL_HEADER] === undefined;
      // Connections from the sidecar come from loopback; any other source went around it.
      return !isLoopback(e.remote);
    });
  }

  public requestsSince(mark: number): AppEvent[] {
    return this.events.slice(mark).filter((e) => e.type === 'request');
  }

  /** Requests whose body the app read to the end since mark (what an app acts on). */
  public completedSince(mark: number): AppEvent[] {
    return this.events.slice(mark).filter((e) => e.type === 'complete');
  }
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/** Options of {@link PodFixture.start}. */
export interface PodFixtureOptions {
  /** mTLS mode of the attacked pod. @default 'STRICT' */
  readonly mode?: 'STRICT' | 'PERMISSIVE';
}

/** A built HTTP/1.1 request (latin1). */
export function httpRequest(method: string, target: string, headers: Record<string, string> | Array<[string, string]>, body = ''): string {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  const hasLength = list.some(([k]) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding');
  const lines = [`${method} ${target} HTTP/1.1`, ...list.map(([k, v]) => `${k}: ${v}`)];
  if (body && !hasLength) lines.push(`content-length: ${Buffer.byteLength(body, 'latin1')}`);
  return lines.join('\r\n') + '\r\n\r\n' + body;
}

/** One response read from a byte stream. */
export interface ParsedResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * The responses in a byte stream, in order, framed by their Content-Length or chunked
 * encoding (pipelined responses follow each other with no separator). Stops at the first
 * thing that is not a well-formed response.
 */
export function parseResponses(data: string): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let i = 0;
  while (i < data.length) {
    const end = data.indexOf('\r\n\r\n', i);
    if (end < 0) break;
    const lines = data.slice(i, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    let pos = end + 4;
    let body = '';
    const status = Number(m[1]);
    if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      for (;;) {
        const eol = data.indexOf('\r\n', pos);
        if (eol < 0) return [...out, { status, headers, body }];
        const size = parseInt(data.slice(pos, eol), 16);
        pos = eol + 2;
        if (!(size > 0)) {
          const trailerEnd = data.indexOf('\r\n', pos);
          pos = trailerEnd < 0 ? data.length : trailerEnd + 2;
          break;
        }
        body += data.slice(pos, pos + size);
        pos += size + 2;
      }
    } else if (status !== 204 && status !== 304 && (status >= 200 || status === 101)) {
      const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : status === 101 ? 0 : data.length - pos;
      body = data.slice(pos, pos + length);
      pos += length;
    }
    out.push({ status, headers, body });
    i = pos;
  }
  return out;
}

/** The status codes of every response in a byte stream, in order. */
export function statuses(data: string): number[] {
  return parseResponses(data).map((r) => r.status);
}

/**
 * Asserts an attack was refused cleanly: never answered 2xx or 3xx, and either answered
 * with an error status, closed by the server, or not connectable at all. A connection that
 * is accepted and then left hanging (our timeout) is not a refusal.
 */
export function expectRefused(r: ExchangeResult): void {
  const codes = statuses(r.data);
  expect(codes.filter((c) => c < 400)).toEqual([]);
  if (codes.length === 0 && r.connected) expect(r.closedBy).toBe('peer');
}

/**
 * Starts a PodFixture before the enclosing describe's tests and stops it after them (also when
 * a test failed). Returns the accessor the tests use: the fixture exists only once beforeAll ran.
 */
export function usePodFixture(opts: PodFixtureOptions = {}): () => PodFixture {
  let fx: PodFixture | undefined;
  beforeAll(async () => {
    fx = await PodFixture.start(opts);
  }, 60_000);
  afterAll(async () => {
    await fx?.stop();
  }, 30_000);
  return () => {
    if (!fx) throw new Error('the pod fixture did not start (see the beforeAll error)');
    return fx;
  };
}

/** The whole world of one test file. */
export class PodFixture {
  public static async start(opts: PodFixtureOptions = {}): Promise<PodFixture> {
    const fx = new PodFixture(opts);
    try {
      await fx.setUp();
    } catch (e) {
      await fx.stop();
      throw e;
    }
    return fx;
  }

  /** This jest worker's pid and a random tag: names of a crashed run can be told apart and removed. */
  public readonly run = `${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  public readonly subnet = `10.251.${Math.floor(Math.random() * 250)}`;
  public readonly subnet6 = `fd00:251:${Math.floor(Math.random() * 0xfff).toString(16)}:`;
  public readonly dir = mkdtempSync(path.join(tmpdir(), 'tmsec-'));
  public readonly hub = `tmsec-${this.run}-hub`;
  /** The attacked pod (payment). */
  public readonly target = new Pod('payment', `tmsec-${this.run}-app`, `${this.subnet}.10`, `${this.subnet6}:10`);
  /** The peer pod (order). */
  public readonly peer = new Pod('order', `tmsec-${this.run}-peer`, `${this.subnet}.20`, `${this.subnet6}:20`);
  public readonly attackerNs = `tmsec-${this.run}-atk`;
  public readonly attackerIp = `${this.subnet}.30`;
  public ca!: SecurityCa;
  /** The peer's workload files (its sidecar's, and what peerRogue presents). */
  public peerTls!: LeafFiles;
  public targetTls!: LeafFiles;
  public attacker!: Agent;
  public podApp!: Agent;
  public peerApp!: Agent;
  public peerRogue!: Agent;
  private readonly namespaces: string[] = [];
  private readonly processes: NsProcess[] = [];
  private readonly agents: Agent[] = [];
  private agentBundle!: string;
  private appBundle!: string;
  private proxyBundle!: string;

  private constructor(private readonly opts: PodFixtureOptions) {}

  /** The attacked pod's sidecar config (as the constructs would write it). */
  public targetConfig(): SidecarConfigInput {
    return this.sidecarConfig('payment', TARGET_ID, this.targetTls, this.opts.mode ?? 'STRICT', {
      service: 'order', identity: PEER_ID, address: this.peer.ip,
    }, [
      { name: 'deny-admin', action: 'DENY', paths: ['/admin', '/admin/*'] },
      // No one deletes; order may otherwise do anything on its orders (so only the DENY stops a DELETE there).
      { name: 'deny-delete', action: 'DENY', methods: ['DELETE'] },
      { name: 'order-owns-orders', action: 'ALLOW', principals: [PEER_ID], paths: ['/orders/*'] },
      { name: 'order-may-process', action: 'ALLOW', principals: [PEER_ID], methods: ['POST'], paths: ['/process'] },
      // Without an ALLOW that covers /admin for someone, the DENY rule could never be the
      // reason a trick fails: order may read (GET) everything the DENY rule leaves.
      { name: 'order-may-read', action: 'ALLOW', principals: [PEER_ID], methods: ['GET'], paths: ['/*'] },
      // One path anyone may read, plaintext included (PERMISSIVE): header spoofing is tested on it.
      { name: 'anyone-may-read-public', action: 'ALLOW', methods: ['GET'], paths: ['/public'] },
    ]);
  }

  private peerConfig(): SidecarConfigInput {
    return this.sidecarConfig('order', PEER_ID, this.peerTls, 'STRICT', {
      service: 'payment', identity: TARGET_ID, address: this.target.ip,
    }, [
      { name: 'payment-may-process', action: 'ALLOW', principals: [TARGET_ID], methods: ['POST'], paths: ['/process'] },
    ]);
  }

  private sidecarConfig(name: string, identity: string, files: LeafFiles, mode: 'STRICT' | 'PERMISSIVE', calls: { service: string; identity: string; address: string }, rules: AuthorizationRuleInput[]): SidecarConfigInput {
    return {
      apiVersion: 'typemesh.io/v1alpha1',
      kind: 'SidecarConfig',
      workload: {
        name, namespace: 'shop', version: 'v1', serviceAccount: name, identity, trustDomain: TRUST_DOMAIN,
        appPorts: [{ name: 'http', port: PORTS.app, protocol: 'http' }],
      },
      // The chart's defaults: listeners on every address of the pod, app on loopback.
      listeners: { bindAddress: '0.0.0.0', outboundPort: PORTS.outbound, inboundPort: PORTS.inbound, adminPort: PORTS.admin },
      tls: { certFile: files.certFile, keyFile: files.keyFile, caFile: files.caFile },
      inbound: {
        mtls: { mode },
        app: { address: '127.0.0.1', port: PORTS.app },
        authorization: { rules },
      },
      outbound: {
        passthrough: true,
        services: [{
          name: calls.service,
          namespace: 'shop',
          hosts: [calls.service, `${calls.service}.shop.svc.cluster.local`],
          port: PORTS.app,
          subsets: [{ name: 'v1', identity: calls.identity, discovery: { type: 'static', endpoints: [{ address: calls.address, port: PORTS.inbound }] } }],
          routes: [{ name: 'default', destinations: [{ subset: 'v1', weight: 100 }] }],
        }],
      },
      telemetry: { metrics: { enabled: true }, accessLog: { enabled: false } },
      drainTimeoutMs: 1000,
    };
  }

  private async setUp(): Promise<void> {
    removeOrphanNamespaces();
    chmodSync(this.dir, 0o755);
    await this.bundle();
    this.ca = await SecurityCa.create('TypeMesh security suite mesh CA');
    this.targetTls = await this.ca.writeLeaf(path.join(this.dir, 'payment'), { uris: [TARGET_ID] });
    this.peerTls = await this.ca.writeLeaf(path.join(this.dir, 'order'), { uris: [PEER_ID] });
    this.network();
    for (const [pod, config] of [[this.target, this.targetConfig()], [this.peer, this.peerConfig()]] as const) {
      this.intercept(pod, config);
      await this.startApp(pod);
      this.startSidecar(pod, config);
    }
    this.attacker = await this.agent('attacker', this.attackerNs, undefined);
    this.podApp = await this.agent('podApp', this.target.ns, APP_UID);
    this.peerApp = await this.agent('peerApp', this.peer.ns, APP_UID);
    this.peerRogue = await this.agent('peerRogue', this.peer.ns, PROXY_UID);
    await Promise.all([this.waitReady(this.target, this.podApp), this.waitReady(this.peer, this.peerApp)]);
    // The mesh works end to end before any attack: peer app -> peer sidecar -> payment.
    await this.normalCall();
  }

  private async bundle(): Promise<void> {
    this.agentBundle = path.join(this.dir, 'netns-agent.js');
    this.appBundle = path.join(this.dir, 'recording-app.js');
    for (const [src, out] of [['netns-agent.ts', this.agentBundle], ['recording-app.ts', this.appBundle]]) {
      buildSync({ entryPoints: [path.join(__dirname, src)], bundle: true, platform: 'node', target: 'node20', outfile: out, logLevel: 'warning' });
      chmodSync(out, 0o644);
    }
    // A copy: another jest run rebuilding dist/ must not swap the proxy under this suite.
    this.proxyBundle = path.join(this.dir, 'typemesh-proxy.js');
    await copyWholeBundle(PROXY_BUNDLE, this.proxyBundle);
    chmodSync(this.proxyBundle, 0o644);
  }

  private network(): void {
    const addNs = (ns: string): void => {
      sh('ip', ['netns', 'add', ns]);
      this.namespaces.push(ns);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    };
    addNs(this.hub);
    sh('ip', ['-n', this.hub, 'link', 'add', 'tmsecbr0', 'type', 'bridge']);
    sh('ip', ['-n', this.hub, 'link', 'set', 'tmsecbr0', 'up']);
    const members: Array<[string, string, string]> = [
      [this.target.ns, this.target.ip, this.target.ip6],
      [this.peer.ns, this.peer.ip, this.peer.ip6],
      [this.attackerNs, this.attackerIp, `${this.subnet6}:30`],
    ];
    members.forEach(([ns, ip4, ip6], k) => {
      addNs(ns);
      // Both ends are created directly inside namespaces: nothing appears on the host.
      sh('ip', ['-n', ns, 'link', 'add', 'tmsec0', 'type', 'veth', 'peer', 'name', `tmsecp${k}`, 'netns', this.hub]);
      sh('ip', ['-n', this.hub, 'link', 'set', `tmsecp${k}`, 'master', 'tmsecbr0', 'up']);
      sh('ip', ['-n', ns, 'addr', 'add', `${ip4}/24`, 'dev', 'tmsec0']);
      // nodad: the address is usable at once instead of after duplicate address detection.
      sh('ip', ['-n', ns, 'addr', 'add', `${ip6}/64`, 'dev', 'tmsec0', 'nodad']);
      sh('ip', ['-n', ns, 'link', 'set', 'tmsec0', 'up']);
      // A default route, so a connect() to any address gets as far as the OUTPUT chain.
      sh('ip', ['-n', ns, 'route', 'add', 'default', 'dev', 'tmsec0']);
    });
  }

  /** Installs the init container's rules, derived from the config exactly as the constructs derive them. */
  private intercept(pod: Pod, config: SidecarConfigInput): void {
    const args = interceptionArgsFor(parseSidecarConfig(config));
    writeFileSync(path.join(this.dir, `${pod.name}-init-args.txt`), args.join(' ') + '\n');
    const script = path.join(this.dir, `${pod.name}-interception.sh`);
    writeFileSync(script, generateInterceptionScript(parseInterceptionArgs(args).options), { mode: 0o755 });
    sh('ip', ['netns', 'exec', pod.ns, 'sh', '-e', script]);
  }

  private async startApp(pod: Pod): Promise<void> {
    let markReady!: () => void;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    // The app runs as root in its namespace, like a container's default user.
    const child = spawnIn(pod.ns, undefined, process.execPath, [this.appBundle, JSON.stringify([PORTS.app, PORTS.undeclared])]);
    pod.app = new NsProcess(`${pod.name} app`, child, (line) => {
      const e = JSON.parse(line) as AppEvent | { type: 'ready' };
      if (e.type === 'ready') markReady();
      else pod.events.push(e as AppEvent);
    });
    this.processes.push(pod.app);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ready, new Promise<void>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${pod.name} app not listening within 10 s: ${pod.app.stderr.join('\n')}`)), 10_000);
    })]).finally(() => clearTimeout(timer));
  }

  private startSidecar(pod: Pod, config: SidecarConfigInput): void {
    const configFile = path.join(this.dir, `${pod.name}-sidecar.json`);
    writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o644 });
    const child = spawnIn(pod.ns, PROXY_UID, process.execPath, [this.proxyBundle, '--config', configFile], {
      NODE_ENV: 'production',
      TYPEMESH_REQUEST_HEAD_TIMEOUT_MS: String(HEAD_TIMEOUT_MS),
      TYPEMESH_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS),
    });
    pod.sidecar = new NsProcess(`${pod.name} sidecar`, child);
    this.processes.push(pod.sidecar);
  }

  private async agent(label: string, ns: string, uid: number | undefined): Promise<Agent> {
    const a = await Agent.start(label, ns, uid, this.agentBundle);
    this.agents.push(a);
    return a;
  }

  private async waitReady(pod: Pod, from: Agent): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if (pod.sidecar.exited) throw new Error(`${pod.name} sidecar exited: ${pod.sidecar.stderr.join('\n')}`);
      const r = await from.send('127.0.0.1', PORTS.admin, httpRequest('GET', '/healthz/ready', { host: 'localhost', connection: 'close' }), { timeoutMs: 1000 });
      if (statuses(r.data)[0] === 200) return;
      await sleep(100);
    }
    throw new Error(`${pod.name} sidecar not ready: ${pod.sidecar.stderr.join('\n')}`);
  }

  /**
   * The normal client: the peer's app calls payment as an app in a mesh does (plain HTTP to
   * the service, captured by the peer's rules, mTLS between the sidecars). Throws unless it
   * is answered 200 "paid" and payment's app saw it.
   */
  public async normalCall(): Promise<void> {
    const mark = this.target.events.length;
    const r = await this.peerApp.send(this.target.ip, PORTS.app, httpRequest('POST', '/process', { host: 'payment', [NORMAL_HEADER]: '1', connection: 'close' }, '{}'), { timeoutMs: 10_000 });
    const ok = statuses(r.data)[0] === 200 && r.data.endsWith('paid');
    if (!ok) throw new Error(`the normal client was not served: ${JSON.stringify(r)}\npayment sidecar:\n${this.target.sidecar.stderr.slice(-20).join('\n')}`);
    const seen = this.target.requestsSince(mark).some((e) => e.headers?.[NORMAL_HEADER] !== undefined);
    if (!seen) throw new Error('the normal client was answered but payment\'s app did not record it');
  }

  /**
   * Asserts the attack since `mark` reached neither app, after a normal call (which must be
   * served) and a short settle for anything the sidecar might still forward late.
   */
  public async expectAppsUntouched(mark: { target: number; peer: number }): Promise<void> {
    await this.normalCall();
    await sleep(150);
    expect(this.target.foreignEventsSince(mark.target)).toEqual([]);
    expect(this.peer.foreignEventsSince(mark.peer)).toEqual([]);
  }

  /** Where both apps' event logs stand now. */
  public mark(): { target: number; peer: number } {
    return { target: this.target.events.length, peer: this.peer.events.length };
  }

  /** TLS settings presenting the peer's identity (what peerRogue holds). */
  public peerIdentity(): AgentTls {
    return { certFile: this.peerTls.certFile, keyFile: this.peerTls.keyFile, caFile: this.peerTls.caFile };
  }

  /** Sum of a counter of payment's sidecar, read from inside the pod over loopback. */
  public async targetCounter(name: string): Promise<number> {
    const r = await this.podApp.send('127.0.0.1', PORTS.admin, httpRequest('GET', '/metrics', { host: 'localhost', connection: 'close' }), { timeoutMs: 5000 });
    let sum = 0;
    for (const m of r.data.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'gm'))) sum += Number(m[1]);
    return sum;
  }

  /** The attacked pod's sidecar is still running and answers readiness. */
  public async expectSidecarAlive(): Promise<void> {
    expect(this.target.sidecar.exited).toBe(false);
    await this.waitReady(this.target, this.podApp);
  }

  public async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop().catch(() => undefined)));
    await Promise.all(this.processes.map((p) => p.stop()));
    for (const ns of this.namespaces.reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
