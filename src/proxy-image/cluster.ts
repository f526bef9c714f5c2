/**
 * Upstream clusters of the outbound listener: per destination service the subsets, their
 * endpoints (static or re-resolved from DNS), load balancing, outlier detection, the
 * connection-pool circuit breaker and the retry budget. A cluster is kept across config
 * reloads when its definition is unchanged, so pooled connections and ejection state survive.
 */
import { lookup } from 'node:dns/promises';
import type { ExternalServiceConfig, OutboundService, Subset } from '../config';
import { externalConnector } from './external';
import { Http1Pool } from './http1/pool';
import { nativeHttpParser } from './http1/llhttp';
import { errorMessage, log } from './log';
import type { ProxyObserver } from './observer';
import { loadUndici } from './undici-loader';
import { targetPortServerName } from './target-port';
import { mtlsConnector } from './upstream-connector';
import { fromUndici, UpstreamPool } from './upstream-request';
import type { WorkloadIdentity } from './identity';

/** DNS subsets are looked up at most this often, however many connect failures ask for it. */
const RESOLVE_MIN_INTERVAL_MS = 1000;

/** One upstream host of a subset. */
export class Endpoint {
  public readonly key: string;
  /** Requests in flight to this endpoint. */
  public active = 0;
  public consecutive5xx = 0;
  public consecutiveGatewayErrors = 0;
  /** Epoch ms until which the endpoint is ejected (0: never ejected). */
  public ejectedUntil = 0;
  public timesEjected = 0;
  private pool?: UpstreamPool;

  constructor(public readonly address: string, public readonly port: number, private readonly makePool: (e: Endpoint) => UpstreamPool) {
    this.key = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  }

  /** The endpoint's connection pool, created on first use. */
  public getPool(): UpstreamPool {
    if (!this.pool) this.pool = this.makePool(this);
    return this.pool;
  }

  public isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }

  /** Closes the pool once its requests in flight are done. */
  public close(): void {
    const p = this.pool;
    this.pool = undefined;
    if (p) p.close().catch(() => undefined);
  }
}

/** How a try ended, as outlier detection sees it. */
export type TryResult = 'success' | 'error-5xx' | 'gateway-error';

/** Shared dependencies of clusters. */
export interface ClusterDeps {
  readonly identity: WorkloadIdentity;
  readonly observer: ProxyObserver;
}

/** A version of a destination service. */
export class SubsetCluster {
  public endpoints: Endpoint[] = [];
  private rr = 0;
  private refreshTimer?: NodeJS.Timeout;
  private lastResolve = 0;
  private resolving?: Promise<void>;
  /** The one lookup deferred to the end of the rate-limit window (coalesces requests made inside it). */
  private deferredResolve?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly service: ServiceCluster, public readonly subset: Subset, private readonly deps: ClusterDeps) {
    const d = subset.discovery;
    if (d.type === 'static') {
      this.endpoints = d.endpoints.map((e) => this.newEndpoint(e.address, e.port));
    } else {
      void this.resolve();
      this.refreshTimer = setInterval(() => void this.resolve(), d.refreshIntervalMs);
      this.refreshTimer.unref();
    }
  }

  public get name(): string {
    return this.subset.name;
  }

  private newEndpoint(address: string, port: number): Endpoint {
    const svc = this.service.config;
    const pool = svc.connectionPool;
    const http1 = svc.protocol === 'http';
    const external = this.service.external;
    // An external service: plain TCP or TLS origination to the real host, no mesh identity.
    const connect = external ? externalConnector(external, {
      onOpen: (dir) => this.deps.observer.tcpConnectionOpened(dir, 'none'),
      onClose: (dir) => this.deps.observer.tcpConnectionClosed(dir, 'none'),
    }) : mtlsConnector({
      secureContext: () => this.deps.identity.current.clientContext,
      expectedIdentity: this.subset.identity,
      connectTimeoutMs: pool.connectTimeoutMs,
      alpn: http1 ? ['http/1.1'] : ['h2'],
      serverName: svc.targetPort === undefined ? undefined : targetPortServerName(svc.targetPort, svc.name, svc.namespace),
      onOpen: (dir) => this.deps.observer.tcpConnectionOpened(dir, 'mutual_tls'),
      onClose: (dir) => this.deps.observer.tcpConnectionClosed(dir, 'mutual_tls'),
    });
    if (http1 && nativeHttpParser) {
      // HTTP/1.1 between sidecars: the lean client (./http1), the sidecar's hottest path.
      return new Endpoint(address, port, () => new Http1Pool({
        hostname: address,
        port,
        connect,
        connections: pool.maxConnections,
        maxRequestsPerConnection: pool.maxRequestsPerConnection,
        idleTimeoutMs: pool.idleTimeoutMs,
      }));
    }
    return new Endpoint(address, port, (e) => fromUndici(new (loadUndici().Pool)(`${external?.protocol === 'http' ? 'http' : 'https'}://${e.key}`, {
      connections: pool.maxConnections,
      pipelining: 1,
      // undici closes a connection after maxRequestsPerClient + 1 requests; 1 is handled per request (reset).
      maxRequestsPerClient: pool.maxRequestsPerConnection > 1 ? pool.maxRequestsPerConnection - 1 : undefined,
      keepAliveTimeout: pool.idleTimeoutMs,
      keepAliveMaxTimeout: pool.idleTimeoutMs,
      // Timeouts are the route's business (route and per-try timeouts); undici's own would cut long streams.
      headersTimeout: 0,
      bodyTimeout: 0,
      allowH2: !http1,
      connect,
    })));
  }

  /**
   * Re-resolves a DNS subset, at most once a second; no-op for static endpoints. A request
   * inside that second (e.g. after a connect failure right after a lookup) is not dropped: one
   * lookup is scheduled for the end of the window, so traffic moves to a new address within
   * about a second instead of at the next refresh interval.
   */
  public resolve(): Promise<void> {
    const d = this.subset.discovery;
    if (d.type !== 'dns' || this.closed) return Promise.resolve();
    if (this.resolving) return this.resolving;
    const now = Date.now();
    const sinceLast = now - this.lastResolve;
    if (sinceLast < RESOLVE_MIN_INTERVAL_MS && this.endpoints.length > 0) {
      if (!this.deferredResolve) {
        this.deferredResolve = setTimeout(() => {
          this.deferredResolve = undefined;
          void this.resolve();
        }, RESOLVE_MIN_INTERVAL_MS - sinceLast);
        this.deferredResolve.unref();
      }
      return Promise.resolve();
    }
    if (this.deferredResolve) {
      // This lookup serves the deferred one's purpose.
      clearTimeout(this.deferredResolve);
      this.deferredResolve = undefined;
    }
    this.lastResolve = now;
    this.resolving = (async () => {
      try {
        const addrs = await lookup(d.hostname, { all: true });
        if (this.closed) return;
        const wanted = [...new Set(addrs.map((a) => a.address))].sort();
        const byAddr = new Map(this.endpoints.map((e) => [e.address, e]));
        const next = wanted.map((a) => byAddr.get(a) ?? this.newEndpoint(a, d.port));
        for (const e of this.endpoints) if (!wanted.includes(e.address)) e.close();
        this.endpoints = next;
      } catch (e) {
        // Keep the last known endpoints: a DNS hiccup must not empty the subset.
        log('warn', 'DNS discovery failed', { service: this.service.name, subset: this.subset.name, hostname: d.hostname, error: errorMessage(e) });
      } finally {
        this.resolving = undefined;
      }
    })();
    return this.resolving;
  }

  /**
   * Picks a healthy endpoint, or undefined when none is available. A retry passes the
   * endpoints its request already tried: they are avoided while another healthy one exists
   * (Envoy's previous_hosts retry predicate, which Istio sets on every route).
   */
  public pick(tried?: ReadonlySet<Endpoint>): Endpoint | undefined {
    if (tried !== undefined && tried.size > 0) {
      const now = Date.now();
      const fresh = this.endpoints.filter((e) => !tried.has(e) && !e.isEjected(now));
      if (fresh.length > 0) return this.pickAmong(fresh);
    }
    return this.pickAmong(this.endpoints);
  }

  private pickAmong(eps: readonly Endpoint[]): Endpoint | undefined {
    const n = eps.length;
    if (n === 0) return undefined;
    const now = Date.now();
    if (this.service.config.loadBalancer.policy === 'ROUND_ROBIN') {
      for (let i = 0; i < n; i++) {
        const e = eps[this.rr++ % n];
        if (!e.isEjected(now)) return e;
      }
      return undefined;
    }
    // LEAST_REQUEST: power of two random choices among healthy endpoints.
    if (n === 1) return eps[0].isEjected(now) ? undefined : eps[0];
    const a = eps[(Math.random() * n) | 0];
    let b = eps[(Math.random() * n) | 0];
    if (a === b) b = eps[(eps.indexOf(a) + 1) % n];
    const aOk = !a.isEjected(now);
    const bOk = !b.isEjected(now);
    if (aOk && bOk) return a.active <= b.active ? a : b;
    if (aOk) return a;
    if (bOk) return b;
    let best: Endpoint | undefined;
    for (const e of eps) if (!e.isEjected(now) && (!best || e.active < best.active)) best = e;
    return best;
  }

  /** Records the result of a try for outlier detection. */
  public record(e: Endpoint, result: TryResult): void {
    const od = this.service.config.outlierDetection;
    if (result === 'success') {
      e.consecutive5xx = 0;
      e.consecutiveGatewayErrors = 0;
      return;
    }
    e.consecutive5xx++;
    if (result === 'gateway-error') e.consecutiveGatewayErrors++;
    else e.consecutiveGatewayErrors = 0;
    if (!od) return;
    const trip = (od.consecutive5xxErrors > 0 && e.consecutive5xx >= od.consecutive5xxErrors)
      || (od.consecutiveGatewayErrors > 0 && e.consecutiveGatewayErrors >= od.consecutiveGatewayErrors);
    if (!trip) return;
    const now = Date.now();
    if (e.isEjected(now)) return;
    // Envoy's rule: eject while the endpoints already ejected are fewer than maxEjectionPercent
    // of the subset. So one endpoint can always be ejected (a 2-replica subset at 10 % loses
    // its bad replica), the cap applies beyond it, and 0 turns ejection off.
    const ejected = this.endpoints.reduce((n, x) => n + (x.isEjected(now) ? 1 : 0), 0);
    if ((ejected * 100) / this.endpoints.length >= od.maxEjectionPercent) return;
    // The ejection multiplier decays by one per interval the endpoint stayed healthy.
    if (e.timesEjected > 0 && e.ejectedUntil > 0) {
      const healthyIntervals = Math.floor((now - e.ejectedUntil) / od.intervalMs);
      e.timesEjected = Math.max(0, e.timesEjected - healthyIntervals);
    }
    e.timesEjected++;
    e.ejectedUntil = now + od.baseEjectionTimeMs * e.timesEjected;
    e.consecutive5xx = 0;
    e.consecutiveGatewayErrors = 0;
    log('info', 'endpoint ejected', { service: this.service.name, subset: this.subset.name, endpoint: e.key, ejectionMs: od.baseEjectionTimeMs * e.timesEjected });
    this.deps.observer.endpointEjected(this.service.name, this.subset.name, e.key);
  }

  public close(): void {
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.deferredResolve) clearTimeout(this.deferredResolve);
    this.deferredResolve = undefined;
    for (const e of this.endpoints) e.close();
  }
}

/** Retry budget: retries in the last second may add at most percent% of requests, plus a floor. */
export class RetryBudget {
  private second = 0;
  private requests = 0;
  private retries = 0;
  private prevRequests = 0;
  private prevRetries = 0;

  private roll(now: number): number {
    const sec = Math.floor(now / 1000);
    if (sec !== this.second) {
      const gap = sec - this.second;
      this.prevRequests = gap === 1 ? this.requests : 0;
      this.prevRetries = gap === 1 ? this.retries : 0;
      this.requests = 0;
      this.retries = 0;
      this.second = sec;
    }
    // Weight of the previous second in a sliding one-second window.
    return 1 - (now % 1000) / 1000;
  }

  public recordRequest(): void {
    this.roll(Date.now());
    this.requests++;
  }

  /** Takes one retry from the budget; false when the budget is exhausted. */
  public tryAcquire(percent: number, minPerSecond: number): boolean {
    const w = this.roll(Date.now());
    const requests = this.requests + this.prevRequests * w;
    const retries = this.retries + this.prevRetries * w;
    if (retries + 1 > minPerSecond + (percent / 100) * requests) return false;
    this.retries++;
    return true;
  }
}

/** A request queued for a connection slot. */
export interface SlotWaiter {
  /** Resolves when the slot is granted. */
  readonly promise: Promise<void>;
  /** Leaves the queue, or gives the slot back if it was already granted. */
  cancel(): void;
}

/** Why a request could not get a slot in the connection pool. */
export type Overflow = 'pending' | 'connections';

/** A destination service: subsets plus the service-wide circuit breaker and retry budget. */
export class ServiceCluster {
  public readonly subsets = new Map<string, SubsetCluster>();
  public readonly budget = new RetryBudget();
  /** Requests holding a connection slot. */
  public active = 0;
  private readonly waiting: Array<() => void> = [];

  /**
   * @param external set for an ExternalService (its config seen as an outbound service):
   *   endpoints are connected without mesh identity.
   */
  constructor(public readonly config: OutboundService, deps: ClusterDeps, public readonly external?: ExternalServiceConfig) {
    for (const s of config.subsets) this.subsets.set(s.name, new SubsetCluster(this, s, deps));
  }

  public get name(): string {
    return this.config.name;
  }

  /** Requests waiting for a connection slot. */
  public get pending(): number {
    return this.waiting.length;
  }

  /**
   * Takes a connection slot: immediately (undefined) when fewer than maxConnections requests
   * are active, else a {@link SlotWaiter} queued behind at most maxPendingRequests others, else
   * the overflow kind. With HTTP/1.1 one active request holds one connection.
   */
  public acquire(): Overflow | undefined | SlotWaiter {
    const cp = this.config.connectionPool;
    if (this.active < cp.maxConnections) {
      this.active++;
      return undefined;
    }
    if (this.waiting.length >= cp.maxPendingRequests) return cp.maxPendingRequests === 0 ? 'connections' : 'pending';
    let granted = false;
    let grant!: () => void;
    const promise = new Promise<void>((resolve) => {
      grant = () => {
        granted = true;
        resolve();
      };
    });
    this.waiting.push(grant);
    return {
      promise,
      cancel: () => {
        if (granted) {
          this.release();
          return;
        }
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
      },
    };
  }

  /** Gives a slot back; it passes to the next waiter, if any. */
  public release(): void {
    const next = this.waiting.shift();
    if (next) next(); // active stays the same: the slot changes hands
    else this.active--;
  }

  public close(): void {
    for (const s of this.subsets.values()) s.close();
  }
}

/** The identity of a cluster's definition: reloads keep clusters whose definition is unchanged. */
export function clusterKey(svc: OutboundService): string {
  const { routes: _routes, hosts: _hosts, ...rest } = svc;
  return JSON.stringify(rest);
}
