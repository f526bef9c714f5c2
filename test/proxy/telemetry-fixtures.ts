/**
 * Shared pieces of the telemetry tests: sidecar configs for the two workloads of the shop
 * scenario (order calls payment) and a reader of the Prometheus text exposition.
 */
import { SidecarConfig, SidecarConfigInput, SidecarConfigSchema } from '../../src/config/schema';
import type { RequestInfo, RequestOutcome } from '../../src/proxy-image/observer';

export const ORDER_ID = 'spiffe://cluster.local/ns/shop/sa/order';
export const PAYMENT_ID = 'spiffe://cluster.local/ns/shop/sa/payment';

/** A validated config of workload `name` with the given telemetry section. */
export function telemetryConfig(name: 'order' | 'payment', telemetry: SidecarConfigInput['telemetry']): SidecarConfig {
  return SidecarConfigSchema.parse({
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: {
      name,
      namespace: 'shop',
      version: 'v1',
      serviceAccount: name,
      identity: name === 'order' ? ORDER_ID : PAYMENT_ID,
      trustDomain: 'cluster.local',
      appPorts: [{ name: 'http', port: 8080 }],
    },
    tls: { certFile: '/unused/cert.pem', keyFile: '/unused/key.pem', caFile: '/unused/ca.pem' },
    inbound: { app: { port: 8080 } },
    telemetry,
  });
}

/** What order's outbound listener reports for a call to payment. */
export function outboundInfo(overrides: Partial<RequestInfo> = {}): RequestInfo {
  return {
    direction: 'outbound',
    method: 'POST',
    authority: 'payment:8080',
    path: '/charge/12345?card=secret',
    headers: { 'host': 'payment:8080', 'user-agent': 'test-client/1.0' },
    destinationService: 'payment',
    connectionSecurity: 'mutual_tls',
    ...overrides,
  };
}

/** What payment's inbound listener reports for the same call, given the headers order's sidecar sent. */
export function inboundInfo(headers: Record<string, string>, overrides: Partial<RequestInfo> = {}): RequestInfo {
  return {
    direction: 'inbound',
    method: 'POST',
    authority: 'payment:8080',
    path: '/charge/12345',
    headers: { host: 'payment:8080', ...headers },
    sourcePrincipal: ORDER_ID,
    connectionSecurity: 'mutual_tls',
    peerAddress: '127.0.0.1',
    ...overrides,
  };
}

/** A successful outcome of the call to payment v2. */
export function okOutcome(overrides: Partial<RequestOutcome> = {}): RequestOutcome {
  return {
    status: 200,
    requestBytes: 120,
    responseBytes: 2048,
    destinationSubset: 'v2',
    destinationPrincipal: PAYMENT_ID,
    upstreamHost: '127.0.0.2:15006',
    retries: 0,
    flags: [],
    ...overrides,
  };
}

/** One sample line of the exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the sample lines of a Prometheus text exposition (comments skipped). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The samples of metric `name` whose labels include `match`. */
export function find(samples: Sample[], name: string, match: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}
