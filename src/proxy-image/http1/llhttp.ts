/**
 * Node's native llhttp binding: the HTTP/1.1 parser node:http itself runs on.
 *
 * Why we reach for it: the sidecar's upstream HTTP/1.1 client is the hottest code it has. With
 * undici (llhttp compiled to wasm, plus its generic request machinery) a sidecar used 15-20 %
 * more CPU per request and 25-65 MB more peak RSS than with this binding and the small pool
 * in this folder, in the bench's A/B runs (docs/performance.md); no maintained client library
 * is leaner than the parser itself. The parser is the same llhttp, in strict mode, so framing and
 * smuggling rules (Content-Length vs Transfer-Encoding, chunk syntax, header size) are
 * exactly node:http's; what we write ourselves is only the connection and request plumbing
 * (./connection.ts, ./pool.ts).
 *
 * `_http_common` is a legacy module Node still exports (node:http's client and server use
 * it). If a future Node drops it, or TYPEMESH_HTTP1_CLIENT=undici is set (for A/B runs), the
 * sidecar falls back to undici's Pool: `nativeHttpParser` is then undefined.
 */

/** One llhttp parser instance, as the binding exposes it. */
export interface NativeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or an Error with `code` (HPE_*) and `bytesParsed`. */
  execute(data: Buffer): number | Error;
  /** Signals EOF: completes a read-until-close message, or returns an Error. */
  finish(): number | Error | undefined;
  close(): void;
  free(): void;
  remove(): void;
  [callback: number]: unknown;
}

/** The binding's constructor and constants. */
export interface NativeHttpParserClass {
  new (): NativeHttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
}

function load(): NativeHttpParserClass | undefined {
  if (process.env.TYPEMESH_HTTP1_CLIENT === 'undici') return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('_http_common') as { HTTPParser?: NativeHttpParserClass };
    const P = mod.HTTPParser;
    if (typeof P !== 'function' || typeof P.kOnMessageBegin !== 'number' || typeof P.kOnHeadersComplete !== 'number' || typeof P.prototype.execute !== 'function') return undefined;
    return P;
  } catch {
    return undefined;
  }
}

/** The binding, or undefined when the sidecar must use undici for HTTP/1.1 upstreams. */
export const nativeHttpParser: NativeHttpParserClass | undefined = load();
