/**
 * Turns the sidecars' Prometheus metrics into per service-and-version figures, like
 * `linkerd viz stat`: request rate, success rate, latency quantiles, the observed canary
 * split against the configured one, retries, ejections, authorization denials and the
 * mTLS identities seen. Figures are deltas between two scrapes of every sidecar, so a
 * table covers exactly the traffic between them.
 */
import type { SidecarConfig } from '../config';
import { httpGetText, LocalInstance } from './local-mesh';
import { PromSample, parsePrometheusText } from './prometheus-text';
import { subsetVersion } from './local-sidecar-config';

/** Every sidecar's samples at one moment. */
export interface MeshScrape {
  readonly at: number;
  /** Samples per instance id; instances that did not answer are missing. */
  readonly samples: ReadonlyMap<string, readonly PromSample[]>;
}

/** Scrapes /metrics of every running sidecar. */
export async function scrapeMesh(instances: readonly LocalInstance[]): Promise<MeshScrape> {
  const samples = new Map<string, PromSample[]>();
  await Promise.all(instances.filter((i) => i.sidecar.running).map(async (i) => {
    try {
      const res = await httpGetText(`http://${i.address}:${i.ports.admin}/metrics`, 3000);
      if (res.status === 200) samples.set(i.id, parsePrometheusText(res.body));
    } catch {
      // A sidecar that does not answer contributes nothing to this scrape.
    }
  }));
  return { at: Date.now(), samples };
}

/** One row of the table: a destination workload version. */
export interface ServiceVersionStats {
  readonly service: string;
  readonly version: string;
  /** Requests its sidecar received. */
  readonly requests: number;
  readonly requestsPerSecond: number;
  /** Share of responses that were not 5xx (0..1), NaN without requests. */
  readonly successRate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Percentage of the service's requests, as its callers' sidecars routed them; NaN when unknown. */
  readonly observedSplit: number;
  /** Requests to the whole service that the callers' sidecars reported (the split's sample size). */
  readonly splitSampleSize: number;
  /** The configured weight of this version, NaN when no caller routes to it by weight. */
  readonly configuredSplit: number;
  /** Retries the callers made to this version. */
  readonly retries: number;
  /** Endpoints of this version ejected by the callers' outlier detection. */
  readonly ejections: number;
  /** Requests its sidecar refused with 403 (authorization). */
  readonly denials: number;
  /** Distinct peer SPIFFE IDs seen over mTLS. */
  readonly identities: readonly string[];
  /**
   * false when nothing could observe the identities of this row (a driver-measured split row).
   * @default true
   */
  readonly identitiesMeasured?: boolean;
}

const REQUESTS = 'typemesh_requests_total';
const DURATION_BUCKET = 'typemesh_request_duration_seconds_bucket';
const RETRIES = 'typemesh_retries_total';
const EJECTIONS = 'typemesh_outlier_ejections_total';

function keyOf(labels: Readonly<Record<string, string>>, names: readonly string[]): string {
  return names.map((n) => `${n}=${labels[n] ?? ''}`).join(',');
}

/** Sums samples of one metric by a key, as the difference between two scrapes (counters that reset count from zero). */
function deltas(before: MeshScrape | undefined, after: MeshScrape, metric: string, keyNames: readonly string[]): Map<string, { labels: Readonly<Record<string, string>>; value: number }> {
  const out = new Map<string, { labels: Readonly<Record<string, string>>; value: number }>();
  for (const [instance, samples] of after.samples) {
    const old = new Map<string, number>();
    for (const s of before?.samples.get(instance) ?? []) if (s.name === metric) old.set(keyOf(s.labels, Object.keys(s.labels).sort()), s.value);
    for (const s of samples) {
      if (s.name !== metric) continue;
      const prev = old.get(keyOf(s.labels, Object.keys(s.labels).sort())) ?? 0;
      const d = s.value >= prev ? s.value - prev : s.value;
      const k = keyOf(s.labels, keyNames);
      const cur = out.get(k);
      if (cur) cur.value += d;
      else out.set(k, { labels: s.labels, value: d });
    }
  }
  return out;
}

/** The q-quantile in ms from cumulative histogram buckets (`le` in seconds), interpolated within the bucket. */
export function histogramQuantileMs(buckets: ReadonlyArray<{ le: number; count: number }>, q: number): number {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.length > 0 ? sorted[sorted.length - 1].count : 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe * 1000;
      const inBucket = b.count - prevCount;
      const frac = inBucket > 0 ? (rank - prevCount) / inBucket : 1;
      return (prevLe + (b.le - prevLe) * frac) * 1000;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe * 1000;
}

/** Does a destination_service label name this service (bare, or as a longer DNS name)? */
function sameService(label: string | undefined, service: string): boolean {
  return label !== undefined && (label === service || label.startsWith(`${service}.`));
}

/** Configured weights per service and version: from the first route of any caller that routes to the service. */
export function configuredSplits(configs: readonly SidecarConfig[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const config of configs) {
    for (const svc of config.outbound.services) {
      if (out.has(svc.name)) continue;
      const route = svc.routes.find((r) => r.match.length === 0) ?? svc.routes[0];
      const weights = new Map<string, number>();
      for (const d of route.destinations) {
        const subset = svc.subsets.find((s) => s.name === d.subset);
        const version = subset ? subsetVersion(subset) : d.subset;
        weights.set(version, (weights.get(version) ?? 0) + d.weight);
      }
      out.set(svc.name, weights);
    }
  }
  return out;
}

/** Computes the rows between two scrapes. */
export function computeStats(before: MeshScrape | undefined, after: MeshScrape, configs: readonly SidecarConfig[]): ServiceVersionStats[] {
  const seconds = Math.max(0.001, (after.at - (before?.at ?? after.at - 1000)) / 1000);
  const requests = deltas(before, after, REQUESTS, ['reporter', 'destination_workload', 'destination_version', 'destination_service', 'response_code', 'source_principal', 'connection_security_policy']);
  const buckets = deltas(before, after, DURATION_BUCKET, ['reporter', 'destination_workload', 'destination_version', 'le']);
  const retries = deltas(before, after, RETRIES, ['destination_service', 'destination_version']);
  const ejections = deltas(before, after, EJECTIONS, ['destination_service', 'destination_version']);
  const splits = configuredSplits(configs);

  interface Acc { requests: number; errors: number; denials: number; identities: Set<string> }
  const rows = new Map<string, Acc>();
  const sourceCounts = new Map<string, Map<string, number>>();
  for (const { labels, value } of requests.values()) {
    if (labels.reporter === 'destination') {
      const k = `${labels.destination_workload}\u0000${labels.destination_version}`;
      const acc = rows.get(k) ?? { requests: 0, errors: 0, denials: 0, identities: new Set<string>() };
      acc.requests += value;
      const code = Number(labels.response_code);
      if (code >= 500 || code === 0) acc.errors += value;
      if (code === 403) acc.denials += value;
      if (value > 0 && labels.connection_security_policy === 'mutual_tls' && labels.source_principal && labels.source_principal !== 'unknown') acc.identities.add(labels.source_principal);
      rows.set(k, acc);
    } else if (labels.reporter === 'source') {
      const svc = labels.destination_service ?? labels.destination_workload ?? 'unknown';
      const byVersion = sourceCounts.get(svc) ?? new Map<string, number>();
      byVersion.set(labels.destination_version, (byVersion.get(labels.destination_version) ?? 0) + value);
      sourceCounts.set(svc, byVersion);
    }
  }
  const out: ServiceVersionStats[] = [];
  for (const [k, acc] of rows) {
    const [service, version] = k.split('\u0000');
    const hist = [...buckets.values()].filter((b) => b.labels.reporter === 'destination' && b.labels.destination_workload === service && b.labels.destination_version === version)
      .map((b) => ({ le: Number(b.labels.le === '+Inf' ? Infinity : b.labels.le), count: b.value }));
    let observed = NaN;
    let sampleSize = 0;
    for (const [svc, byVersion] of sourceCounts) {
      if (!sameService(svc, service)) continue;
      const total = [...byVersion.values()].reduce((a, b) => a + b, 0);
      if (total > 0) {
        observed = (100 * (byVersion.get(version) ?? 0)) / total;
        sampleSize = total;
      }
    }
    const sum = (m: typeof retries): number => [...m.values()].filter((r) => sameService(r.labels.destination_service, service) && r.labels.destination_version === version).reduce((a, r) => a + r.value, 0);
    out.push({
      service, version,
      requests: acc.requests,
      requestsPerSecond: acc.requests / seconds,
      successRate: acc.requests > 0 ? 1 - acc.errors / acc.requests : NaN,
      p50Ms: histogramQuantileMs(hist, 0.5),
      p99Ms: histogramQuantileMs(hist, 0.99),
      observedSplit: observed,
      splitSampleSize: sampleSize,
      configuredSplit: splits.get(service)?.get(version) ?? NaN,
      retries: sum(retries),
      ejections: sum(ejections),
      denials: acc.denials,
      identities: [...acc.identities].sort(),
    });
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.version.localeCompare(b.version));
}
