/**
 * Table rows from the load driver's own measurements, for when the sidecars' metrics are
 * unavailable (metrics turned off in the chart, or a sidecar that does not answer): the
 * entry service's rate, success and latency as the driver saw them, and the split of the
 * measured service from the versions named in the response bodies.
 */
import type { LoadReport } from './load-driver';
import { quantile } from './load-driver';
import type { ServiceVersionStats } from './mesh-stats';

/** What the driver knows about the traffic it sent. */
export interface DriverStatsInput {
  readonly report: LoadReport;
  readonly entryService: string;
  /** The caller identity the driver presented: every 2xx reply proves the entry accepted it over mTLS. */
  readonly driverIdentity: string;
  readonly splitService?: string;
  readonly configuredSplit?: ReadonlyMap<string, number>;
}

/** Rows built from the driver's measurements only. */
export function driverStats(input: DriverStatsInput): ServiceVersionStats[] {
  const { report } = input;
  const seconds = Math.max(0.001, report.elapsedMs / 1000);
  const answered = report.results.filter((r) => r.status !== 0);
  const notServerError = report.results.filter((r) => r.status > 0 && r.status < 500).length;
  const rows: ServiceVersionStats[] = [{
    service: input.entryService, version: '*',
    requests: report.total, requestsPerSecond: report.total / seconds,
    successRate: report.total > 0 ? notServerError / report.total : NaN,
    p50Ms: quantile(answered.map((r) => r.latencyMs), 0.5), p99Ms: quantile(answered.map((r) => r.latencyMs), 0.99),
    observedSplit: NaN, splitSampleSize: 0, configuredSplit: NaN, retries: 0, ejections: 0,
    denials: report.statuses['403'] ?? 0,
    identities: report.ok > 0 ? [input.driverIdentity] : [],
  }];
  if (input.splitService) {
    const total = Object.values(report.versions).reduce((a, b) => a + b, 0);
    const versions = new Set([...Object.keys(report.versions), ...(input.configuredSplit?.keys() ?? [])]);
    for (const version of [...versions].sort()) {
      const n = report.versions[version] ?? 0;
      rows.push({
        service: input.splitService, version, requests: n, requestsPerSecond: n / seconds,
        successRate: NaN, p50Ms: NaN, p99Ms: NaN,
        observedSplit: total > 0 ? (100 * n) / total : NaN, splitSampleSize: total,
        configuredSplit: input.configuredSplit?.get(version) ?? NaN,
        retries: 0, ejections: 0, denials: 0, identities: [], identitiesMeasured: false,
      });
    }
  }
  return rows;
}
