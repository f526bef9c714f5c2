/**
 * The targets of issue 15, as ratios to the anchors measured in the same run (nginx decides
 * PASS/FAIL; HAProxy, the second anchor, is printed beside it), plus absolute memory bounds per
 * sidecar. Pure functions over the figures of a run, so the PASS/FAIL logic is tested on its own.
 */
import type { TargetResult, TargetStatus } from './report';

/** Sidecar pair CPU per 1,000 requests at 1,000 rps: at most this multiple of the anchor's. */
export const MAX_CPU_RATIO = 1.5;
/** Sidecar pair max throughput: at least this fraction of the anchor's. */
export const MIN_THROUGHPUT_RATIO = 0.5;
/** Sidecar pair added p90 at 1,000 rps: at most this multiple of the anchor's. */
export const MAX_ADDED_P90_RATIO = 1.5;
/** Per sidecar at 1,000 rps: peak RSS (VmHWM) at most this many MB. */
export const MAX_RSS_MB = 60;
/** Per sidecar at 1,000 rps: peak private memory (RssAnon) at most this many MB. */
export const MAX_PRIVATE_MB = 30;
/**
 * An anchor's added p90 below this (ms) is taken as this: on loopback nginx can add less than
 * the measurement's noise, even a negative figure, and a ratio to ~0 would mean nothing.
 */
export const ADDED_P90_RESOLUTION_MS = 0.01;

/** The pair-level figures of one topology in a run (undefined when not measured). */
export interface PairFigures {
  /** CPU-seconds per 1,000 requests at 1,000 rps, both proxies summed. */
  readonly cpuPer1k?: number;
  /** Closed-loop maximum requests per second. */
  readonly maxRps?: number;
  /** Added p90 over direct at 1,000 rps, ms. */
  readonly addedP90Ms?: number;
}

/** Per-process memory of a sidecar at the fixed rates. */
export interface SidecarMemory {
  readonly role: string;
  readonly rssMB?: number;
  readonly privateMB?: number;
}

const defined = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);

/** mesh / anchor, or undefined when either is missing or the anchor is not positive. */
export function ratio(mesh: number | undefined, anchor: number | undefined): number | undefined {
  if (!defined(mesh) || !defined(anchor) || anchor <= 0) return undefined;
  return mesh / anchor;
}

function status(ok: boolean | undefined): TargetStatus {
  return ok === undefined ? 'SKIP' : ok ? 'PASS' : 'FAIL';
}

type Kind = 'cpu' | 'throughput' | 'latency';

const KINDS: ReadonlyArray<{ kind: Kind; name: string; limit: number; atMost: boolean; figure: (p: PairFigures) => number | undefined; format: (v: number) => string }> = [
  { kind: 'cpu', name: 'CPU per 1,000 requests @1,000 rps, pair (outbound + inbound)', limit: MAX_CPU_RATIO, atMost: true, figure: (p) => p.cpuPer1k, format: (v) => `${v.toFixed(3)} CPU-s` },
  { kind: 'throughput', name: 'max throughput, pair', limit: MIN_THROUGHPUT_RATIO, atMost: false, figure: (p) => p.maxRps, format: (v) => `${v.toFixed(0)} rps` },
  {
    kind: 'latency', name: 'added p90 @1,000 rps, pair', limit: MAX_ADDED_P90_RATIO, atMost: true,
    figure: (p) => (defined(p.addedP90Ms) ? Math.max(p.addedP90Ms, ADDED_P90_RESOLUTION_MS) : undefined), format: (v) => `${v.toFixed(3)} ms`,
  },
];

/**
 * The ratio targets: one row per figure, PASS/FAIL against `primary` (nginx), with every
 * anchor's figure and the sidecar pair's ratio to it in `anchors`.
 */
export function ratioTargets(mesh: PairFigures, anchors: Readonly<Record<string, PairFigures>>, primary = 'nginx'): TargetResult[] {
  return KINDS.map((k) => {
    const m = k.figure(mesh);
    const cells: Record<string, string> = {};
    for (const [id, a] of Object.entries(anchors)) {
      const v = k.figure(a);
      const r = ratio(m, v);
      cells[id] = v === undefined ? 'not measured' : `${k.format(v)} (${r === undefined ? '-' : `${r.toFixed(2)}x`})`;
    }
    const r = ratio(m, k.figure(anchors[primary] ?? {}));
    return {
      name: k.name,
      target: `${k.atMost ? '<=' : '>='} ${k.limit}x ${primary}`,
      measured: m === undefined ? 'not measured' : `${k.format(m)}${r === undefined ? '' : ` = ${r.toFixed(2)}x ${primary}`}`,
      status: status(r === undefined ? undefined : k.atMost ? r <= k.limit : r >= k.limit),
      anchors: cells,
    };
  });
}

/** The absolute memory targets, one row per sidecar process and bound. */
export function memoryTargets(sidecars: readonly SidecarMemory[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const s of sidecars) {
    out.push({
      name: `peak RSS @<=1,000 rps, ${s.role} sidecar`, target: `<= ${MAX_RSS_MB} MB`,
      measured: defined(s.rssMB) ? `${s.rssMB.toFixed(1)} MB` : 'not measured',
      status: status(defined(s.rssMB) ? s.rssMB <= MAX_RSS_MB : undefined),
    });
    out.push({
      name: `peak private memory @<=1,000 rps, ${s.role} sidecar`, target: `<= ${MAX_PRIVATE_MB} MB`,
      measured: defined(s.privateMB) ? `${s.privateMB.toFixed(1)} MB` : 'not measured',
      status: status(defined(s.privateMB) ? s.privateMB <= MAX_PRIVATE_MB : undefined),
    });
  }
  return out;
}
