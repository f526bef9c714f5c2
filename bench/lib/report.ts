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
}

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
  out.push('');
  out.push('Targets:');
  const floorIds = [...new Set(r.targets.flatMap((t) => Object.keys(t.floors ?? {})))];
  out.push(table(['status', 'target', 'required', 'measured', ...floorIds.map((f) => `${f} (same run)`)],
    r.targets.map((t) => [t.status, t.name, t.target, t.measured, ...floorIds.map((f) => t.floors?.[f] ?? '-')])));
  if (floorIds.length) {
    out.push('Floors: minimal Node proxy pairs on the same ports, certificates and upstream (bench/floors). floor-tls-relay moves');
    out.push('the bytes through TLS with no HTTP at all: a target below it cannot be met by any Node.js proxy on this machine.');
  }
  return out.join('\n');
}
