/**
 * Serializes an HTTP/1.1 request head for the lean upstream client, with the framing decided
 * here rather than taken from the caller's headers: Content-Length and Transfer-Encoding are
 * always ours (a Buffer body is sent with its length, a stream with the caller's
 * Content-Length or else chunked), so no header combination can desynchronize the upstream.
 */

/** RFC 9110 token: what a header name may contain. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything outside HTAB, SP, VCHAR and obs-text is refused in a value (CR, LF, NUL, ...). */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Request targets never contain whitespace or control characters. */
const INVALID_PATH = /[^\x21-\x7e\x80-\xff]/;

/** A request refused before anything was written (undici's InvalidArgumentError, in spirit). */
export class InvalidRequestError extends Error {
  public readonly code = 'TYPEMESH_INVALID_REQUEST';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

/** Methods whose request carries a body by convention: without one, send Content-Length: 0. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** How the request body is framed on the wire. */
export type BodyFraming = 'none' | 'length' | 'chunked';

/** A serialized head and the framing the body writer must follow. */
export interface RequestHead {
  readonly head: string;
  readonly framing: BodyFraming;
  /** Bytes the body must have when framing is 'length'. */
  readonly contentLength: number;
}

function checkValue(name: string, value: string): void {
  if (INVALID_VALUE.test(value)) throw new InvalidRequestError(`invalid value for header "${name}"`);
}

/**
 * Builds the head. `bodyLength` is the Buffer body's length, -1 for a stream body, undefined
 * for no body. `defaultHost` is used when the headers have none; `close` asks the upstream to
 * close the connection after this request.
 */
export function buildRequestHead(method: string, path: string, headers: Readonly<Record<string, string | string[] | undefined>> | undefined,
  bodyLength: number | undefined, defaultHost: string, close: boolean): RequestHead {
  if (!TOKEN.test(method)) throw new InvalidRequestError(`invalid method "${method}"`);
  if (path.length === 0 || INVALID_PATH.test(path)) throw new InvalidRequestError('invalid request path');
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let hasHost = false;
  let declaredLength: string | undefined;
  if (headers) {
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      // Only names as long as content-length (14), transfer-encoding (17), connection (10) or
      // host (4) can be one of them: the others skip a toLowerCase per header per request.
      const lower = name.length === 14 || name.length === 17 || name.length === 10 || name.length === 4 ? name.toLowerCase() : name;
      if (lower === 'content-length') {
        declaredLength = Array.isArray(value) ? value[0] : value;
        continue;
      }
      // Framing and connection management belong to this hop.
      if (lower === 'transfer-encoding' || lower === 'connection') continue;
      if (!TOKEN.test(name)) throw new InvalidRequestError(`invalid header name "${name}"`);
      if (lower === 'host') hasHost = true;
      if (typeof value === 'string') {
        checkValue(name, value);
        head += `${name}: ${value}\r\n`;
      } else {
        for (const v of value) {
          checkValue(name, v);
          head += `${name}: ${v}\r\n`;
        }
      }
    }
  }
  if (!hasHost) head += `host: ${defaultHost}\r\n`;
  if (close) head += 'connection: close\r\n';
  let framing: BodyFraming = 'none';
  let contentLength = 0;
  if (bodyLength === undefined || (bodyLength === 0 && !BODY_METHODS.has(method))) {
    if (BODY_METHODS.has(method)) head += 'content-length: 0\r\n';
  } else if (bodyLength >= 0) {
    framing = 'length';
    contentLength = bodyLength;
    head += `content-length: ${bodyLength}\r\n`;
  } else if (declaredLength !== undefined && /^\d{1,15}$/.test(declaredLength)) {
    framing = 'length';
    contentLength = Number(declaredLength);
    head += `content-length: ${declaredLength}\r\n`;
  } else {
    framing = 'chunked';
    head += 'transfer-encoding: chunked\r\n';
  }
  return { head: head + '\r\n', framing, contentLength };
}
