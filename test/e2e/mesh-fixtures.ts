/**
 * Shared pieces of the end-to-end tests: hand-written sidecar configs for small meshes,
 * a real HTTP client that talks to a sidecar's outbound listener the way an app with
 * HTTP_PROXY does, an mTLS client with a certificate from the mesh CA, and metric sums.
 * Everything runs as real processes (see src/local); nothing is mocked.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import type { OutboundService, SidecarConfigInput } from '../../src/config';
import { bundleShopApps, SHOP_APPS_BUNDLE } from '../../examples/shop/local';
import { ClientCredentials, httpGetText, LocalInstance, LocalProcessSpec, parsePrometheusText } from '../../src/local';

export const TRUST_DOMAIN = 'cluster.local';
export const NAMESPACE = 'e2e';

/** The SPIFFE ID of a service account in the e2e namespace. */
export function idOf(account: string, namespace = NAMESPACE): string {
  return `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${account}`;
}

/** Bundles the shop apps once (they are the e2e meshes' apps too). */
export function prepareApps(): void {
  bundleShopApps();
}

/** A shop payment app process; env makes it fail (FAIL_RATE) or slow (LATENCY_MS). */
export function paymentApp(env: Record<string, string> = {}, instanceEnv?: (i: number) => Record<string, string>): LocalProcessSpec {
  return { command: process.execPath, args: [SHOP_APPS_BUNDLE, 'payment'], env: { VERSION: 'v1', ...env }, instanceEnv };
}

/** A shop order app process. */
export function orderApp(env: Record<string, string> = {}): LocalProcessSpec {
  return { command: process.execPath, args: [SHOP_APPS_BUNDLE, 'order'], env: { CHECK_INVENTORY: 'false', ...env } };
}

/** Options of a destination service as a caller's sidecar sees it. */
export type ServiceOverrides = Partial<Omit<OutboundService, 'name' | 'namespace'>> & Record<string, unknown>;

/** An outbound service entry: one subset per version, all weight on the first unless routes are given. */
export function outboundService(name: string, versions: readonly string[] = ['v1'], overrides: Record<string, unknown> = {}): NonNullable<NonNullable<SidecarConfigInput['outbound']>['services']>[number] {
  return {
    name,
    namespace: NAMESPACE,
    hosts: [name, `${name}.${NAMESPACE}`],
    port: 80,
    subsets: versions.map((v) => ({
      name: v,
      labels: { version: v },
      identity: idOf(name),
      // Rewritten to static local endpoints by the runner, as in a chart.
      discovery: { type: 'dns' as const, hostname: `${name}-${v}.${NAMESPACE}.svc.cluster.local`, port: 15006 },
    })),
    routes: [{ name: 'default', destinations: [{ subset: versions[0], weight: 100 }] }],
    loadBalancer: { policy: 'ROUND_ROBIN' as const },
    ...overrides,
  } as NonNullable<NonNullable<SidecarConfigInput['outbound']>['services']>[number];
}

/** A sidecar config for a workload version of the e2e namespace. */
export function sidecarConfig(name: string, version: string, opts: {
  outbound?: NonNullable<SidecarConfigInput['outbound']>['services'];
  authorization?: NonNullable<NonNullable<SidecarConfigInput['inbound']>['authorization']>['rules'];
  mtlsMode?: 'STRICT' | 'PERMISSIVE';
  drainTimeoutMs?: number;
} = {}): SidecarConfigInput {
  return {
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: { name, namespace: NAMESPACE, version, serviceAccount: name, identity: idOf(name), trustDomain: TRUST_DOMAIN, appPorts: [{ name: 'http', port: 8080 }] },
    // Rewritten by the runner, as a chart's would be.
    tls: { certFile: '/etc/typemesh/certs/tls.crt', keyFile: '/etc/typemesh/certs/tls.key', caFile: '/etc/typemesh/certs/ca.crt' },
    inbound: {
      mtls: { mode: opts.mtlsMode ?? 'STRICT' },
      app: { address: '127.0.0.1', port: 8080 },
      authorization: { rules: opts.authorization ?? [] },
    },
    outbound: { services: opts.outbound ?? [] },
    telemetry: { accessLog: { enabled: false } },
    drainTimeoutMs: opts.drainTimeoutMs ?? 5000,
  };
}

/** One reply. */
export interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly error?: string;
}

const explicitAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** Reads a response into a Reply: the status and the body parsed as JSON ({} when it is not JSON). */
function readReply(res: http.IncomingMessage, resolve: (reply: Reply) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      // not JSON: keep {}
    }
    resolve({ status: res.statusCode ?? 0, body });
  });
  res.on('error', (e) => resolve({ status: 0, body: {}, error: e.message }));
}

/**
 * Calls `http://<host><path>` through a sidecar's outbound listener exactly as an app
 * configured with HTTP_PROXY does (absolute-form request line). Network errors become
 * status 0 so callers can count them.
 */
export function callThrough(instance: LocalInstance, host: string, path: string, method = 'POST'): Promise<Reply> {
  return new Promise((resolve) => {
    const req = http.request({
      agent: explicitAgent, host: instance.address, port: instance.ports.outbound, method,
      path: `http://${host}${path}`, headers: { host }, timeout: 15_000,
    }, (res) => readReply(res, resolve));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: {}, error: e.message }));
    req.end();
  });
}

/** Runs `count` calls with `concurrency` in flight; returns the replies in completion order. */
export async function callMany(count: number, concurrency: number, call: (i: number) => Promise<Reply>): Promise<Reply[]> {
  const replies: Reply[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      replies.push(await call(i));
    }
  }));
  return replies;
}

/** Calls an instance's inbound listener directly over mTLS with the given credentials (no sidecar on the caller's side). */
export function callInbound(instance: LocalInstance, credentials: ClientCredentials, path: string, method = 'POST'): Promise<Reply> {
  return new Promise((resolve) => {
    const req = https.request({
      host: instance.address, port: instance.ports.inbound, method, path, agent: false,
      cert: credentials.cert, key: credentials.key, ca: credentials.ca,
      checkServerIdentity: () => undefined, // the test checks the peer's SPIFFE ID separately where it matters
      headers: { host: instance.workload.name, 'content-type': 'application/json' }, timeout: 10_000,
    }, (res) => readReply(res, resolve));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: {}, error: e.message }));
    req.end(method === 'POST' ? '{"amount":1}' : undefined);
  });
}

/** The certificate an instance's inbound listener presents right now (fingerprint and URI SANs). */
export function peerCertificate(instance: LocalInstance, credentials: ClientCredentials): Promise<{ fingerprint256: string; uris: string[] }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: instance.address, port: instance.ports.inbound, cert: credentials.cert, key: credentials.key, ca: credentials.ca,
      checkServerIdentity: () => undefined,
    }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve({ fingerprint256: cert.fingerprint256, uris: (cert.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4)) });
    });
    socket.on('error', reject);
  });
}

/** Sums a metric of one sidecar over the samples whose labels include `match`. */
export async function metricSum(instance: LocalInstance, name: string, match: Record<string, string> = {}): Promise<number> {
  const res = await httpGetText(`http://${instance.address}:${instance.ports.admin}/metrics`, 3000);
  return parsePrometheusText(res.body)
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** The payment app's own counters (GET /stats straight to the app, bypassing the mesh). */
export async function appStats(instance: LocalInstance): Promise<{ requests: number; failures: number }> {
  const res = await httpGetText(`http://${instance.address}:${instance.ports.app}/stats`, 3000);
  return JSON.parse(res.body) as { requests: number; failures: number };
}
