/**
 * Decides whether the demo's mesh behaved: the exit code of `typemesh demo`. Each check
 * names what was expected and what was measured; explainPolicies ties each declared policy
 * to what the run observed of it.
 */
import type { OutboundService, SidecarConfig } from '../config';
import type { LoadReport } from './load-driver';
import type { MeshScrape, ServiceVersionStats } from './mesh-stats';

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

/** Sums the growth of a counter between two scrapes over the samples `match` accepts (a counter that reset counts from zero). */
export function counterDelta(before: MeshScrape, after: MeshScrape, metric: string, match: (labels: Readonly<Record<string, string>>) => boolean): number {
  let total = 0;
  for (const [instance, samples] of after.samples) {
    const old = new Map<string, number>();
    for (const s of before.samples.get(instance) ?? []) if (s.name === metric) old.set(JSON.stringify(s.labels), s.value);
    for (const s of samples) {
      if (s.name !== metric || !match(s.labels)) continue;
      const prev = old.get(JSON.stringify(s.labels)) ?? 0;
      total += s.value >= prev ? s.value - prev : s.value;
    }
  }
  return total;
}

/** Does a destination_service label name this service (bare, or as a longer DNS name)? */
function isService(label: string | undefined, service: string): boolean {
  return label !== undefined && (label === service || label.startsWith(`${service}.`));
}

/** What the demo saw of its injected requests and probes, for {@link explainPolicies}. */
export interface DemoObservations {
  /** The sidecar configs of the mesh (the callers' declare the routes, timeouts and pools). */
  readonly configs: readonly SidecarConfig[];
  /** The final table's rows. */
  readonly rows: readonly ServiceVersionStats[];
  /** Scrapes taken before and after the traffic and the slow calls (metrics deltas). */
  readonly before: MeshScrape;
  readonly after: MeshScrape;
  /** The service whose split is shown. */
  readonly splitService?: string;
  /** The slow calls: the service whose timeout must cut them, and the driver's report of them. */
  readonly slowCalls?: { readonly service: string; readonly report: LoadReport };
  /** The burst: the service whose pool must overflow, the driver's report of it, and scrapes around it. */
  readonly burst?: { readonly service: string; readonly report: LoadReport; readonly before: MeshScrape; readonly after: MeshScrape };
  /** The intruder probe: its target workload and the statuses it got. */
  readonly intruder?: { readonly workload: string; readonly identity: string; readonly statuses: Readonly<Record<string, number>> };
  /** The gateway the traffic entered through, and the driver's report of that traffic. */
  readonly gateway?: { readonly name: string; readonly host: string; readonly report: LoadReport };
}

/** One declared policy and what the run observed of it. */
export interface PolicyVerdict {
  /** The policy as declared, e.g. `timeout payment-service: 5 s per request, 2 s per try`. */
  readonly declared: string;
  /** What happened, e.g. `3 slow calls: 3 cut with 504 (UT)`. */
  readonly observed: string;
  /** false when the policy was exercised but did not act as declared. */
  readonly ok: boolean;
}

/** The destination service `name` as its callers' sidecars declare it (the first caller that routes to it). */
function declaredService(configs: readonly SidecarConfig[], name: string): OutboundService | undefined {
  for (const c of configs) {
    if (c.gateway) continue;
    const svc = c.outbound.services.find((s) => s.name === name);
    if (svc) return svc;
  }
  return undefined;
}

const seconds = (ms: number): string => `${ms % 1000 === 0 ? ms / 1000 : (ms / 1000).toFixed(1)} s`;

/**
 * Ties each declared policy of the services the demo exercises to what the run observed:
 * split, retries, outlier detection, timeout, connection pool, authorization and the gateway.
 * A policy the demo exercised on purpose that did not act is a verdict with ok false (and a
 * problem of the run).
 */
export function explainPolicies(o: DemoObservations): PolicyVerdict[] {
  const out: PolicyVerdict[] = [];
  const rowsOf = (service: string): ServiceVersionStats[] => o.rows.filter((r) => r.service === service);
  if (o.gateway) {
    const gw = o.configs.find((c) => c.gateway && c.workload.name === o.gateway!.name);
    const routes = gw?.gateway?.routes.map((r) => `${r.hosts.join(',')}${r.pathPrefix} -> ${r.service}`).join('; ') ?? '?';
    const identity = gw?.workload.identity ?? '?';
    const served = gw ? o.rows.filter((r) => r.identities.includes(identity)) : [];
    const r = o.gateway.report;
    out.push({
      declared: `gateway ${o.gateway.name}: ${routes}, calling over mTLS as ${identity}`,
      observed: `${r.total} requests in over plain HTTP with Host ${o.gateway.host}, ${(r.successRate * 100).toFixed(1)}% 2xx; ${served.map((x) => `${x.service} ${x.version}`).join(', ') || 'no service'} saw the gateway's identity`,
      ok: r.total > 0 && served.length > 0,
    });
  }
  if (o.splitService) {
    const svc = declaredService(o.configs, o.splitService);
    const route = svc?.routes.find((r) => r.match.length === 0) ?? svc?.routes[0];
    if (svc && route) {
      const rows = rowsOf(svc.name).filter((r) => Number.isFinite(r.observedSplit));
      out.push({
        declared: `split ${svc.name}: ${route.destinations.map((d) => `${d.subset} ${d.weight}%`).join(' / ')}`,
        observed: rows.length > 0 ? `${rows.map((r) => `${r.version} ${r.observedSplit.toFixed(1)}%`).join(' / ')} of ${rows[0].splitSampleSize} routed requests` : 'not measured (no sidecar metrics)',
        ok: true,
      });
      if (route.retries) {
        const retries = rowsOf(svc.name).reduce((n, r) => n + r.retries, 0);
        out.push({
          declared: `retries ${svc.name}: ${route.retries.attempts} attempts${route.retries.perTryTimeoutMs ? `, ${seconds(route.retries.perTryTimeoutMs)} per try` : ''}, on ${route.retries.retryOn.join(',')}`,
          observed: `${retries} retries by the callers' sidecars (${rowsOf(svc.name).map((r) => `${r.version} ${r.retries}`).join(', ')})`,
          ok: true,
        });
      }
      if (svc.outlierDetection) {
        const od = svc.outlierDetection;
        out.push({
          declared: `outlier detection ${svc.name}: eject after ${od.consecutive5xxErrors} consecutive 5xx for ${seconds(od.baseEjectionTimeMs)}, at most ${od.maxEjectionPercent}% of a version (one always allowed)`,
          observed: `ejections: ${rowsOf(svc.name).map((r) => `${r.version} ${r.ejections}`).join(', ')}`,
          ok: true,
        });
      }
    }
  }
  if (o.slowCalls) {
    const name = o.slowCalls.service;
    const svc = declaredService(o.configs, name);
    const route = svc?.routes.find((r) => r.match.length === 0) ?? svc?.routes[0];
    const cut = counterDelta(o.before, o.after, 'typemesh_requests_total', (l) => l.reporter === 'source' && isService(l.destination_service, name) && l.response_code === '504' && (l.response_flags ?? '').split(',').includes('UT'));
    const r = o.slowCalls.report;
    out.push({
      declared: `timeout ${name}: ${route && route.timeoutMs > 0 ? `${seconds(route.timeoutMs)} per request` : 'none'}${route?.retries?.perTryTimeoutMs ? `, ${seconds(route.retries.perTryTimeoutMs)} per try` : ''}`,
      observed: `${r.total} slow calls: ${cut} cut by the callers' sidecars with 504 (UT), after ${Number.isFinite(r.p50Ms) ? seconds(Math.round(r.p50Ms / 100) * 100) : '?'} (median, as the client saw it); statuses ${JSON.stringify(r.statuses)}`,
      ok: r.total > 0 && cut >= r.total,
    });
  }
  if (o.burst) {
    const name = o.burst.service;
    const svc = declaredService(o.configs, name);
    const pool = svc?.connectionPool;
    const overflows = counterDelta(o.burst.before, o.burst.after, 'typemesh_pool_overflows_total', (l) => isService(l.destination_service, name));
    const r = o.burst.report;
    out.push({
      declared: `connection pool ${name}: ${pool ? `${pool.maxConnections} connections + ${pool.maxPendingRequests} pending per caller sidecar` : 'defaults'}`,
      observed: `burst of ${r.total} concurrent requests: ${overflows} calls to ${name} refused with 503 overflow (UO, typemesh_pool_overflows_total); statuses ${JSON.stringify(r.statuses)}`,
      ok: overflows > 0,
    });
  }
  if (o.intruder) {
    const target = o.configs.find((c) => c.workload.name === o.intruder!.workload && !c.gateway);
    const allows = (target?.inbound.authorization.rules ?? []).filter((x) => x.action === 'ALLOW')
      .map((x) => `${(x.principals ?? ['any']).map((p) => p.replace(/^.*\/sa\//, '')).join(',')} ${(x.methods ?? ['any method']).join(',')} ${(x.paths ?? ['any path']).join(',')}`);
    const total = Object.values(o.intruder.statuses).reduce((a, b) => a + b, 0);
    const denied = o.intruder.statuses['403'] ?? 0;
    out.push({
      declared: `authorization ${o.intruder.workload}: allow only ${allows.join('; ') || 'any authenticated peer'}`,
      observed: `intruder ${o.intruder.identity.replace(/^.*\/sa\//, '')}: ${denied} of ${total} requests refused with 403`,
      ok: total > 0 && denied === total,
    });
  }
  const strict = o.configs.filter((c) => !c.gateway && c.inbound.mtls.mode === 'STRICT').map((c) => c.workload.name);
  if (strict.length > 0) {
    const seen = o.rows.filter((r) => r.identities.length > 0).map((r) => `${r.service} ${r.version} <- ${r.identities.map((i) => i.replace(/^.*\/sa\//, '')).join(',')}`);
    out.push({
      declared: `mTLS STRICT: ${[...new Set(strict)].join(', ')}`,
      observed: seen.length > 0 ? `peers seen over mTLS: ${seen.join('; ')}` : 'no identity seen',
      ok: seen.length > 0,
    });
  }
  return out;
}
