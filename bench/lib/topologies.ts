/**
 * Starts everything a bench run measures, on loopback: the upstream, the sidecar pairs and the
 * nginx pair, each proven with one real request before it is measured. A topology that cannot
 * start is skipped with the reason, so the others still run.
 */
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { request } from 'undici';
import { bundleFloor, bundleHelpers, bundleProxy } from './bundle';
import { BenchCertificates } from './certs';
import type { MeasuredProcess } from './fixed-rate';
import { HAPROXY_BINARY, haproxyAvailable, inboundHaproxyConf, outboundHaproxyConf, startHaproxy, writeCombinedPem } from './haproxy';
import { inboundNginxConf, NGINX_BINARY, nginxAvailable, outboundNginxConf, startNginx } from './nginx';
import { freePort, ProcessRegistry } from './processes';
import { CLIENT_ACCOUNT, NAMESPACE, SERVER_ACCOUNT, SidecarTelemetry, startSidecarPair, TRUST_DOMAIN, UPSTREAM_HOST } from './sidecar';

/** A topology the client can call. */
export interface Topology {
  readonly id: string;
  readonly description: string;
  readonly origin: string;
  /** Host header to send (the proxies route on it). */
  readonly host?: string;
  /** Proxy processes whose CPU and memory are reported (empty for direct). */
  readonly proxies: readonly MeasuredProcess[];
  /** TypeMesh pairs: the sidecars' admin ports (/metrics), for the overload run's shed count. */
  readonly adminPorts?: readonly number[];
}

/** Every topology id, in the order they are measured. */
export const TOPOLOGY_IDS = ['direct', 'typemesh', 'typemesh-no-telemetry', 'nginx', 'haproxy', 'floor-tls-relay', 'floor-node-http', 'floor-llhttp'] as const;

/** The anchors: mature proxies on the same two-hop mTLS topology; the targets are ratios to them (nginx decides PASS/FAIL). */
export const ANCHOR_IDS: readonly string[] = ['nginx', 'haproxy'];

/** What a run measures unless --only or --no-floors say otherwise. */
export const DEFAULT_TOPOLOGY_IDS: readonly string[] = TOPOLOGY_IDS;

/** The floor pairs (bench/floors), printed beside the targets. */
export const FLOOR_IDS: readonly string[] = ['floor-tls-relay', 'floor-node-http', 'floor-llhttp'];

/**
 * Floors: minimal Node proxy pairs on the same ports, certificates and upstream as the sidecar
 * pair (bench/floors), measured to tell what Node itself costs from what TypeMesh adds.
 */
const FLOOR_VARIANTS: ReadonlyArray<{ id: string; source: string; description: string }> = [
  { id: 'floor-tls-relay', source: 'tls-relay.ts', description: 'floor: Node TLS byte relay pair, no HTTP (what any Node proxy pays to move the bytes)' },
  { id: 'floor-node-http', source: 'node-http-proxy.ts', description: 'floor: minimal node:http server + undici client pair, no routing/policy/telemetry' },
  { id: 'floor-llhttp', source: 'llhttp-proxy.ts', description: 'floor: minimal pair on the native llhttp parser, server and client (the sidecar\'s lean client), no routing/policy/telemetry' },
];

const SIDECAR_VARIANTS: ReadonlyArray<{ id: string; telemetry: SidecarTelemetry; description: string }> = [
  {
    id: 'typemesh', telemetry: { metrics: true, accessLog: true },
    description: 'client -> outbound sidecar -> mTLS -> inbound sidecar -> upstream; mesh default telemetry (Prometheus metrics + JSON access log to a file, tracing off)',
  },
  {
    id: 'typemesh-no-telemetry', telemetry: { metrics: false, accessLog: false },
    description: 'the same pair with metrics and access log off (what telemetry costs)',
  },
];

/** What {@link startTopologies} started. */
export interface StartedTopologies {
  readonly helpers: { readonly upstream: string; readonly loadGenerator: string };
  readonly upstream: MeasuredProcess;
  readonly upstreamPort: number;
  /** Topologies that answered their smoke request, in measuring order. */
  readonly ready: readonly Topology[];
  /** Topologies that could not run, and why. */
  readonly skipped: Record<string, string>;
}

/** One request through a topology: proves it works before it is measured. */
async function smokeTest(t: Topology, requestBytes: number, responseBytes: number): Promise<void> {
  const res = await request(`${t.origin}/smoke`, {
    method: 'POST',
    body: Buffer.alloc(requestBytes, 'q'),
    headers: t.host ? { host: t.host } : {},
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200 || body.length !== responseBytes) {
    throw new Error(`smoke request through ${t.id} got status ${res.statusCode} with ${body.length} bytes (want 200 with ${responseBytes}): ${body.toString('utf8', 0, 300)}`);
  }
}

export async function startTopologies(opts: {
  readonly registry: ProcessRegistry;
  readonly tmp: string;
  /** Topology ids to start. @default DEFAULT_TOPOLOGY_IDS */
  readonly only?: readonly string[];
  /** Extra node flags for the sidecars. @default none */
  readonly sidecarNodeArgs?: readonly string[];
  /** A prebuilt sidecar bundle to run. @default dist/proxy/typemesh-proxy.js, rebuilt from src/proxy-image */
  readonly proxyBundle?: string;
  /** When set, the sidecars run under --cpu-prof and write into <dir>/<topology>/. */
  readonly cpuProfDir?: string;
  /** The TypeMesh pairs' overload.maxQueueDelayMs (the adaptive limit); 0 or unset: the sidecar's default (off). */
  readonly overloadQueueDelayMs?: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
}): Promise<StartedTopologies> {
  const { registry, tmp } = opts;
  for (const id of opts.only ?? []) {
    if (!(TOPOLOGY_IDS as readonly string[]).includes(id)) throw new Error(`unknown topology "${id}" (known: ${TOPOLOGY_IDS.join(', ')})`);
  }
  const wanted = (id: string): boolean => (opts.only ?? DEFAULT_TOPOLOGY_IDS).includes(id);
  const skipped: Record<string, string> = {};
  const helpers = bundleHelpers(tmp);

  const upstreamProc = registry.start('upstream', process.execPath, [helpers.upstream, JSON.stringify({ responseBytes: opts.responseBytes })]);
  const { port: upstreamPort } = await upstreamProc.firstJsonLine<{ port: number }>(10_000);
  const upstream: MeasuredProcess = { role: 'upstream', pid: upstreamProc.pid };

  const topologies: Topology[] = [{ id: 'direct', description: 'client -> upstream', origin: `http://127.0.0.1:${upstreamPort}`, proxies: [] }];

  const certs = await BenchCertificates.create(path.join(tmp, 'certs'));
  const spiffe = (account: string): string => `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${account}`;
  const clientCert = await certs.issue('client', spiffe(CLIENT_ACCOUNT), `${CLIENT_ACCOUNT}.${NAMESPACE}.svc.cluster.local`);
  const serverCert = await certs.issue('server', spiffe(SERVER_ACCOUNT), UPSTREAM_HOST);

  const proxyBundle = !SIDECAR_VARIANTS.some((v) => wanted(v.id)) ? undefined
    : opts.proxyBundle ?? bundleProxy(opts.cpuProfDir !== undefined);
  for (const variant of SIDECAR_VARIANTS) {
    if (!wanted(variant.id)) continue;
    if (!proxyBundle) {
      skipped[variant.id] = 'no sidecar: neither src/proxy-image/main.ts nor dist/proxy/typemesh-proxy.js exists';
      continue;
    }
    const dir = path.join(tmp, variant.id);
    mkdirSync(dir);
    try {
      const profDir = opts.cpuProfDir ? path.join(opts.cpuProfDir, variant.id) : undefined;
      if (profDir) mkdirSync(profDir, { recursive: true });
      const pair = await startSidecarPair({
        registry, bundle: proxyBundle, dir, client: clientCert, server: serverCert, upstreamPort, telemetry: variant.telemetry, label: variant.id,
        overload: opts.overloadQueueDelayMs ? { maxQueueDelayMs: opts.overloadQueueDelayMs } : undefined,
        nodeArgs: [...(opts.sidecarNodeArgs ?? []), ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])],
      });
      topologies.push({
        id: variant.id, description: variant.description, origin: `http://127.0.0.1:${pair.entryPort}`, host: UPSTREAM_HOST,
        proxies: [{ role: 'outbound', pid: pair.outbound.pid }, { role: 'inbound', pid: pair.inbound.pid }],
        adminPorts: pair.adminPorts,
      });
    } catch (e) {
      skipped[variant.id] = `the sidecar pair did not start: ${(e as Error).message}`;
    }
  }

  for (const floor of FLOOR_VARIANTS) {
    if (!wanted(floor.id)) continue;
    const dir = path.join(tmp, floor.id);
    mkdirSync(dir);
    try {
      const pair = await startSidecarPair({
        registry, bundle: bundleFloor(floor.source, tmp), dir, client: clientCert, server: serverCert, upstreamPort,
        telemetry: { metrics: false, accessLog: false }, label: floor.id,
      });
      topologies.push({
        id: floor.id, description: floor.description, origin: `http://127.0.0.1:${pair.entryPort}`, host: UPSTREAM_HOST,
        proxies: [{ role: 'outbound', pid: pair.outbound.pid }, { role: 'inbound', pid: pair.inbound.pid }],
      });
    } catch (e) {
      skipped[floor.id] = `the floor pair did not start: ${(e as Error).message}`;
    }
  }

  if (wanted('nginx')) {
    if (!nginxAvailable()) {
      skipped.nginx = `${NGINX_BINARY} is not installed (apt-get install nginx)`;
    } else {
      try {
        const inboundPort = await freePort();
        const outboundPort = await freePort();
        const inPrefix = path.join(tmp, 'nginx-inbound');
        const outPrefix = path.join(tmp, 'nginx-outbound');
        const nIn = await startNginx(registry, 'nginx inbound', inPrefix, inboundNginxConf(inPrefix, inboundPort, upstreamPort, serverCert), inboundPort);
        const nOut = await startNginx(registry, 'nginx outbound', outPrefix, outboundNginxConf(outPrefix, outboundPort, inboundPort, clientCert, UPSTREAM_HOST), outboundPort);
        topologies.push({
          id: 'nginx', description: 'client -> nginx #1 -> mTLS -> nginx #2 -> upstream (1 worker each, keep-alive pools, access log to a file)',
          origin: `http://127.0.0.1:${outboundPort}`, host: UPSTREAM_HOST,
          proxies: [{ role: 'outbound', pid: nOut.pid }, { role: 'inbound', pid: nIn.pid }],
        });
      } catch (e) {
        skipped.nginx = `the nginx pair did not start: ${(e as Error).message}`;
      }
    }
  }

  if (wanted('haproxy')) {
    if (!haproxyAvailable()) {
      skipped.haproxy = `${HAPROXY_BINARY} is not installed (apt-get install haproxy)`;
    } else {
      try {
        const inboundPort = await freePort();
        const outboundPort = await freePort();
        const inPrefix = path.join(tmp, 'haproxy-inbound');
        const outPrefix = path.join(tmp, 'haproxy-outbound');
        const hIn = await startHaproxy(registry, 'haproxy inbound', inPrefix,
          inboundHaproxyConf(inboundPort, upstreamPort, writeCombinedPem(inPrefix, serverCert), serverCert.caFile), inboundPort);
        const hOut = await startHaproxy(registry, 'haproxy outbound', outPrefix,
          outboundHaproxyConf(outboundPort, inboundPort, writeCombinedPem(outPrefix, clientCert), clientCert.caFile, UPSTREAM_HOST), outboundPort);
        topologies.push({
          id: 'haproxy', description: 'client -> haproxy #1 -> mTLS -> haproxy #2 -> upstream (1 thread each, connection reuse, access log to a file)',
          origin: `http://127.0.0.1:${outboundPort}`, host: UPSTREAM_HOST,
          proxies: [{ role: 'outbound', pid: hOut.pid }, { role: 'inbound', pid: hIn.pid }],
        });
      } catch (e) {
        skipped.haproxy = `the haproxy pair did not start: ${(e as Error).message}`;
      }
    }
  }

  const ready: Topology[] = [];
  for (const t of topologies) {
    if (!wanted(t.id)) continue;
    try {
      await smokeTest(t, opts.requestBytes, opts.responseBytes);
      ready.push(t);
    } catch (e) {
      skipped[t.id] = (e as Error).message;
    }
  }
  return { helpers, upstream, upstreamPort, ready, skipped };
}
