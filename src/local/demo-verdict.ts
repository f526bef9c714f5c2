/**
 * Decides whether the demo's mesh behaved: the exit code of `typemesh demo`. Each check
 * names what was expected and what was measured.
 */
import type { LoadReport } from './load-driver';
import type { ServiceVersionStats } from './mesh-stats';

/** Thresholds of {@link judgeDemo}. */
export interface DemoThresholds {
  /**
   * Least share of the driver's requests answered 2xx.
   * @default 0.95
   */
  readonly minSuccessRate?: number;
  /**
   * Largest distance, in percentage points, between an observed and a configured split.
   * A short run on a busy machine sees few requests, so the tolerance widens to four
   * standard deviations of the sample when that is larger: random routing alone then
   * fails the check less than once in 10,000 runs.
   * @default 5
   */
  readonly maxSplitDeviation?: number;
  /**
   * Fewest requests the driver must complete for the run to count.
   * @default 100
   */
  readonly minRequests?: number;
}

/**
 * Resilience the run must show, when the plan makes something fail on purpose: a demo
 * that claims retries and ejections must fail if they silently stop happening. Entries
 * name a service (`payment-service`, every version counts) or one version
 * (`payment-service/v1`). Counted from the callers' sidecar metrics, so these checks need
 * them (the table's RETRIES and EJECTED columns).
 */
export interface DemoExpectations {
  /**
   * Services or versions whose callers must retry at least once (`typemesh_retries_total`).
   * @default none
   */
  readonly expectRetries?: readonly string[];
  /**
   * Services or versions whose callers must eject at least one endpoint (`typemesh_outlier_ejections_total`).
   * @default none
   */
  readonly expectEjections?: readonly string[];
}

/** Returns the problems found; an empty list means the mesh behaved. */
export function judgeDemo(report: LoadReport, rows: readonly ServiceVersionStats[], thresholds: DemoThresholds & DemoExpectations = {}, driverSplit?: { service: string; configured: ReadonlyMap<string, number> }): string[] {
  const minSuccess = thresholds.minSuccessRate ?? 0.95;
  const maxDev = thresholds.maxSplitDeviation ?? 5;
  const minRequests = thresholds.minRequests ?? 100;
  const problems: string[] = [];
  if (report.total < minRequests) problems.push(`only ${report.total} requests completed (need at least ${minRequests})`);
  if (report.successRate < minSuccess) {
    problems.push(`success rate ${(report.successRate * 100).toFixed(2)}% is under ${(minSuccess * 100).toFixed(0)}% (statuses: ${JSON.stringify(report.statuses)})`);
  }
  if (rows.length === 0) {
    problems.push('no request was measured, neither by the sidecars\' metrics nor by the driver');
  }
  for (const r of rows) {
    const allowed = splitTolerance(maxDev, r.configuredSplit, r.splitSampleSize);
    if (Number.isFinite(r.configuredSplit) && Number.isFinite(r.observedSplit) && Math.abs(r.observedSplit - r.configuredSplit) > allowed) {
      problems.push(`${r.service} ${r.version}: observed split ${r.observedSplit.toFixed(1)}% is more than ${allowed.toFixed(1)} points from the configured ${r.configuredSplit}% (${r.splitSampleSize} requests)`);
    }
    if (r.requests > 0 && r.identities.length === 0 && r.identitiesMeasured !== false) problems.push(`${r.service} ${r.version}: served ${Math.round(r.requests)} requests but saw no mTLS identity`);
  }
  const anyObserved = rows.some((r) => Number.isFinite(r.configuredSplit) && Number.isFinite(r.observedSplit));
  if (!anyObserved && driverSplit) {
    // Sidecar metrics did not show the split: fall back to the driver's own measurement.
    const total = Object.values(report.versions).reduce((a, b) => a + b, 0);
    for (const [version, weight] of driverSplit.configured) {
      const observed = total > 0 ? (100 * (report.versions[version] ?? 0)) / total : NaN;
      if (!(Math.abs(observed - weight) <= splitTolerance(maxDev, weight, total))) problems.push(`${driverSplit.service} ${version}: the driver observed ${observed.toFixed(1)}% against a configured ${weight}%`);
    }
  }
  if (rows.length > 0 && rows.every((r) => r.identities.length === 0)) problems.push('zero mTLS identities seen across the mesh');
  problems.push(...missingResilience(rows, thresholds.expectRetries ?? [], 'retries', 'retry'));
  problems.push(...missingResilience(rows, thresholds.expectEjections ?? [], 'ejections', 'ejection'));
  return problems;
}

/** One problem per expected service or version whose rows counted none of `field`. */
function missingResilience(rows: readonly ServiceVersionStats[], expected: readonly string[], field: 'retries' | 'ejections', noun: string): string[] {
  const problems: string[] = [];
  for (const target of expected) {
    const slash = target.indexOf('/');
    const service = slash < 0 ? target : target.slice(0, slash);
    const version = slash < 0 ? undefined : target.slice(slash + 1);
    const matching = rows.filter((r) => r.service === service && (version === undefined || r.version === version));
    const count = matching.reduce((n, r) => n + r[field], 0);
    if (matching.length === 0) problems.push(`${target}: the plan expects ${field} but the table has no row for it`);
    else if (!(count > 0)) problems.push(`${target}: the plan expects ${field} (it makes requests fail on purpose) but the callers' sidecars counted no ${noun}`);
  }
  return problems;
}

/** The allowed split deviation in points: maxDev, or four standard deviations of a sample of n when larger. */
export function splitTolerance(maxDev: number, weightPercent: number, n: number): number {
  if (!(n > 0) || !Number.isFinite(weightPercent)) return maxDev;
  const p = weightPercent / 100;
  return Math.max(maxDev, 400 * Math.sqrt((p * (1 - p)) / n));
}
