/**
 * Test harness for the sidecar: real processes (the esbuild bundle made by
 * test/global-setup.ts), real certificates from LocalCertificateAuthority in a temp dir,
 * real upstream servers and free loopback ports. Everything started here is registered and
 * torn down by {@link cleanup}, which each test file calls in afterAll/afterEach.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { request } from 'undici';
import type { SidecarConfigInput } from '../../src/config';
import { LocalCertificateAuthority, WorkloadCertificateFiles } from '../../src/local/certificate-authority';

export const ROOT = path.resolve(__dirname, '../..');
export const PROXY_BUNDLE = path.join(ROOT, 'dist/proxy/typemesh-proxy.js');
export const TRUST_DOMAIN = 'cluster.local';
export const ORDER_ID = 'spiffe://cluster.local/ns/shop/sa/order';
export const PAYMENT_ID = 'spiffe://cluster.local/ns/shop/sa/payment';

const cleanups: Array<() => Promise<void> | void> = [];

/** Runs and forgets every registered cleanup (processes, servers, temp dirs), newest first. */
export async function cleanup(): Promise<void> {
  while (cleanups.length) {
    const fn = cleanups.pop()!;
    let timer: NodeJS.Timeout | undefined;
    try {
      // A cleanup that hangs (a server waiting on a stuck connection) must not hang the suite.
      await Promise.race([Promise.resolve().then(fn), new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          console.warn(`cleanup step did not finish within 3 s: ${fn.toString().slice(0, 120)}`);
          resolve();
        }, 3000);
      })]);
    } catch {
      // best effort
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
}

/** A temp dir removed by cleanup(). */
export function tempDir(prefix = 'typemesh-proxy-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Ports for sidecar listeners, which must be written into configs before the sidecar binds
 * them. Asking the OS (listen(0), close, hand out) raced with the other jest worker: its own
 * listen(0) calls could be given the same number before our sidecar bound it (seen in CI as
 * EADDRINUSE at sidecar start). So each worker takes ports from its own range below the
 * kernel's ephemeral range (32768-60999, which listen(0) draws from), starting at a random
 * offset, and skips any port it cannot bind right now.
 */
const PORTS_PER_WORKER = 1500;
const WORKER_PORT_BASE = 20000 + ((Number(process.env.JEST_WORKER_ID ?? '1') - 1) % 8) * PORTS_PER_WORKER;
let nextPortOffset = Math.floor(Math.random() * PORTS_PER_WORKER);

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port of this worker's range that is free on 127.0.0.1 and that no other worker hands out. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < PORTS_PER_WORKER; i++) {
    const port = WORKER_PORT_BASE + (nextPortOffset++ % PORTS_PER_WORKER);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${WORKER_PORT_BASE}-${WORKER_PORT_BASE + PORTS_PER_WORKER - 1}`);
}

/** A PKI for a test: one CA, workload files per identity. */
export class TestPki {
  public static async create(dir: string): Promise<TestPki> {
    return new TestPki(dir, await LocalCertificateAuthority.create());
  }
  private constructor(public readonly dir: string, public readonly ca: LocalCertificateAuthority) {}

  /** Writes cert.pem/key.pem/ca.pem for a SPIFFE ID under dir/<name>. */
  public async workload(name: string, spiffeId: string, opts: { notBefore?: Date; notAfter?: Date } = {}): Promise<WorkloadCertificateFiles> {
    return this.ca.writeWorkloadFiles(path.join(this.dir, name), { spiffeId, dnsNames: ['localhost'], ...opts });
  }
}

/** A running upstream (app) server. */
export interface Upstream {
  readonly port: number;
  readonly server: http.Server;
  /** Requests received. */
  readonly requests: http.IncomingMessage[];
  /** TCP connections accepted. */
  connections: number;
  close(): Promise<void>;
}

/** Starts a node:http server on 127.0.0.1 (port 0) with the handler. */
export async function startUpstream(handler: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void, host = '127.0.0.1'): Promise<Upstream> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    requests.push(req);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks)));
  });
  const up: Upstream = {
    port: 0,
    server,
    requests,
    connections: 0,
    close: () => new Promise<void>((resolve) => {
      // closeAllConnections() does not cover upgraded (WebSocket) sockets: destroy every socket.
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    up.connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  (up as { port: number }).port = (server.address() as net.AddressInfo).port;
  cleanups.push(() => up.close());
  return up;
}

/** An app that answers 200 with a JSON echo of what it received. */
export function echoHandler(name: string) {
  return (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void => {
    const out = JSON.stringify({ app: name, method: req.method, url: req.url, headers: req.headers, body: body.toString() });
    res.writeHead(200, { 'content-type': 'application/json', 'x-app': name });
    res.end(out);
  };
}

/** A running sidecar process. */
export class SidecarProcess {
  public readonly stderr: string[] = [];
  public readonly stdout: string[] = [];
  public exitCode: number | null = null;
  /** Set when a test expects the process to fail (quiets the crash report). */
  public expectFailure = false;
  public readonly exited: Promise<number | null>;

  constructor(public readonly child: ChildProcess, public readonly configFile: string, public readonly ports: SidecarPorts) {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      let i;
      while ((i = err.indexOf('\n')) >= 0) {
        this.stderr.push(err.slice(0, i));
        err = err.slice(i + 1);
      }
    });
    child.stdout!.on('data', (d: Buffer) => this.stdout.push(d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      this.exitCode = code;
      // A sidecar that dies on its own is a bug worth seeing in the test output.
      if (code !== 0 && signal === null && !this.expectFailure) console.error(`sidecar ${configFile} exited with ${code}:\n${this.stderr.slice(-20).join('\n')}${err}`);
      resolve(code);
    }));
  }

  /** Base URL of a listener. */
  public url(listener: 'outbound' | 'admin'): string {
    return `http://127.0.0.1:${listener === 'outbound' ? this.ports.outbound : this.ports.admin}`;
  }

  /** Replaces the config file atomically (write + rename), as a ConfigMap update does. */
  public writeConfig(config: unknown): void {
    const tmp = `${this.configFile}.tmp`;
    writeFileSync(tmp, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
    renameSync(tmp, this.configFile);
  }

  /** Waits until a stderr line contains text. */
  public async waitForLog(text: string, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const line = this.stderr.find((l) => l.includes(text));
      if (line) return line;
      await sleep(25);
    }
    throw new Error(`no log line containing "${text}" within ${timeoutMs} ms; stderr:\n${this.stderr.join('\n')}`);
  }

  /** Sends a signal and waits for exit. */
  public async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (this.exitCode !== null || this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** The ports of a sidecar. */
export interface SidecarPorts {
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
}

/** Allocates three free ports. */
export async function sidecarPorts(): Promise<SidecarPorts> {
  return { outbound: await freePort(), inbound: await freePort(), admin: await freePort() };
}

/** Spawns the sidecar bundle with a config file (not waiting for readiness). */
export function spawnSidecar(configFile: string, ports: SidecarPorts, args: string[] = [], env: Record<string, string> = {}): SidecarProcess {
  // TYPEMESH_NODE_ARGS: extra node flags for this sidecar (e.g. --cpu-prof when profiling).
  const nodeArgs = env.TYPEMESH_NODE_ARGS ? env.TYPEMESH_NODE_ARGS.split(' ') : [];
  const child = spawn(process.execPath, [...nodeArgs, PROXY_BUNDLE, '--config', configFile, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const p = new SidecarProcess(child, configFile, ports);
  cleanups.push(() => p.stop('SIGKILL', 2000).then(() => undefined));
  return p;
}

/** Writes the config to dir/<name>.json, starts the sidecar and waits for /healthz/ready. */
export async function startSidecar(dir: string, name: string, config: SidecarConfigInput, env: Record<string, string> = {}): Promise<SidecarProcess> {
  const configFile = path.join(dir, `${name}.json`);
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const l = config.listeners!;
  const p = spawnSidecar(configFile, { outbound: l.outboundPort!, inbound: l.inboundPort!, admin: l.adminPort! }, [], env);
  await waitReady(p);
  return p;
}

/** Polls /healthz/ready until 200 (or the process exits / 10 s pass). */
export async function waitReady(p: SidecarProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (p.exitCode !== null) throw new Error(`sidecar exited with ${p.exitCode}:\n${p.stderr.join('\n')}`);
    try {
      const r = await request(`${p.url('admin')}/healthz/ready`);
      await r.body.text();
      if (r.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(30);
  }
  throw new Error(`sidecar not ready within ${timeoutMs} ms:\n${p.stderr.join('\n')}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of a workload config. */
export interface WorkloadConfigOptions {
  readonly name: string;
  readonly identity: string;
  readonly ports: SidecarPorts;
  readonly tls: WorkloadCertificateFiles;
  readonly appPort: number;
  readonly services?: NonNullable<SidecarConfigInput['outbound']>['services'];
  readonly inbound?: Partial<NonNullable<SidecarConfigInput['inbound']>>;
  readonly passthrough?: boolean;
  readonly drainTimeoutMs?: number;
  /**
   * The SIGTERM drain window; tests that do not test it stop at once.
   * @default 0
   */
  readonly drainDurationMs?: number;
  /**
   * Protocol of the app port.
   * @default 'http'
   */
  readonly appProtocol?: 'http' | 'http2' | 'grpc';
}

/** A sidecar config for a workload of namespace "shop" with telemetry off (the no-op observer stays quiet). */
export function workloadConfig(o: WorkloadConfigOptions): SidecarConfigInput {
  return {
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: {
      name: o.name,
      namespace: 'shop',
      version: 'v1',
      serviceAccount: o.name,
      identity: o.identity,
      trustDomain: TRUST_DOMAIN,
      appPorts: [{ name: 'http', port: o.appPort, protocol: o.appProtocol ?? 'http' }],
    },
    listeners: { bindAddress: '127.0.0.1', outboundPort: o.ports.outbound, inboundPort: o.ports.inbound, adminPort: o.ports.admin },
    tls: { certFile: o.tls.certFile, keyFile: o.tls.keyFile, caFile: o.tls.caFile },
    inbound: { app: { address: '127.0.0.1', port: o.appPort }, ...o.inbound },
    outbound: { services: o.services ?? [], passthrough: o.passthrough ?? true },
    telemetry: { metrics: { enabled: false }, accessLog: { enabled: false } },
    drainTimeoutMs: o.drainTimeoutMs ?? 3000,
    drainDurationMs: o.drainDurationMs ?? 0,
  };
}

/** An outbound service "payment" whose subsets are given as [name, identity, inbound ports of its sidecars]. */
export function paymentService(subsets: Array<{ name: string; identity?: string; endpoints: number[] }>, extra: Record<string, unknown> = {}): NonNullable<NonNullable<SidecarConfigInput['outbound']>['services']>[number] {
  return {
    name: 'payment',
    namespace: 'shop',
    hosts: ['payment', 'payment.shop.svc.cluster.local'],
    port: 8080,
    subsets: subsets.map((s) => ({
      name: s.name,
      identity: s.identity ?? PAYMENT_ID,
      discovery: { type: 'static' as const, endpoints: s.endpoints.map((port) => ({ address: '127.0.0.1', port })) },
    })),
    routes: [{ name: 'default', destinations: [{ subset: subsets[0].name, weight: 100 }] }],
    ...extra,
  } as never;
}

/** The shop pair: order's sidecar (client side) calling payment's sidecar (server side) in front of an app. */
export interface MeshPair {
  readonly dir: string;
  readonly pki: TestPki;
  readonly app: Upstream;
  readonly order: SidecarProcess;
  readonly payment: SidecarProcess;
  readonly orderConfig: SidecarConfigInput;
  readonly paymentConfig: SidecarConfigInput;
}

/** Options of {@link startMeshPair}. */
export interface MeshPairOptions {
  readonly app?: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;
  /** Changes to payment's "payment" service in order's config (routes, retries...). */
  readonly service?: Record<string, unknown>;
  readonly paymentInbound?: Partial<NonNullable<SidecarConfigInput['inbound']>>;
  readonly orderExtra?: Partial<WorkloadConfigOptions>;
  /** Extra environment of both sidecars. @default none */
  readonly sidecarEnv?: Record<string, string>;
}

/** Starts app <- payment sidecar <- order sidecar. */
export async function startMeshPair(opts: MeshPairOptions = {}): Promise<MeshPair> {
  const dir = tempDir();
  const pki = await TestPki.create(dir);
  const app = await startUpstream(opts.app ?? echoHandler('payment'));
  const [orderTls, paymentTls] = await Promise.all([pki.workload('order', ORDER_ID), pki.workload('payment', PAYMENT_ID)]);
  const paymentPorts = await sidecarPorts();
  const orderPorts = await sidecarPorts();
  const paymentConfig = workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: paymentTls, appPort: app.port, inbound: opts.paymentInbound });
  const orderConfig = workloadConfig({
    name: 'order',
    identity: ORDER_ID,
    ports: orderPorts,
    tls: orderTls,
    appPort: await freePort(),
    services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }], opts.service)],
    ...opts.orderExtra,
  });
  const env = opts.sidecarEnv ?? {};
  const orderEnv = process.env.TYPEMESH_TEST_ORDER_NODE_ARGS ? { ...env, TYPEMESH_NODE_ARGS: process.env.TYPEMESH_TEST_ORDER_NODE_ARGS } : env;
  const [payment, order] = await Promise.all([startSidecar(dir, 'payment', paymentConfig, env), startSidecar(dir, 'order', orderConfig, orderEnv)]);
  return { dir, pki, app, order, payment, orderConfig, paymentConfig };
}

/** Sends a request through a sidecar's outbound listener with Host set. */
export async function callOutbound(p: SidecarProcess, host: string, pathAndQuery: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const r = await request(`${p.url('outbound')}${pathAndQuery}`, {
    method: (init.method ?? 'GET') as never,
    headers: { host, ...init.headers },
    body: init.body,
  });
  return { status: r.statusCode, headers: r.headers as Record<string, string | string[] | undefined>, body: await r.body.text() };
}

/** Registers a cleanup. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** A server-side instance: an app plus its sidecar. */
export interface ServerInstance {
  readonly app: Upstream;
  readonly sidecar: SidecarProcess;
  readonly config: SidecarConfigInput;
}

/** Starts an app with the handler and a sidecar in front of it with the given identity (default payment). */
export async function startServerInstance(dir: string, pki: TestPki, name: string, handler: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void, opts: { identity?: string; inbound?: Partial<NonNullable<SidecarConfigInput['inbound']>> } = {}): Promise<ServerInstance> {
  const identity = opts.identity ?? PAYMENT_ID;
  const app = await startUpstream(handler);
  const files = await pki.workload(name, identity);
  const config = workloadConfig({ name: identity.split('/').pop()!, identity, ports: await sidecarPorts(), tls: files, appPort: app.port, inbound: opts.inbound });
  const sidecar = await startSidecar(dir, name, config);
  return { app, sidecar, config };
}

/** Starts order's sidecar (the client side) with the given outbound services. */
export async function startClientSidecar(dir: string, pki: TestPki, services: NonNullable<NonNullable<SidecarConfigInput['outbound']>['services']>, extra: Partial<WorkloadConfigOptions> = {}, name = 'order', identity = ORDER_ID, env: Record<string, string> = {}): Promise<{ sidecar: SidecarProcess; config: SidecarConfigInput }> {
  const files = await pki.workload(name, identity);
  const config = workloadConfig({ name: identity.split('/').pop()!, identity, ports: await sidecarPorts(), tls: files, appPort: await freePort(), services, ...extra });
  return { sidecar: await startSidecar(dir, name, config, env), config };
}

/**
 * An endpoint that refuses connections for the whole run. A port that `freePort()` found free
 * is not enough: jest runs two test files at once, and the other one may be handed the same
 * port number later (seen in CI: a TLS server answered where a refusal was expected). Nothing
 * in the tests listens on 127.0.0.254, and port 1 is never handed out by listen(0).
 */
export const REFUSING_ENDPOINT = { address: '127.0.0.254', port: 1 } as const;

/** A static subset pointing at sidecars' inbound ports (a number is a port on 127.0.0.1). */
export function subset(name: string, instances: Array<{ sidecar: SidecarProcess } | number | { readonly address: string; readonly port: number }>, identity = PAYMENT_ID): { name: string; identity: string; discovery: { type: 'static'; endpoints: Array<{ address: string; port: number }> } } {
  return {
    name,
    identity,
    discovery: {
      type: 'static',
      endpoints: instances.map((i) => {
        if (typeof i === 'number') return { address: '127.0.0.1', port: i };
        if ('sidecar' in i) return { address: '127.0.0.1', port: i.sidecar.ports.inbound };
        return { address: i.address, port: i.port };
      }),
    },
  };
}

/** A fake peer sidecar: an HTTPS server with a workload certificate that requires mesh client certificates. */
export interface FakePeer {
  readonly port: number;
  /** TLS connections completed. */
  connections: number;
  readonly server: https.Server;
}

/** Starts a fake peer presenting `identity` (optionally with its own validity window or CA). */
export async function startFakePeer(pki: TestPki, identity: string, handler: http.RequestListener, opts: { notBefore?: Date; notAfter?: Date; ca?: LocalCertificateAuthority } = {}): Promise<FakePeer> {
  const issuer = opts.ca ?? pki.ca;
  const cert = await issuer.issueWorkload({ spiffeId: identity, notBefore: opts.notBefore, notAfter: opts.notAfter });
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 60_000 }, handler);
  const peer: FakePeer = { port: 0, connections: 0, server };
  server.on('secureConnection', () => peer.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (peer as { port: number }).port = (server.address() as net.AddressInfo).port;
  cleanups.push(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return peer;
}

/** Sends raw bytes to a port and collects everything until the peer closes (or timeoutMs). */
export function rawExchange(port: number, data: string | Buffer, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(data));
    let out = '';
    socket.on('data', (d) => (out += d.toString('latin1')));
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('close', done);
    socket.on('error', done);
  });
}
