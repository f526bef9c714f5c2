/**
 * Loopback servers for the Http1Pool tests: a raw TCP server that records every request
 * byte for byte (node:http's server reads sockets through llhttp directly, so its bytes cannot
 * be observed) and answers with whatever raw bytes a test writes, plus a node:http server that
 * counts TCP connections. Everything started here is closed by {@link closeAllServers}.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';

/** One request as it arrived on the wire. */
export interface CapturedRequest {
  /** 1-based number of the TCP connection it arrived on (in accept order). */
  readonly connection: number;
  /** The request line. */
  readonly requestLine: string;
  readonly method: string;
  readonly path: string;
  /** The header lines exactly as sent ("Name: value"), in order. */
  readonly headerLines: readonly string[];
  /** Every byte of the request: head, CRLFCRLF and the framed (possibly chunked) body. */
  readonly raw: Buffer;
  /** The body bytes as framed on the wire (chunk sizes included when chunked). */
  readonly framedBody: Buffer;
  /** The body after de-chunking. */
  readonly body: Buffer;
}

/** Values of a header (name matched case-insensitively), in order of their lines. */
export function headerValues(req: CapturedRequest, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (const line of req.headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).toLowerCase() === lower) out.push(line.slice(colon + 1).trim());
  }
  return out;
}

/** One accepted TCP connection of a {@link RawHttpServer}. */
export interface RawConnection {
  readonly id: number;
  readonly socket: net.Socket;
  /** Bytes received on this connection so far. */
  received: number;
  /** Set (Date.now()) when the client ended or reset the connection. */
  clientClosedAt?: number;
}

/** Answers one captured request by writing raw bytes to (or destroying) the socket. */
export type RawResponder = (req: CapturedRequest, socket: net.Socket, conn: RawConnection) => void;

const servers: Array<() => Promise<void>> = [];

/** Parses one complete request from the front of buf; undefined while it is still incomplete. */
function parseRequest(buf: Buffer): { head: string; framedBody: Buffer; body: Buffer; consumed: number } | undefined {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = buf.subarray(0, headEnd).toString('latin1');
  const lines = head.split('\r\n');
  const values = (name: string): string[] => lines.slice(1)
    .filter((l) => l.slice(0, l.indexOf(':')).toLowerCase() === name)
    .map((l) => l.slice(l.indexOf(':') + 1).trim());
  const bodyStart = headEnd + 4;
  const te = values('transfer-encoding');
  if (te.length && te[te.length - 1].toLowerCase().endsWith('chunked')) {
    let pos = bodyStart;
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) return undefined;
      const size = parseInt(buf.subarray(pos, lineEnd).toString('latin1').split(';')[0], 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(buf.subarray(pos, lineEnd).toString('latin1'))}`);
      pos = lineEnd + 2;
      if (size === 0) {
        // Trailer section: lines until an empty one.
        for (;;) {
          const tEnd = buf.indexOf('\r\n', pos);
          if (tEnd < 0) return undefined;
          const empty = tEnd === pos;
          pos = tEnd + 2;
          if (empty) {
            return { head, framedBody: Buffer.from(buf.subarray(bodyStart, pos)), body: Buffer.concat(parts), consumed: pos };
          }
        }
      }
      if (buf.length < pos + size + 2) return undefined;
      parts.push(buf.subarray(pos, pos + size));
      if (buf.subarray(pos + size, pos + size + 2).toString('latin1') !== '\r\n') throw new Error('chunk data not followed by CRLF');
      pos += size + 2;
    }
  }
  const cl = values('content-length');
  const length = cl.length ? Number(cl[0]) : 0;
  if (buf.length < bodyStart + length) return undefined;
  const body = Buffer.from(buf.subarray(bodyStart, bodyStart + length));
  return { head, framedBody: body, body, consumed: bodyStart + length };
}

/** A raw HTTP/1.1 server on 127.0.0.1 that records requests and lets each test write the response bytes. */
export class RawHttpServer {
  /** Starts one; `respond` is called once per complete request, in arrival order per connection. */
  public static async start(respond: RawResponder): Promise<RawHttpServer> {
    const s = new RawHttpServer(respond);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    servers.push(() => s.close());
    return s;
  }

  public readonly requests: CapturedRequest[] = [];
  public readonly connections: RawConnection[] = [];
  private readonly server: net.Server;
  private waiters: Array<() => void> = [];

  private constructor(private readonly respond: RawResponder) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  public get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Total request bytes received on all connections. */
  public get bytesReceived(): number {
    return this.connections.reduce((n, c) => n + c.received, 0);
  }

  /** Resolves once `count` requests arrived (rejects after `ms`). */
  public waitForRequests(count: number, ms = 3000): Promise<void> {
    return this.waitFor(() => this.requests.length >= count, ms, `${count} request(s) at the server (got ${this.requests.length})`);
  }

  /** Resolves once the client closed connection `id` (rejects after `ms`). */
  public waitForClientClose(id: number, ms = 3000): Promise<number> {
    return this.waitFor(() => this.connections[id - 1]?.clientClosedAt !== undefined, ms, `client to close connection ${id}`)
      .then(() => this.connections[id - 1].clientClosedAt!);
  }

  public close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const conn: RawConnection = { id: this.connections.length + 1, socket, received: 0 };
    this.connections.push(conn);
    let pending = Buffer.alloc(0);
    const closed = (): void => {
      if (conn.clientClosedAt === undefined) conn.clientClosedAt = Date.now();
      this.notify();
    };
    socket.on('end', closed);
    socket.on('close', closed);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      conn.received += chunk.length;
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const parsed = parseRequest(pending);
        if (!parsed) break;
        const raw = Buffer.from(pending.subarray(0, parsed.consumed));
        pending = pending.subarray(parsed.consumed);
        const [requestLine, ...headerLines] = parsed.head.split('\r\n');
        const [method, path] = requestLine.split(' ');
        const req: CapturedRequest = { connection: conn.id, requestLine, method, path, headerLines, raw, framedBody: parsed.framedBody, body: parsed.body };
        this.requests.push(req);
        this.respond(req, socket, conn);
      }
      this.notify();
    });
    this.notify();
  }
}

/** A node:http or node:https server that counts the TCP connections it accepted. */
export interface CountingServer<S extends net.Server = net.Server> {
  readonly server: S;
  readonly port: number;
  /** TCP connections accepted so far. */
  connections: number;
}

/** Starts a node:http server on 127.0.0.1 with `handler`, counting connections; `configure` runs before listen. */
export async function startHttpServer(handler: http.RequestListener, configure?: (s: http.Server) => void): Promise<CountingServer<http.Server>> {
  const server = http.createServer(handler);
  configure?.(server);
  return listenCounting(server, () => server.closeAllConnections());
}

/** Starts a node:https server on 127.0.0.1 with `handler`, counting TCP connections. */
export async function startHttpsServer(tlsOpts: https.ServerOptions, handler: http.RequestListener): Promise<CountingServer<https.Server>> {
  const server = https.createServer(tlsOpts, handler);
  return listenCounting(server, () => server.closeAllConnections());
}

async function listenCounting<S extends net.Server>(server: S, closeAllConnections: () => void): Promise<CountingServer<S>> {
  const info = { server, port: 0, connections: 0 };
  server.on('connection', () => {
    info.connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  info.port = (server.address() as net.AddressInfo).port;
  servers.push(() => new Promise<void>((resolve) => {
    closeAllConnections();
    server.close(() => resolve());
  }));
  return info;
}

/** A plain net server on 127.0.0.1 for protocol corner cases the request-at-a-time {@link RawHttpServer} cannot express. */
export async function startNetServer(onConnection: (socket: net.Socket) => void): Promise<{ server: net.Server; port: number; sockets: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return { server, port: (server.address() as net.AddressInfo).port, sockets };
}

/** Closes every server started by this module (call in afterEach). */
export async function closeAllServers(): Promise<void> {
  const all = servers.splice(0);
  await Promise.all(all.map((fn) => fn().catch(() => undefined)));
}
