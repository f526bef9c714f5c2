/**
 * The sidecar process: loads the config and identity, runs the outbound, inbound and admin
 * listeners, swaps config on file change or SIGHUP (an invalid config is refused and the last
 * good one keeps serving), and drains on SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { DEFAULT_DRAIN_DURATION_MS, inboundListenAddresses, outboundListenAddresses, parseSidecarConfigText, SidecarConfig } from '../config';
import { adminHandler } from './admin';
import { Admission } from './admission';
import { FileWatcher } from './file-watch';
import { GatewayListeners } from './gateway';
import { svidRefusal, WorkloadIdentity } from './identity';
import { InboundProxy } from './inbound';
import { nativeHttpParser } from './http1/llhttp';
import { errorMessage, log } from './log';
import type { ProxyObserver } from './observer';
import { OutboundProxy } from './outbound';
import { unknownHostRefusal } from './external';
import { hostWithoutPort } from './routing';
import { buildState, ProxyState } from './state';
import { appPortPools } from './app-port-pools';
import { TcpInbound } from './tcp-inbound';
import { TcpOutbound } from './tcp-outbound';
import { inboundUpgrade, outboundUpgrade } from './upgrade';
import { headerCountRefusal, INBOUND_MAX_HEADER_COUNT, MAX_HEADER_COUNT, sendError } from './http-util';

/** Largest request head accepted (Envoy's default is 60 KiB); larger heads get 431. */
export const MAX_HEADER_BYTES = 60 * 1024;
/** Keep-alive idle time of downstream connections; above the clients' pool idle times so the client closes first. */
const DOWNSTREAM_KEEPALIVE_MS = 65_000;
/**
 * How long a downstream connection has to deliver a complete request head: its first one from
 * the moment it opens, every later one from its first byte (Envoy's request_headers_timeout).
 * TYPEMESH_REQUEST_HEAD_TIMEOUT_MS overrides the default of 60 s.
 */
const REQUEST_HEAD_TIMEOUT_MS = Number(process.env.TYPEMESH_REQUEST_HEAD_TIMEOUT_MS) > 0 ? Number(process.env.TYPEMESH_REQUEST_HEAD_TIMEOUT_MS) : 60_000;
/** How often Node checks the request head timeout (it fires up to this much late). */
const HEAD_TIMEOUT_CHECK_MS = Math.min(15_000, Math.max(100, Math.floor(REQUEST_HEAD_TIMEOUT_MS / 4)));
/**
 * How long a peer has to send its first byte / finish the TLS handshake
 * (TYPEMESH_HANDSHAKE_TIMEOUT_MS overrides the default of 10 s).
 */
const HANDSHAKE_TIMEOUT_MS = Number(process.env.TYPEMESH_HANDSHAKE_TIMEOUT_MS) > 0 ? Number(process.env.TYPEMESH_HANDSHAKE_TIMEOUT_MS) : 10_000;

/** The raw TCP peer of a PERMISSIVE-mode TLS connection, kept for its stream wrapper. */
interface WrappedPeer {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
}

/**
 * PERMISSIVE TLS connections reach the TLS server through a Duplex wrapper (see acceptInbound),
 * so their TLSSocket has no address of its own. Keyed by the wrapper; entries go with it.
 */
const wrappedPeers = new WeakMap<object, WrappedPeer>();

/**
 * Gives a TLSSocket made over a stream wrapper the raw socket's address as own properties, once
 * per connection, so `req.socket.remoteAddress` (HTTP/1.1 and the HTTP/2 compat proxy alike) reads
 * it with no per-request cost. Node's public API offers no link from the TLSSocket to the stream
 * it wraps; `_handle._parentWrap.stream` (TLSWrap -> JSStreamSocket -> our wrapper) is internal,
 * so every step is checked and a miss only leaves the address undefined, as before.
 */
function adoptWrappedPeer(socket: tls.TLSSocket): void {
  if (socket.remoteAddress !== undefined) return; // a real TCP socket (STRICT): nothing to do
  const parentWrap = (socket as unknown as { _handle?: { _parentWrap?: { stream?: unknown } } })._handle?._parentWrap;
  const wrapper = parentWrap?.stream;
  const peer = typeof wrapper === 'object' && wrapper !== null ? wrappedPeers.get(wrapper) : undefined;
  if (!peer) return;
  Object.defineProperties(socket, {
    remoteAddress: { value: peer.remoteAddress, configurable: true },
    remotePort: { value: peer.remotePort, configurable: true },
    remoteFamily: { value: peer.remoteFamily, configurable: true },
  });
}

/** The response to a request Node's parser refused (or timed out). */
function clientErrorResponse(err: NodeJS.ErrnoException): string {
  let status: string;
  let body: string;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = '431 Request Header Fields Too Large';
    body = `request header fields too large: the request head exceeds ${MAX_HEADER_BYTES} bytes\n`;
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = '408 Request Timeout';
    body = `request timeout: no complete request head within ${REQUEST_HEAD_TIMEOUT_MS} ms\n`;
  } else {
    status = '400 Bad Request';
    body = `bad request: ${err.code === 'HPE_INVALID_TRANSFER_ENCODING' || err.code === 'HPE_UNEXPECTED_CONTENT_LENGTH' ? 'conflicting or invalid Content-Length / Transfer-Encoding' : err.code ?? err.message}\n`;
  }
  return `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** How long a connection refused with an error answer is read (and discarded) before it is closed. */
const ERROR_LINGER_MS = 2000;

/**
 * Sends an error answer and closes the connection. The client may still be sending (the rest of
 * an oversized head): its bytes are read and dropped for a moment, because closing a socket with
 * unread input sends a TCP reset, which makes the client's kernel discard the answer unread.
 */
function endWithError(socket: net.Socket, answer: string): void {
  socket.on('data', () => undefined);
  socket.resume();
  socket.end(answer);
  setTimeout(() => socket.destroy(), ERROR_LINGER_MS).unref();
}

/** Options of {@link Sidecar.start}. */
export interface SidecarOptions {
  /** Path of the config file (watched for changes). */
  readonly configFile: string;
  /** The config, already validated from configFile. */
  readonly config: SidecarConfig;
  /**
   * The text `config` was parsed from. A later file change is compared with it, so an edit
   * made while the sidecar starts is applied instead of being mistaken for the running config.
   * @default the file is read again when the listeners are up
   */
  readonly configText?: string;
  /** The telemetry observer. */
  readonly observer: ProxyObserver;
}

/** A running sidecar. */
export class Sidecar {
  /** Starts the listeners; resolves once all three are listening. */
  public static async start(opts: SidecarOptions): Promise<Sidecar> {
    const identity = await WorkloadIdentity.start(opts.config.tls);
    const s = new Sidecar(opts, identity);
    await s.listen();
    return s;
  }

  private state: ProxyState;
  private readonly observer: ProxyObserver;
  private readonly outboundServer: http.Server;
  /** h2c (prior knowledge) from the app, for http2/grpc services. */
  private readonly outboundH2: http2.Http2Server;
  /** The outbound port: peeks at the first bytes to tell HTTP/1.1 from the h2c preface. */
  private readonly outboundFront: net.Server;
  /** HTTP/2 over mTLS from peer sidecars (ALPN h2). */
  private readonly inboundH2: http2.Http2Server;
  private readonly h2Sessions = new Set<http2.Http2Session>();
  private readonly inboundFront: net.Server;
  private readonly inboundTls: tls.Server;
  private readonly inboundHttp: http.Server;
  private readonly adminServer: http.Server;
  /** The listeners' further sockets (the IPv6 twins of 0.0.0.0 and 127.0.0.1), closed with them. */
  private readonly twins: Record<'outbound' | 'inbound' | 'admin', net.Server[]> = { outbound: [], inbound: [], admin: [] };
  private readonly outbound: OutboundProxy;
  /** Meshed TCP: the TCP services' loopback listeners, and peers' streams to TCP app ports. */
  private readonly tcpOutbound: TcpOutbound;
  private readonly tcpInbound: TcpInbound;
  /** Graceful overload: requests in flight per listener and event-loop lag (admission.ts). */
  private readonly admission: Admission;
  /** A MeshGateway's outside-facing listeners (config.gateway); a sidecar has none. */
  private readonly gateway?: GatewayListeners;
  private readonly configWatcher: FileWatcher;
  private lastConfigText?: string;
  private inFlight = 0;
  private draining = false;
  /** Checks run whenever a request ends or an app connection closes, while draining. */
  private drainWaiters: Array<() => void> = [];
  /**
   * The app's connections to the outbound listener. Draining leaves them alone, and after the
   * drain window the outbound listener stays open while one remains: with legacy sidecars the
   * app gets SIGTERM at the same time and may still be calling out.
   */
  private readonly appConnections = new Set<net.Socket>();
  /** HTTP/2 sessions from the app (h2c on the outbound port): no GOAWAY for them while draining. */
  private readonly appH2Sessions = new WeakSet<http2.Http2Session>();
  private readonly inboundSockets = new Set<net.Socket>();
  /**
   * HTTP/1.1 downstream connections and their requests in flight. The HTTP servers here never
   * listen themselves (connections are handed to them), so Node does not track their
   * connections for closeIdleConnections(); drain uses this instead.
   */
  private readonly downstream = new Map<net.Socket, number>();
  private readonly headTimers = new Map<net.Socket, NodeJS.Timeout>();
  /** Error answers waiting for the responses of requests pipelined before the malformed one. */
  private readonly pendingClientErrors = new Map<net.Socket, string>();
  /** The last request parsed on each HTTP/1.1 connection: a parse error while its body is read lands in that body. */
  private readonly lastRequest = new WeakMap<net.Socket, http.IncomingMessage>();
  /** Closers of clusters replaced by a reload, waiting for their requests in flight. */
  private readonly retiring = new Set<() => void>();

  private constructor(private readonly opts: SidecarOptions, private readonly identity: WorkloadIdentity) {
    this.observer = opts.observer;
    this.lastConfigText = opts.configText;
    const deps = { identity, observer: this.observer };
    this.state = buildState(opts.config, deps).state;
    const getState = (): ProxyState => this.state;
    const track = (d: number): void => this.track(d);
    this.observer.certificateLoaded(identity.current.notAfter);

    // Outbound: plain HTTP from the app.
    this.outbound = new OutboundProxy({ state: getState, observer: this.observer, track });
    this.admission = new Admission({ settings: () => this.state.config.overload, observer: this.observer });
    const outboundHandle = this.admission.wrap('outbound', 'outbound', this.outbound.handle);
    this.outboundServer = this.httpServer(outboundHandle);
    const onOutboundUpgrade = outboundUpgrade({ state: getState, observer: this.observer, identity });
    this.outboundServer.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.clearHeadTimer(socket);
      onOutboundUpgrade(req, socket, head);
    });
    this.outboundServer.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.clearHeadTimer(socket);
      this.tunnel(req, socket, head);
    });
    this.outboundH2 = this.h2Server(outboundHandle as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    this.outboundFront = net.createServer({ noDelay: true }, (socket) => this.acceptOutbound(socket));
    if (opts.config.gateway) {
      this.gateway = new GatewayListeners(opts.config.gateway, { config: () => this.state.config, httpServer: (h) => this.httpServer(this.admission.wrap('gateway', 'outbound', h)), forward: this.outbound.handle });
    }

    this.tcpOutbound = new TcpOutbound({ state: getState, observer: this.observer, identity, onStreamClosed: () => this.drainProgress() });
    this.tcpInbound = new TcpInbound({ state: getState, observer: this.observer });

    // Inbound: a TCP front that routes each connection to TLS or (PERMISSIVE) plaintext HTTP.
    const inbound = new InboundProxy({ state: getState, observer: this.observer, ownIdentity: () => identity.current.spiffeId, track });
    const inboundHandle = this.admission.wrap('inbound', 'inbound', inbound.handle);
    this.inboundHttp = this.httpServer(inboundHandle, INBOUND_MAX_HEADER_COUNT);
    const onInboundUpgrade = inboundUpgrade({ state: getState, observer: this.observer, identity });
    this.inboundHttp.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.clearHeadTimer(socket);
      onInboundUpgrade(req, socket, head);
    });
    this.inboundH2 = this.h2Server(inboundHandle as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    this.inboundTls = tls.createServer({
      ...identity.current.serverOptions,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['h2', 'http/1.1'],
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    }, (socket) => {
      adoptWrappedPeer(socket);
      // The chain is verified; its leaf must also be shaped as a workload identity.
      const refused = svidRefusal(socket.getPeerCertificate());
      if (refused) {
        log('debug', 'inbound client certificate refused', { reason: refused, remote: socket.remoteAddress });
        socket.destroy();
        return;
      }
      // A TCP app port (or an undeclared one) named in the SNI: not HTTP (target-port.ts).
      if (this.tcpInbound.take(socket)) return;
      this.observer.tcpConnectionOpened('inbound', 'mutual_tls');
      socket.once('close', () => this.observer.tcpConnectionClosed('inbound', 'mutual_tls'));
      if (socket.alpnProtocol === 'h2') this.inboundH2.emit('connection', socket);
      else this.inboundHttp.emit('connection', socket);
    });
    this.inboundTls.on('tlsClientError', (err, socket) => {
      // Node has already queued the TLS alert (unknown ca, certificate expired...) and closes
      // the socket itself; destroying it here would cut the alert off. Not so for the handshake
      // timeout: with a tlsClientError listener Node only reports it and the half-open
      // handshake would hold its descriptor forever.
      if ((err as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT') socket.destroy();
      log('debug', 'inbound TLS handshake failed', { error: err.message, remote: socket.remoteAddress });
    });
    this.inboundFront = net.createServer({ noDelay: true }, (socket) => this.acceptInbound(socket));
    identity.onReload((m) => {
      // New handshakes use the new certificate; established connections keep theirs.
      this.inboundTls.setSecureContext({ ...m.serverOptions, minVersion: 'TLSv1.3' });
      this.observer.certificateLoaded(m.notAfter);
    });

    // The admin port is reachable from the pod network (kubelet, Prometheus): the same head
    // timeout as the other listeners, so a trickled request head cannot hold a connection.
    this.adminServer = http.createServer({ headersTimeout: REQUEST_HEAD_TIMEOUT_MS, requestTimeout: REQUEST_HEAD_TIMEOUT_MS, connectionsCheckingInterval: HEAD_TIMEOUT_CHECK_MS }, adminHandler({
      state: getState,
      observer: this.observer,
      notReadyReason: () => (this.draining ? 'draining' : undefined),
      certificate: () => ({ spiffeId: identity.current.spiffeId, notAfter: identity.current.notAfter.toISOString(), fingerprint256: identity.current.fingerprint256 }),
    }));

    this.configWatcher = new FileWatcher([opts.configFile], () => this.reloadConfig('file change'));
  }

  private httpServer(handler: http.RequestListener, maxHeaderCount = MAX_HEADER_COUNT): http.Server {
    const server = http.createServer({
      maxHeaderSize: MAX_HEADER_BYTES,
      keepAliveTimeout: DOWNSTREAM_KEEPALIVE_MS,
      // Long uploads and streams are bounded by the route's timeouts, not by the server.
      requestTimeout: 0,
      headersTimeout: REQUEST_HEAD_TIMEOUT_MS,
      connectionsCheckingInterval: HEAD_TIMEOUT_CHECK_MS,
      noDelay: true,
    }, (req, res) => {
      const socket = req.socket;
      this.lastRequest.set(socket, req);
      if (req.httpVersionMajor === 0) {
        // HTTP/0.9 (a request line without a version) has no headers: no Host, no framing.
        res.shouldKeepAlive = false;
        sendError(res, 400, 'bad request: HTTP/0.9 is not supported');
        return;
      }
      const tooMany = headerCountRefusal(req, maxHeaderCount);
      if (tooMany) {
        res.shouldKeepAlive = false;
        sendError(res, 431, tooMany);
        return;
      }
      this.clearHeadTimer(socket);
      this.downstream.set(socket, (this.downstream.get(socket) ?? 0) + 1);
      res.once('close', () => {
        const n = (this.downstream.get(socket) ?? 1) - 1;
        this.downstream.set(socket, n);
        if (n > 0) return;
        // A malformed request pipelined behind this one: its error answer follows the responses.
        const pending = this.pendingClientErrors.get(socket);
        if (pending !== undefined) {
          this.pendingClientErrors.delete(socket);
          endWithError(socket, pending);
        } else if (this.closesOnDrain(socket)) socket.end(); // draining: closed as soon as its last request is answered
      });
      if (this.closesOnDrain(socket)) res.shouldKeepAlive = false; // Connection: close
      handler(req, res);
    });
    server.on('connection', (socket: net.Socket) => {
      if (!this.downstream.has(socket)) this.downstream.set(socket, 0);
      // Node's headersTimeout is enforced only for servers that listen themselves; these are
      // handed their connections, so a connection that never completes a first request head
      // (slowloris) is closed here.
      const timer = setTimeout(() => {
        if ((this.downstream.get(socket) ?? 0) === 0) socket.destroy();
      }, REQUEST_HEAD_TIMEOUT_MS);
      timer.unref();
      this.headTimers.set(socket, timer);
      socket.once('close', () => {
        this.downstream.delete(socket);
        this.pendingClientErrors.delete(socket);
        clearTimeout(timer);
        this.headTimers.delete(socket);
      });
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      // Over TLS the parser reports an oversized head again for the next record: the answer
      // given first stands (destroying now would cut it off before it is sent).
      if (socket.writableEnded || this.pendingClientErrors.has(socket)) return;
      if (!socket.writable || (err as { bytesParsed?: number }).bytesParsed === undefined && err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      const last = this.lastRequest.get(socket);
      if ((this.downstream.get(socket) ?? 0) > 0 && last !== undefined && !last.complete) {
        // The error is in the body of a request in flight (an invalid chunk, say): that body
        // will never end, so the app would wait for it and the client for an answer. Closing
        // the connection is the client going away: the request path cancels the upstream call.
        socket.destroy();
        return;
      }
      const answer = clientErrorResponse(err);
      // Requests parsed before the malformed one are still being answered (the app may already
      // have acted on them): their responses go first, in order, then this error, then close.
      if ((this.downstream.get(socket) ?? 0) > 0) {
        this.pendingClientErrors.set(socket, answer);
        return;
      }
      endWithError(socket, answer);
    });
    // One above the limit, so that a request over it is seen (and refused) rather than truncated.
    server.maxHeadersCount = maxHeaderCount + 1;
    // Node enforces headersTimeout (per request head, keep-alive ones included) only once
    // 'listening' set up its connection tracking, and these servers never listen themselves:
    // they are handed their connections. Emitting it starts the same tracking.
    server.emit('listening');
    return server;
  }

  private h2Server(handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void): http2.Http2Server {
    const server = http2.createServer({ maxSessionMemory: 64, settings: { maxHeaderListSize: MAX_HEADER_BYTES } }, (req, res) => {
      handler(req, res);
    });
    server.on('session', (session: http2.Http2Session) => {
      this.h2Sessions.add(session);
      session.once('close', () => this.h2Sessions.delete(session));
      if (server === this.outboundH2) this.appH2Sessions.add(session);
      // Draining: a peer's new session has its first stream served, then GOAWAY moves it away.
      else if (this.draining) session.once('stream', () => session.close());
    });
    server.on('sessionError', () => undefined);
    return server;
  }

  private acceptOutbound(socket: net.Socket): void {
    socket.on('error', () => undefined);
    this.appConnections.add(socket);
    socket.once('close', () => {
      this.appConnections.delete(socket);
      this.drainProgress();
    });
    this.observer.tcpConnectionOpened('outbound', 'none');
    socket.once('close', () => this.observer.tcpConnectionClosed('outbound', 'none'));
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      // "PRI * HTTP/2.0" starts the h2c prior-knowledge preface.
      if (chunk.length >= 3 && chunk[0] === 0x50 && chunk[1] === 0x52 && chunk[2] === 0x49) {
        // The HTTP/2 session reads the native handle and would miss the unshifted bytes.
        const wrapped = Duplex.from({ readable: socket, writable: socket });
        wrapped.on('error', () => socket.destroy());
        this.outboundH2.emit('connection', wrapped);
      } else {
        this.outboundServer.emit('connection', socket);
      }
      socket.resume();
    });
  }

  private clearHeadTimer(socket: net.Socket): void {
    const timer = this.headTimers.get(socket);
    if (timer) {
      clearTimeout(timer);
      this.headTimers.delete(socket);
    }
  }

  private acceptInbound(socket: net.Socket): void {
    this.inboundSockets.add(socket);
    socket.once('close', () => this.inboundSockets.delete(socket));
    socket.on('error', () => undefined);
    const mode = this.state.config.inbound.mtls.mode;
    if (mode === 'STRICT') {
      this.inboundTls.emit('connection', socket);
      return;
    }
    // PERMISSIVE: peek at the first byte; 0x16 is a TLS handshake record.
    socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === 0x16) {
        // A TLSSocket made from a net.Socket reads its native handle and would miss the
        // unshifted bytes; a stream wrapper makes it read through the JS stream instead.
        // (Only PERMISSIVE pays this; STRICT hands the socket over untouched.)
        const wrapped = Duplex.from({ readable: socket, writable: socket });
        wrapped.on('error', () => socket.destroy());
        wrappedPeers.set(wrapped, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, remoteFamily: socket.remoteFamily });
        this.inboundTls.emit('connection', wrapped);
      } else {
        this.observer.tcpConnectionOpened('inbound', 'none');
        socket.once('close', () => this.observer.tcpConnectionClosed('inbound', 'none'));
        this.inboundHttp.emit('connection', socket);
      }
      socket.resume();
    });
  }

  /** CONNECT tunnels (HTTPS through HTTP_PROXY) to hosts outside the mesh, when passthrough is on. */
  private tunnel(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? '');
    if (!m) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    if (this.state.hosts.has(hostWithoutPort(m[1]))) {
      // A tunnel to a mesh service carries plain HTTP (clients such as undici's ProxyAgent
      // tunnel even http:// URLs): serve the tunnel as an outbound HTTP connection, so each
      // request in it is routed by its Host like any other.
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) socket.unshift(head);
      this.outboundServer.emit('connection', socket);
      return;
    }
    if (!this.state.config.outbound.passthrough) {
      // Egress allow-list: the same refusal as a plain request's, with the host named.
      const body = `${unknownHostRefusal(hostWithoutPort(m[1]))}\n`;
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    const upstream = net.connect(Number(m[2]), m[1], () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => {
      if (socket.writable) socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
  }

  private async listen(): Promise<void> {
    const l = this.opts.config.listeners;
    // The outbound listener is on loopback only: from outside the pod it is no proxy. The
    // inbound and admin listeners are on every address of both families (docs/interception.md).
    await this.listenAll('admin', this.adminServer, l.adminPort, inboundListenAddresses(l));
    await this.listenAll('inbound', this.inboundFront, l.inboundPort, inboundListenAddresses(l));
    await this.listenAll('outbound', this.outboundFront, l.outboundPort, outboundListenAddresses(l));
    await this.tcpOutbound.listen(outboundListenAddresses(l));
    await this.gateway?.listen();
    if (this.lastConfigText === undefined) this.lastConfigText = await readFile(this.opts.configFile, 'utf8').catch(() => undefined);
    await this.configWatcher.prime();
    // The admin port answers /healthz/ready as soon as it listens, so the file may have been
    // rewritten since it was read at start and before prime() took its stats: compare once
    // now (a no-op when the text is the one running).
    await this.reloadConfig('file change');
    log('info', 'sidecar ready', {
      workload: this.opts.config.workload.name, identity: this.identity.current.spiffeId, outbound: l.outboundPort, inbound: l.inboundPort, admin: l.adminPort, bindAddress: l.bindAddress,
      outboundBindAddresses: [this.outboundFront, ...this.twins.outbound].map((s) => (s.address() as net.AddressInfo).address),
      // Which HTTP/1.1 upstream client runs (see http1/llhttp.ts): worth a line when it is the fallback.
      http1Client: nativeHttpParser ? 'llhttp' : 'undici',
    });
  }

  /**
   * Listens on the first address with `server`, and on each further one with a twin server that
   * hands its connections to `server`. A further address is IPv6 ('::' IPv6-only, or '::1'):
   * where the pod has no IPv6 (EADDRNOTAVAIL, EAFNOSUPPORT) it is skipped, since no IPv6
   * connection can arrive either; any other failure stops the start.
   */
  private async listenAll(kind: keyof Sidecar['twins'], server: net.Server, port: number, addresses: readonly string[]): Promise<void> {
    const listenOn = (srv: net.Server, host: string, ipv6Only: boolean): Promise<void> => new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ port, host, ipv6Only }, () => {
        srv.removeListener('error', reject);
        resolve();
      });
    });
    const [first, ...rest] = addresses;
    await listenOn(server, first, false);
    for (const host of rest) {
      const twin = net.createServer({ noDelay: true }, (socket) => server.emit('connection', socket));
      try {
        await listenOn(twin, host, host === '::');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EADDRNOTAVAIL' && code !== 'EAFNOSUPPORT') throw e;
        log('info', `no IPv6 here: the ${kind} listener is not on [${host}]:${port}`, { error: code });
        continue;
      }
      this.twins[kind].push(twin);
    }
  }

  private track(delta: number): void {
    this.inFlight += delta;
    if (this.inFlight === 0) this.drainProgress();
  }

  private drainProgress(): void {
    for (const check of [...this.drainWaiters]) check();
  }

  /** Resolves true once cond() holds (checked as requests end and app connections close), false after timeoutMs. */
  private drainUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.drainWaiters = this.drainWaiters.filter((w) => w !== check);
        resolve(ok);
      };
      const check = (): void => {
        if (cond()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.drainWaiters.push(check);
    });
  }

  /** Draining: a peer's connection is closed after its answer; the app's stay open while it runs. */
  private closesOnDrain(socket: net.Socket): boolean {
    return this.draining && !this.appConnections.has(socket);
  }

  /** Re-reads the config file; a valid config is swapped in, an invalid one refused. */
  public async reloadConfig(reason: string): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.opts.configFile, 'utf8');
    } catch (e) {
      log('error', 'config reload refused: cannot read the config file; keeping the last good config', { reason, file: this.opts.configFile, error: errorMessage(e) });
      this.observer.configReload(false);
      return;
    }
    if (text === this.lastConfigText) return;
    let config: SidecarConfig;
    try {
      config = parseSidecarConfigText(text, this.opts.configFile);
      const old = this.state.config.listeners;
      const l = config.listeners;
      if (l.bindAddress !== old.bindAddress || l.outboundBindAddress !== old.outboundBindAddress || l.inboundPort !== old.inboundPort || l.outboundPort !== old.outboundPort || l.adminPort !== old.adminPort) {
        throw new Error('listeners cannot change without a restart (bindAddress, outboundBindAddress, outboundPort, inboundPort, adminPort differ from the running ones)');
      }
      if (TcpOutbound.ports(config.outbound.tcpServices) !== TcpOutbound.ports(this.state.config.outbound.tcpServices)) {
        throw new Error('TCP services cannot be added, removed or moved to another listenerPort without a restart (outbound.tcpServices names and listener ports differ from the running ones)');
      }
      if (JSON.stringify(gatewayListeners(config)) !== JSON.stringify(gatewayListeners(this.state.config))) {
        throw new Error('gateway listeners cannot change without a restart (gateway.bindAddress or gateway.listeners differ from the running ones)');
      }
      await this.identity.setFiles(config.tls);
      const { state, retired, retiredAppPool } = buildState(config, { identity: this.identity, observer: this.observer }, this.state);
      this.state = state;
      this.lastConfigText = text;
      // Requests in flight keep using retired clusters; close their pools once they are done.
      const grace = Math.max(config.drainTimeoutMs, 1000);
      if (retired.length || retiredAppPool) {
        const closeRetired = (): void => {
          this.retiring.delete(closeRetired);
          for (const c of retired) c.close();
          retiredAppPool?.close().catch(() => undefined);
        };
        this.retiring.add(closeRetired);
        setTimeout(closeRetired, grace).unref();
      }
    } catch (e) {
      this.lastConfigText = text; // do not re-count the same bad file on every poll
      log('error', 'config reload refused; keeping the last good config', { reason, file: this.opts.configFile, error: errorMessage(e) });
      this.observer.configReload(false);
      return;
    }
    log('info', 'config reloaded', { reason, file: this.opts.configFile, services: config.outbound.services.length });
    this.observer.configReload(true);
  }

  /** SIGHUP: reload config and certificates now. */
  public async reloadAll(): Promise<void> {
    this.lastConfigText = undefined;
    await Promise.all([this.reloadConfig('SIGHUP'), this.identity.reload()]);
  }

  /**
   * SIGTERM, in order (docs/sidecar.md#reload-and-drain):
   * 1. the drain window (drainDurationMs): readiness is 503 and both listeners keep accepting;
   *    peers' answers carry `Connection: close` and their HTTP/2 sessions get GOAWAY, so they
   *    move to other pods while the endpoint is removed; the app's connections are left alone;
   * 2. the inbound listener closes, peers' idle connections are closed;
   * 3. the outbound listener stays open while the app has a connection open (legacy sidecars
   *    get SIGTERM with the app, which may still be calling out) and requests in flight finish,
   *    both at most drainTimeoutMs; then everything closes and the process exits 0.
   */
  public async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const windowMs = this.state.config.drainDurationMs ?? DEFAULT_DRAIN_DURATION_MS;
    const timeoutMs = this.state.config.drainTimeoutMs;
    log('info', 'draining', { inFlight: this.inFlight, appConnections: this.appConnections.size, drainDurationMs: windowMs, drainTimeoutMs: timeoutMs });
    for (const session of this.h2Sessions) if (!this.appH2Sessions.has(session)) session.close(); // GOAWAY: streams in flight finish
    if (windowMs > 0) await new Promise((resolve) => setTimeout(resolve, windowMs));
    this.configWatcher.close();
    this.identity.close();
    this.inboundFront.close();
    for (const twin of this.twins.inbound) twin.close();
    this.gateway?.close();
    for (const [socket, active] of this.downstream) if (active === 0 && !this.appConnections.has(socket)) socket.end();
    log('info', 'drain window over: inbound listener closed', { inFlight: this.inFlight, appConnections: this.appConnections.size });
    // The app's TCP streams (tcpOutbound) are app connections too: they may finish their work.
    await this.drainUntil(() => this.appConnections.size === 0 && this.tcpOutbound.size === 0 && this.inFlight === 0, timeoutMs);
    this.outboundFront.close();
    this.tcpOutbound.close();
    for (const twin of this.twins.outbound) twin.close();
    log('info', 'outbound listener closed', { inFlight: this.inFlight, appConnections: this.appConnections.size });
    const abandoned = this.inFlight;
    for (const socket of this.downstream.keys()) socket.destroy();
    for (const s of this.inboundSockets) s.destroy();
    this.tcpOutbound.destroyAll();
    this.tcpInbound.destroyAll();
    await appPortPools.close();
    for (const session of this.h2Sessions) session.destroy();
    await this.outbound.close();
    for (const c of this.state.clusters.values()) c.close();
    for (const closeRetired of [...this.retiring]) closeRetired();
    await this.state.appPool.close().catch(() => undefined);
    await this.observer.shutdown().catch(() => undefined);
    for (const twin of this.twins.admin) twin.close();
    await new Promise<void>((resolve) => this.adminServer.close(() => resolve()));
    log('info', 'drained', { abandonedRequests: abandoned });
  }
}

/** The parts of the gateway section that a reload cannot change (its routes can). */
function gatewayListeners(config: SidecarConfig): unknown {
  return config.gateway ? [config.gateway.bindAddress, config.gateway.listeners] : undefined;
}
