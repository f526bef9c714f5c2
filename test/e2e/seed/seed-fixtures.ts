/**
 * Pieces of the seed scenarios (test/e2e/seed-scenarios.test.ts): the fault app as a local
 * process, a client that talks to a sidecar's outbound listener the way its app does (absolute-
 * form requests to HTTP_PROXY, from the instance's own address, with a body), an mTLS client
 * for the inbound listener, the app's control endpoints, and the sidecars' admin endpoints.
 * Everything is real sockets and real processes.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { bundleWithEsbuild, ClientCredentials, findProjectRoot, httpGetText, isFresh, LocalInstance, LocalProcessSpec, parsePrometheusText } from '../../../src/local';

const root = findProjectRoot(__dirname);
const APP_BUNDLE = path.join(root, 'dist/e2e-seed/fault-app.js');

/** Bundles the fault app unless the bundle is newer than its source. */
export function bundleFaultApp(): void {
  if (!isFresh(root, 'dist/e2e-seed/fault-app.js', ['test/e2e/seed'])) {
    bundleWithEsbuild(root, 'test/e2e/seed/fault-app.ts', 'dist/e2e-seed/fault-app.js');
  }
}

/** The fault app as a workload version's process (see fault-app.ts for the env it reads). */
export function faultApp(env: Record<string, string> = {}, instanceEnv?: (index: number) => Record<string, string>): LocalProcessSpec {
  return { command: process.execPath, args: [APP_BUNDLE], env, instanceEnv };
}

/** One reply, as the caller saw it. Network errors are status 0. */
export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
  readonly error?: string;
}

function readReply(res: http.IncomingMessage, resolve: (r: Reply) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { text };
    }
    resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
  });
  res.on('error', (e) => resolve({ status: 0, headers: {}, body: {}, error: e.message }));
}

/** Options of {@link callOut}. */
export interface CallOptions {
  readonly method?: string;
  readonly body?: string;
  readonly headers?: http.OutgoingHttpHeaders;
  /** @default a fresh connection per call */
  readonly agent?: http.Agent;
}

/**
 * What the instance's app does when it calls `http://<host><path>`: an absolute-form request
 * to its sidecar's outbound listener (HTTP_PROXY), from the instance's own address.
 */
export function callOut(instance: LocalInstance, host: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const body = options.body;
  return new Promise((resolve) => {
    const req = http.request({
      agent: options.agent ?? false,
      host: instance.address, port: instance.ports.outbound, localAddress: instance.address,
      method: options.method ?? 'GET', path: `http://${host}${path}`,
      headers: { host, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}), ...options.headers },
      timeout: 30_000,
    }, (res) => readReply(res, resolve));
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: {}, error: e.message }));
    req.end(body);
  });
}

/** Calls an instance's inbound listener over mTLS with the given client certificate, as a peer sidecar would. */
export function callIn(instance: LocalInstance, credentials: ClientCredentials, path: string, options: CallOptions = {}): Promise<Reply> {
  const body = options.body;
  return new Promise((resolve) => {
    const req = https.request({
      host: instance.address, port: instance.ports.inbound, method: options.method ?? 'GET', path, agent: false,
      cert: credentials.cert, key: credentials.key, ca: credentials.ca,
      // The server's SPIFFE ID is a URI SAN, not a host name; the mesh CA is what is verified here.
      checkServerIdentity: () => undefined,
      headers: { host: instance.workload.name, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}), ...options.headers },
      timeout: 30_000,
    }, (res) => readReply(res, resolve));
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: {}, error: e.message }));
    req.end(body);
  });
}

/** Runs `count` calls with at most `concurrency` in flight; replies in call order. */
export async function inParallel<T>(count: number, concurrency: number, call: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(count, concurrency) }, async () => {
    while (next < count) {
      const i = next++;
      out[i] = await call(i);
    }
  }));
  return out;
}

/** Counts values. */
export function tally<T>(values: readonly T[], key: (v: T) => string | number | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) {
    const k = String(key(v));
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** What the fault app saw (GET /__stats on its port, bypassing the mesh). */
export interface AppStats {
  readonly pod: string;
  readonly version: string;
  readonly served: Record<string, number>;
  readonly statuses: Record<string, number>;
  readonly resets: number;
  readonly abandoned: number;
  readonly held: number;
  readonly traceparents: string[];
}

function appUrl(instance: LocalInstance, p: string): string {
  return `http://${instance.address}:${instance.ports.app}${p}`;
}

/** The fault app's counters. */
export async function appStats(instance: LocalInstance): Promise<AppStats> {
  return JSON.parse((await httpGetText(appUrl(instance, '/__stats'), 5000)).body) as AppStats;
}

/** Requests that reached the app as `POST /process`. */
export async function processed(instance: LocalInstance): Promise<number> {
  return (await appStats(instance)).served['POST /process'] ?? 0;
}

function postControl(instance: LocalInstance, p: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(appUrl(instance, p), { method: 'POST', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${p}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Switches the fault app's behaviour. */
export function setFault(instance: LocalInstance, mode: 'ok' | '503' | 'reset' | 'slow' | 'hold'): Promise<void> {
  return postControl(instance, `/__fault?mode=${mode}`);
}

/** Opens the gate of a holding app (and turns holding off). */
export function release(instance: LocalInstance): Promise<void> {
  return postControl(instance, '/__release');
}

/** Sums a metric of one sidecar (its admin /metrics) over the samples whose labels include `match`. */
export async function metricSum(instance: LocalInstance, name: string, match: Record<string, string> = {}): Promise<number> {
  const res = await httpGetText(`http://${instance.address}:${instance.ports.admin}/metrics`, 5000);
  return parsePrometheusText(res.body)
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** One endpoint as a sidecar's admin /clusters reports it. */
export interface ClusterEndpoint {
  readonly address: string;
  readonly activeRequests: number;
  readonly ejected: boolean;
  readonly timesEjected: number;
}

/** A destination service as a sidecar's admin /clusters reports it. */
export interface ClusterService {
  readonly name: string;
  readonly activeRequests: number;
  readonly pendingRequests: number;
  readonly subsets: ReadonlyArray<{ readonly name: string; readonly endpoints: readonly ClusterEndpoint[] }>;
}

/** A destination service in the sidecar's admin /clusters. */
export async function clusterOf(instance: LocalInstance, service: string): Promise<ClusterService> {
  const res = await httpGetText(`http://${instance.address}:${instance.ports.admin}/clusters`, 5000);
  const found = (JSON.parse(res.body) as { services: ClusterService[] }).services.find((s) => s.name === service);
  if (!found) throw new Error(`no cluster "${service}" in ${res.body}`);
  return found;
}

/** The endpoint of an instance (its inbound listener) as callers' /clusters name it. */
export function endpointKey(instance: LocalInstance): string {
  return `${instance.address}:${instance.ports.inbound}`;
}

/** Polls `probe` until `done` holds (at most `attempts` times, `intervalMs` apart); returns the last value. */
export async function pollUntil<T>(probe: () => Promise<T>, done: (v: T) => boolean, attempts = 100, intervalMs = 50): Promise<T> {
  let v = await probe();
  for (let i = 1; i < attempts && !done(v); i++) {
    await new Promise((r) => setTimeout(r, intervalMs));
    v = await probe();
  }
  return v;
}
