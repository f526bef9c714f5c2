/**
 * Telemetry props of the Mesh (defaults) and of a MeshService (overrides), their validation,
 * and how the two are merged field by field into what one service's sidecars and its
 * PodMonitor get.
 */
import { Duration } from 'cdk8s';
import { IConstruct } from 'constructs';
import { checkPercentage, fail } from './errors';
import { AccessLogFormat, durationMs, TracingCollector } from './values';

/** Tracing defaults of every sidecar of the mesh. */
export interface TracingOptions {
  /** Where spans go. */
  readonly collector: TracingCollector;
  /**
   * Percentage (0-100) of new traces that are sampled; requests that arrive with a sampled
   * trace context are always traced.
   * @default 1
   */
  readonly sampleRate?: number;
}

/** Prometheus metrics of the sidecars. */
export interface MetricsOptions {
  /**
   * Serve Prometheus metrics on the sidecar's admin port (15020, `/metrics`) and annotate the
   * pods with `prometheus.io/scrape`, `prometheus.io/port` and `prometheus.io/path`.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * Also synthesize a Prometheus operator PodMonitor (`monitoring.coreos.com/v1`) per service,
   * named `<service>-sidecar-metrics`, that scrapes the sidecar's admin port by its name
   * (`mesh-admin`). The cluster needs the operator's CRDs.
   * @default false
   */
  readonly podMonitor?: boolean;
  /**
   * How often the PodMonitor scrapes (a whole number of milliseconds, at least one second).
   * @default Duration.seconds(15)
   */
  readonly scrapeInterval?: Duration;
  /**
   * Extra labels of the PodMonitor, for a Prometheus whose `podMonitorSelector` selects by
   * label (kube-prometheus-stack's default selects `release: <its Helm release>`).
   * @default - none beyond the recommended labels and `app`
   */
  readonly podMonitorLabels?: Record<string, string>;
}

/** Telemetry defaults of every sidecar of the mesh. */
export interface TelemetryOptions {
  /**
   * Prometheus metrics: `true`/`false` switches them on or off; an object also configures the PodMonitor.
   * @default - metrics on with scrape annotations, no PodMonitor
   */
  readonly metrics?: boolean | MetricsOptions;
  /**
   * Export trace spans.
   * @default - tracing off
   */
  readonly tracing?: TracingOptions;
  /**
   * Access log format.
   * @default AccessLogFormat.JSON
   */
  readonly accessLog?: AccessLogFormat;
}

/** Tracing of one service; every field left out falls back to the mesh's tracing. */
export interface ServiceTracingOptions {
  /**
   * Export spans from this service's sidecars. Turning it on needs a collector, here or on the mesh.
   * @default - on exactly when the mesh sets `telemetry.tracing` or this object sets `collector`
   */
  readonly enabled?: boolean;
  /**
   * Where this service's spans go.
   * @default - the mesh's collector
   */
  readonly collector?: TracingCollector;
  /**
   * Percentage (0-100) of new traces that are sampled.
   * @default - the mesh's sampleRate, else 1
   */
  readonly sampleRate?: number;
}

/** Telemetry overrides of one service; every field left out falls back to the mesh's telemetry. */
export interface MeshServiceTelemetry {
  /**
   * Prometheus metrics of this service: `true`/`false`, or an object whose fields left out fall
   * back to the mesh's.
   * @default - the mesh's metrics settings
   */
  readonly metrics?: boolean | MetricsOptions;
  /**
   * Tracing of this service.
   * @default - the mesh's tracing settings
   */
  readonly tracing?: ServiceTracingOptions;
  /**
   * Access log format of this service.
   * @default - the mesh's access log format (AccessLogFormat.JSON unless the mesh says otherwise)
   */
  readonly accessLog?: AccessLogFormat;
}

/** Telemetry with every default filled in: what a service's sidecars and PodMonitor get. */
export interface ResolvedTelemetry {
  /** Metrics served and scrape annotations written. */
  readonly metricsEnabled: boolean;
  /** A PodMonitor is synthesized (only ever true when metricsEnabled is). */
  readonly podMonitor: boolean;
  /** The PodMonitor's scrape interval, in milliseconds. */
  readonly scrapeIntervalMs: number;
  /** Extra labels of the PodMonitor. */
  readonly podMonitorLabels: Readonly<Record<string, string>>;
  /** The tracing collector, when tracing is on. */
  readonly tracing?: { readonly collector: TracingCollector; readonly sampleRate: number };
  /** The access log format. */
  readonly accessLog: AccessLogFormat;
}

const DEFAULT_SCRAPE_INTERVAL = Duration.seconds(15);
const COLLECTOR_EXAMPLE = 'TracingCollector.otlpHttp("http://otel-collector.observability:4318/v1/traces")';

/** The mesh's telemetry defaults, validated (prop paths start at `telemetry.`). */
export function resolveMeshTelemetry(c: IConstruct, t: TelemetryOptions = {}): ResolvedTelemetry {
  const metrics = metricsOptions(t.metrics);
  const base: ResolvedTelemetry = {
    metricsEnabled: true,
    podMonitor: false,
    scrapeIntervalMs: durationMs(c, 'telemetry.metrics.scrapeInterval', DEFAULT_SCRAPE_INTERVAL),
    podMonitorLabels: {},
    accessLog: AccessLogFormat.JSON,
  };
  const tracing = t.tracing
    ? { collector: checkCollector(c, 'telemetry.tracing.collector', t.tracing.collector), sampleRate: checkSampleRate(c, 'telemetry.tracing.sampleRate', t.tracing.sampleRate ?? 1) }
    : undefined;
  return {
    ...mergeMetrics(c, base, metrics),
    tracing,
    accessLog: checkAccessLog(c, 'telemetry.accessLog', t.accessLog ?? AccessLogFormat.JSON),
  };
}

/** One service's telemetry: its overrides over the mesh's defaults, validated (prop paths start at `telemetry.`). */
export function resolveServiceTelemetry(c: IConstruct, mesh: ResolvedTelemetry, t: MeshServiceTelemetry = {}): ResolvedTelemetry {
  const merged = mergeMetrics(c, mesh, metricsOptions(t.metrics));
  // Inherited from the mesh, a PodMonitor follows the service's metrics switch silently:
  // a service that turns metrics off gets neither annotations nor a PodMonitor.
  const metrics = { ...merged, podMonitor: merged.podMonitor && merged.metricsEnabled };

  let tracing = mesh.tracing;
  const st = t.tracing;
  if (st) {
    const sampleRate = st.sampleRate === undefined ? undefined : checkSampleRate(c, 'telemetry.tracing.sampleRate', st.sampleRate);
    const collector = st.collector === undefined ? undefined : checkCollector(c, 'telemetry.tracing.collector', st.collector);
    const enabled = st.enabled ?? (mesh.tracing !== undefined || collector !== undefined);
    if (!enabled) {
      tracing = undefined;
    } else {
      const effectiveCollector = collector ?? mesh.tracing?.collector;
      if (!effectiveCollector) {
        fail({ construct: c, prop: 'telemetry.tracing.enabled', value: true, problem: 'tracing needs a collector and neither the service nor the mesh sets one', fix: `set telemetry.tracing.collector, e.g. ${COLLECTOR_EXAMPLE}, here or on the Mesh` });
      }
      tracing = { collector: effectiveCollector, sampleRate: sampleRate ?? mesh.tracing?.sampleRate ?? 1 };
    }
  }
  return {
    ...metrics,
    tracing,
    accessLog: t.accessLog === undefined ? mesh.accessLog : checkAccessLog(c, 'telemetry.accessLog', t.accessLog),
  };
}

function metricsOptions(m: boolean | MetricsOptions | undefined): MetricsOptions {
  if (m === undefined) return {};
  if (typeof m === 'boolean') return { enabled: m };
  return m;
}

/** Applies the fields `m` sets over `base`; a PodMonitor asked for next to metrics that end up off is a mistake. */
function mergeMetrics(c: IConstruct, base: ResolvedTelemetry, m: MetricsOptions) {
  const metricsEnabled = m.enabled ?? base.metricsEnabled;
  if (m.podMonitor === true && !metricsEnabled) {
    fail({
      construct: c, prop: 'telemetry.metrics.podMonitor', value: true,
      problem: `a PodMonitor scrapes the sidecar's /metrics, but metrics are off${m.enabled === undefined ? ' (inherited from the mesh)' : ''}`,
      fix: 'set telemetry.metrics.enabled to true next to podMonitor, or drop podMonitor',
    });
  }
  return {
    metricsEnabled,
    podMonitor: m.podMonitor ?? base.podMonitor,
    scrapeIntervalMs: m.scrapeInterval === undefined
      ? base.scrapeIntervalMs
      : durationMs(c, 'telemetry.metrics.scrapeInterval', m.scrapeInterval, 1000),
    podMonitorLabels: m.podMonitorLabels === undefined ? base.podMonitorLabels : checkLabels(c, 'telemetry.metrics.podMonitorLabels', m.podMonitorLabels),
  };
}

// Kubernetes label syntax: an optional DNS-subdomain prefix and "/", then a name of at most
// 63 characters; values at most 63 characters, alphanumerics with "-", "_", "." inside.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function checkLabels(c: IConstruct, prop: string, labels: Record<string, string>): Record<string, string> {
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = key.slice(slash + 1);
    if (!LABEL_NAME.test(name) || (prefix !== undefined && (prefix.length > 253 || !LABEL_PREFIX.test(prefix)))) {
      fail({ construct: c, prop: `${prop} key`, value: key, problem: 'must be a Kubernetes label key ([prefix/]name, name at most 63 characters)', fix: 'use a key such as "release" or "monitoring.example.com/team"' });
    }
    if (key === 'app' || key === 'version' || key.startsWith('app.kubernetes.io/')) {
      fail({ construct: c, prop: `${prop} key`, value: key, problem: 'is a label TypeMesh sets itself', fix: 'use another key, e.g. "release"' });
    }
    if (typeof value !== 'string' || !LABEL_VALUE.test(value)) {
      fail({ construct: c, prop: `${prop}[${JSON.stringify(key)}]`, value, problem: 'must be a Kubernetes label value (at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit)', fix: 'use a value such as "kube-prometheus-stack"' });
    }
  }
  return { ...labels };
}

function checkSampleRate(c: IConstruct, prop: string, rate: number): number {
  checkPercentage(c, prop, rate);
  return rate;
}

function checkCollector(c: IConstruct, prop: string, collector: TracingCollector): TracingCollector {
  if (!(collector instanceof TracingCollector)) {
    fail({ construct: c, prop, value: collector, problem: 'must be a TracingCollector', fix: `use e.g. ${COLLECTOR_EXAMPLE}` });
  }
  // The contract's z.url() accepts any scheme; the sidecar's exporters speak only HTTP(S),
  // so a typo such as "otel-collector:4318" (no scheme) is caught here, naming the prop.
  if (!/^https?:\/\/[^\s/]+/.test(collector.endpoint)) {
    fail({ construct: c, prop: `${prop}.endpoint`, value: collector.endpoint, problem: 'must be an http(s) URL', fix: `use e.g. ${COLLECTOR_EXAMPLE}` });
  }
  return collector;
}

function checkAccessLog(c: IConstruct, prop: string, format: AccessLogFormat): AccessLogFormat {
  if (!Object.values(AccessLogFormat).includes(format)) {
    fail({ construct: c, prop, value: format, problem: `must be one of ${Object.values(AccessLogFormat).join(', ')}`, fix: 'use AccessLogFormat.JSON, AccessLogFormat.TEXT or AccessLogFormat.OFF' });
  }
  return format;
}
