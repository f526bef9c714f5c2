/**
 * Graceful overload: admission control at the listeners, before any expensive work.
 *
 * A sidecar that queues without bound under CPU pressure turns a busy node into an outage
 * (every caller waits seconds). Two cheap checks decide, when a request head has been parsed and
 * before its body is read, its route chosen or an upstream touched, whether it is served:
 *
 * - **Requests in flight per listener** (`overload.maxActiveRequests`): beyond it the request is
 *   shed. With a bounded number admitted, an admitted request waits behind at most that many, so
 *   its latency stays bounded by (limit / throughput) instead of growing with the offered load.
 *   The cluster's `maxPendingRequests` stays the per-cluster bound behind it.
 * - **Adaptive limit** (`overload.maxQueueDelayMs`, off by default): requests in flight at most
 *   (completions per ms x this), so the bound is a time rather than a count; see adaptiveLimit().
 * - **Event-loop lag** (`overload.maxEventLoopLagMs`): while the loop runs late by more than
 *   this, every request that arrives already waited that long in a socket buffer, and admitting
 *   it adds work to a loop that cannot keep up; new requests are shed, while the listener has
 *   requests in flight, until a tick is on time.
 *
 * A shed request gets 503 with `x-typemesh-overloaded: true` and the response flag OL (metrics
 * and access log), the way Envoy's overload manager answers 503 with flag OM; the connection is
 * kept (a new mTLS handshake would cost more than the request). Clients retry elsewhere.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Direction, ProxyObserver } from './observer';
import { sendError } from './http-util';

/** Requests in flight per listener when `overload.maxActiveRequests` is unset (Envoy's default max_requests). */
export const DEFAULT_MAX_ACTIVE_REQUESTS = 1024;
/** Event-loop lag beyond which requests are shed when `overload.maxEventLoopLagMs` is unset. */
export const DEFAULT_MAX_EVENT_LOOP_LAG_MS = 500;
/** The response flag of a shed request. */
export const OVERLOAD_FLAG = 'OL';
/** The response header that tells the client the sidecar shed its request. */
export const OVERLOADED_HEADER = 'x-typemesh-overloaded';
/** How often the lag detector's timer ticks; lag is how late a tick runs. */
const LAG_TICK_MS = 50;
/** The adaptive limit (overload.maxQueueDelayMs) never goes below this many requests in flight. */
export const ADAPTIVE_LIMIT_FLOOR = 32;
/** How often each listener's completion rate is sampled, and the weight of a new sample in its moving average. */
const RATE_SAMPLE_MS = 100;
const RATE_WEIGHT = 0.3;

/** The overload settings as they appear in the sidecar config (all optional). */
export interface OverloadSettings {
  readonly maxActiveRequests?: number;
  readonly maxEventLoopLagMs?: number;
  readonly maxQueueDelayMs?: number;
}

/** Why a request was shed. */
export type ShedReason = 'active-requests' | 'event-loop-lag' | 'queue-delay';

/** A listener's requests in flight and how fast it completes them. */
interface ListenerLoad {
  /** Requests in flight. */
  n: number;
  /** Completions since the last rate sample. */
  done: number;
  /** Moving average of completions per millisecond. */
  rate: number;
}

/**
 * The adaptive limit of a listener: by Little's law, requests in flight = throughput x time in
 * the sidecar, so admitting at most (completions per ms x maxQueueDelayMs) keeps an admitted
 * request's wait near maxQueueDelayMs however much the CPU can serve; never below the floor (a
 * burst on an idle listener is served), never above maxActiveRequests. Undefined when off.
 */
export function adaptiveLimit(ratePerMs: number, maxQueueDelayMs: number | undefined, maxActive: number): number | undefined {
  if (!maxQueueDelayMs || maxQueueDelayMs <= 0) return undefined;
  const limit = Math.max(ADAPTIVE_LIMIT_FLOOR, Math.floor(ratePerMs * maxQueueDelayMs));
  return maxActive > 0 ? Math.min(limit, maxActive) : limit;
}

/**
 * Measures how late the event loop runs: a timer ticks every `tickMs`; the lag is how much later
 * than scheduled the last tick ran, or, when a tick is overdue right now (the loop is still busy
 * with what queued while it was blocked), how overdue it is. Reading it costs one clock read.
 */
export class EventLoopLagDetector {
  private expected: number;
  private lastLag = 0;
  private readonly timer: NodeJS.Timeout;

  public constructor(private readonly tickMs = LAG_TICK_MS, private readonly now: () => number = () => performance.now()) {
    this.expected = this.now() + tickMs;
    this.timer = setInterval(() => this.tick(), tickMs);
    // The detector never keeps the process alive.
    this.timer.unref();
  }

  /** Milliseconds the loop runs late now. */
  public lagMs(): number {
    const overdue = this.now() - this.expected;
    return overdue > this.lastLag ? overdue : this.lastLag;
  }

  /** Called by the timer (and by tests with a fake clock). */
  public tick(): void {
    const t = this.now();
    this.lastLag = Math.max(0, t - this.expected);
    this.expected = t + this.tickMs;
  }

  public stop(): void {
    clearInterval(this.timer);
  }
}

/** Per-listener admission: counts requests in flight and sheds beyond the limits. */
export class Admission {
  /** Requests in flight per listener name (one counter object per listener, found once at wrap time). */
  private readonly active = new Map<string, ListenerLoad>();
  private readonly lag = new EventLoopLagDetector();
  private readonly rateTimer: NodeJS.Timeout;
  private lastSample = performance.now();

  public constructor(private readonly deps: { readonly settings: () => OverloadSettings | undefined; readonly observer: ProxyObserver }) {
    this.rateTimer = setInterval(() => this.sampleRates(), RATE_SAMPLE_MS);
    this.rateTimer.unref();
  }

  /** Requests in flight on a listener now. */
  public activeRequests(listener: string): number {
    return this.counter(listener).n;
  }

  /** Why a new request on the listener would be shed now, or undefined when it is admitted. */
  public refusal(listener: string): ShedReason | undefined {
    return this.refusalOf(this.counter(listener));
  }

  private refusalOf(active: ListenerLoad): ShedReason | undefined {
    const s = this.deps.settings();
    const max = s?.maxActiveRequests ?? DEFAULT_MAX_ACTIVE_REQUESTS;
    if (max > 0 && active.n >= max) return 'active-requests';
    if (active.n >= ADAPTIVE_LIMIT_FLOOR) {
      const adaptive = adaptiveLimit(active.rate, s?.maxQueueDelayMs, max);
      if (adaptive !== undefined && active.n >= adaptive) return 'queue-delay';
    }
    const maxLag = s?.maxEventLoopLagMs ?? DEFAULT_MAX_EVENT_LOOP_LAG_MS;
    // Only with work already in flight on the listener: a lone request after a GC pause or a
    // moment without CPU adds little, and refusing it would turn a hiccup into an error.
    if (maxLag > 0 && active.n > 0 && this.lag.lagMs() > maxLag) return 'event-loop-lag';
    return undefined;
  }

  /**
   * Wraps a listener's request handler (HTTP/1.1, or HTTP/2 through the compat API): a request
   * is counted from its head until its response closes; a shed one is answered here and never
   * reaches the handler.
   */
  public wrap<Req extends IncomingMessage, Res extends ServerResponse>(listener: string, direction: Direction, handler: (req: Req, res: Res) => void): (req: Req, res: Res) => void {
    const active = this.counter(listener);
    const release = (): void => {
      active.n--;
      active.done++;
    };
    return (req, res) => {
      const why = this.refusalOf(active);
      if (why !== undefined) {
        this.shed(direction, why, req, res);
        return;
      }
      active.n++;
      res.once('close', release);
      handler(req, res);
    };
  }

  private sampleRates(): void {
    const t = performance.now();
    const dt = t - this.lastSample;
    this.lastSample = t;
    if (dt <= 0) return;
    for (const c of this.active.values()) {
      c.rate = (1 - RATE_WEIGHT) * c.rate + RATE_WEIGHT * (c.done / dt);
      c.done = 0;
    }
  }

  private counter(listener: string): ListenerLoad {
    let c = this.active.get(listener);
    if (!c) {
      c = { n: 0, done: 0, rate: 0 };
      this.active.set(listener, c);
    }
    return c;
  }

  public stop(): void {
    this.lag.stop();
    clearInterval(this.rateTimer);
  }

  private shed(direction: Direction, why: ShedReason, req: IncomingMessage, res: ServerResponse): void {
    const obs = this.deps.observer.requestStarted({
      direction,
      method: req.method ?? '',
      authority: String(req.headers.host ?? req.headers[':authority'] ?? ''),
      path: req.url ?? '',
      headers: req.headers,
      connectionSecurity: direction === 'inbound' && (req.socket as { encrypted?: boolean }).encrypted ? 'mutual_tls' : 'none',
    });
    const body = why === 'active-requests' ? 'overloaded: too many requests in flight on this listener, retry later'
      : why === 'queue-delay' ? 'overloaded: more requests in flight than this listener completes within its queue delay, retry later'
        : 'overloaded: the proxy is running late (event-loop lag), retry later';
    sendError(res, 503, body, { [OVERLOADED_HEADER]: 'true', 'x-typemesh-overload-reason': why });
    obs.end({ status: 503, requestBytes: 0, responseBytes: body.length + 1, retries: 0, flags: [OVERLOAD_FLAG] });
  }
}
