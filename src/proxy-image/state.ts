/**
 * The immutable snapshot of everything a request needs, built from one validated config.
 * A reload builds a new snapshot and swaps one reference, so a request sees one config from
 * start to end, and the swap is atomic for the next request.
 */
import type { ExternalServiceConfig, OutboundService, SidecarConfig } from '../config';
import { Authorizer } from './authz/authorizer';
import { ClusterDeps, clusterKey, ServiceCluster } from './cluster';
import { externalAsOutboundService } from './external';
import { plainConnector } from './http1/connectors';
import { nativeHttpParser } from './http1/llhttp';
import { Http1Pool } from './http1/pool';
import { compileRetryOn, CompiledRetryOn } from './retry';
import { CompiledRoute, compileRoute, hostWithoutPort } from './routing';
import { hostPortKey } from './target-port';
import { loadUndici } from './undici-loader';
import { fromUndici, UpstreamPool } from './upstream-request';

/** A destination service ready for the hot path. */
export interface ServiceEntry {
  readonly config: OutboundService;
  readonly cluster: ServiceCluster;
  readonly routes: readonly CompiledRoute[];
  /** Compiled retryOn per route name. */
  readonly retryOn: ReadonlyMap<string, CompiledRetryOn>;
  /** Set for a service outside the mesh (an ExternalService). */
  readonly external?: ExternalServiceConfig;
}

/** One config generation. */
export interface ProxyState {
  readonly config: SidecarConfig;
  /** Host (lower case, no port) -> service. */
  readonly hosts: ReadonlyMap<string, ServiceEntry>;
  /** Service name -> cluster. */
  readonly clusters: ReadonlyMap<string, ServiceCluster>;
  /** Inbound authorization, compiled. */
  readonly authorizer: Authorizer;
  /** Keep-alive connections to the app (inbound), kept across reloads while the app address is unchanged. */
  readonly appPool: UpstreamPool;
}

function appPoolFor(config: SidecarConfig, previous?: ProxyState): UpstreamPool {
  const app = config.inbound.app;
  const prev = previous?.config.inbound.app;
  const prevProtocol = previous?.config.workload.appPorts.find((p) => p.port === app.port)?.protocol;
  const nextProtocol = config.workload.appPorts.find((p) => p.port === app.port)?.protocol;
  if (previous && prev && prev.address === app.address && prev.port === app.port && prevProtocol === nextProtocol) return previous.appPool;
  return createAppPool(app.address, app.port, config.workload.appPorts.find((p) => p.port === app.port)?.protocol ?? 'http');
}

/** A keep-alive pool to an app port on loopback (HTTP/1.1, or h2c for http2/grpc). */
export function createAppPool(address: string, port: number, protocol: string): UpstreamPool {
  const app = { address, port };
  const host = app.address.includes(':') ? `[${app.address}]` : app.address;
  if (protocol !== 'http') {
    // An http2/grpc app speaks h2c (prior knowledge); one multiplexed connection carries all streams.
    return fromUndici(new (loadUndici().H2CClient)(`http://${host}:${app.port}`, { maxConcurrentStreams: 1000, pipelining: 1000, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 30000 }));
  }
  if (nativeHttpParser) {
    // The lean HTTP/1.1 client (./http1): the inbound sidecar's hot path to its app.
    return new Http1Pool({ hostname: app.address, port: app.port, connect: plainConnector(5000), connections: 1024, idleTimeoutMs: 30000 });
  }
  return fromUndici(new (loadUndici().Pool)(`http://${host}:${app.port}`, {
    connections: 1024,
    pipelining: 1,
    keepAliveTimeout: 30000,
    // The app's own slowness is the calling sidecar's route timeout to judge.
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { timeout: 5000 },
  }));
}

/**
 * Builds a state from a config, reusing clusters of `previous` whose definition did not
 * change. Returns the clusters that are no longer used (to be closed once drained).
 */
export function buildState(config: SidecarConfig, deps: ClusterDeps, previous?: ProxyState): { state: ProxyState; retired: ServiceCluster[]; retiredAppPool?: UpstreamPool } {
  // Compiled first: it throws on rules it cannot compile, before any cluster is created.
  const authorizer = new Authorizer(config.inbound.authorization.rules, { foldForDenyRules: config.inbound.pathNormalization.foldForDenyRules ?? true });
  const oldByKey = new Map<string, ServiceCluster>();
  for (const c of previous?.clusters.values() ?? []) oldByKey.set(c.external ? `external:${JSON.stringify(c.external)}` : clusterKey(c.config), c);
  const hosts = new Map<string, ServiceEntry>();
  const clusters = new Map<string, ServiceCluster>();
  const kept = new Set<ServiceCluster>();
  const all: Array<{ svc: OutboundService; external?: ExternalServiceConfig }> = [
    ...config.outbound.services.map((svc) => ({ svc })),
    ...config.outbound.externalServices.map((ext) => ({ svc: externalAsOutboundService(ext, config.workload.namespace), external: ext })),
  ];
  for (const { svc, external } of all) {
    // An external cluster's key also holds how it connects (protocol, TLS, CA file).
    const key = external ? `external:${JSON.stringify(external)}` : clusterKey(svc);
    let cluster = oldByKey.get(key);
    if (cluster && !kept.has(cluster)) {
      kept.add(cluster);
      // The cluster's config object is identical in content; keep the old object.
    } else {
      cluster = new ServiceCluster(svc, deps, external);
    }
    const routes = svc.routes.map(compileRoute);
    const retryOn = new Map<string, CompiledRetryOn>();
    for (const r of routes) if (r.retries) retryOn.set(r.name, compileRetryOn(r.retries));
    const entry: ServiceEntry = { config: svc, cluster, routes, retryOn, external };
    clusters.set(svc.name, cluster);
    for (const h of svc.hosts) {
      hosts.set(hostWithoutPort(h), entry);
      // Also by host:port, so that each port of a multi-port service finds its own entry (target-port.ts).
      hosts.set(hostPortKey(h, svc.port), entry);
    }
  }
  const retired = [...(previous?.clusters.values() ?? [])].filter((c) => !kept.has(c));
  const appPool = appPoolFor(config, previous);
  const retiredAppPool = previous && previous.appPool !== appPool ? previous.appPool : undefined;
  return { state: { config, hosts, clusters, authorizer, appPool }, retired, retiredAppPool };
}
