/**
 * The outbound listener's request path: the app's plain HTTP request is matched to a
 * destination service by Host (or by the absolute-form target an HTTP_PROXY client sends),
 * routed, and sent over a pooled mTLS connection to a peer sidecar, with fault injection,
 * mirroring, timeouts, retries, circuit breaking and outlier detection. Hosts outside the
 * mesh pass through to their own address when config.outbound.passthrough is on.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Readable } from 'node:stream';
import type { Pool } from 'undici';
import { loadUndici } from './undici-loader';
import { Canceller, discardBody, fromUndici, upstreamRequest, UpstreamResponse } from './upstream-request';
import { inboundListenAddresses, outboundListenAddresses } from '../config';
import type { Endpoint, ServiceCluster, SubsetCluster } from './cluster';
import { bufferBody, forwardableHeaders, forwardableRequestHeaders, hasNoBody, LOOP_HEADER, methodRefusal, pathWithoutQuery, sendError, setsB3, streamBodyToClient } from './http-util';
import type { ProxyObserver, RequestObservation } from './observer';
import { backoffMs, methodRetriable, TryOutcome } from './retry';
import { unknownHostRefusal } from './external';
import { applyRewrite, CompiledRoute, hostWithoutPort, selectRoute } from './routing';
import { serviceForAuthority } from './target-port';
import type { ProxyState, ServiceEntry } from './state';
import { isConnectFailure } from './upstream-connector';

/** Where the request's target comes from. */
export interface RequestTarget {
  /** host[:port] */
  readonly authority: string;
  /** origin-form path with query */
  readonly path: string;
}

/** Reads the target from an origin-form (`/p` + Host) or absolute-form (`http://h/p`) request line. */
export function requestTarget(req: IncomingMessage): RequestTarget | undefined {
  const url = req.url ?? '/';
  if (url.charCodeAt(0) === 47 /* / */) {
    const host = req.headers.host ?? (req.headers[':authority'] as string | undefined);
    return host ? { authority: host, path: url } : undefined;
  }
  const m = /^http:\/\/([^/?#]+)([^#]*)/i.exec(url);
  if (!m) return undefined;
  const path = m[2] === '' ? '/' : m[2].startsWith('?') ? '/' + m[2] : m[2];
  return { authority: m[1], path };
}

/**
 * Hop marker of passthrough requests: each sidecar appends its own random token when it sends
 * a request to a host outside the mesh, and refuses (508) a request from the app that already
 * carries its token. Address checks ({@link selfTarget}) cannot see every road back to this
 * sidecar (a DNS name, a NAT, a forwarder); a request that comes back carries the token.
 */
const LOOP_TOKEN = randomBytes(8).toString('hex');
/** More passthrough hops than this is a loop through several sidecars. */
const MAX_PASSTHROUGH_HOPS = 8;

/** Why a request from the app must not be sent on, when its hop marker says it looped. */
export function loopRefusal(req: IncomingMessage): string | undefined {
  const v = req.headers[LOOP_HEADER];
  if (v === undefined) return undefined;
  const hops = (Array.isArray(v) ? v.join(',') : v).split(',');
  if (hops.length > MAX_PASSTHROUGH_HOPS) return `loop detected: the request passed through ${hops.length} sidecars`;
  for (const h of hops) if (h.trim() === LOOP_TOKEN) return 'loop detected: the request came back to the sidecar that passed it through';
  return undefined;
}

/**
 * The one header-hygiene step of every outbound request (HTTP and Upgrade, mesh service and
 * passthrough alike): hop-by-hop headers, the app's x-typemesh-source, header names with
 * underscores and stale b3 headers dropped, the observer's propagation headers added; a
 * passthrough request also gets this sidecar's hop marker.
 */
export function outboundForwardHeaders(req: IncomingMessage, obs: RequestObservation, passthrough: boolean): Record<string, string | string[]> {
  const headers = forwardableRequestHeaders(req.headers, setsB3(obs.propagationHeaders));
  for (const k in obs.propagationHeaders) headers[k] = obs.propagationHeaders[k];
  if (passthrough) {
    const prev = headers[LOOP_HEADER];
    headers[LOOP_HEADER] = prev === undefined ? LOOP_TOKEN : `${Array.isArray(prev) ? prev.join(',') : prev},${LOOP_TOKEN}`;
  }
  return headers;
}

/**
 * The canonical address of a host as a socket would connect to it: `new URL` applies the WHATWG
 * IPv4 parser (so `2130706433`, `127.1`, `0x7f.0.0.1` all become `127.0.0.1`), lower-cases
 * names, and IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`) is mapped back to IPv4. Undefined when the
 * authority cannot be parsed.
 */
export function canonicalAuthority(authority: string): { host: string; port: number } | undefined {
  let url: URL;
  try {
    url = new URL(`http://${authority}`);
  } catch {
    return undefined;
  }
  let host = url.hostname;
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
    if (m) {
      const hi = parseInt(m[1], 16);
      const lo = parseInt(m[2], 16);
      host = `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    }
  }
  return { host, port: url.port === '' ? 80 : Number(url.port) };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** True when connecting to `host` reaches a listener bound to `bound`. */
function reaches(host: string, bound: string): boolean {
  // The unspecified address connects to the local host: never a legitimate passthrough target.
  if (host === bound || host === '0.0.0.0' || host === '::') return true;
  if (bound === '0.0.0.0' || bound === '::') {
    if (isLoopback(host)) return true;
    for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) if (a.address === host) return true;
    return false;
  }
  return (host === 'localhost' || host.endsWith('.localhost')) && (bound === '127.0.0.1' || bound === '::1');
}

/**
 * When a passthrough target is one of this sidecar's own listeners (outbound, inbound or admin
 * port on an address that reaches it), names that listener; else undefined.
 */
export function selfTarget(authority: string, state: ProxyState): string | undefined {
  const l = state.config.listeners;
  const target = canonicalAuthority(authority);
  // An authority URL cannot parse is refused as if it were ours: it is never forwarded.
  if (!target) return 'an unparseable authority';
  const { host, port } = target;
  const listener = port === l.outboundPort ? 'outbound' : port === l.inboundPort ? 'inbound' : port === l.adminPort ? 'admin' : undefined;
  if (!listener) return undefined;
  const bound = listener === 'outbound' ? outboundListenAddresses(l) : inboundListenAddresses(l);
  for (const b of bound) {
    const canonical = canonicalAuthority(b.includes(':') ? `[${b}]` : b)?.host ?? b;
    if (reaches(host, canonical)) return `this sidecar's own ${listener} listener`;
  }
  return undefined;
}

/** Dependencies of the outbound handler. */
export interface OutboundDeps {
  readonly state: () => ProxyState;
  readonly observer: ProxyObserver;
  /** Counts requests in flight (for drain). */
  readonly track: (delta: number) => void;
}

const MAX_MIRRORS_IN_FLIGHT = 64;
/** A mirrored request gets at most this long for its response head. */
const MIRROR_TIMEOUT_MS = 30_000;
const MAX_PASSTHROUGH_POOLS = 256;
const NO_BODY = null;
/** How long an HTTP/2 body without Content-Length is awaited for buffering before it is streamed (and not retried). */
const STREAMING_BODY_WAIT_MS = 50;
/** Largest body mirrored when the route has no retry policy to say otherwise. */
const MIRROR_MAX_BODY_BYTES = 65536;
/** Response flag: a failure the route retries was not retried, because its body was not buffered (over maxBufferedBodyBytes). */
const RETRY_BODY_NOT_BUFFERED_FLAG = 'RBL';

class TimeoutError extends Error {
  constructor(public readonly scope: 'route' | 'try') {
    super(`${scope} timeout`);
  }
}

/** The outbound request handler. */
export class OutboundProxy {
  private mirrorsInFlight = 0;
  private readonly passthroughPools = new Map<string, Pool>();

  constructor(private readonly deps: OutboundDeps) {}

  /** Handles one request from the app. */
  public handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.deps.track(1);
    res.once('close', () => this.deps.track(-1));
    const state = this.deps.state();
    const target = requestTarget(req);
    const method = req.method ?? 'GET';
    if (!target) {
      sendError(res, 400, 'bad request: no Host header and no absolute-form request target');
      return;
    }
    const host = hostWithoutPort(target.authority);
    const entry = serviceForAuthority(state.hosts, target.authority);
    const obs = this.deps.observer.requestStarted({
      direction: 'outbound',
      method,
      authority: target.authority,
      path: target.path,
      headers: req.headers,
      // An external service is labelled by its host (as Istio labels a ServiceEntry).
      destinationService: entry?.external ? host : entry?.config.name,
      connectionSecurity: entry && !entry.external ? 'mutual_tls' : 'none',
    });
    const badMethod = methodRefusal(req);
    if (badMethod) {
      respond(res, obs, 400, badMethod, ['DPE']);
      return;
    }
    const loop = loopRefusal(req);
    if (loop) {
      respond(res, obs, 508, loop, ['NR']);
      return;
    }
    if (!entry) {
      if (!state.config.outbound.passthrough) {
        respond(res, obs, 502, unknownHostRefusal(host), ['NR']);
        return;
      }
      const self = selfTarget(target.authority, state);
      if (self) {
        respond(res, obs, 508, `loop detected: "${target.authority}" is ${self}`, ['NR']);
        return;
      }
      void this.passthrough(req, res, target, obs);
      return;
    }
    void this.routeToService(req, res, target, entry, obs).catch((e) => {
      respond(res, obs, 500, `internal proxy error: ${(e as Error).message}`, ['DPE']);
    });
  };

  private async routeToService(req: IncomingMessage, res: ServerResponse, target: RequestTarget, entry: ServiceEntry, obs: RequestObservation): Promise<void> {
    const method = req.method ?? 'GET';
    const route = selectRoute(entry.routes, { method, path: pathWithoutQuery(target.path), headers: req.headers });
    if (!route) {
      respond(res, obs, 404, `no route of service "${entry.config.name}" matches ${method} ${pathWithoutQuery(target.path)}`, ['NR']);
      return;
    }
    const cluster = entry.cluster;
    cluster.budget.recordRequest();
    const flags: string[] = [];

    // Fault injection (before anything is sent upstream).
    const fault = route.config.fault;
    if (fault?.delay && Math.random() * 100 < fault.delay.percentage) {
      flags.push('DI');
      await sleep(fault.delay.fixedDelayMs);
      if (res.destroyed) return endClientGone(obs, flags);
    }
    if (fault?.abort && Math.random() * 100 < fault.abort.percentage) {
      flags.push('FI');
      respond(res, obs, fault.abort.httpStatus, 'fault filter abort', flags);
      return;
    }

    // The app's x-typemesh-source never leaves: only the observer states who we are. A host
    // outside the mesh gets the hop marker, as a passthrough host does (it may route back here).
    const headers = outboundForwardHeaders(req, obs, entry.external !== undefined);
    if (route.requestHeaders) applyRewrite(headers, route.requestHeaders);
    if (!headers.host) headers.host = target.authority;

    // The body: buffered when a retry or a mirror may replay it, else streamed.
    const policy = route.retries;
    const mirror = route.config.mirror && Math.random() * 100 < route.config.mirror.percentage ? route.config.mirror : undefined;
    const mayRetry = policy !== undefined && methodRetriable(method, policy);
    let body: Buffer | IncomingMessage | Readable | null = NO_BODY;
    let replayable = true;
    let requestBytes = 0;
    if (!hasNoBody(req)) {
      if (mayRetry || mirror) {
        let buffered;
        try {
          // HTTP/2 without Content-Length may be a stream that only ends after the response.
          const streaming = req.httpVersionMajor === 2 && req.headers['content-length'] === undefined;
          buffered = await bufferBody(req, policy?.maxBufferedBodyBytes ?? MIRROR_MAX_BODY_BYTES, streaming ? STREAMING_BODY_WAIT_MS : 0);
        } catch {
          return endClientGone(obs, flags);
        }
        if (buffered.complete) {
          body = buffered.body;
          requestBytes = buffered.body.length;
        } else {
          body = buffered.stream;
          replayable = false;
        }
      } else {
        body = req;
        replayable = false;
        requestBytes = Number(req.headers['content-length'] ?? 0) || 0;
      }
    }

    const subsetName = route.pickSubset();
    const subset = cluster.subsets.get(subsetName)!;
    // A mirror needs the whole body up front; a body too large to buffer is not mirrored.
    if (mirror && replayable) this.mirror(cluster.subsets.get(mirror.subset)!, method, target.path, headers, body as Buffer | null);

    await this.tryLoop({ req, res, obs, entry, route, subset, cluster, method, path: target.path, headers, body, replayable, requestBytes, flags });
  }

  private async tryLoop(c: TryContext): Promise<void> {
    const { res, obs, route, subset, cluster, flags } = c;
    const wantsRetries = route.retries !== undefined && methodRetriable(c.method, route.retries);
    const policy = c.replayable && wantsRetries ? route.retries : undefined;
    const retryOn = policy ? c.entry.retryOn.get(route.name) : undefined;
    const timeoutMs = route.config.timeoutMs;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    const perTryMs = policy?.perTryTimeoutMs ?? 0;
    const maxTries = 1 + (policy?.attempts ?? 0);
    let clientGone = false;
    let current: Canceller | undefined;
    const onClose = (): void => {
      if (res.writableEnded) return;
      clientGone = true;
      current?.cancel(new Error('client closed the connection'));
    };
    res.once('close', onClose);

    let retries = 0;
    let lastFailure: { status: number; body: string; flag: string } | undefined;
    let endpoint: Endpoint | undefined;
    // The endpoints this request tried, kept only when a retry may follow (no allocation on
    // a request that gets a single try).
    let tried: Set<Endpoint> | undefined;
    for (let tryNo = 1; tryNo <= maxTries; tryNo++) {
      if (clientGone) return endClientGone(obs, flags, retries);
      endpoint = subset.pick(tried);
      if (endpoint && tryNo < maxTries) (tried ??= new Set()).add(endpoint);
      if (!endpoint) {
        respond(res, obs, 503, 'no healthy upstream', [...flags, 'UH'], { retries, subset: subset.name, principal: subset.subset.identity });
        return;
      }
      // Circuit breaker: a connection slot, or a bounded wait for one, or overflow.
      const slot = cluster.acquire();
      if (slot === 'pending' || slot === 'connections') {
        this.deps.observer.poolOverflow(cluster.name);
        const limit = slot === 'pending' ? `maxPendingRequests=${cluster.config.connectionPool.maxPendingRequests}` : `maxConnections=${cluster.config.connectionPool.maxConnections}`;
        respond(res, obs, 503, `upstream overflow: connection pool of "${cluster.name}" is full (${limit})`, [...flags, 'UO'], { retries, subset: subset.name }, { 'x-typemesh-overflow': slot });
        return;
      }
      const tryDeadline = perTryMs > 0 ? Math.min(deadline, Date.now() + perTryMs) : deadline;
      const cancel = new Canceller();
      current = cancel;
      let timedOut: TimeoutError | undefined;
      const timer = tryDeadline === Infinity ? undefined : setTimeout(() => {
        timedOut = new TimeoutError(tryDeadline === deadline ? 'route' : 'try');
        cancel.cancel(timedOut);
      }, Math.max(0, tryDeadline - Date.now()));
      if (slot !== undefined) {
        try {
          await new Promise<void>((resolve, reject) => {
            cancel.onCancel(reject);
            slot.promise.then(resolve);
          });
          cancel.clear();
        } catch {
          slot.cancel();
          if (timer) clearTimeout(timer);
          if (clientGone) return endClientGone(obs, flags, retries);
          respond(res, obs, 504, 'upstream request timeout', [...flags, 'UT'], { retries, subset: subset.name });
          return;
        }
      }
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        endpoint!.active--;
        cluster.release();
      };
      endpoint.active++;
      let outcome: TryOutcome;
      let response: UpstreamResponse | undefined;
      try {
        response = await upstreamRequest(endpoint.getPool(), {
          method: c.method,
          path: c.path,
          headers: c.headers,
          body: c.body,
          cancel,
          reset: cluster.config.connectionPool.maxRequestsPerConnection === 1,
        });
        outcome = { kind: 'response', status: response.statusCode, grpcStatus: grpcStatusOf(response.headers) };
      } catch (e) {
        if (timedOut) outcome = { kind: 'timeout' };
        else if (clientGone) {
          release();
          if (timer) clearTimeout(timer);
          return endClientGone(obs, flags, retries);
        } else if (isConnectFailure(e)) outcome = { kind: 'connect-failure' };
        else outcome = { kind: 'reset' };
        lastFailure = failureResponse(outcome, e);
      } finally {
        if (timer) clearTimeout(timer);
        current = undefined;
      }
      subset.record(endpoint, outlierResult(outcome));
      if (outcome.kind === 'connect-failure') void subset.resolve();

      const canRetry = tryNo < maxTries && retryOn !== undefined && retryOn(outcome);
      if (canRetry && policy) {
        if (!cluster.budget.tryAcquire(policy.budget.percent, policy.budget.minRetriesPerSecond)) {
          this.deps.observer.retryBudgetExhausted(cluster.name);
          flags.push('URX');
        } else {
          // Read the failed response to its end (bounded) so its connection can be reused.
          if (response) discardBody(response.body);
          release();
          const wait = backoffMs(policy, tryNo);
          if (Date.now() + wait >= deadline) {
            respond(res, obs, 504, 'upstream request timeout', [...flags, 'UT'], { retries, subset: subset.name });
            return;
          }
          await sleep(wait);
          retries++;
          this.deps.observer.retried(cluster.name, subset.name);
          continue;
        }
      } else if (tryNo > 1 && retryOn && retryOn(outcome)) {
        flags.push('URX');
      } else if (wantsRetries && !c.replayable && c.entry.retryOn.get(route.name)?.(outcome)) {
        // The policy would retry this failure, but the body was too large to buffer (or an
        // HTTP/2 body still streaming) and cannot be replayed: say so instead of failing silently.
        flags.push(RETRY_BODY_NOT_BUFFERED_FLAG);
      }

      if (!response) {
        release();
        const f = lastFailure!;
        respond(res, obs, f.status, f.body, [...flags, f.flag], { retries, subset: subset.name, principal: subset.subset.identity, upstreamHost: endpoint.key });
        return;
      }
      res.removeListener('close', onClose);
      this.stream(c, response, release, { retries, subset: subset.name, principal: subset.subset.identity, upstreamHost: endpoint.key });
      return;
    }
  }

  /** Streams a committed upstream response to the client. */
  private stream(c: TryContext, response: UpstreamResponse, release: () => void, meta: OutcomeMeta): void {
    const { res, obs, route, flags } = c;
    if (response.body.errored) {
      // The body failed in the same read as the head (e.g. an invalid chunk): nothing is committed yet.
      release();
      respond(res, obs, 502, `upstream sent an invalid response: ${response.body.errored.message}`, [...flags, 'UPE'], meta);
      return;
    }
    const headers = forwardableHeaders(response.headers as Record<string, string | string[] | undefined>);
    if (route.responseHeaders) applyRewrite(headers, route.responseHeaders);
    const grpcStatus = grpcStatusOf(response.headers);
    try {
      res.writeHead(response.statusCode, headers);
    } catch (e) {
      // A header value Node refuses to send (e.g. a control character): never pass it on.
      discardBody(response.body);
      release();
      respond(res, obs, 502, `upstream sent an invalid response header: ${(e as Error).message}`, [...flags, 'UPE'], meta);
      return;
    }
    streamBodyToClient(res, response, (status, responseBytes, extraFlags) => {
      release();
      obs.end({ status, requestBytes: c.requestBytes, responseBytes, destinationSubset: meta.subset, destinationPrincipal: meta.principal, upstreamHost: meta.upstreamHost, retries: meta.retries, flags: [...flags, ...extraFlags], grpcStatus: grpcStatus ?? grpcStatusOf(response.trailers) });
    });
  }

  /** Sends a copy of the request to the mirror subset; the response is discarded. */
  private mirror(subset: SubsetCluster, method: string, path: string, headers: Record<string, string | string[]>, body: Buffer | null): void {
    if (this.mirrorsInFlight >= MAX_MIRRORS_IN_FLIGHT) return;
    const endpoint = subset.pick();
    if (!endpoint) return;
    this.mirrorsInFlight++;
    const host = typeof headers.host === 'string' ? headers.host : '';
    const mirrorHeaders = { ...headers, host: `${host}-shadow` };
    const cancel = new Canceller();
    const timer = setTimeout(() => cancel.cancel(new Error('mirror timeout')), MIRROR_TIMEOUT_MS);
    upstreamRequest(endpoint.getPool(), { method, path, headers: mirrorHeaders, body, cancel })
      .then((r) => discardBody(r.body, 1 << 20))
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        this.mirrorsInFlight--;
      });
  }

  /** Forwards a request for a host outside the mesh to its own address, in plain HTTP. */
  private async passthrough(req: IncomingMessage, res: ServerResponse, target: RequestTarget, obs: RequestObservation): Promise<void> {
    const origin = `http://${target.authority.includes(':') || target.authority.startsWith('[') ? target.authority : target.authority + ':80'}`;
    let pool = this.passthroughPools.get(origin);
    if (!pool) {
      if (this.passthroughPools.size >= MAX_PASSTHROUGH_POOLS) {
        const [oldest, p] = this.passthroughPools.entries().next().value as [string, Pool];
        this.passthroughPools.delete(oldest);
        p.close().catch(() => undefined);
      }
      pool = new (loadUndici().Pool)(origin, { connections: 256, headersTimeout: 0, bodyTimeout: 0, connect: { timeout: 10000 } });
      this.passthroughPools.set(origin, pool);
    }
    // Hosts outside the mesh never see x-typemesh-source, not even one the app wrote.
    const headers = outboundForwardHeaders(req, obs, true);
    headers.host = target.authority;
    const cancel = new Canceller();
    const onClose = (): void => {
      if (!res.writableEnded) cancel.cancel(new Error('client closed the connection'));
    };
    res.once('close', onClose);
    let response: UpstreamResponse;
    try {
      response = await upstreamRequest(fromUndici(pool), { method: req.method ?? 'GET', path: target.path, headers, body: hasNoBody(req) ? null : req, cancel });
    } catch (e) {
      if (cancel.reason) return endClientGone(obs, []);
      const o: TryOutcome = isConnectFailure(e) ? { kind: 'connect-failure' } : { kind: 'reset' };
      const f = failureResponse(o, e);
      respond(res, obs, f.status, f.body, [f.flag]);
      return;
    }
    res.removeListener('close', onClose);
    const fakeRoute = { responseHeaders: undefined } as unknown as CompiledRoute;
    this.stream({ req, res, obs, route: fakeRoute, flags: [], requestBytes: 0 } as unknown as TryContext, response, () => undefined, { retries: 0, upstreamHost: target.authority });
  }

  /** Closes passthrough pools. */
  public async close(): Promise<void> {
    await Promise.all([...this.passthroughPools.values()].map((p) => p.close().catch(() => undefined)));
  }
}

interface TryContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly obs: RequestObservation;
  readonly entry: ServiceEntry;
  readonly route: CompiledRoute;
  readonly subset: SubsetCluster;
  readonly cluster: ServiceCluster;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | Readable | null;
  readonly replayable: boolean;
  readonly requestBytes: number;
  readonly flags: string[];
}

interface OutcomeMeta {
  readonly retries: number;
  readonly subset?: string;
  readonly principal?: string;
  readonly upstreamHost?: string;
}

function respond(res: ServerResponse, obs: RequestObservation, status: number, body: string, flags: readonly string[], meta: OutcomeMeta = { retries: 0 }, headers?: Record<string, string>): void {
  sendError(res, status, body, headers);
  obs.end({ status, requestBytes: 0, responseBytes: body.length + 1, destinationSubset: meta.subset, destinationPrincipal: meta.principal, upstreamHost: meta.upstreamHost, retries: meta.retries, flags });
}

function endClientGone(obs: RequestObservation, flags: readonly string[], retries = 0): void {
  obs.end({ status: 0, requestBytes: 0, responseBytes: 0, retries, flags: [...flags, 'DC'] });
}

function failureResponse(o: TryOutcome, e: unknown): { status: number; body: string; flag: string } {
  const msg = e instanceof Error ? e.message : String(e);
  switch (o.kind) {
    case 'timeout':
      return { status: 504, body: 'upstream request timeout', flag: 'UT' };
    case 'connect-failure':
      return { status: 503, body: msg.startsWith('upstream') ? msg : `upstream connect error: ${msg}`, flag: 'UF' };
    default:
      return { status: 503, body: `upstream reset before response: ${msg}`, flag: 'UC' };
  }
}

function outlierResult(o: TryOutcome): 'success' | 'error-5xx' | 'gateway-error' {
  if (o.kind !== 'response') return 'gateway-error';
  if (o.status === 502 || o.status === 503 || o.status === 504) return 'gateway-error';
  return o.status >= 500 ? 'error-5xx' : 'success';
}

function grpcStatusOf(headers: Record<string, string | string[] | undefined>): number | undefined {
  const v = headers['grpc-status'];
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
