/**
 * One upstream request over a dispatcher (the lean HTTP/1.1 pool of ./http1, or undici's pools
 * for HTTP/2 and passthrough), exposed as a promise of the response head plus a streamed body
 * and its trailers. It uses the dispatch handler API directly (cheaper than undici's
 * `request()`, and the only path that sees HTTP/2 trailers: undici 7's `request()` drops
 * them, which would lose gRPC's grpc-status).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Http1Handler, RawHeaders } from './http1/exchange';
import type { Http1DispatchOptions } from './http1/pool';

/** What upstreamRequest sends through: Http1Pool, or an undici dispatcher via {@link fromUndici}. */
export interface UpstreamPool {
  dispatch(opts: Http1DispatchOptions & { readonly servername?: string }, handler: Http1Handler): boolean;
  close(): Promise<void>;
}

/**
 * undici's Pool and H2CClient take the same calls; their declared option and handler types
 * are wider (Buffer header lists, iterables) than the sidecar's, which is why a cast is safe.
 */
export function fromUndici(dispatcher: Dispatcher): UpstreamPool {
  return dispatcher as unknown as UpstreamPool;
}

/**
 * A cheap cancellation handle for one try. AbortController/AbortSignal (EventTarget) cost a
 * few percent of the proxy's CPU in profiles; this is one small object and one closure.
 */
export class Canceller {
  /** Set once cancelled. */
  public reason?: Error;
  private fn?: (reason: Error) => void;

  public cancel(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    const fn = this.fn;
    this.fn = undefined;
    fn?.(reason);
  }

  /** Registers the (single) reaction to cancellation, replacing any earlier one. */
  public onCancel(fn: (reason: Error) => void): void {
    if (this.reason) fn(this.reason);
    else this.fn = fn;
  }

  public clear(): void {
    this.fn = undefined;
  }
}

/** What to send. */
export interface UpstreamRequestOptions {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | Readable | null;
  readonly cancel?: Canceller;
  /** Close the connection after this request. */
  readonly reset?: boolean;
}

/** The upstream's answer. */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  /** Filled when the body ends. */
  readonly trailers: Record<string, string | string[]>;
}

/** Parses raw headers (flat [k, v, ...] arrays from HTTP/1.1, or objects from HTTP/2). */
export function parseRawHeaders(raw: RawHeaders, into: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  if (!raw) return into;
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const key = raw[i].toString().toLowerCase();
      const v = raw[i + 1];
      const value = Array.isArray(v) ? v.map(String) : v.toString();
      const prev = into[key];
      if (prev === undefined) into[key] = value;
      else if (key === 'set-cookie' || Array.isArray(prev)) into[key] = ([] as string[]).concat(prev, value);
      else into[key] = `${prev}, ${Array.isArray(value) ? value.join(', ') : value}`;
    }
    return into;
  }
  for (const key of Object.keys(raw)) {
    const v = (raw as Record<string, string | string[] | undefined>)[key];
    if (v === undefined || key.startsWith(':')) continue;
    into[key.toLowerCase()] = v;
  }
  return into;
}

/**
 * The TLS server name given to undici with every request. Without one, undici derives it from
 * the Host header per request (an IP-address regex on the hot path) and, on an https pool,
 * closes the pooled connection whenever it differs from the previous request's: an app that
 * calls one service by two aliases ("payment", "payment.shop.svc.cluster.local") would get a
 * new mTLS handshake per alias switch. TypeMesh never uses SNI for its upstreams (the mTLS
 * connector verifies the peer's SPIFFE ID, not a name), so one constant keeps the connections.
 */
const FIXED_SERVERNAME = 'typemesh-upstream';

function ignoreError(): void {
  // see onHeaders in upstreamRequest
}

/** Sends a request; resolves when the response head arrives, rejects on failure before that. */
export function upstreamRequest(dispatcher: UpstreamPool, opts: UpstreamRequestOptions): Promise<UpstreamResponse> {
  return new Promise<UpstreamResponse>((resolve, reject) => {
    let abortFn: ((err?: Error) => void) | undefined;
    let resumeFn: (() => void) | undefined;
    let body: Readable | undefined;
    let settled = false;
    let complete = false;
    const trailers: Record<string, string | string[]> = {};
    let cancelled: Error | undefined;
    const cancel = opts.cancel;
    if (cancel) {
      if (cancel.reason) {
        reject(cancel.reason);
        return;
      }
      cancel.onCancel((reason) => {
        cancelled = reason;
        abortFn?.(reason);
      });
    }
    const done = (): void => {
      cancel?.clear();
    };
    const handler: Http1Handler = {
      onConnect(abort) {
        abortFn = abort;
        if (cancelled) abort(cancelled);
      },
      onHeaders(statusCode, rawHeaders, resume) {
        if (statusCode < 200) return true; // 1xx (other than upgrades) are not forwarded
        resumeFn = resume;
        body = new Readable({
          read() {
            resumeFn?.();
          },
          destroy(err, cb) {
            if (!complete && abortFn) abortFn(err ?? new Error('response body discarded'));
            cb(err);
          },
        });
        // The body may fail before the caller has attached its listeners (a malformed chunk in
        // the same read as the head): that must not be an uncaught exception. Callers check
        // `body.errored` before they commit to the response, and listen for 'error' after.
        body.on('error', ignoreError);
        settled = true;
        resolve({ statusCode, headers: parseRawHeaders(rawHeaders) as IncomingHttpHeaders, body, trailers });
        return true;
      },
      onData(chunk) {
        return body ? body.push(chunk) : true;
      },
      onComplete(rawTrailers) {
        complete = true;
        done();
        parseRawHeaders(rawTrailers, trailers);
        body?.push(null);
      },
      onError(err) {
        done();
        if (!settled) {
          settled = true;
          reject(err);
        } else if (body && !body.destroyed) {
          complete = true;
          body.destroy(err);
        }
      },
    };
    try {
      // servername is read by undici's Request (Http1Pool ignores it: its connector decides).
      const dispatchOptions: Http1DispatchOptions & { servername: string } = {
        method: opts.method,
        path: opts.path,
        headers: opts.headers,
        body: opts.body,
        reset: opts.reset,
        servername: FIXED_SERVERNAME,
      };
      dispatcher.dispatch(dispatchOptions, handler);
    } catch (e) {
      done();
      reject(e);
    }
  });
}

/** Reads and drops a response body so its connection can be reused (destroys it past `limit` bytes). */
export function discardBody(body: Readable, limit = 65536): void {
  let seen = 0;
  body.on('error', () => undefined);
  body.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > limit) body.destroy();
  });
}
