/**
 * The inbound side of meshed TCP: a peer sidecar's mTLS connection whose SNI names a TCP app
 * port (target-port.ts) is authorized by principal, at the connection level, and then piped to
 * that app port on loopback. Authorization rules of a workload with a TCP port carry only
 * principals and namespaces (the schema refuses methods, paths and headers there), so the
 * decision needs no request. A refused peer's connection is closed before a byte reaches the app.
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { log } from './log';
import { peerPrincipal } from './inbound';
import type { ProxyObserver } from './observer';
import type { ProxyState } from './state';
import { appPortTarget } from './target-port';
import { pipeStream } from './tcp-stream';

/** Dependencies of the TCP inbound path. */
export interface TcpInboundDeps {
  readonly state: () => ProxyState;
  readonly observer: ProxyObserver;
}

/** Serves the inbound mTLS connections meant for TCP app ports. */
export class TcpInbound {
  private readonly streams = new Set<net.Socket>();

  constructor(private readonly deps: TcpInboundDeps) {}

  /**
   * Takes a verified mTLS connection if it is not HTTP: its SNI names a TCP app port (piped),
   * or a port the workload does not declare (closed). Returns false for HTTP (the caller serves it).
   */
  public take(socket: tls.TLSSocket): boolean {
    const state = this.deps.state();
    const config = state.config;
    const target = appPortTarget(config, socket.servername);
    let port: number;
    if (target.kind === 'undeclared') {
      log('info', 'inbound connection refused: its SNI names a port the workload does not declare', { port: target.port, principal: peerPrincipal(socket), remote: socket.remoteAddress });
      socket.destroy();
      return true;
    }
    if (target.kind === 'port') {
      if (target.protocol !== 'tcp') return false;
      port = target.port;
    } else {
      // No SNI: the default app port, TCP only if it is declared so.
      const app = config.workload.appPorts.find((p) => p.port === config.inbound.app.port);
      if (app?.protocol !== 'tcp') return false;
      port = app.port;
    }
    const principal = peerPrincipal(socket);
    const decision = state.authorizer.decide({ principal, method: '', path: '', headers: {} });
    if (!decision.allowed) {
      log('info', 'inbound TCP connection refused by authorization', { port, principal, reason: decision.reason });
      socket.destroy();
      return true;
    }
    socket.pause();
    // Half-open both ways: a peer that shuts down its sending side (FIN) still gets the app's answer.
    socket.allowHalfOpen = true;
    const app = net.connect({ host: config.inbound.app.address, port, noDelay: true, allowHalfOpen: true });
    app.on('error', (e) => {
      log('debug', 'inbound TCP: the app port refused or reset', { port, error: e.message });
      socket.destroy();
    });
    app.once('connect', () => {
      this.streams.add(socket);
      const obs = this.deps.observer.tcpStreamOpened?.({ direction: 'inbound', sourcePrincipal: principal, upstreamHost: `${config.inbound.app.address}:${port}` });
      pipeStream(socket, app, obs, () => this.streams.delete(socket));
    });
    socket.once('close', () => {
      if (app.connecting) app.destroy();
    });
    return true;
  }

  /** Closes every stream (end of drain). */
  public destroyAll(): void {
    for (const s of this.streams) s.destroy();
  }
}
