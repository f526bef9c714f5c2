/**
 * The bench's results: one JSON document (bench/results/latest.json) and the same figures as
 * plain-text tables with the targets marked PASS/FAIL, printed and written beside the JSON.
 */
import type { FixedRateResult, ProcessCpu } from './fixed-rate';

/** Closed-loop maximum throughput of one topology. */
export interface MaxThroughputResult {
  readonly topology: string;
  readonly requestsPerSecond: number;
  readonly requests: number;
  readonly errors: number;
  readonly cpu: readonly ProcessCpu[];
}

/** Peak resident set of one proxy process (or nginx master + worker). */
export interface MemoryResult {
  readonly topology: string;
  readonly role: string;
  /** VmHWM after the fixed-rate runs (what the per-1,000-rps target is about). */
  readonly peakRssMBAtFixedRates: number;
  /** VmHWM at the end, after the max-throughput run too. */
  readonly peakRssMBOverall: number;
  /** Peak RssAnon (private memory, sampled) during the fixed-rate runs. */
  readonly peakAnonMBAtFixedRates: number;
  /** Peak RssAnon over the whole run. */
  readonly peakAnonMBOverall: number;
}

/** Time to synthesize a chart of many MeshServices. */
export type SynthResult =
  | { readonly services: number; readonly synthMs: number; readonly constructMs: number; readonly yamlBytes: number; readonly objects: number }
  | { readonly skipped: string };

export type TargetStatus = 'PASS' | 'FAIL' | 'SKIP';

/** One target of the issue, checked against this run. */
export interface TargetResult {
  readonly name: string;
  readonly target: string;
  readonly measured: string;
  readonly status: TargetStatus;
  /** The same figure for the floor pairs of this run (floor id -> value), where one applies. */
  readonly floors?: Readonly<Record<string, string>>;
  /** The anchors' figures of this run and the sidecar pair's ratio to each (anchor id -> "figure (ratio)"). */
  readonly anchors?: Readonly<Record<string, string>>;
}

/**
 * The overload run: the sidecar pair offered a multiple of its own measured max throughput,
 * open loop, with more connections than its admission limit, so that it must shed.
 */
export type OverloadResult = {
  readonly topology: string;
  /** Offered requests per second (multiple x the pair's max throughput of this run). */
  readonly offeredRps: number;
  readonly multiple: number;
  readonly connections: number;
  readonly scheduled: number;
  /** Requests answered 200 (admitted and served). */
  readonly ok: number;
  /** Requests answered 503 by the sidecars' admission control (flag OL in their metrics). */
  readonly shedOL: number;
  /** Every failure by kind (status 503 includes the shed ones; shedOL is from the sidecars' metrics). */
  readonly errorKinds: Readonly<Record<string, number>>;
  readonly achievedRps: number;
  /** Latency of the admitted requests from their intended send time (ms): includes the generator's own lateness. */
  readonly admittedLatencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
  /** Latency of the admitted requests from their actual dispatch (ms): what the proxies (and the kernel's queues) added. */
  readonly admittedServiceMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
  /** How late the generator dispatched (ms, p99): when high, the machine (not the proxy) could not keep up with the schedule. */
  readonly generatorLagP99Ms: number;
  /** The generator's CPU use in cores. */
  readonly generatorCpuCores: number;
  /** Cores each measured process used over the recorded window (outbound, inbound, upstream). */
  readonly cpuCores: Readonly<Record<string, number>>;
} | { readonly skipped: string };

/** A topology as described in the report. */
export interface TopologyDescription {
  readonly id: string;
  readonly description: string;
}

export interface BenchReport {
  readonly schemaVersion: 1;
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly environment: Readonly<Record<string, unknown>>;
  readonly method: Readonly<Record<string, unknown>>;
  readonly topologies: readonly TopologyDescription[];
  readonly fixedRate: readonly FixedRateResult[];
  readonly maxThroughput: readonly MaxThroughputResult[];
  readonly memory: readonly MemoryResult[];
  readonly synth: SynthResult;
  readonly targets: readonly TargetResult[];
  /** Graceful overload at a multiple of the pair's capacity (absent in reports written before it). */
  readonly overload?: OverloadResult;
  /** Topologies that could not run, and why. */
  readonly skipped: Readonly<Record<string, string>>;
}

const ms = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(3));
const signed = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '-' : `${v >= 0 ? '+' : ''}${v.toFixed(3)}`);

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const cpuCell = (cpu: readonly ProcessCpu[]): string => cpu.filter((c) => c.role !== 'upstream')
  .map((c) => `${c.role} ${c.cpuSecondsPer1kRequests.toFixed(3)}`).join(', ') || '-';

/** The overload run's paragraph. */
export function formatOverload(o: OverloadResult): string {
  if ('skipped' in o) return `Overload run: skipped (${o.skipped}).`;
  const other = Object.entries(o.errorKinds).filter(([k]) => k !== 'status 503').map(([k, v]) => `${k}: ${v}`).join(', ');
  return [
    `Overload: ${o.topology} offered ${o.offeredRps.toFixed(0)} rps (${o.multiple}x its max throughput above), open loop over ${o.connections} connections.`,
    table(['scheduled', 'served 200', 'served rps', 'shed 503 (OL)', 'other errors', 'admitted p50', 'p90', 'p99', 'max', 'service p50', 'p90', 'p99', 'gen lag p99', 'gen cores'],
      [[String(o.scheduled), String(o.ok), o.achievedRps.toFixed(0), String(o.shedOL), other || '0',
        ms(o.admittedLatencyMs.p50), ms(o.admittedLatencyMs.p90), ms(o.admittedLatencyMs.p99), ms(o.admittedLatencyMs.max),
        ms(o.admittedServiceMs.p50), ms(o.admittedServiceMs.p90), ms(o.admittedServiceMs.p99), ms(o.generatorLagP99Ms), o.generatorCpuCores.toFixed(2)]]),
    `admitted = from the intended send time (open loop); service = from the actual dispatch; gen lag = how late the generator itself dispatched. Cores used: ${Object.entries(o.cpuCores).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}.`,
  ].join('\n');
}

/** The plain-text tables of a report. */
export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  out.push(`TypeMesh bench, ${r.startedAt}, ${r.wallSeconds.toFixed(0)} s wall; ${JSON.stringify(r.environment)}`);
  out.push('');
  out.push('Fixed rate: open loop, latency (ms) from each request\'s intended send time (no coordinated omission),');
  out.push(`1 KiB POST -> 1 KiB response, keep-alive; added = percentile minus direct's at the same rate. CPU = CPU-seconds per 1,000 requests (= vCPU per 1,000 rps).`);
  out.push(table(
    ['topology', 'rate', 'achieved', 'p50', 'p90', 'p99', '+p50', '+p90', '+p99', 'errors', 'proxy CPU-s/1k req', 'upstream', 'new conns', 'gen lag p99'],
    r.fixedRate.map((f) => [
      f.topology, String(f.rate), f.achievedRps.toFixed(0), ms(f.latencyMs.p50), ms(f.latencyMs.p90), ms(f.latencyMs.p99),
      signed(f.addedMs?.p50), signed(f.addedMs?.p90), signed(f.addedMs?.p99), String(f.errors), cpuCell(f.cpu),
      (f.cpu.find((c) => c.role === 'upstream')?.cpuSecondsPer1kRequests ?? NaN).toFixed(3), String(f.upstreamConnectionsOpened), ms(f.sendLagMs.p99),
    ]),
  ));
  out.push('');
  out.push('Max throughput: closed loop (wrk, 1 thread, fixed connections), requests per second.');
  out.push(table(['topology', 'max rps', 'errors', 'proxy CPU-s/1k req'],
    r.maxThroughput.map((m) => [m.topology, m.requestsPerSecond.toFixed(0), String(m.errors), cpuCell(m.cpu)])));
  out.push('');
  out.push('Peak memory, MB = 10^6 bytes: RSS = VmHWM (includes the shared, file-backed pages of the node/nginx binary); anon = peak RssAnon');
  out.push('(private memory, sampled every 200 ms). nginx = master + worker; direct/upstream = the plain Node HTTP server, for reference.');
  out.push(table(['topology', 'process', 'RSS fixed rates', 'RSS after max', 'anon fixed rates', 'anon after max'],
    r.memory.map((m) => [m.topology, m.role, m.peakRssMBAtFixedRates.toFixed(1), m.peakRssMBOverall.toFixed(1),
      m.peakAnonMBAtFixedRates.toFixed(1), m.peakAnonMBOverall.toFixed(1)])));
  out.push('');
  if ('skipped' in r.synth) out.push(`Chart synthesis: skipped (${r.synth.skipped}).`);
  else out.push(`Chart synthesis: ${r.synth.services} MeshServices, construct ${r.synth.constructMs.toFixed(0)} ms + synth ${r.synth.synthMs.toFixed(0)} ms, ${r.synth.objects} objects, ${(r.synth.yamlBytes / 1024).toFixed(0)} KiB of YAML.`);
  for (const [topology, why] of Object.entries(r.skipped)) out.push(`Skipped topology ${topology}: ${why}`);
  if (r.overload) {
    out.push('');
    out.push(formatOverload(r.overload));
  }
  out.push('');
  out.push('Targets (ratios to the anchors measured in this run; PASS/FAIL against nginx, the pair\'s ratio to each anchor in brackets):');
  const anchorIds = [...new Set(r.targets.flatMap((t) => Object.keys(t.anchors ?? {})))];
  const floorIds = [...new Set(r.targets.flatMap((t) => Object.keys(t.floors ?? {})))];
  out.push(table(['status', 'target', 'required', 'measured', ...anchorIds.map((a) => `${a} (same run)`), ...floorIds.map((f) => `${f} (same run)`)],
    r.targets.map((t) => [t.status, t.name, t.target, t.measured, ...anchorIds.map((a) => t.anchors?.[a] ?? '-'), ...floorIds.map((f) => t.floors?.[f] ?? '-')])));
  if (floorIds.length) {
    out.push('Floors: minimal Node proxy pairs on the same ports, certificates and upstream (bench/floors). floor-tls-relay moves');
    out.push('the bytes through TLS with no HTTP at all: a target below it cannot be met by any Node.js proxy on this machine.');
  }
  return out.join('\n');
}
