/**
 * Opens mTLS connections to peer sidecars for undici: presents the workload certificate,
 * verifies the peer chains to the mesh CA and that its URI SAN is the identity the subset
 * requires. Any failure before the connection is usable is a connect failure (Envoy's UF),
 * which the retry and outlier logic treat differently from a reset after connecting.
 */
import * as tls from 'node:tls';
import type { buildConnector } from 'undici';
import { uriSans } from './identity';
import type { Direction } from './observer';

/** A failure to establish a usable upstream connection. */
export class ConnectFailure extends Error {
  public readonly connectFailure = true;
  constructor(message: string, public readonly code?: string) {
    super(message);
    this.name = 'ConnectFailure';
  }
}

/** True when err is a connect failure (ours, or undici's/Node's own connect errors). */
export function isConnectFailure(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  if ((err as ConnectFailure).connectFailure) return true;
  const code = (err as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EADDRNOTAVAIL';
}

/** What a connector needs to know. */
export interface MtlsConnectorOptions {
  /** The client context of the current identity generation (read at every connect, so rotation applies to new connections). */
  readonly secureContext: () => tls.SecureContext;
  /** The SPIFFE ID the server must present. */
  readonly expectedIdentity: string;
  readonly connectTimeoutMs: number;
  /** ALPN protocols offered, e.g. ['http/1.1'] or ['h2']. */
  readonly alpn: string[];
  readonly onOpen?: (direction: Direction) => void;
  readonly onClose?: (direction: Direction) => void;
}

/** Builds an undici connector that opens verified mTLS connections. */
export function mtlsConnector(opts: MtlsConnectorOptions): buildConnector.connector {
  const expected = opts.expectedIdentity;
  const checkServerIdentity = (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    const ids = uriSans(cert);
    if (ids.includes(expected)) return undefined;
    return new ConnectFailure(`upstream identity mismatch: expected ${expected}, peer presented ${ids.length ? ids.join(', ') : 'no URI SAN'}`, 'IDENTITY_MISMATCH');
  };
  return (connectOpts, callback) => {
    let settled = false;
    const socket = tls.connect({
      host: connectOpts.hostname,
      port: Number(connectOpts.port),
      secureContext: opts.secureContext(),
      ALPNProtocols: opts.alpn,
      rejectUnauthorized: true,
      checkServerIdentity,
    });
    socket.setNoDelay(true);
    const timer = setTimeout(() => fail(new ConnectFailure(`connect timeout after ${opts.connectTimeoutMs} ms`, 'CONNECT_TIMEOUT')), opts.connectTimeoutMs);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      callback(err instanceof ConnectFailure ? err : new ConnectFailure(`upstream connect error: ${err.message}`, (err as { code?: string }).code), null);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('error', fail);
      socket.setKeepAlive(true, 30000);
      opts.onOpen?.('outbound');
      socket.once('close', () => opts.onClose?.('outbound'));
      callback(null, socket);
    });
  };
}
