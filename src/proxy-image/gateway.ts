/**
 * The gateway listeners: the only listeners of TypeMesh meant to face clients outside the
 * mesh (a MeshGateway's proxy runs them; a sidecar never has a `gateway` section). Each
 * request is matched to a gateway route by Host and path, its target is rewritten to the
 * route's mesh service, and it then takes the outbound listener's request path unchanged:
 * routes, retries, timeouts, circuit breaking and mTLS with the gateway's own SPIFFE
 * identity, so the service's authorization sees the gateway as the caller.
 */
import { readFile } from 'node:fs/promises';
import type * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { GatewayConfig, GatewayRoute, SidecarConfig } from '../config';
import { normalizePath } from './authz/path';
import { FileWatcher } from './file-watch';
import { sendError } from './http-util';
import { errorMessage, log } from './log';
import { hostWithoutPort } from './routing';

/** How long an outside client has to finish its TLS handshake. */
const GATEWAY_HANDSHAKE_TIMEOUT_MS = 10_000;

/** A gateway route compiled for matching. */
interface CompiledGatewayRoute {
  readonly route: GatewayRoute;
  /** Exact host names. */
  readonly exact: ReadonlySet<string>;
  /** Suffixes of `*.<domain>` hosts, with their leading dot. */
  readonly suffixes: readonly string[];
  readonly anyHost: boolean;
}

/** What a request matched: the route and the outbound host its service is called by. */
export interface GatewayMatch {
  readonly route: GatewayRoute;
  /** The first host of the route's outbound service (the Host the outbound path routes by). */
  readonly serviceHost: string;
}

const compiled = new WeakMap<GatewayConfig, readonly CompiledGatewayRoute[]>();

function compile(gw: GatewayConfig): readonly CompiledGatewayRoute[] {
  let routes = compiled.get(gw);
  if (!routes) {
    routes = gw.routes.map((route) => ({
      route,
      exact: new Set(route.hosts.filter((h) => !h.startsWith('*'))),
      suffixes: route.hosts.filter((h) => h.startsWith('*.')).map((h) => h.slice(1)),
      anyHost: route.hosts.includes('*'),
    }));
    compiled.set(gw, routes);
  }
  return routes;
}

/** How specific a route's match of a host is: exact beats a wildcard suffix, which beats `*`. */
function hostRank(r: CompiledGatewayRoute, host: string): number {
  if (r.exact.has(host)) return 3;
  if (r.suffixes.some((s) => host.endsWith(s) && host.length > s.length)) return 2;
  return r.anyHost ? 1 : 0;
}

/**
 * Picks the route for a host (lower case, no port) and a normalized path: the most specific
 * host match first, then the longest path prefix; declaration order breaks ties. A prefix
 * matches whole segments (`/api` matches `/api` and `/api/x`, not `/apix`), as Istio's does.
 */
export function matchGatewayRoute(config: SidecarConfig, host: string, path: string): GatewayMatch | undefined {
  const gw = config.gateway;
  if (!gw) return undefined;
  let best: CompiledGatewayRoute | undefined;
  let bestRank = 0;
  let bestLen = -1;
  for (const r of compile(gw)) {
    const rank = hostRank(r, host);
    if (rank === 0) continue;
    const prefix = r.route.pathPrefix;
    if (!prefixMatches(prefix, path)) continue;
    if (rank > bestRank || (rank === bestRank && prefix.length > bestLen)) {
      best = r;
      bestRank = rank;
      bestLen = prefix.length;
    }
  }
  if (!best) return undefined;
  const svc = config.outbound.services.find((s) => s.name === best!.route.service);
  return svc ? { route: best.route, serviceHost: svc.hosts[0] } : undefined;
}

function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/' || path === prefix) return true;
  if (!path.startsWith(prefix)) return false;
  return prefix.endsWith('/') || path.charCodeAt(prefix.length) === 47 /* / */;
}

/** Dependencies of {@link GatewayListeners}. */
export interface GatewayDeps {
  /** The config in force (routes follow config reloads; listeners need a restart). */
  readonly config: () => SidecarConfig;
  /** Wraps a request handler in an HTTP/1.1 server that the sidecar tracks for drain and head timeouts. */
  readonly httpServer: (handler: http.RequestListener) => http.Server;
  /** The outbound request path (OutboundProxy.handle). */
  readonly forward: http.RequestListener;
}

/** One listening socket of the gateway. */
interface Front {
  readonly server: net.Server;
  readonly port: number;
  readonly name: string;
  readonly protocol: string;
  /** (Re)loads the server certificate of an https listener. */
  readonly load?: () => Promise<void>;
}

/** The gateway's outside-facing HTTP and HTTPS listeners. */
export class GatewayListeners {
  private readonly fronts: Front[] = [];
  private readonly watchers: FileWatcher[] = [];

  constructor(private readonly gw: GatewayConfig, private readonly deps: GatewayDeps) {
    for (const l of gw.listeners) {
      const server = deps.httpServer(this.handler(l.protocol));
      if (l.protocol === 'http') {
        this.fronts.push({ server: net.createServer({ noDelay: true }, (socket) => {
          socket.on('error', () => undefined);
          server.emit('connection', socket);
        }), port: l.port, name: l.name, protocol: l.protocol });
        continue;
      }
      const files = l.tls!;
      const tlsServer = tls.createServer({
        // Outside clients: TLS 1.2 and up, HTTP/1.1 only; no client certificate asked for.
        minVersion: 'TLSv1.2',
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: GATEWAY_HANDSHAKE_TIMEOUT_MS,
      }, (socket) => server.emit('connection', socket));
      tlsServer.on('tlsClientError', (err) => log('debug', 'gateway TLS handshake failed', { listener: l.name, error: err.message }));
      const load = async (): Promise<void> => {
        try {
          const [cert, key] = await Promise.all([readFile(files.certFile, 'utf8'), readFile(files.keyFile, 'utf8')]);
          tlsServer.setSecureContext({ cert, key, minVersion: 'TLSv1.2' });
          log('info', 'gateway server certificate loaded', { listener: l.name, certFile: files.certFile });
        } catch (e) {
          // The last good certificate keeps serving (at start there is none: listen() fails).
          log('error', 'gateway server certificate not loaded; keeping the last good one', { listener: l.name, certFile: files.certFile, error: errorMessage(e) });
          throw e;
        }
      };
      const watcher = new FileWatcher([files.certFile, files.keyFile], () => load().catch(() => undefined));
      this.watchers.push(watcher);
      this.fronts.push({ server: tlsServer, port: l.port, name: l.name, protocol: l.protocol, load });
    }
  }

  /** Loads the server certificates and listens on every gateway port. */
  public async listen(): Promise<void> {
    for (const f of this.fronts) {
      if (f.load) await f.load();
      await new Promise<void>((resolve, reject) => {
        f.server.once('error', reject);
        f.server.listen(f.port, this.gw.bindAddress, () => {
          f.server.removeListener('error', reject);
          resolve();
        });
      });
    }
    await Promise.all(this.watchers.map((w) => w.prime()));
    log('info', 'gateway listening', { bindAddress: this.gw.bindAddress, listeners: this.fronts.map((f) => `${f.name} ${f.protocol}:${f.port}`).join(', ') });
  }

  /** Stops accepting connections (requests in flight are drained by the sidecar). */
  public close(): void {
    for (const w of this.watchers) w.close();
    for (const f of this.fronts) f.server.close();
  }

  private handler(protocol: 'http' | 'https'): http.RequestListener {
    return (req, res) => {
      const config = this.deps.config();
      const url = req.url ?? '/';
      // An absolute-form target (a client that treats the gateway as a proxy) names its host.
      const abs = /^https?:\/\/([^/?#]+)([^#]*)/i.exec(url);
      const authority = abs ? abs[1] : req.headers.host;
      if (!authority) {
        sendError(res, 400, 'typemesh gateway: the request has no Host header');
        return;
      }
      const rawPath = abs ? (abs[2] === '' ? '/' : abs[2].startsWith('?') ? `/${abs[2]}` : abs[2]) : url;
      const norm = normalizePath(rawPath, config.inbound.pathNormalization);
      if (!norm.ok) {
        sendError(res, 400, `typemesh gateway: bad request path (${norm.reason})`);
        return;
      }
      const host = hostWithoutPort(authority).toLowerCase();
      const q = norm.path.indexOf('?');
      const path = q < 0 ? norm.path : norm.path.slice(0, q);
      const match = matchGatewayRoute(config, host, path);
      if (!match) {
        sendError(res, 404, `typemesh gateway: no route for host "${host}" and path "${path}"`);
        return;
      }
      // The gateway is the edge: what a client says about earlier hops is not trusted.
      req.headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
      req.headers['x-forwarded-proto'] = protocol;
      req.headers['x-forwarded-host'] = authority;
      req.headers.host = match.serviceHost;
      // The service authorizes exactly the path the gateway routed.
      req.url = norm.path;
      this.deps.forward(req, res);
    };
  }
}
