/**
 * Opens mTLS connections to peer sidecars (for the lean HTTP/1.1 client of ./http1 and for
 * undici's HTTP/2 pools; both take undici's connector signature): presents the workload certificate,
 * verifies the peer chains to the mesh CA and that its URI SAN is the identity the subset
 * requires. Any failure before the connection is usable is a connect failure (Envoy's UF),
 * which the retry and outlier logic treat differently from a reset after connecting.
 */
import type * as net from 'node:net';
import * as tls from 'node:tls';
import type { buildConnector } from 'undici';
import { svidRefusal, uriSans } from './identity';
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
  /** ALPN protocols offered, e.g. ['http/1.1'] or ['h2']; none for a TCP stream. */
  readonly alpn: string[];
  /** The SNI: names the peer's app port (target-port.ts). Unset: no SNI, the peer's default app port. */
  readonly serverName?: string;
  readonly onOpen?: (direction: Direction) => void;
  readonly onClose?: (direction: Direction) => void;
}

/** Builds a connector (undici's signature) that opens verified mTLS connections. */
export function mtlsConnector(opts: MtlsConnectorOptions): buildConnector.connector {
  const expected = opts.expectedIdentity;
  const checkServerIdentity = (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    const ids = uriSans(cert);
    if (!ids.includes(expected)) return new ConnectFailure(`upstream identity mismatch: expected ${expected}, peer presented ${ids.length ? ids.join(', ') : 'no URI SAN'}`, 'IDENTITY_MISMATCH');
    const refusal = svidRefusal(cert);
    return refusal ? new ConnectFailure(`upstream identity refused: ${refusal}`, 'IDENTITY_MISMATCH') : undefined;
  };
  const tickets = new SessionTickets();
  return (connectOpts, callback) => {
    const secureContext = opts.secureContext();
    const socket = tls.connect({
      host: connectOpts.hostname,
      port: Number(connectOpts.port),
      secureContext,
      ALPNProtocols: opts.alpn.length ? opts.alpn : undefined,
      servername: opts.serverName,
      rejectUnauthorized: true,
      checkServerIdentity,
      session: tickets.take(secureContext),
    });
    // Tickets count only from a connection whose server passed the identity check (held back
    // until then): Node skips checkServerIdentity when a session is resumed.
    let unverified: Buffer[] | undefined = [];
    socket.on('session', (ticket: Buffer) => {
      if (unverified) unverified.push(ticket);
      else tickets.put(secureContext, ticket);
    });
    socket.setNoDelay(true);
    awaitConnection(socket, 'secureConnect', opts.connectTimeoutMs, callback as ConnectCallback<tls.TLSSocket>, () => {
      for (const ticket of unverified ?? []) tickets.put(secureContext, ticket);
      unverified = undefined;
      socket.setKeepAlive(true, 30000);
      opts.onOpen?.('outbound');
      socket.once('close', () => opts.onClose?.('outbound'));
    });
  };
}

/**
 * TLS 1.3 session tickets from one endpoint, for resuming later connections to it (pools grow
 * under load; maxRequestsPerConnection and idle timeouts open new connections): a resumed
 * handshake skips the certificate signature and chain verification on both sides. Each ticket
 * is used once (RFC 8446 asks clients not to reuse them), newest first; a resumed connection
 * brings fresh ones. Tickets belong to the client context (certificate generation) they were
 * issued under: after a rotation the old ones are dropped and the next handshake is a full one
 * with the new certificate. A connector serves one endpoint of one subset (one expected
 * identity), and keeps only tickets from connections whose server passed the identity check,
 * so a resumed session is always with a server already verified as that identity.
 */
export class SessionTickets {
  /** Kept per endpoint; two arrive per handshake, so a few cover a pool growing quickly. */
  public static readonly MAX = 8;
  private context?: tls.SecureContext;
  private tickets: Buffer[] = [];

  /** A ticket for a connection made with `context`, if one is left. */
  public take(context: tls.SecureContext): Buffer | undefined {
    if (context !== this.context) return undefined;
    return this.tickets.pop();
  }

  /** Keeps a ticket the server sent on a connection made with `context`. */
  public put(context: tls.SecureContext, ticket: Buffer): void {
    if (context !== this.context) {
      this.context = context;
      this.tickets = [];
    }
    this.tickets.push(ticket);
    if (this.tickets.length > SessionTickets.MAX) this.tickets.shift();
  }
}

/** How a connector reports: a usable socket, or why there is none. */
export type ConnectCallback<S extends net.Socket> = (err: Error | null, socket: S | null) => void;

/**
 * Reports `socket` to callback once it emits `readyEvent` ('connect', or 'secureConnect' after
 * the TLS handshake and the identity check), or a ConnectFailure once, on its first error or
 * after timeoutMs, destroying it. `onReady` runs just before a successful report.
 */
export function awaitConnection<S extends net.Socket>(socket: S, readyEvent: 'connect' | 'secureConnect', timeoutMs: number,
  callback: ConnectCallback<S>, onReady?: () => void): void {
  let settled = false;
  const fail = (err: Error): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.destroy();
    callback(err instanceof ConnectFailure ? err : new ConnectFailure(`upstream connect error: ${err.message}`, (err as { code?: string }).code), null);
  };
  const timer = setTimeout(() => fail(new ConnectFailure(`connect timeout after ${timeoutMs} ms`, 'CONNECT_TIMEOUT')), timeoutMs);
  socket.once('error', fail);
  socket.once(readyEvent, () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.removeListener('error', fail);
    onReady?.();
    callback(null, socket);
  });
}
