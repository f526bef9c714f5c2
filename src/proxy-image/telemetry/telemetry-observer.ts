/**
 * The telemetry observer: the proxy's hooks (see ../observer.ts) turned into Prometheus
 * metrics, spans and access log lines. Each of the three is optional; the factory returns the
 * no-op observer when all are off.
 *
 * Hot-path notes: requestStarted does no I/O and allocates one observation object, one
 * headers object and (when tracing) one span; end() builds one label array whose metric
 * children are cached; the access log line is written asynchronously. Every hook catches its
 * own errors, because telemetry must never fail a request.
 */
import { randomUUID } from 'node:crypto';
import { SpanKind, SpanStatusCode, Span, Attributes } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_PATH, ATTR_URL_SCHEME, ATTR_USER_AGENT_ORIGINAL } from '@opentelemetry/semantic-conventions';
import type { SidecarConfig } from '../../config/schema';
import type { Direction, ProxyObserver, RequestInfo, RequestObservation, RequestOutcome, TcpStreamInfo, TcpStreamObservation } from '../observer';
import { AccessLog, AccessLogDestination } from './access-log';
import { formatSourceHeader, grpcStatusLabel, nameLabel, namespaceOfPrincipal, parseSourceHeader, principalLabel, responseCodeLabel, responseFlagsLabel, SOURCE_HEADER, SourceWorkload, UNKNOWN } from './labels';
import { EXTERNAL_HOST } from '../../config/schema';

/**
 * A destination_service label: a mesh service's name, or an external service's declared host
 * (a DNS name, as Istio labels a ServiceEntry), else 'unknown'. Only declared names reach it:
 * a passthrough or refused host is never a label (the proxy passes no destinationService then).
 */
function serviceLabel(value: string | undefined): string {
  return value !== undefined && EXTERNAL_HOST.test(value) ? value : UNKNOWN;
}
import { MeshMetrics, MeshMetricsOptions } from './metrics';
import type { MeshTracing, MeshTracingOptions } from './tracing';
import type * as TracingModule from './tracing';

/** This sidecar's workload, as its metrics and spans name it. */
export interface ObservedWorkload {
  readonly name: string;
  readonly namespace: string;
  readonly version: string;
  /** The workload's SPIFFE ID. */
  readonly identity: string;
}

/** Options of {@link TelemetryObserver}. */
export interface TelemetryObserverOptions {
  readonly workload: ObservedWorkload;
  /**
   * Metrics; undefined when metrics are off.
   * @default off
   */
  readonly metrics?: MeshMetrics;
  /**
   * Tracing; undefined when tracing is off.
   * @default off
   */
  readonly tracing?: MeshTracing;
  /**
   * The access log; undefined when access logging is off.
   * @default off
   */
  readonly accessLog?: AccessLog;
}

/** Overrides of {@link TelemetryObserver.fromConfig}, for tests and benchmarks. */
export interface TelemetryOverrides {
  /**
   * Where access log lines go.
   * @default stdout, asynchronously
   */
  readonly accessLogDestination?: AccessLogDestination;
  /** Options passed to the metrics. @default MeshMetrics' defaults */
  readonly metrics?: MeshMetricsOptions;
  /** Longest wait of a finished span before export. @default 1000 */
  readonly spanExportDelayMillis?: MeshTracingOptions['scheduledDelayMillis'];
}

// Longest x-request-id accepted from a client; longer ones are replaced (they end up in logs).
const MAX_REQUEST_ID_LENGTH = 128;

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE']);

/**
 * The tracing module, loaded only when tracing is on: it pulls in the OpenTelemetry SDK and
 * exporters (about half of the telemetry code in the bundle), which a sidecar with tracing off
 * (the mesh default) would otherwise evaluate at start and keep on its heap.
 */
function loadTracing(): typeof TracingModule {
  return require('./tracing') as typeof TracingModule;
}

/** Turns the proxy's hooks into metrics, spans and access log lines. */
export class TelemetryObserver implements ProxyObserver {
  /** Builds the observer that config.telemetry asks for. */
  public static fromConfig(config: SidecarConfig, overrides: TelemetryOverrides = {}): TelemetryObserver {
    const t = config.telemetry;
    const w = config.workload;
    const collector = t.tracing.collector;
    return new TelemetryObserver({
      workload: { name: w.name, namespace: w.namespace, version: w.version, identity: w.identity },
      metrics: t.metrics.enabled ? new MeshMetrics(overrides.metrics) : undefined,
      tracing: t.tracing.enabled && collector !== undefined
        ? new (loadTracing().MeshTracing)({ collector, sampleRatePercent: t.tracing.sampleRate, workload: w, scheduledDelayMillis: overrides.spanExportDelayMillis })
        : undefined,
      accessLog: t.accessLog.enabled ? new AccessLog({ format: t.accessLog.format, destination: overrides.accessLogDestination }) : undefined,
    });
  }

  public readonly metricsContentType: string;
  /** @internal */
  public readonly metricsRecorder?: MeshMetrics;
  /** @internal */
  public readonly tracing?: MeshTracing;
  /** @internal */
  public readonly accessLog?: AccessLog;
  /** @internal This workload's label values, validated once. */
  public readonly self: { readonly workload: string; readonly namespace: string; readonly version: string; readonly principal: string };
  /** The value of x-typemesh-source on every outbound request. */
  private readonly sourceHeader: string;

  public constructor(options: TelemetryObserverOptions) {
    this.metricsRecorder = options.metrics;
    this.tracing = options.tracing;
    this.accessLog = options.accessLog;
    this.metricsContentType = options.metrics?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8';
    const w = options.workload;
    this.self = { workload: nameLabel(w.name), namespace: nameLabel(w.namespace), version: nameLabel(w.version), principal: principalLabel(w.identity) };
    this.sourceHeader = formatSourceHeader(this.self.workload, this.self.namespace, this.self.version);
  }

  public requestStarted(info: RequestInfo): RequestObservation {
    try {
      return this.startObservation(info);
    } catch {
      // Never fail a request for telemetry: forward it with a request id and record nothing.
      const requestId = randomUUID();
      return { requestId, propagationHeaders: { 'x-request-id': requestId }, end: () => undefined };
    }
  }

  private startObservation(info: RequestInfo): RequestObservation {
    const startedAt = performance.now();
    const startTime = Date.now();
    const requestId = requestIdOf(info.headers['x-request-id']);
    let headers: Record<string, string> = { 'x-request-id': requestId };
    let span: Span | undefined;
    let traceId: string | undefined;
    if (this.tracing !== undefined) {
      try {
        const started = this.tracing.startSpan(
          info.direction === 'outbound' ? SpanKind.CLIENT : SpanKind.SERVER,
          spanName(info, this.self.workload),
          info.headers,
          startAttributes(info, requestId),
          startTime,
        );
        span = started.span;
        traceId = span.spanContext().traceId;
        started.headers['x-request-id'] = requestId;
        headers = started.headers;
      } catch {
        // No span: the request still goes through, untraced.
      }
    }
    let source: SourceWorkload | undefined;
    if (info.direction === 'outbound') {
      // Only to mesh services: a passthrough or external host outside the mesh has no business
      // knowing our workload, namespace and version.
      if (info.destinationService !== undefined && info.connectionSecurity === 'mutual_tls') headers[SOURCE_HEADER] = this.sourceHeader;
    } else if (info.connectionSecurity === 'mutual_tls') {
      source = parseSourceHeader(info.headers[SOURCE_HEADER], info.sourcePrincipal);
    }
    return new TelemetryObservation(this, info, requestId, headers, traceId, span, source, startedAt, startTime);
  }

  public retried(service: string, subset: string): void {
    try {
      this.metricsRecorder?.retried(nameLabel(service), nameLabel(subset));
    } catch { /* never throw into the proxy */ }
  }

  public retryBudgetExhausted(service: string): void {
    try {
      this.metricsRecorder?.retryBudgetExhausted(nameLabel(service));
    } catch { /* never throw into the proxy */ }
  }

  public endpointEjected(service: string, subset: string, _endpoint: string): void {
    // The endpoint is not a label: with DNS discovery pod addresses churn without bound.
    try {
      this.metricsRecorder?.endpointEjected(nameLabel(service), nameLabel(subset));
    } catch { /* never throw into the proxy */ }
  }

  public poolOverflow(service: string): void {
    try {
      this.metricsRecorder?.poolOverflow(nameLabel(service));
    } catch { /* never throw into the proxy */ }
  }

  public configReload(accepted: boolean): void {
    try {
      this.metricsRecorder?.configReload(accepted);
    } catch { /* never throw into the proxy */ }
  }

  public certificateLoaded(notAfter: Date): void {
    try {
      this.metricsRecorder?.certificateLoaded(notAfter);
    } catch { /* never throw into the proxy */ }
  }

  public tcpConnectionOpened(direction: Direction, security: 'mutual_tls' | 'none'): void {
    this.recordConnection(direction, security, true);
  }

  public tcpConnectionClosed(direction: Direction, security: 'mutual_tls' | 'none'): void {
    this.recordConnection(direction, security, false);
  }

  public tcpStreamOpened(info: TcpStreamInfo): TcpStreamObservation {
    const m = this.metricsRecorder;
    const accessLog = this.accessLog;
    if (m === undefined && accessLog === undefined) return { bytes: () => undefined, closed: () => undefined };
    const startedAt = performance.now();
    const startTime = Date.now();
    let received = 0;
    let sent = 0;
    const s = this.self;
    const u = UNKNOWN;
    // Both ends are known for a stream: the outbound side chose the service and verified its
    // identity; the inbound side authenticated the peer.
    const values = info.direction === 'outbound'
      ? ['source', s.workload, s.namespace, s.principal, s.version, u, nameLabel(info.destinationNamespace), principalLabel(info.destinationPrincipal), nameLabel(info.destinationVersion), nameLabel(info.destinationService), 'mutual_tls']
      : ['destination', u, nameLabel(namespaceOfPrincipal(info.sourcePrincipal)), principalLabel(info.sourcePrincipal), u, s.workload, s.namespace, s.principal, s.version, s.workload, 'mutual_tls'];
    try {
      m?.recordConnection(values, true);
    } catch { /* never throw into the proxy */ }
    let closed = false;
    return {
      bytes: (r, w) => {
        received += r;
        sent += w;
        try {
          m?.recordTcpBytes(values, r, w);
        } catch { /* never throw into the proxy */ }
      },
      closed: () => {
        if (closed) return;
        closed = true;
        try {
          m?.recordConnection(values, false);
          // One line per stream, as Envoy's TCP proxy logs: no method, path or status.
          accessLog?.write({
            time: new Date(startTime).toISOString(),
            direction: info.direction,
            method: 'TCP',
            authority: '-',
            path: '-',
            status: 0,
            duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
            request_bytes: received,
            response_bytes: sent,
            upstream_host: info.upstreamHost ?? '-',
            destination_service: values[9],
            retries: 0,
            response_flags: '-',
            principal: (info.direction === 'inbound' ? info.sourcePrincipal : info.destinationPrincipal) ?? '-',
            request_id: '-',
            trace_id: '-',
          });
        } catch { /* never throw into the proxy */ }
      },
    };
  }

  public async metrics(): Promise<string | undefined> {
    return this.metricsRecorder?.text();
  }

  public async shutdown(): Promise<void> {
    await Promise.all([
      this.tracing?.shutdown().catch(() => undefined),
      this.accessLog?.close(),
    ]);
  }

  private recordConnection(direction: Direction, security: 'mutual_tls' | 'none', opened: boolean): void {
    if (this.metricsRecorder === undefined) return;
    try {
      // A connection does not tell who the peer is (that arrives per request), so only this
      // workload's side of the labels is known.
      const s = this.self;
      const u = UNKNOWN;
      const values = direction === 'outbound'
        ? ['source', s.workload, s.namespace, s.principal, s.version, u, u, u, u, u, security]
        : ['destination', u, u, u, u, s.workload, s.namespace, s.principal, s.version, s.workload, security];
      this.metricsRecorder.recordConnection(values, opened);
    } catch { /* never throw into the proxy */ }
  }
}

/** One request in flight. */
class TelemetryObservation implements RequestObservation {
  private ended = false;

  public constructor(
    private readonly observer: TelemetryObserver,
    private readonly info: RequestInfo,
    public readonly requestId: string,
    public readonly propagationHeaders: Record<string, string>,
    public readonly traceId: string | undefined,
    private readonly span: Span | undefined,
    private readonly source: SourceWorkload | undefined,
    private readonly startedAt: number,
    private readonly startTime: number,
  ) {}

  public end(outcome: RequestOutcome): void {
    if (this.ended) return;
    this.ended = true;
    try {
      const durationMs = performance.now() - this.startedAt;
      const labels = this.labelValues(outcome);
      this.observer.metricsRecorder?.recordRequest(labels, durationMs / 1000, outcome.requestBytes, outcome.responseBytes);
      if (this.span !== undefined) this.endSpan(this.span, outcome);
      if (this.observer.accessLog !== undefined) this.writeAccessLog(this.observer.accessLog, outcome, durationMs, labels);
    } catch {
      // Telemetry must never fail a request.
    }
  }

  /** Label values in the order of REQUEST_LABEL_NAMES. */
  private labelValues(outcome: RequestOutcome): string[] {
    const self = this.observer.self;
    const info = this.info;
    const tail = [info.connectionSecurity, responseCodeLabel(outcome.status), grpcStatusLabel(outcome.grpcStatus), responseFlagsLabel(outcome.flags)];
    if (info.direction === 'outbound') {
      // destination_workload is a mesh service's name; an external host is no workload ('unknown').
      const workload = nameLabel(info.destinationService);
      return [
        'source', self.workload, self.namespace, self.principal, self.version,
        workload, nameLabel(namespaceOfPrincipal(outcome.destinationPrincipal)), principalLabel(outcome.destinationPrincipal), nameLabel(outcome.destinationSubset), serviceLabel(info.destinationService),
        ...tail,
      ];
    }
    const src = this.source;
    return [
      'destination',
      src?.workload ?? UNKNOWN,
      // The principal's namespace is trustworthy even when the caller sent no source header.
      src?.namespace ?? nameLabel(namespaceOfPrincipal(info.sourcePrincipal)),
      principalLabel(info.sourcePrincipal),
      src?.version ?? UNKNOWN,
      self.workload, self.namespace, self.principal, self.version, self.workload,
      ...tail,
    ];
  }

  private endSpan(span: Span, outcome: RequestOutcome): void {
    const attributes: Attributes = {
      'http.request.body.size': outcome.requestBytes,
      'http.response.body.size': outcome.responseBytes,
      'typemesh.retries': outcome.retries,
    };
    if (outcome.status > 0) attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = outcome.status;
    if (outcome.flags.length > 0) attributes['typemesh.response_flags'] = outcome.flags.join(',');
    if (outcome.upstreamHost !== undefined) {
      attributes['typemesh.upstream_host'] = outcome.upstreamHost;
      if (this.info.direction === 'outbound') {
        const [address, port] = splitHostPort(outcome.upstreamHost);
        attributes[ATTR_NETWORK_PEER_ADDRESS] = address;
        if (port !== undefined) attributes[ATTR_NETWORK_PEER_PORT] = port;
      }
    }
    if (outcome.destinationSubset !== undefined) attributes['typemesh.destination_subset'] = outcome.destinationSubset;
    if (outcome.destinationPrincipal !== undefined) attributes['typemesh.destination_principal'] = outcome.destinationPrincipal;
    if (outcome.grpcStatus !== undefined) attributes['rpc.grpc.status_code'] = outcome.grpcStatus;
    // Semantic conventions: a CLIENT span fails on 4xx and 5xx, a SERVER span only on 5xx
    // (a 4xx is the caller's error, not the server's); no response at all is a failure.
    const failed = outcome.status === 0 || outcome.status >= (this.info.direction === 'outbound' ? 400 : 500);
    if (failed) {
      attributes[ATTR_ERROR_TYPE] = outcome.status === 0 ? (outcome.flags[0] ?? '_OTHER') : String(outcome.status);
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.setAttributes(attributes);
    span.end();
  }

  private writeAccessLog(accessLog: AccessLog, outcome: RequestOutcome, durationMs: number, labels: readonly string[]): void {
    const info = this.info;
    const principal = info.direction === 'inbound' ? info.sourcePrincipal : outcome.destinationPrincipal;
    accessLog.write({
      time: new Date(this.startTime).toISOString(),
      direction: info.direction,
      method: info.method,
      authority: info.authority,
      path: info.path,
      status: outcome.status,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      request_bytes: outcome.requestBytes,
      response_bytes: outcome.responseBytes,
      upstream_host: outcome.upstreamHost ?? '-',
      destination_service: labels[9],
      retries: outcome.retries,
      response_flags: outcome.flags.length > 0 ? outcome.flags.join(',') : '-',
      principal: principal ?? '-',
      request_id: this.requestId,
      trace_id: this.traceId ?? '-',
    });
  }
}

/** The client's x-request-id when it is usable, else a new UUID (as Envoy does). */
function requestIdOf(given: string | string[] | undefined): string {
  const value = Array.isArray(given) ? given[0] : given;
  return value !== undefined && value.length > 0 && value.length <= MAX_REQUEST_ID_LENGTH ? value : randomUUID();
}

/** Low-cardinality span name: method and the service (never the raw path). */
function spanName(info: RequestInfo, workload: string): string {
  const method = KNOWN_METHODS.has(info.method) ? info.method : 'HTTP';
  const target = info.direction === 'outbound' ? serviceLabel(info.destinationService) : workload;
  return `${method} ${target === UNKNOWN ? 'passthrough' : target}`;
}

function startAttributes(info: RequestInfo, requestId: string): Attributes {
  const [host, port] = splitHostPort(info.authority);
  const attributes: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: KNOWN_METHODS.has(info.method) ? info.method : '_OTHER',
    [ATTR_URL_PATH]: pathOnly(info.path),
    [ATTR_URL_SCHEME]: 'http',
    [ATTR_SERVER_ADDRESS]: host,
    'typemesh.direction': info.direction,
    'typemesh.request_id': requestId,
    'typemesh.connection_security_policy': info.connectionSecurity,
  };
  if (port !== undefined) attributes[ATTR_SERVER_PORT] = port;
  const userAgent = info.headers['user-agent'];
  if (userAgent !== undefined) attributes[ATTR_USER_AGENT_ORIGINAL] = userAgent;
  if (info.destinationService !== undefined) attributes['typemesh.destination_service'] = info.destinationService;
  if (info.sourcePrincipal !== undefined) attributes['typemesh.source_principal'] = info.sourcePrincipal;
  if (info.peerAddress !== undefined) attributes[ATTR_NETWORK_PEER_ADDRESS] = info.peerAddress;
  return attributes;
}

/** url.path holds the path without its query (the query may carry secrets and is url.query's). */
function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

/** Splits "host:port" or "[v6]:port"; the port is undefined when absent or not a number. */
function splitHostPort(hostPort: string): [string, number | undefined] {
  const bracket = hostPort.startsWith('[') ? hostPort.indexOf(']') : -1;
  const colon = hostPort.lastIndexOf(':');
  // A bare IPv6 address has several colons and no port.
  if (bracket < 0 && colon !== hostPort.indexOf(':')) return [hostPort, undefined];
  if (colon < 0 || colon < bracket) return [bracket > 0 ? hostPort.slice(1, bracket) : hostPort, undefined];
  const port = Number(hostPort.slice(colon + 1));
  const host = bracket > 0 ? hostPort.slice(1, bracket) : hostPort.slice(0, colon);
  return [host, Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined];
}
