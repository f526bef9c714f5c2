/**
 * The seam between the proxy's hot path and its telemetry (metrics, traces, access logs).
 * The proxy calls these hooks; `src/proxy-image/telemetry` implements them. Keeping the
 * seam narrow lets the proxy run with telemetry off at no cost (the no-op observer), and
 * lets the benchmark measure telemetry on against off.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Which listener saw the request. */
export type Direction = 'inbound' | 'outbound';

/** What the proxy knows when a request arrives. */
export interface RequestInfo {
  readonly direction: Direction;
  readonly method: string;
  /** Host / :authority as received. */
  readonly authority: string;
  /** The path as forwarded (normalized on inbound). */
  readonly path: string;
  /** The request headers as received (trace context is read from them). */
  readonly headers: IncomingHttpHeaders;
  /** Inbound: the peer's SPIFFE ID when the connection is mTLS. */
  readonly sourcePrincipal?: string;
  /** Outbound: the destination service name (undefined for passthrough). */
  readonly destinationService?: string;
  /** 'mutual_tls' or 'none', as in Istio's connection_security_policy label. */
  readonly connectionSecurity: 'mutual_tls' | 'none';
  /**
   * Inbound: the address of the connection's peer (socket.remoteAddress), written as the
   * SERVER span's network.peer.address. Optional: the span simply lacks it when unset.
   */
  readonly peerAddress?: string;
}

/** What the proxy knows when a request ends. */
export interface RequestOutcome {
  /** Status sent to the client (0 when the client went away before any response). */
  readonly status: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** Outbound: the subset (version) that served the request. */
  readonly destinationSubset?: string;
  /** Outbound: the destination's identity (expected peer principal). */
  readonly destinationPrincipal?: string;
  /** host:port of the endpoint that served the last try. */
  readonly upstreamHost?: string;
  /** Retries made (tries - 1). */
  readonly retries: number;
  /** Envoy-style response flags, e.g. UO (overflow), UT (timeout), URX (retries exhausted), UF (connect failure), RBAC, FI (fault). */
  readonly flags: readonly string[];
  /** gRPC status when the response carried one. */
  readonly grpcStatus?: number;
}

/** A request in flight, as seen by telemetry. */
export interface RequestObservation {
  /** The x-request-id of the request (created when missing). */
  readonly requestId: string;
  /** Headers to set on the upstream request: x-request-id and the trace context (traceparent, b3). */
  readonly propagationHeaders: Readonly<Record<string, string>>;
  /** Trace id when the request is traced. */
  readonly traceId?: string;
  /** Called exactly once when the response has been sent (or the request failed). */
  end(outcome: RequestOutcome): void;
}

/** A meshed TCP stream (a TCP service or a TCP app port), as telemetry sees it. */
export interface TcpStreamInfo {
  readonly direction: Direction;
  /** Inbound: the peer's SPIFFE ID. */
  readonly sourcePrincipal?: string;
  /** Outbound: the TCP service's name; inbound: unset (this workload). */
  readonly destinationService?: string;
  readonly destinationNamespace?: string;
  /** Outbound: the identity the upstream proved. */
  readonly destinationPrincipal?: string;
  /** Outbound: the subset the endpoint belongs to. */
  readonly destinationVersion?: string;
  /** host:port the stream is piped to (the peer's inbound listener, or the app port). */
  readonly upstreamHost?: string;
}

/** A meshed TCP stream in flight. */
export interface TcpStreamObservation {
  /** Bytes moved since the last call: received from the downstream, sent back to it. */
  bytes(received: number, sent: number): void;
  /** Called once when both sides are closed. */
  closed(): void;
}

/** Telemetry hooks called by the proxy. Every method must be cheap and must never throw. */
export interface ProxyObserver {
  requestStarted(info: RequestInfo): RequestObservation;
  retried(service: string, subset: string): void;
  retryBudgetExhausted(service: string): void;
  endpointEjected(service: string, subset: string, endpoint: string): void;
  poolOverflow(service: string): void;
  configReload(accepted: boolean): void;
  /** A workload certificate was (re)loaded; notAfter is its expiry. */
  certificateLoaded(notAfter: Date): void;
  tcpConnectionOpened(direction: Direction, security: 'mutual_tls' | 'none'): void;
  tcpConnectionClosed(direction: Direction, security: 'mutual_tls' | 'none'): void;
  /**
   * A meshed TCP stream opened (typemesh_tcp_connections_opened/closed_total and the byte
   * counters, labelled with both ends). Optional: an observer without it records nothing.
   */
  tcpStreamOpened?(info: TcpStreamInfo): TcpStreamObservation;
  /** Prometheus text exposition for /metrics, or undefined when metrics are off. */
  metrics(): Promise<string | undefined>;
  /** Content-Type of metrics(). */
  readonly metricsContentType: string;
  /** Flushes exporters; called on drain. */
  shutdown(): Promise<void>;
}

let counter = 0;

/** An observer that records nothing (telemetry off); it still creates x-request-id. */
export class NoopObserver implements ProxyObserver {
  public readonly metricsContentType = 'text/plain; version=0.0.4; charset=utf-8';

  public requestStarted(info: RequestInfo): RequestObservation {
    const given = info.headers['x-request-id'];
    const requestId = typeof given === 'string' && given.length > 0 ? given : `${process.pid.toString(36)}-${(++counter).toString(36)}-${Date.now().toString(36)}`;
    return { requestId, propagationHeaders: { 'x-request-id': requestId }, end: () => undefined };
  }
  public retried(): void {}
  public retryBudgetExhausted(): void {}
  public endpointEjected(): void {}
  public poolOverflow(): void {}
  public configReload(): void {}
  public certificateLoaded(): void {}
  public tcpConnectionOpened(): void {}
  public tcpConnectionClosed(): void {}
  public async metrics(): Promise<string | undefined> {
    return undefined;
  }
  public async shutdown(): Promise<void> {}
}
