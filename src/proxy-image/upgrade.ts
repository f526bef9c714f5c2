/**
 * HTTP/1.1 Upgrade (WebSocket) pass-through. After the upgrade the connection is an opaque
 * byte stream, so the proxy only forwards the upgrade request (re-serialized, with the same
 * routing, identity and authorization checks as any request) and then pipes both directions.
 */
import type { IncomingMessage } from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { admit, appHeaders, peerPrincipal } from './inbound';
import { log } from './log';
import type { ProxyObserver } from './observer';
import { requestTarget } from './outbound';
import { hostWithoutPort, selectRoute } from './routing';
import type { ProxyState } from './state';
import { mtlsConnector } from './upstream-connector';
import { pathWithoutQuery } from './http-util';
import type { WorkloadIdentity } from './identity';

const UPGRADE_HEADERS = new Set(['connection', 'upgrade']);

function serializeHead(method: string, path: string, headers: Record<string, string | string[]>, upgrade: string): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const name in headers) {
    if (UPGRADE_HEADERS.has(name)) continue;
    const v = headers[name];
    if (Array.isArray(v)) for (const x of v) head += `${name}: ${x}\r\n`;
    else head += `${name}: ${v}\r\n`;
  }
  return head + `connection: Upgrade\r\nupgrade: ${upgrade}\r\n\r\n`;
}

function reject(socket: Duplex, status: number, reason: string, body: string): void {
  const buf = Buffer.from(body + '\n');
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${buf.length}\r\nconnection: close\r\n\r\n${buf}`);
}

function splice(client: Duplex, upstream: Duplex, head: Buffer, firstBytes: string): void {
  upstream.write(firstBytes);
  if (head.length) upstream.write(head);
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

function rawHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in req.headers) {
    const v = req.headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** Dependencies of the upgrade handlers. */
export interface UpgradeDeps {
  readonly state: () => ProxyState;
  readonly observer: ProxyObserver;
  readonly identity: WorkloadIdentity;
}

/** Handles an Upgrade request on the outbound listener. */
export function outboundUpgrade(deps: UpgradeDeps) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    const state = deps.state();
    const target = requestTarget(req);
    const upgrade = String(req.headers.upgrade ?? '');
    if (!target) return reject(socket, 400, 'Bad Request', 'bad request: no Host header');
    const method = req.method ?? 'GET';
    const host = hostWithoutPort(target.authority);
    const entry = state.hosts.get(host);
    const obs = deps.observer.requestStarted({ direction: 'outbound', method, authority: target.authority, path: target.path, headers: req.headers, destinationService: entry?.config.name, connectionSecurity: entry ? 'mutual_tls' : 'none' });
    const headers = rawHeaders(req);
    for (const k in obs.propagationHeaders) headers[k] = obs.propagationHeaders[k];
    const end = (status: number, flags: string[]): void => obs.end({ status, requestBytes: 0, responseBytes: 0, retries: 0, flags });
    if (!entry) {
      if (!state.config.outbound.passthrough) {
        end(502, ['NR']);
        return reject(socket, 502, 'Bad Gateway', `no route to host "${host}": it is not a mesh service and outbound.passthrough is off`);
      }
      const [h, p] = splitAuthority(target.authority, 80);
      const upstream = net.connect(p, h, () => {
        splice(socket, upstream, head, serializeHead(method, target.path, headers, upgrade));
        end(101, []);
      });
      upstream.once('error', (e) => {
        end(503, ['UF']);
        reject(socket, 503, 'Service Unavailable', `upstream connect error: ${e.message}`);
      });
      return;
    }
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
    const connect = mtlsConnector({
      secureContext: () => deps.identity.current.clientContext,
      expectedIdentity: subset.subset.identity,
      connectTimeoutMs: entry.config.connectionPool.connectTimeoutMs,
      alpn: ['http/1.1'],
      onOpen: (d) => deps.observer.tcpConnectionOpened(d, 'mutual_tls'),
      onClose: (d) => deps.observer.tcpConnectionClosed(d, 'mutual_tls'),
    });
    connect({ hostname: endpoint.address, port: String(endpoint.port), protocol: 'https:' }, (err, upstream) => {
      if (err || !upstream) {
        subset.record(endpoint, 'gateway-error');
        end(503, ['UF']);
        return reject(socket, 503, 'Service Unavailable', err?.message ?? 'upstream connect error');
      }
      splice(socket, upstream, head, serializeHead(method, target.path, headers, upgrade));
      end(101, []);
    });
  };
}

/** Handles an Upgrade request on the inbound listener: authorize, then splice to the app. */
export function inboundUpgrade(deps: UpgradeDeps) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    const state = deps.state();
    const admission = admit(state, req);
    const principal = peerPrincipal(req.socket);
    const obs = deps.observer.requestStarted({ direction: 'inbound', method: req.method ?? 'GET', authority: req.headers.host ?? '', path: admission.ok ? admission.path : req.url ?? '', headers: req.headers, sourcePrincipal: principal, connectionSecurity: principal ? 'mutual_tls' : 'none' });
    const end = (status: number, flags: string[]): void => obs.end({ status, requestBytes: 0, responseBytes: 0, retries: 0, flags });
    if (!admission.ok) {
      end(admission.status, [admission.flag]);
      return reject(socket, admission.status, admission.status === 403 ? 'Forbidden' : 'Bad Request', admission.body);
    }
    const headers = appHeaders(req, principal, deps.identity.current.spiffeId);
    for (const k in obs.propagationHeaders) headers[k] = obs.propagationHeaders[k];
    const app = state.config.inbound.app;
    let connected = false;
    const upstream = net.connect(app.port, app.address, () => {
      connected = true;
      splice(socket, upstream, head, serializeHead(req.method ?? 'GET', admission.path, headers, String(req.headers.upgrade ?? '')));
      end(101, []);
    });
    upstream.once('error', (e) => {
      if (!connected) {
        end(503, ['UF']);
        reject(socket, 503, 'Service Unavailable', `upstream connect error: ${e.message}`);
      } else log('debug', 'upgraded connection to the app failed', { error: e.message });
    });
  };
}

function splitAuthority(authority: string, defaultPort: number): [string, number] {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority) ?? /^([^:]+)(?::(\d+))?$/.exec(authority);
  if (!m) return [authority, defaultPort];
  return [m[1], m[2] ? Number(m[2]) : defaultPort];
}
