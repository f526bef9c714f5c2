/**
 * Small HTTP helpers shared by the listeners: hop-by-hop header filtering, error responses
 * with explicit bodies, and bounded body buffering for replayable requests.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { PassThrough, Readable } from 'node:stream';

/** Headers that describe one connection and are never forwarded (RFC 9110 section 7.6.1). */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect',
  // Node's http2 compat layer exposes pseudo-headers in req.headers; they are not HTTP/1.1 headers.
  ':method', ':path', ':authority', ':scheme', ':status', ':protocol',
]);

/**
 * Copies headers without hop-by-hop ones (including those the Connection header names), without
 * `skip` when given, and, with `dropUnderscores`, without names containing `_`.
 */
export function forwardableHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, skip?: string, dropUnderscores = false): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const conn = headers.connection;
  const named = typeof conn === 'string' && conn !== 'keep-alive' && conn !== 'close' ? new Set(conn.toLowerCase().split(',').map((s) => s.trim())) : undefined;
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || name === skip || (named && named.has(name))) continue;
    if (dropUnderscores && name.includes('_')) continue;
    if (HOP_BY_HOP.has(name)) {
      // "te: trailers" is end-to-end in practice: gRPC servers require it.
      if (name === 'te' && v === 'trailers') out.te = v;
      continue;
    }
    out[name] = v;
  }
  return out;
}

/**
 * Mesh-internal: the sidecar's telemetry states the calling workload in it, and a peer sidecar
 * trusts it only over mTLS. Never accepted from an app, never delivered to one.
 */
export const SOURCE_HEADER = 'x-typemesh-source';

/**
 * Mesh-internal: the hop marker of passthrough requests (see outbound.ts). Stripped before an
 * app sees a request, so an app that copies headers onward cannot carry it into a false loop.
 */
export const LOOP_HEADER = 'x-typemesh-loop';

/**
 * Copies request headers for forwarding (as {@link forwardableHeaders}) without the
 * mesh-internal x-typemesh-source, without header names containing `_` (Envoy's
 * `headers_with_underscores_action: DROP_HEADER`, nginx's default: CGI/WSGI apps read `x_debug`
 * and `x-debug` both as `HTTP_X_DEBUG`, so an underscore name would slip past a rule on the
 * dashed one), and, when `replacesB3` is true (the observer sets its own
 * b3 context), without x-b3-parentspanid and x-b3-flags: the observer does not set those, so
 * the app's would describe a different span than the x-b3-spanid sent with them.
 */
export function forwardableRequestHeaders(headers: IncomingHttpHeaders, replacesB3: boolean): Record<string, string | string[]> {
  const out = forwardableHeaders(headers, SOURCE_HEADER, true);
  if (replacesB3) {
    // Rare in practice (an app seldom sends them): delete only when present.
    if (out['x-b3-parentspanid'] !== undefined) delete out['x-b3-parentspanid'];
    if (out['x-b3-flags'] !== undefined) delete out['x-b3-flags'];
  }
  return out;
}

/** True when telemetry's propagation headers carry a b3 context (single or multi header). */
export function setsB3(propagationHeaders: Readonly<Record<string, string>>): boolean {
  return propagationHeaders.b3 !== undefined || propagationHeaders['x-b3-traceid'] !== undefined;
}

/**
 * Most header fields an HTTP/1.1 request may carry (Envoy's max_headers_count default). Node
 * keeps only the first maxHeadersCount fields and drops the rest silently, so the listeners set
 * it one above this and refuse a request that reaches it: a request is served whole or refused
 * (431), never truncated (a dropped header could be one a rule or the app depends on).
 */
export const MAX_HEADER_COUNT = 100;

/**
 * The inbound listener's limit: room for the fields a peer sidecar adds to a request its app
 * sent within MAX_HEADER_COUNT (request id, trace context, x-typemesh-source), so that a
 * request the outbound listener accepted is not refused at the other end for them.
 */
export const INBOUND_MAX_HEADER_COUNT = MAX_HEADER_COUNT + 20;

/** Why a request is refused for its number of header fields, or undefined. */
export function headerCountRefusal(req: IncomingMessage, limit = MAX_HEADER_COUNT): string | undefined {
  if (req.httpVersionMajor === 2 || req.rawHeaders.length <= 2 * limit) return undefined;
  return `request header fields too large: more than ${limit} header fields`;
}

/** An upper-case method token (RFC 9110 methods are case-sensitive; all registered ones are upper case). */
const METHOD_TOKEN = /^[A-Z][A-Z-]*$/;

/**
 * Why a request's method is refused, or undefined. HTTP/1.1 methods are vetted by Node's parser
 * (known upper-case methods only); HTTP/2 carries `:method` as a free-form pseudo-header, so a
 * `delete` would escape a rule on DELETE and reach the app verbatim. Refused, not normalized: the
 * app might treat `delete` differently from DELETE.
 */
export function methodRefusal(req: IncomingMessage): string | undefined {
  if (req.httpVersionMajor !== 2) return undefined;
  const m = req.method ?? '';
  return METHOD_TOKEN.test(m) ? undefined : `bad request: invalid method "${m.slice(0, 32)}" (methods are upper-case tokens)`;
}

/** Sends a small plain-text error response, unless the response has started already. */
export function sendError(res: ServerResponse, status: number, body: string, extraHeaders?: OutgoingHttpHeaders): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const buf = Buffer.from(body.endsWith('\n') ? body : body + '\n');
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': buf.length, ...extraHeaders });
  res.end(buf);
}

/** True when the request has no body (no Content-Length > 0 and no Transfer-Encoding). */
export function hasNoBody(req: IncomingMessage): boolean {
  if (req.httpVersionMajor === 2) {
    // HTTP/2: END_STREAM on the HEADERS frame is the only reliable "no body".
    return (req as unknown as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === true;
  }
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return false;
  const cl = req.headers['content-length'];
  return cl === undefined || cl === '0';
}

/** The outcome of reading a body up to a limit. */
export type BufferedBody =
  | { readonly complete: true; readonly body: Buffer }
  /** The body exceeded the limit: `stream` replays what was read, then the rest. */
  | { readonly complete: false; readonly stream: Readable; readonly bytesRead: number };

/**
 * Reads a request body into memory if it fits in `limit` bytes (so that a retry can replay
 * it). A body that turns out larger is returned as a stream of the bytes read so far followed
 * by the remainder, and is sent without retries. A declared Content-Length above the limit
 * skips buffering entirely.
 */
export function bufferBody(req: IncomingMessage, limit: number, maxWaitMs = 0): Promise<BufferedBody> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.resolve({ complete: false, stream: req, bytesRead: 0 });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let out: PassThrough | undefined;
    // Past the limit (or the wait) the body switches to a pass-through stream fed by the same
    // 'data' listener: switching a request between flowing and paused/iterated modes loses
    // data with Node's HTTP/2 compat requests, so the mode never changes.
    const giveUp = (): void => {
      if (timer) clearTimeout(timer);
      out = new PassThrough();
      for (const c of chunks) out.write(c);
      chunks.length = 0;
      out.on('drain', () => req.resume());
      resolve({ complete: false, stream: out, bytesRead: size });
    };
    // A streaming request (gRPC client or bidi streaming) may wait for the response before it
    // ends its body: waiting for the end would deadlock, so after maxWaitMs it is streamed.
    const timer = maxWaitMs > 0 ? setTimeout(giveUp, maxWaitMs) : undefined;
    req.on('data', (chunk: Buffer) => {
      if (out) {
        if (!out.write(chunk)) req.pause();
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) giveUp();
    });
    req.once('end', () => {
      if (out) {
        out.end();
        return;
      }
      if (timer) clearTimeout(timer);
      resolve({ complete: true, body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size) });
    });
    const fail = (e: Error): void => {
      if (timer) clearTimeout(timer);
      if (out) out.destroy(e);
      else reject(e);
    };
    req.once('error', fail);
    req.once('close', () => {
      if (!req.readableEnded) fail(new Error('client closed the request before its body ended'));
    });
  });
}

/** Splits a request target into path and query-less path. */
export function pathWithoutQuery(path: string): string {
  const q = path.indexOf('?');
  return q >= 0 ? path.slice(0, q) : path;
}

/** Copies upstream trailers to an HTTP/2 response (gRPC status travels in trailers); HTTP/1.1 responses drop them. */
export function forwardTrailers(res: ServerResponse, trailers: Record<string, string | string[] | undefined> | undefined): void {
  if (!trailers || (res.req as IncomingMessage | undefined)?.httpVersionMajor !== 2) return;
  const out: Record<string, string | string[]> = {};
  let any = false;
  for (const k in trailers) {
    const v = trailers[k];
    if (v === undefined) continue;
    out[k] = v;
    any = true;
  }
  if (any) res.addTrailers(out);
}

/**
 * Streams an upstream response body to the client with backpressure (a full client socket
 * pauses the upstream), then forwards the trailers the body ended with. `onEnd` is called
 * exactly once with the status to record, the body bytes sent and the response flags: []
 * when the body ended; ['UPE'] when the upstream broke mid-body, and the client's connection
 * is cut, the only honest signal once the status has been sent; status 0 and ['DC'] when
 * the client went away first. Shared by the inbound and outbound listeners.
 */
export function streamBodyToClient(
  res: ServerResponse,
  response: { readonly statusCode: number; readonly body: Readable; readonly trailers: Record<string, string | string[]> },
  onEnd: (status: number, responseBytes: number, flags: string[]) => void,
): void {
  let responseBytes = 0;
  let done = false;
  const finish = (status: number, flags: string[]): void => {
    if (done) return;
    done = true;
    onEnd(status, responseBytes, flags);
  };
  const body = response.body;
  body.on('data', (chunk: Buffer) => {
    responseBytes += chunk.length;
    if (!res.write(chunk)) {
      body.pause();
      res.once('drain', () => body.resume());
    }
  });
  body.once('end', () => {
    forwardTrailers(res, response.trailers);
    res.end();
    finish(response.statusCode, []);
  });
  body.on('error', () => {
    res.destroy();
    finish(response.statusCode, ['UPE']);
  });
  res.once('close', () => {
    if (!res.writableEnded) {
      body.destroy();
      finish(0, ['DC']);
    }
  });
}
