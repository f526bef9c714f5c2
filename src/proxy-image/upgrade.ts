/**
 * HTTP/1.1 Upgrade (WebSocket) pass-through. The upgrade request goes through the same
 * routing, header hygiene, identity and authorization steps as any request (the functions the
 * HTTP path uses), and the connection becomes an opaque byte stream only once the upstream has
 * answered 101 Switching Protocols. Any other answer is relayed as an ordinary response and the
 * connection is closed: bytes the client sent after the upgrade request are never forwarded
 * unless the upstream switched protocols, so they cannot smuggle requests past authorization.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { inboundForwardHeaders, startInbound } from './inbound';
import { log } from './log';
import type { ProxyObserver, RequestObservation } from './observer';
import { loopRefusal, outboundForwardHeaders, requestTarget, selfTarget } from './outbound';
import { hostWithoutPort, selectRoute } from './routing';
import { appPortTarget, serviceForAuthority, targetPortServerName } from './target-port';
import type { ProxyState } from './state';
import { externalConnector, unknownHostRefusal } from './external';
import { mtlsConnector } from './upstream-connector';
import { forwardableHeaders, headerCountRefusal, INBOUND_MAX_HEADER_COUNT, MAX_HEADER_COUNT, pathWithoutQuery } from './http-util';
import type { WorkloadIdentity } from './identity';

function reject(socket: Duplex, status: number, reason: string, body: string): void {
  const buf = Buffer.from(body + '\n');
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${buf.length}\r\nconnection: close\r\n\r\n${buf}`);
}

function splice(client: Duplex, upstream: Duplex): void {
  client.pipe(upstream);
  upstream.pipe(client);
  const destroyBoth = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
}

/** Serializes a response head for the client (raw header pairs, as the upstream sent them). */
function responseHead(status: number, statusMessage: string, headers: Record<string, string | string[]>): string {
  let head = `HTTP/1.1 ${status} ${statusMessage.replace(/[\r\n]/g, '')}\r\n`;
  for (const name in headers) {
    const v = headers[name];
    for (const x of Array.isArray(v) ? v : [v]) head += `${name}: ${x}\r\n`;
  }
  return head + '\r\n';
}

/**
 * Why an upgrade request is refused before anything is sent upstream, or undefined. A body
 * would have to be framed by the proxy before the switch (it cannot tell body from post-switch
 * bytes), so an Upgrade request with a body is refused, as no WebSocket client sends one.
 */
function upgradeRefusal(req: http.IncomingMessage, maxHeaderCount: number): string | undefined {
  const tooMany = headerCountRefusal(req, maxHeaderCount);
  if (tooMany) return tooMany;
  const cl = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')) return 'bad request: an Upgrade request cannot carry a body';
  return undefined;
}

/**
 * The Upgrade tokens to send on. `h2c` is dropped (as Envoy does): after the switch every HTTP/2
 * stream of the connection would reach the upstream unchecked. Without a token left, the
 * request goes as an ordinary request (its response is relayed, then the connection closes).
 */
function upgradeTokens(req: http.IncomingMessage): string | undefined {
  const tokens = String(req.headers.upgrade ?? '').split(',').map((t) => t.trim()).filter((t) => t !== '' && t.toLowerCase() !== 'h2c');
  return tokens.length ? tokens.join(', ') : undefined;
}

/** What one upgrade exchange needs. */
interface UpgradeExchange {
  readonly socket: Duplex;
  /** Bytes the client sent after the request head: held back until the upstream switched. */
  readonly head: Buffer;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly upgrade: string | undefined;
  readonly obs: RequestObservation;
  /** Opens the upstream connection (plain TCP or mTLS). */
  readonly connect: (callback: (err: Error | undefined, upstream?: Duplex) => void) => void;
  /** A connection failure (before any response). */
  readonly onConnectError?: () => void;
}

/**
 * Sends the upgrade request upstream and waits for its response: 101 splices the two
 * connections; any other response is relayed (with `connection: close`) and both close.
 */
function exchange(x: UpgradeExchange): void {
  const { socket, obs } = x;
  // Nothing the client sends after the request is read before the upstream has switched.
  socket.pause();
  let ended = false;
  const end = (status: number, flags: string[], responseBytes = 0): void => {
    if (ended) return;
    ended = true;
    obs.end({ status, requestBytes: 0, responseBytes, retries: 0, flags });
  };
  x.connect((err, upstream) => {
    if (err || !upstream) {
      x.onConnectError?.();
      end(503, ['UF']);
      return reject(socket, 503, 'Service Unavailable', `upstream connect error: ${err?.message ?? 'no connection'}`);
    }
    const headers: Record<string, string | string[]> = { ...x.headers };
    if (x.upgrade !== undefined) {
      headers.connection = 'Upgrade';
      headers.upgrade = x.upgrade;
    } else headers.connection = 'close';
    let req: http.ClientRequest;
    try {
      req = http.request({ method: x.method, path: x.path, headers, setHost: false, createConnection: () => upstream as net.Socket });
    } catch (e) {
      upstream.destroy();
      end(400, ['DPE']);
      return reject(socket, 400, 'Bad Request', `bad request: ${(e as Error).message}`);
    }
    let answered = false;
    socket.once('close', () => {
      if (!answered) {
        answered = true;
        end(0, ['DC']);
        req.destroy();
      }
    });
    req.on('upgrade', (res: http.IncomingMessage, up: net.Socket, upHead: Buffer) => {
      answered = true;
      if (x.upgrade === undefined) {
        up.destroy();
        end(502, ['UPE']);
        return reject(socket, 502, 'Bad Gateway', 'upstream switched protocols without being asked to');
      }
      socket.write(responseHead(101, res.statusMessage ?? 'Switching Protocols', res.headers as Record<string, string | string[]>));
      if (upHead.length) socket.write(upHead);
      if (x.head.length) up.write(x.head);
      splice(socket, up);
      end(101, []);
    });
    req.on('response', (res: http.IncomingMessage) => {
      answered = true;
      // Not switched: an ordinary response, and the end of this connection.
      const out = forwardableHeaders(res.headers);
      const cl = res.headers['content-length'];
      if (cl !== undefined) out['content-length'] = cl;
      out.connection = 'close';
      socket.write(responseHead(res.statusCode ?? 502, res.statusMessage ?? '', out));
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (!socket.write(c)) {
          res.pause();
          socket.once('drain', () => res.resume());
        }
      });
      res.once('end', () => {
        socket.end();
        end(res.statusCode ?? 502, [], bytes);
      });
      res.once('error', () => {
        socket.destroy();
        end(res.statusCode ?? 502, ['UPE'], bytes);
      });
    });
    req.on('error', (e) => {
      if (answered) {
        socket.destroy();
        return;
      }
      answered = true;
      end(503, ['UC']);
      reject(socket, 503, 'Service Unavailable', `upstream reset before response: ${e.message}`);
    });
    req.end();
  });
}

/** Dependencies of the upgrade handlers. */
export interface UpgradeDeps {
  readonly state: () => ProxyState;
  readonly observer: ProxyObserver;
  readonly identity: WorkloadIdentity;
}

/** Opens a plain TCP connection (the app on loopback, or a passthrough host). */
function tcpConnect(host: string, port: number): UpgradeExchange['connect'] {
  return (callback) => {
    const upstream = net.connect(port, host);
    const onError = (e: Error): void => callback(e);
    upstream.once('error', onError);
    upstream.once('connect', () => {
      upstream.removeListener('error', onError);
      upstream.on('error', (e) => log('debug', 'upgraded connection failed', { error: e.message }));
      callback(undefined, upstream);
    });
  };
}

/** Handles an Upgrade request on the outbound listener. */
export function outboundUpgrade(deps: UpgradeDeps) {
  return (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    const state = deps.state();
    const target = requestTarget(req);
    if (!target) return reject(socket, 400, 'Bad Request', 'bad request: no Host header');
    const method = req.method ?? 'GET';
    const host = hostWithoutPort(target.authority);
    const entry = serviceForAuthority(state.hosts, target.authority);
    const obs = deps.observer.requestStarted({ direction: 'outbound', method, authority: target.authority, path: target.path, headers: req.headers, destinationService: entry?.external ? host : entry?.config.name, connectionSecurity: entry && !entry.external ? 'mutual_tls' : 'none' });
    const end = (status: number, flags: string[]): void => obs.end({ status, requestBytes: 0, responseBytes: 0, retries: 0, flags });
    const refused = upgradeRefusal(req, MAX_HEADER_COUNT);
    if (refused) {
      const status = refused.startsWith('request header fields too large') ? 431 : 400;
      end(status, ['DPE']);
      return reject(socket, status, status === 431 ? 'Request Header Fields Too Large' : 'Bad Request', refused);
    }
    const loop = loopRefusal(req);
    if (loop) {
      end(508, ['NR']);
      return reject(socket, 508, 'Loop Detected', loop);
    }
    const headers = outboundForwardHeaders(req, obs, !entry || entry.external !== undefined);
    const base = { socket, head, method, path: target.path, upgrade: upgradeTokens(req), obs };
    if (!entry) {
      if (!state.config.outbound.passthrough) {
        end(502, ['NR']);
        return reject(socket, 502, 'Bad Gateway', unknownHostRefusal(host));
      }
      const self = selfTarget(target.authority, state);
      if (self) {
        end(508, ['NR']);
        return reject(socket, 508, 'Loop Detected', `loop detected: "${target.authority}" is ${self}`);
      }
      headers.host = target.authority;
      const [h, p] = splitAuthority(target.authority, 80);
      return exchange({ ...base, headers, connect: tcpConnect(h, p) });
    }
    if (!headers.host) headers.host = target.authority;
    const route = selectRoute(entry.routes, { method, path: pathWithoutQuery(target.path), headers: req.headers });
    if (!route) {
      end(404, ['NR']);
      return reject(socket, 404, 'Not Found', `no route of service "${entry.config.name}" matches ${method} ${target.path}`);
    }
    const subset = entry.cluster.subsets.get(route.pickSubset())!;
    const endpoint = subset.pick();
    if (!endpoint) {
      end(503, ['UH']);
      return reject(socket, 503, 'Service Unavailable', 'no healthy upstream');
    }
    const connect = entry.external ? externalConnector(entry.external, {
      onOpen: (d) => deps.observer.tcpConnectionOpened(d, 'none'),
      onClose: (d) => deps.observer.tcpConnectionClosed(d, 'none'),
    }) : mtlsConnector({
      secureContext: () => deps.identity.current.clientContext,
      expectedIdentity: subset.subset.identity,
      connectTimeoutMs: entry.config.connectionPool.connectTimeoutMs,
      alpn: ['http/1.1'],
      serverName: entry.config.targetPort === undefined ? undefined : targetPortServerName(entry.config.targetPort, entry.config.name, entry.config.namespace),
      onOpen: (d) => deps.observer.tcpConnectionOpened(d, 'mutual_tls'),
      onClose: (d) => deps.observer.tcpConnectionClosed(d, 'mutual_tls'),
    });
    exchange({
      ...base,
      headers,
      connect: (callback) => connect({ hostname: endpoint.address, host: endpoint.address, port: String(endpoint.port), protocol: 'https:' } as never, (err, upstream) => callback(err ?? undefined, upstream ?? undefined)),
      onConnectError: () => subset.record(endpoint, 'gateway-error'),
    });
  };
}

/** Handles an Upgrade request on the inbound listener: authorize, then forward to the app. */
export function inboundUpgrade(deps: UpgradeDeps) {
  return (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    const state = deps.state();
    const { admission, principal, obs } = startInbound(state, deps.observer, req);
    const end = (status: number, flags: string[]): void => obs.end({ status, requestBytes: 0, responseBytes: 0, retries: 0, flags });
    if (!admission.ok) {
      end(admission.status, [admission.flag]);
      return reject(socket, admission.status, admission.status === 403 ? 'Forbidden' : 'Bad Request', admission.body);
    }
    const refused = upgradeRefusal(req, INBOUND_MAX_HEADER_COUNT);
    if (refused) {
      const status = refused.startsWith('request header fields too large') ? 431 : 400;
      end(status, ['DPE']);
      return reject(socket, status, status === 431 ? 'Request Header Fields Too Large' : 'Bad Request', refused);
    }
    const headers = inboundForwardHeaders(req, principal, deps.identity.current.spiffeId, obs);
    const app = state.config.inbound.app;
    // The app port the calling sidecar named in its SNI (target-port.ts); else the default one.
    const target = appPortTarget(state.config, (req.socket as TLSSocket).servername);
    const port = target.kind === 'port' ? target.port : app.port;
    exchange({ socket, head, method: req.method ?? 'GET', path: admission.path, headers, upgrade: upgradeTokens(req), obs, connect: tcpConnect(app.address, port) });
  };
}

function splitAuthority(authority: string, defaultPort: number): [string, number] {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority) ?? /^([^:]+)(?::(\d+))?$/.exec(authority);
  if (!m) return [authority, defaultPort];
  return [m[1], m[2] ? Number(m[2]) : defaultPort];
}
