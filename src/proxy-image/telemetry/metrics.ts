/**
 * The sidecar's Prometheus metrics, in a private registry (never prom-client's global one, so
 * two observers in one process, as in the tests, cannot collide). The request metrics carry
 * Istio's standard labels and live in RequestMetrics (a cheap store keyed by the joined label
 * values, see request-metrics.ts); the number of label sets is capped so that a flood of
 * distinct values cannot grow memory or the scrape without bound. The rarer events (retries,
 * ejections, connections...) use prom-client counters whose labelled children are cached.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { UNKNOWN } from './labels';
import { registerProcessMetrics } from './process-metrics';
import { RequestMetrics } from './request-metrics';

/** The labels of the request metrics, in this order (Istio's standard metric labels). */
export const REQUEST_LABEL_NAMES = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_version',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_version',
  'destination_service',
  'connection_security_policy',
  'response_code',
  'grpc_response_status',
  'response_flags',
] as const;

/** The labels of the TCP connection metrics: the request labels that a connection has. */
export const CONNECTION_LABEL_NAMES = REQUEST_LABEL_NAMES.slice(0, 11) as unknown as readonly ['reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_version', 'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_version', 'destination_service', 'connection_security_policy'];

type ConnectionLabelName = (typeof CONNECTION_LABEL_NAMES)[number];

/** Label values in the order of {@link REQUEST_LABEL_NAMES}. */
export type RequestLabelValues = string[];

// Positions of the labels kept when a request falls into the overflow series.
const REPORTER = 0;
const SECURITY = REQUEST_LABEL_NAMES.indexOf('connection_security_policy');
const RESPONSE_CODE = REQUEST_LABEL_NAMES.indexOf('response_code');

// Separator of joined label values; label values never contain it (they are validated names).
const SEP = '\u001f';

/** Duration buckets in seconds, from 0.5 ms (a local hop) to a minute (a long poll). */
const DURATION_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Size buckets in bytes, powers of ten up to 1 GB (as Istio's). */
const SIZE_BUCKETS_BYTES = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

/** Options of {@link MeshMetrics}. */
export interface MeshMetricsOptions {
  /**
   * Most distinct label sets of the request metrics. Requests beyond it are counted in an
   * overflow series whose workload, principal, version and service labels are 'unknown'.
   * @default 2000
   */
  readonly maxRequestLabelSets?: number;
  /**
   * Also export the sidecar's memory, CPU and event loop delay (see process-metrics.ts).
   * @default true
   */
  readonly processMetrics?: boolean;
}

interface ConnectionChildren {
  readonly opened: Counter.Internal;
  readonly closed: Counter.Internal;
}

/** The sidecar's metrics and their registry. */
export class MeshMetrics {
  /** The private registry that /metrics exposes. */
  public readonly registry = new Registry();

  private readonly requests: RequestMetrics;
  private readonly connectionsOpened: Counter<ConnectionLabelName>;
  private readonly connectionsClosed: Counter<ConnectionLabelName>;
  private readonly tcpReceivedBytes: Counter<ConnectionLabelName>;
  private readonly tcpSentBytes: Counter<ConnectionLabelName>;
  private readonly retries: Counter<'destination_service' | 'destination_version'>;
  private readonly retryBudgetExhaustions: Counter<'destination_service'>;
  private readonly ejections: Counter<'destination_service' | 'destination_version'>;
  private readonly poolOverflows: Counter<'destination_service'>;
  private readonly configReloads: Counter<'result'>;
  private readonly certificateExpiry: Gauge;
  private readonly labelOverflows: Counter;

  private readonly maxRequestLabelSets: number;
  private readonly connectionChildren = new Map<string, ConnectionChildren>();
  private readonly serviceChildren = new Map<string, Counter.Internal>();

  public constructor(options: MeshMetricsOptions = {}) {
    this.maxRequestLabelSets = options.maxRequestLabelSets ?? 2000;
    const registers = [this.registry];
    this.requests = new RequestMetrics({ registry: this.registry, labelNames: REQUEST_LABEL_NAMES, durationBuckets: DURATION_BUCKETS_SECONDS, sizeBuckets: SIZE_BUCKETS_BYTES });
    const connectionLabels = CONNECTION_LABEL_NAMES as unknown as ConnectionLabelName[];
    this.connectionsOpened = new Counter({ name: 'typemesh_tcp_connections_opened_total', help: 'TCP connections accepted by a listener of the sidecar.', labelNames: connectionLabels, registers });
    this.connectionsClosed = new Counter({ name: 'typemesh_tcp_connections_closed_total', help: 'TCP connections of a listener of the sidecar that closed.', labelNames: connectionLabels, registers });
    this.tcpReceivedBytes = new Counter({ name: 'typemesh_tcp_received_bytes_total', help: 'Bytes a meshed TCP stream received from its downstream (the client side).', labelNames: connectionLabels, registers });
    this.tcpSentBytes = new Counter({ name: 'typemesh_tcp_sent_bytes_total', help: 'Bytes a meshed TCP stream sent back to its downstream (the client side).', labelNames: connectionLabels, registers });
    this.retries = new Counter({ name: 'typemesh_retries_total', help: 'Retries of outbound requests (tries after the first).', labelNames: ['destination_service', 'destination_version'], registers });
    this.retryBudgetExhaustions = new Counter({ name: 'typemesh_retry_budget_exhausted_total', help: 'Retries not made because the retry budget of the destination was spent.', labelNames: ['destination_service'], registers });
    this.ejections = new Counter({ name: 'typemesh_outlier_ejections_total', help: 'Endpoints ejected by outlier detection.', labelNames: ['destination_service', 'destination_version'], registers });
    this.poolOverflows = new Counter({ name: 'typemesh_pool_overflows_total', help: 'Requests refused because the destination\'s connection pool and pending queue were full (response flag UO).', labelNames: ['destination_service'], registers });
    this.configReloads = new Counter({ name: 'typemesh_config_reloads_total', help: 'Config reloads, by result (accepted, or refused and the last good config kept).', labelNames: ['result'], registers });
    this.certificateExpiry = new Gauge({ name: 'typemesh_certificate_expiry_timestamp_seconds', help: 'Expiry (notAfter) of the loaded workload certificate, in seconds since the Unix epoch.', registers });
    this.labelOverflows = new Counter({ name: 'typemesh_metric_label_sets_overflowed_total', help: 'Requests recorded in the overflow series because the cap on distinct label sets was reached.', registers });
    // Both results exist from the start, so a rate() over them is defined before the first reload.
    this.configReloads.inc({ result: 'accepted' }, 0);
    this.configReloads.inc({ result: 'refused' }, 0);
    if (options.processMetrics ?? true) registerProcessMetrics(this.registry);
  }

  /** Content-Type of {@link text}. */
  public get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  public text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Records one request; values are in the order of {@link REQUEST_LABEL_NAMES} and already bounded. */
  public recordRequest(values: RequestLabelValues, durationSeconds: number, requestBytes: number, responseBytes: number): void {
    let key = values.join(SEP);
    if (this.requests.size >= this.maxRequestLabelSets && !this.requests.has(key)) {
      // Over the cap: keep only what stays bounded by itself (reporter, security policy, status
      // code); the overflow series are few, so they may exceed the cap.
      this.labelOverflows.inc();
      values = values.map((v, i) => (i === REPORTER || i === SECURITY || i === RESPONSE_CODE ? v : UNKNOWN));
      key = values.join(SEP);
    }
    this.requests.record(key, values, durationSeconds, requestBytes, responseBytes);
  }

  /** Counts a TCP connection opened or closed; values are in the order of {@link CONNECTION_LABEL_NAMES}. */
  public recordConnection(values: readonly string[], opened: boolean): void {
    const key = values.join(SEP);
    let children = this.connectionChildren.get(key);
    if (children === undefined) {
      // Listener connections: only direction and security policy vary. Meshed TCP streams add
      // their peers' principals and services, as bounded as the mesh's identities and config.
      children = { opened: this.connectionsOpened.labels(...values), closed: this.connectionsClosed.labels(...values) };
      this.connectionChildren.set(key, children);
    }
    (opened ? children.opened : children.closed).inc();
  }

  /** Counts bytes of a meshed TCP stream; values are in the order of {@link CONNECTION_LABEL_NAMES}. */
  public recordTcpBytes(values: readonly string[], received: number, sent: number): void {
    if (received > 0) this.tcpReceivedBytes.labels(...values).inc(received);
    if (sent > 0) this.tcpSentBytes.labels(...values).inc(sent);
  }

  public retried(service: string, version: string): void {
    this.serviceChild('r', this.retries as Counter<string>, service, version).inc();
  }

  public retryBudgetExhausted(service: string): void {
    this.serviceChild('b', this.retryBudgetExhaustions as Counter<string>, service).inc();
  }

  public endpointEjected(service: string, version: string): void {
    this.serviceChild('e', this.ejections as Counter<string>, service, version).inc();
  }

  public poolOverflow(service: string): void {
    this.serviceChild('o', this.poolOverflows as Counter<string>, service).inc();
  }

  public configReload(accepted: boolean): void {
    this.configReloads.inc({ result: accepted ? 'accepted' : 'refused' });
  }

  public certificateLoaded(notAfter: Date): void {
    this.certificateExpiry.set(Math.floor(notAfter.getTime() / 1000));
  }

  // Service and version names come from the proxy's validated config, so these sets are as
  // bounded as the config; the map only spares prom-client's label validation.
  private serviceChild(metric: string, counter: Counter<string>, ...values: string[]): Counter.Internal {
    const key = metric + SEP + values.join(SEP);
    let child = this.serviceChildren.get(key);
    if (child === undefined) {
      child = counter.labels(...values);
      this.serviceChildren.set(key, child);
    }
    return child;
  }
}
