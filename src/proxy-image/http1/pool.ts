/**
 * The lean HTTP/1.1 upstream client: a keep-alive connection pool for one endpoint, with the
 * part of undici's Dispatcher interface the sidecar uses (`dispatch` with a legacy handler,
 * `close`, `destroy`), so {@link upstreamRequest} drives either. Why it exists instead of
 * undici's Pool for HTTP/1.1: see ./llhttp.ts (measured cost). HTTP/2 upstreams stay on undici.
 *
 * Behaviour kept from the undici pools it replaces: one request per connection at a time, at
 * most `connections` sockets (more requests wait in order), idle sockets reused most recently
 * used first and closed after `idleTimeoutMs` or the server's Keep-Alive hint (minus a second,
 * so we never send on a socket the server is closing), `maxRequestsPerConnection`, and
 * `reset` (Connection: close). No timers per request: idle sockets are swept once a second.
 */
import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import { ConnectionOwner, Http1Connection, UpstreamSocketError } from './connection';
import { Exchange, Http1Handler } from './exchange';
import { nativeHttpParser, NativeHttpParserClass } from './llhttp';
import { buildRequestHead } from './request-head';

/** Opens a socket to the endpoint; undici's connector signature, so the same connectors serve both. */
export type Connector = (
  opts: { hostname: string; host: string; port: string; protocol: string; servername?: string },
  callback: (err: Error | null, socket: Socket | null) => void,
) => void;

/** How a pool behaves. */
export interface Http1PoolOptions {
  /** The endpoint's address. */
  readonly hostname: string;
  /** The endpoint's port. */
  readonly port: number;
  /** Opens sockets (TLS or plain); a failure should be a ConnectFailure. */
  readonly connect: Connector;
  /**
   * Maximum sockets; further requests wait for one.
   * @default unlimited
   */
  readonly connections?: number;
  /**
   * Close a socket after this many requests.
   * @default 0 (unlimited)
   */
  readonly maxRequestsPerConnection?: number;
  /**
   * Close sockets idle this long; a server's `Keep-Alive: timeout=N` lowers it to N s - 1 s.
   * @default 30000
   */
  readonly idleTimeoutMs?: number;
}

/** What one request needs (undici's DispatchOptions subset). */
export interface Http1DispatchOptions {
  readonly method: string;
  readonly path: string;
  readonly headers?: Readonly<Record<string, string | string[] | undefined>> | null;
  readonly body?: Buffer | Readable | string | null;
  /** Close the connection after this request. */
  readonly reset?: boolean | null;
}

/** The idle sweep runs this often. */
const SWEEP_INTERVAL_MS = 1000;
/** Margin kept below a server's Keep-Alive timeout hint. */
const KEEP_ALIVE_HINT_MARGIN_MS = 1000;

export class Http1Pool implements ConnectionOwner {
  public readonly maxRequestsPerConnection: number;
  private readonly idle: Http1Connection[] = [];
  /** Connections running an exchange. */
  private readonly running = new Set<Http1Connection>();
  private readonly queue: Exchange[] = [];
  private readonly maxConnections: number;
  private readonly idleTimeoutMs: number;
  private readonly defaultHost: string;
  private readonly Parser: NativeHttpParserClass;
  private readonly dequeue = (ex: Exchange): void => {
    const i = this.queue.indexOf(ex);
    if (i >= 0) this.queue.splice(i, 1);
  };
  /** Sockets open or being opened. */
  private open = 0;
  private connecting = 0;
  private closed = false;
  private sweepTimer?: NodeJS.Timeout;
  private whenDrained?: () => void;

  constructor(private readonly opts: Http1PoolOptions) {
    if (!nativeHttpParser) throw new Error('Http1Pool needs Node\'s native HTTP parser (use undici\'s Pool instead)');
    this.Parser = nativeHttpParser;
    this.maxConnections = opts.connections ?? Infinity;
    this.maxRequestsPerConnection = opts.maxRequestsPerConnection ?? 0;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30000;
    this.defaultHost = opts.hostname.includes(':') ? `[${opts.hostname}]:${opts.port}` : `${opts.hostname}:${opts.port}`;
  }

  /** Sockets, idle sockets and waiting requests, for tests and diagnostics. */
  public get stats(): { readonly connections: number; readonly idle: number; readonly queued: number } {
    return { connections: this.open, idle: this.idle.length, queued: this.queue.length };
  }

  /**
   * Starts a request. Throws (nothing sent) on an invalid method, path or header; every other
   * failure reaches the handler's onError. Returns true, as undici's dispatch does when not busy.
   */
  public dispatch(opts: Http1DispatchOptions, handler: Http1Handler): boolean {
    if (this.closed) throw new UpstreamSocketError('the upstream pool is closed', 'UPSTREAM_POOL_CLOSED');
    const body = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body ?? null;
    const bodyLength = body === null ? undefined : Buffer.isBuffer(body) ? body.length : -1;
    const close = opts.reset === true;
    const head = buildRequestHead(opts.method, opts.path, opts.headers ?? undefined, bodyLength, this.defaultHost, close);
    const ex = new Exchange(head, body, handler, opts.method === 'HEAD', close);
    ex.onDequeue = this.dequeue;
    handler.onConnect?.(ex.abort);
    if (ex.state !== 'queued') return true; // aborted from onConnect
    const conn = this.takeIdle();
    if (conn) conn.run(ex);
    else {
      this.queue.push(ex);
      this.grow();
    }
    return true;
  }

  /** Stops taking requests; resolves once those in flight are done and every socket is closed. */
  public close(): Promise<void> {
    this.closed = true;
    this.stopSweep();
    for (const c of this.idle.splice(0)) c.destroy();
    if (this.open === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.whenDrained = resolve;
    });
  }

  /** Closes everything now; requests in flight or waiting fail with err. */
  public destroy(err?: Error): Promise<void> {
    this.closed = true;
    this.stopSweep();
    const reason = err ?? new UpstreamSocketError('the upstream pool was destroyed', 'UPSTREAM_POOL_CLOSED');
    for (const ex of this.queue.splice(0)) ex.fail(reason);
    for (const c of this.idle.splice(0)) c.destroy();
    for (const c of [...this.running]) c.fail(reason);
    this.checkDrained();
    return Promise.resolve();
  }

  /** ConnectionOwner: a connection is free again. */
  public connectionIdle(conn: Http1Connection): void {
    this.running.delete(conn);
    const next = this.queue.shift();
    if (next) {
      this.running.add(conn);
      conn.run(next);
      return;
    }
    if (this.closed) {
      conn.destroy();
      return;
    }
    conn.idleSince = Date.now();
    this.idle.push(conn);
    this.startSweep();
  }

  /** ConnectionOwner: a connection is gone. */
  public connectionClosed(conn: Http1Connection): void {
    this.open--;
    this.running.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.grow();
    this.checkDrained();
  }

  /** The most recently used idle connection that is still fresh, if any. */
  private takeIdle(): Http1Connection | undefined {
    let conn: Http1Connection | undefined;
    while ((conn = this.idle.pop())) {
      if (conn.alive && !this.expired(conn, Date.now())) {
        this.running.add(conn);
        return conn;
      }
      conn.destroy();
    }
    return undefined;
  }

  private expired(conn: Http1Connection, now: number): boolean {
    const hint = conn.keepAliveHintMs >= 0 ? conn.keepAliveHintMs - KEEP_ALIVE_HINT_MARGIN_MS : Infinity;
    return now - conn.idleSince >= Math.min(this.idleTimeoutMs, hint);
  }

  /** Opens sockets for waiting requests, within the connection limit (also while closing: they were accepted). */
  private grow(): void {
    while (this.queue.length > this.connecting && this.open < this.maxConnections) this.connect();
  }

  private connect(): void {
    this.open++;
    this.connecting++;
    const { hostname, port } = this.opts;
    this.opts.connect({ hostname, host: this.defaultHost, port: String(port), protocol: 'http:' }, (err, socket) => {
      this.connecting--;
      if (err || !socket) {
        this.open--;
        // One failed connect fails one waiting request; the others get their own attempt.
        const ex = this.queue.shift();
        ex?.fail(err ?? new UpstreamSocketError('upstream connect failed', 'UPSTREAM_CONNECT_FAILED'));
        this.grow();
        this.checkDrained();
        return;
      }
      const conn = new Http1Connection(socket, this, this.Parser);
      if (this.closed && this.queue.length === 0) {
        conn.destroy();
        return;
      }
      this.connectionIdle(conn);
    });
  }

  private startSweep(): void {
    if (this.sweepTimer) return;
    this.sweepTimer = setInterval(() => {
      const now = Date.now();
      for (let i = this.idle.length - 1; i >= 0; i--) {
        const c = this.idle[i];
        if (!c.alive || this.expired(c, now)) c.destroy(); // removes itself from idle
      }
      if (this.idle.length === 0) this.stopSweep();
    }, SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  private stopSweep(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private checkDrained(): void {
    if (this.closed && this.open === 0 && this.queue.length === 0 && this.whenDrained) {
      const resolve = this.whenDrained;
      this.whenDrained = undefined;
      resolve();
    }
  }
}
