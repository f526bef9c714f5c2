/**
 * One keep-alive HTTP/1.1 connection of the lean upstream client: a socket (TLS or plain), a
 * native llhttp response parser, and at most one exchange at a time (no pipelining, like the
 * undici pools it replaces). The request head and a Buffer body leave in one corked write;
 * a stream body follows with backpressure, as is (Content-Length) or chunked. The response is
 * handed to the exchange's handler as undici would: raw header pairs, body chunks (the socket
 * is paused while the handler says it is full), trailers.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { Exchange, ExchangeRunner } from './exchange';
import { NativeHttpParser, NativeHttpParserClass } from './llhttp';

/** What a connection reports to its pool. */
export interface ConnectionOwner {
  /** The exchange ended and the connection may serve another. */
  connectionIdle(conn: Http1Connection): void;
  /** The connection is gone (closed, failed or destroyed); called once. */
  connectionClosed(conn: Http1Connection): void;
  /** Requests per connection before it is closed (0: unlimited). */
  readonly maxRequestsPerConnection: number;
}

/** The upstream's socket closed or broke before the response was complete. */
export class UpstreamSocketError extends Error {
  constructor(message: string, public readonly code: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'UpstreamSocketError';
  }
}

const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/i;

function closeParser(parser: NativeHttpParser): void {
  parser.close();
}

export class Http1Connection implements ExchangeRunner {
  /** The exchange on the wire, if any. */
  public current?: Exchange;
  /** Requests sent on this connection. */
  public requests = 0;
  /** Epoch ms when it last became idle (set by the pool). */
  public idleSince = 0;
  /** The upstream's Keep-Alive timeout hint in ms (-1: none). */
  public keepAliveHintMs = -1;
  private dead = false;
  private readonly parser: NativeHttpParser;
  /** Header pairs the parser flushed early (more than 32 headers) or trailers. */
  private pendingHeaders: string[] = [];
  /** The message being parsed is a 1xx informational response. */
  private informational = false;
  /** The current exchange's final response has been parsed to its end. */
  private responseComplete = false;
  /** Handing the connection back waits until the parser has returned from the data at hand. */
  private releasePending = false;
  /** The upstream started a response nobody asked for (bytes past the end of the last one). */
  private desync = false;
  private readonly resume = (): void => {
    if (!this.dead) this.socket.resume();
  };


  constructor(public readonly socket: Socket, private readonly owner: ConnectionOwner, Parser: NativeHttpParserClass) {
    const parser = new Parser();
    // Strict mode (no lenient flags) and the process's max header size, as node:http.
    parser.initialize(Parser.RESPONSE, {}, 0, 0);
    parser[Parser.kOnMessageBegin] = (): void => {
      if (!this.current || this.responseComplete) this.desync = true;
    };
    parser[Parser.kOnHeaders] = (headers: string[]): void => {
      for (let i = 0; i < headers.length; i++) this.pendingHeaders.push(headers[i]);
    };
    parser[Parser.kOnHeadersComplete] = (_major: number, _minor: number, headers: string[] | undefined, _method: unknown, _url: unknown,
      status: number, statusText: string, _upgrade: boolean, keepAlive: boolean): number => this.onHeadersComplete(headers, status, statusText, keepAlive);
    parser[Parser.kOnBody] = (chunk: Buffer): void => {
      const ex = this.current;
      if (ex && ex.state === 'active' && ex.handler.onData?.(chunk) === false) this.socket.pause();
    };
    parser[Parser.kOnMessageComplete] = (): void => this.onMessageComplete();
    this.parser = parser;
    socket.on('data', (data: Buffer) => {
      if (!this.current) {
        this.fail(new UpstreamSocketError('upstream sent data on an idle connection', 'UPSTREAM_PROTOCOL_ERROR'));
        return;
      }
      const r = parser.execute(data);
      if (typeof r !== 'number') this.fail(new UpstreamSocketError(`upstream sent an invalid response: ${(r as Error & { code?: string }).code ?? r.message}`, 'UPSTREAM_PROTOCOL_ERROR', r));
      else if (this.desync) this.fail(new UpstreamSocketError('upstream sent bytes past the end of its response', 'UPSTREAM_PROTOCOL_ERROR'));
      else if (this.releasePending) {
        // Only now, with every byte of this read accounted for, may another request use the socket.
        this.releasePending = false;
        const ex = this.current;
        if (ex) this.finish(ex);
      }
    });
    socket.on('end', () => {
      // EOF completes a read-until-close body; anything else cut short is an error.
      if (this.current?.headersSeen) {
        const r = parser.finish();
        if (r instanceof Error) {
          this.fail(new UpstreamSocketError('upstream closed the connection mid-response', 'UPSTREAM_RESET', r));
          return;
        }
      }
      this.fail(new UpstreamSocketError('upstream closed the connection', 'UPSTREAM_RESET'));
    });
    socket.on('error', (err: Error) => this.fail(new UpstreamSocketError(`upstream connection error: ${err.message}`, (err as { code?: string }).code ?? 'UPSTREAM_RESET', err)));
    socket.on('close', () => this.fail(new UpstreamSocketError('upstream connection closed', 'UPSTREAM_RESET')));
  }

  /** False once the socket failed or was closed. */
  public get alive(): boolean {
    return !this.dead;
  }

  /** Sends an exchange's request; the connection must be idle. */
  public run(ex: Exchange): void {
    this.current = ex;
    this.responseComplete = false;
    ex.state = 'active';
    ex.runner = this;
    this.requests++;
    const socket = this.socket;
    const body = ex.body;
    if (body === null || Buffer.isBuffer(body)) {
      socket.cork();
      socket.write(ex.head.head, 'latin1');
      if (body !== null && body.length > 0) socket.write(body);
      socket.uncork();
      ex.requestDone = true;
      return;
    }
    socket.write(ex.head.head, 'latin1');
    this.streamBody(ex, body);
  }

  /** Writes a stream body with backpressure, framed as the head says. */
  private streamBody(ex: Exchange, body: Readable): void {
    const socket = this.socket;
    const chunked = ex.head.framing === 'chunked';
    const expected = ex.head.contentLength;
    let written = 0;
    const onDrain = (): void => {
      body.resume();
    };
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (buf.length === 0) return;
      written += buf.length;
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${buf.length.toString(16)}\r\n`, 'latin1');
        socket.write(buf);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else {
        if (written > expected) {
          this.abortExchange(ex, new UpstreamSocketError(`request body is longer than its content-length (${expected})`, 'REQUEST_CONTENT_LENGTH_MISMATCH'));
          return;
        }
        ok = socket.write(buf);
      }
      if (!ok) {
        body.pause();
        socket.once('drain', onDrain);
      }
    };
    const onEnd = (): void => {
      detach();
      if (chunked) socket.write('0\r\n\r\n', 'latin1');
      else if (written !== expected) {
        this.abortExchange(ex, new UpstreamSocketError(`request body ended after ${written} of ${expected} bytes`, 'REQUEST_CONTENT_LENGTH_MISMATCH'));
        return;
      }
      ex.requestDone = true;
    };
    const onError = (err: Error): void => {
      this.abortExchange(ex, err);
    };
    const onClose = (): void => {
      // A body stream that closes without 'end' (the client went away) can never complete.
      if (!ex.requestDone) this.abortExchange(ex, new UpstreamSocketError('request body stream closed before its end', 'REQUEST_ABORTED'));
    };
    const detach = (): void => {
      ex.detachBody = undefined;
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
      body.removeListener('close', onClose);
      socket.removeListener('drain', onDrain);
    };
    ex.detachBody = detach;
    if (body.readableEnded) {
      onEnd();
      return;
    }
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
    if (body.isPaused()) body.resume();
  }

  private onHeadersComplete(headers: string[] | undefined, status: number, statusText: string, keepAlive: boolean): number {
    const ex = this.current;
    let raw = headers ?? [];
    if (this.pendingHeaders.length) {
      raw = this.pendingHeaders.concat(raw);
      this.pendingHeaders = [];
    }
    if (!ex || ex.state !== 'active' || ex.headersSeen) return 0;
    if (status < 200) {
      if (status === 101) {
        this.fail(new UpstreamSocketError('upstream switched protocols without being asked to', 'UPSTREAM_PROTOCOL_ERROR'));
        return 0;
      }
      // 1xx informational (100 Continue, 103 Early Hints): not forwarded; the final response follows.
      this.informational = true;
      return 0;
    }
    ex.headersSeen = true;
    ex.keepAlive = keepAlive;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      if (name.length === 10 && name.toLowerCase() === 'keep-alive') {
        const m = KEEP_ALIVE_TIMEOUT.exec(raw[i + 1]);
        if (m) this.keepAliveHintMs = Number(m[1]) * 1000;
      }
    }
    if (ex.handler.onHeaders?.(status, raw, this.resume, statusText) === false) this.socket.pause();
    // 1 tells llhttp that this response has no body (a HEAD's Content-Length describes the GET).
    return ex.isHead ? 1 : 0;
  }

  private onMessageComplete(): void {
    if (this.informational) {
      this.informational = false;
      this.pendingHeaders = [];
      return;
    }
    const ex = this.current;
    if (!ex) return;
    const trailers = this.pendingHeaders.length ? this.pendingHeaders : null;
    this.pendingHeaders = [];
    this.responseComplete = true;
    if (ex.state === 'active' && ex.headersSeen) ex.complete(trailers);
    // An early response (the request body still streaming) leaves the connection out of step
    // with the upstream: it is closed rather than reused.
    if (ex.requestDone) this.releasePending = true;
    else this.destroy();
  }

  /** The exchange is over on both sides: hand the connection back, or close it. */
  private finish(ex: Exchange): void {
    if (this.current !== ex) return;
    this.current = undefined;
    const max = this.owner.maxRequestsPerConnection;
    if (this.dead || !ex.keepAlive || ex.closeAfter || (max !== 0 && this.requests >= max)) {
      this.destroy();
      return;
    }
    // The last body chunk may have filled the consumer's buffer (the socket was paused for it) in
    // the same read that completed the response: the body is all parsed, so the pause no longer
    // serves anything, and a paused socket would never read the next response on this connection.
    if (this.socket.isPaused()) this.socket.resume();
    this.owner.connectionIdle(this);
  }

  /** Cuts the running exchange short: its connection cannot be reused. */
  public abortExchange(ex: Exchange, err: Error): void {
    if (this.current !== ex) return;
    this.fail(err);
  }

  /** Closes the connection; an exchange on it ends with err. */
  public fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    this.socket.destroy();
    // Let the parser's stack unwind (fail can run inside execute) before freeing it.
    setImmediate(closeParser, this.parser);
    const ex = this.current;
    this.current = undefined;
    this.owner.connectionClosed(this);
    ex?.fail(err);
  }

  /** Closes an idle connection. */
  public destroy(): void {
    this.fail(new UpstreamSocketError('connection closed by the pool', 'UPSTREAM_POOL_CLOSED'));
  }
}
