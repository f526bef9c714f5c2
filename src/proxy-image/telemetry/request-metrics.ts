/**
 * The four per-request metrics (typemesh_requests_total and the duration, request size and
 * response size histograms), stored in plain arrays per label set and turned into
 * Prometheus samples only when /metrics is scraped.
 *
 * Why not prom-client's Counter and Histogram: even through a cached `labels(...)` child,
 * every observe() re-validates all 14 labels and re-hashes them into a long string key, which
 * measured about 8 µs per request for the four metrics. Here a request costs one Map lookup
 * and a few additions. The metrics are still registered in (and formatted by) the sidecar's
 * prom-client Registry, through the interface the Registry reads: name, help, type and get().
 */
import type { Metric, MetricType, MetricValue, Registry } from 'prom-client';

/** One label set's accumulated values. */
interface Series {
  /** Label name -> value, built once when the series is created. */
  readonly labels: Record<string, string>;
  count: number;
  durationSum: number;
  requestBytesSum: number;
  responseBytesSum: number;
  /** Non-cumulative bucket counts; the last entry is +Inf. */
  readonly durationBuckets: number[];
  readonly requestBytesBuckets: number[];
  readonly responseBytesBuckets: number[];
}

/** Options of {@link RequestMetrics}. */
export interface RequestMetricsOptions {
  readonly registry: Registry;
  /** The label names, in the order of the values passed to {@link RequestMetrics.record}. */
  readonly labelNames: readonly string[];
  /** Upper bounds of the duration buckets, in seconds, ascending. */
  readonly durationBuckets: readonly number[];
  /** Upper bounds of the size buckets, in bytes, ascending. */
  readonly sizeBuckets: readonly number[];
}

/** Per-request counters and histograms sharing one store keyed by label set. */
export class RequestMetrics {
  private readonly series = new Map<string, Series>();
  private readonly labelNames: readonly string[];
  private readonly durationBounds: readonly number[];
  private readonly sizeBounds: readonly number[];

  public constructor(options: RequestMetricsOptions) {
    this.labelNames = options.labelNames;
    this.durationBounds = options.durationBuckets;
    this.sizeBounds = options.sizeBuckets;
    const all = (): Iterable<Series> => this.series.values();
    register(options.registry, 'typemesh_requests_total', 'counter', 'Requests handled by the sidecar, labelled like Istio\'s istio_requests_total.', () => {
      const values: MetricValue<string>[] = [];
      for (const s of all()) values.push({ labels: s.labels, value: s.count });
      return values;
    });
    register(options.registry, 'typemesh_request_duration_seconds', 'histogram', 'Time from the request\'s arrival at the sidecar to the end of its response, in seconds.',
      () => histogramValues('typemesh_request_duration_seconds', this.durationBounds, all(), (s) => [s.durationBuckets, s.durationSum]));
    register(options.registry, 'typemesh_request_bytes', 'histogram', 'Request body sizes in bytes.',
      () => histogramValues('typemesh_request_bytes', this.sizeBounds, all(), (s) => [s.requestBytesBuckets, s.requestBytesSum]));
    register(options.registry, 'typemesh_response_bytes', 'histogram', 'Response body sizes in bytes.',
      () => histogramValues('typemesh_response_bytes', this.sizeBounds, all(), (s) => [s.responseBytesBuckets, s.responseBytesSum]));
  }

  /** Number of distinct label sets. */
  public get size(): number {
    return this.series.size;
  }

  /** Whether a label set already has a series. */
  public has(key: string): boolean {
    return this.series.has(key);
  }

  /** Records one request in the series `key` (the joined `values`), creating it on first use. */
  public record(key: string, values: readonly string[], durationSeconds: number, requestBytes: number, responseBytes: number): void {
    let s = this.series.get(key);
    if (s === undefined) {
      s = this.createSeries(values);
      this.series.set(key, s);
    }
    s.count++;
    s.durationSum += durationSeconds;
    s.requestBytesSum += requestBytes;
    s.responseBytesSum += responseBytes;
    s.durationBuckets[bucketIndex(this.durationBounds, durationSeconds)]++;
    s.requestBytesBuckets[bucketIndex(this.sizeBounds, requestBytes)]++;
    s.responseBytesBuckets[bucketIndex(this.sizeBounds, responseBytes)]++;
  }

  private createSeries(values: readonly string[]): Series {
    const labels: Record<string, string> = {};
    this.labelNames.forEach((name, i) => {
      labels[name] = values[i];
    });
    return {
      labels,
      count: 0,
      durationSum: 0,
      requestBytesSum: 0,
      responseBytesSum: 0,
      durationBuckets: new Array<number>(this.durationBounds.length + 1).fill(0),
      requestBytesBuckets: new Array<number>(this.sizeBounds.length + 1).fill(0),
      responseBytesBuckets: new Array<number>(this.sizeBounds.length + 1).fill(0),
    };
  }
}

/** Index of the first bound >= value; bounds.length (the +Inf bucket) when none. */
function bucketIndex(bounds: readonly number[], value: number): number {
  for (let i = 0; i < bounds.length; i++) {
    if (value <= bounds[i]) return i;
  }
  return bounds.length;
}

/** The _bucket (cumulative, with le), _sum and _count samples of every series. */
function histogramValues(name: string, bounds: readonly number[], series: Iterable<Series>, pick: (s: Series) => [number[], number]): MetricValue<string>[] {
  const values: MetricValue<string>[] = [];
  for (const s of series) {
    const [buckets, sum] = pick(s);
    let cumulative = 0;
    for (let i = 0; i <= bounds.length; i++) {
      cumulative += buckets[i];
      values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: i < bounds.length ? bounds[i] : '+Inf' }, value: cumulative } as MetricValue<string>);
    }
    values.push({ metricName: `${name}_sum`, labels: s.labels, value: sum } as MetricValue<string>);
    values.push({ metricName: `${name}_count`, labels: s.labels, value: s.count } as MetricValue<string>);
  }
  return values;
}

/** Registers a metric whose samples `collect` produces at scrape time. */
function register(registry: Registry, name: string, type: 'counter' | 'histogram', help: string, collect: () => MetricValue<string>[]): void {
  const metric = {
    name,
    help,
    type: type as unknown as MetricType,
    aggregator: 'sum',
    get: async () => ({ name, help, type: type as unknown as MetricType, aggregator: 'sum', values: collect() }),
  };
  registry.registerMetric(metric as unknown as Metric);
}
