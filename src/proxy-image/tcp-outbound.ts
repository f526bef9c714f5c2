/**
 * The outbound side of meshed TCP: one loopback listener per TCP service
 * (outbound.tcpServices[].listenerPort). In a pod the init step redirects the service port
 * there; without interception the app connects to it directly. Each connection from the app
 * goes to an endpoint of the service (round robin over its subsets' endpoints, the next one on
 * a connect failure), over mTLS that verifies the subset's SPIFFE identity and names the
 * destination's app port in the SNI (target-port.ts); then bytes are piped.
 */
import { lookup } from 'node:dns/promises';
import * as net from 'node:net';
import type { TcpServiceConfig } from '../config';
import type { WorkloadIdentity } from './identity';
import { errorMessage, log } from './log';
import type { ProxyObserver } from './observer';
import type { ProxyState } from './state';
import { targetPortServerName } from './target-port';
import { pipeStream } from './tcp-stream';
import { mtlsConnector } from './upstream-connector';

/** Dependencies of the TCP outbound listeners. */
export interface TcpOutboundDeps {
  readonly state: () => ProxyState;
  readonly observer: ProxyObserver;
  readonly identity: WorkloadIdentity;
  /** Called when an app connection closes (drain waits for them). */
  readonly onStreamClosed?: () => void;
}

interface Candidate {
  readonly address: string;
  readonly port: number;
  readonly subset: TcpServiceConfig['subsets'][number];
}

/** The TCP services' listeners and their streams. */
export class TcpOutbound {
  private readonly servers: net.Server[] = [];
  private readonly streams = new Set<net.Socket>();
  private readonly turns = new Map<string, number>();

  constructor(private readonly deps: TcpOutboundDeps) {}

  /** The listener ports of a config (a reload cannot change them). */
  public static ports(services: readonly TcpServiceConfig[]): string {
    return services.map((s) => `${s.name}=${s.listenerPort}`).sort().join(',');
  }

  /** Listens on each TCP service's listenerPort at each of `addresses` (loopback). */
  public async listen(addresses: readonly string[]): Promise<void> {
    for (const svc of this.deps.state().config.outbound.tcpServices) {
      for (const host of addresses) {
        // Half-open: an app that shuts down its sending side still gets the answer.
        const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(svc.name, socket));
        try {
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen({ port: svc.listenerPort, host, ipv6Only: host.includes(':') }, () => {
              server.removeListener('error', reject);
              resolve();
            });
          });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          // Where the pod has no IPv6, ::1 is skipped as for the outbound listener.
          if (host.includes(':') && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
          throw e;
        }
        this.servers.push(server);
      }
    }
  }

  /** Stops accepting (drain); streams in flight go on. */
  public close(): void {
    for (const s of this.servers) s.close();
  }

  /** Number of app connections open. */
  public get size(): number {
    return this.streams.size;
  }

  /** Closes every stream (end of drain). */
  public destroyAll(): void {
    for (const s of this.streams) s.destroy();
  }

  private accept(name: string, socket: net.Socket): void {
    socket.pause();
    socket.on('error', () => undefined);
    this.streams.add(socket);
    socket.once('close', () => {
      this.streams.delete(socket);
      this.deps.onStreamClosed?.();
    });
    // The service as the current config has it (a reload may have changed its endpoints).
    const svc = this.deps.state().config.outbound.tcpServices.find((s) => s.name === name);
    if (!svc) {
      socket.destroy();
      return;
    }
    void this.connect(svc, socket);
  }

  private async connect(svc: TcpServiceConfig, socket: net.Socket): Promise<void> {
    let candidates: Candidate[];
    try {
      candidates = await this.candidates(svc);
    } catch (e) {
      log('warn', 'outbound TCP: no endpoints', { service: svc.name, error: errorMessage(e) });
      socket.destroy();
      return;
    }
    const turn = this.turns.get(svc.name) ?? 0;
    this.turns.set(svc.name, turn + 1);
    const serverName = targetPortServerName(svc.targetPort ?? svc.port, svc.name, svc.namespace);
    // Each endpoint at most once, starting from this connection's turn.
    for (let i = 0; i < candidates.length && !socket.destroyed; i++) {
      const c = candidates[(turn + i) % candidates.length];
      const connect = mtlsConnector({
        secureContext: () => this.deps.identity.current.clientContext,
        expectedIdentity: c.subset.identity,
        connectTimeoutMs: svc.connectTimeoutMs,
        alpn: [],
        serverName,
      });
      const upstream = await new Promise<net.Socket | undefined>((resolve) => {
        connect({ hostname: c.address, host: c.address, port: String(c.port), protocol: 'https:' } as never, (err, s) => {
          if (err) log('info', 'outbound TCP: connect failed', { service: svc.name, endpoint: `${c.address}:${c.port}`, error: err.message });
          resolve(err ? undefined : (s as net.Socket));
        });
      });
      if (!upstream) continue;
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      const obs = this.deps.observer.tcpStreamOpened?.({ direction: 'outbound', destinationService: svc.name, destinationNamespace: svc.namespace, destinationPrincipal: c.subset.identity, destinationVersion: c.subset.name, upstreamHost: `${c.address}:${c.port}` });
      pipeStream(socket, upstream, obs);
      return;
    }
    socket.destroy();
  }

  private async candidates(svc: TcpServiceConfig): Promise<Candidate[]> {
    const all: Candidate[] = [];
    for (const subset of svc.subsets) {
      const d = subset.discovery;
      if (d.type === 'static') {
        for (const e of d.endpoints) all.push({ address: e.address, port: e.port, subset });
      } else {
        const records = await lookup(d.hostname, { all: true });
        for (const r of records) all.push({ address: r.address, port: d.port, subset });
      }
    }
    if (all.length === 0) throw new Error('the service has no endpoints');
    return all;
  }
}
