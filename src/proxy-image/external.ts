/**
 * Services outside the mesh (outbound.externalServices, written by the ExternalService
 * construct): the sidecar connects to the real host in plain TCP, or originates TLS and
 * verifies the host's certificate against its name (the system CAs, or the CA file the
 * config names). No mesh identity is presented or expected: the host is not a sidecar.
 *
 * An external service reuses the mesh services' machinery (route timeout, retries, retry
 * budget, connection-pool circuit breaker, outlier detection) by being seen as a one-subset,
 * one-route outbound service; only how an endpoint is connected differs.
 */
import { readFileSync, statSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { buildConnector } from 'undici';
import type { ExternalServiceConfig, OutboundService } from '../config';
import type { Direction } from './observer';
import { awaitConnection, ConnectCallback, ConnectFailure } from './upstream-connector';

/** The one subset of an external service (its metrics' destination_version). */
export const EXTERNAL_SUBSET = 'external';
/** The one route of an external service. */
export const EXTERNAL_ROUTE = 'default';

/** The refusal of a host that no service declares, in allow-list egress mode. */
export function unknownHostRefusal(host: string): string {
  return `typemesh: no route to unknown host "${host}" (egress mode: allow-list, outbound.passthrough is off; declare an ExternalService)`;
}

/**
 * An external service as the outbound machinery sees it: one subset (the host's addresses,
 * no identity) and one route carrying its timeout and retries.
 */
export function externalAsOutboundService(ext: ExternalServiceConfig, namespace: string): OutboundService {
  return {
    name: ext.name,
    namespace,
    hosts: ext.hosts,
    port: ext.port,
    protocol: 'http',
    // No SPIFFE identity: the empty principal becomes 'unknown' in telemetry and is never checked.
    subsets: [{ name: EXTERNAL_SUBSET, labels: {}, identity: '', discovery: ext.discovery }],
    routes: [{ name: EXTERNAL_ROUTE, match: [], destinations: [{ subset: EXTERNAL_SUBSET, weight: 100 }], timeoutMs: ext.timeoutMs, retries: ext.retries }],
    loadBalancer: { policy: 'LEAST_REQUEST' },
    connectionPool: ext.connectionPool,
    outlierDetection: ext.outlierDetection,
  };
}

/** The name a TLS-originating sidecar expects in the host's certificate. */
export function externalServerName(ext: ExternalServiceConfig): string {
  return ext.tls?.serverName ?? ext.hosts[0];
}

/**
 * The CA bundle of a caFile, re-read when the file changes (a mounted Secret or ConfigMap is
 * updated in place), so a CA change applies to the next connection without a config reload.
 */
class CaFile {
  private mtimeMs = -1;
  private pem?: Buffer;

  constructor(private readonly path: string) {}

  public read(): Buffer {
    const st = statSync(this.path);
    if (st.mtimeMs !== this.mtimeMs || !this.pem) {
      this.pem = readFileSync(this.path);
      this.mtimeMs = st.mtimeMs;
    }
    return this.pem;
  }
}

/** Callbacks of an external connector. */
export interface ExternalConnectorOptions {
  readonly onOpen?: (direction: Direction) => void;
  readonly onClose?: (direction: Direction) => void;
}

/**
 * Builds a connector (undici's signature) to one endpoint of an external service: plain TCP
 * for protocol http; for https a TLS connection whose certificate must chain to the system
 * CAs (or tls.caFile) and name the server name. Any failure is a connect failure (503, UF).
 */
export function externalConnector(ext: ExternalServiceConfig, opts: ExternalConnectorOptions = {}): buildConnector.connector {
  const timeoutMs = ext.connectionPool.connectTimeoutMs;
  const opened = (socket: net.Socket): void => {
    socket.setKeepAlive(true, 30000);
    opts.onOpen?.('outbound');
    socket.once('close', () => opts.onClose?.('outbound'));
  };
  if (ext.protocol === 'http') {
    return (connectOpts, callback) => {
      const socket = net.connect({ host: connectOpts.hostname, port: Number(connectOpts.port), noDelay: true });
      awaitConnection(socket, 'connect', timeoutMs, callback as ConnectCallback<net.Socket>, () => opened(socket));
    };
  }
  const serverName = externalServerName(ext);
  const caFile = ext.tls?.caFile !== undefined ? new CaFile(ext.tls.caFile) : undefined;
  // Checked explicitly against the declared name, whatever address the endpoint has.
  const checkServerIdentity = (_host: string, cert: tls.PeerCertificate): Error | undefined => tls.checkServerIdentity(serverName, cert);
  return (connectOpts, callback) => {
    let ca: Buffer | undefined;
    try {
      ca = caFile?.read();
    } catch (e) {
      callback(new ConnectFailure(`upstream connect error: cannot read the CA file of external service "${ext.name}": ${(e as Error).message}`, 'CA_FILE'), null);
      return;
    }
    const socket = tls.connect({
      host: connectOpts.hostname,
      port: Number(connectOpts.port),
      // SNI carries names only (RFC 6066): an IP server name is checked but not sent.
      servername: net.isIP(serverName) ? undefined : serverName,
      ca,
      rejectUnauthorized: true,
      checkServerIdentity,
      ALPNProtocols: ['http/1.1'],
    });
    socket.setNoDelay(true);
    awaitConnection(socket, 'secureConnect', timeoutMs, callback as ConnectCallback<tls.TLSSocket>, () => opened(socket));
  };
}
