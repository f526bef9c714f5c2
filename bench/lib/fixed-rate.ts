/**
 * One fixed-rate measurement: runs the open-loop generator (its own process) against one
 * topology and charges the CPU that each measured process spent during the recorded window
 * (after the warm-up) to the requests completed in it.
 */
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import type { LatencySummary, LoadGeneratorOptions, LoadGeneratorResult } from '../load-generator';
import { BenchProcess, ProcessRegistry } from './processes';
import { cpuSeconds } from './proc-stats';

/** A process whose CPU is charged to the requests (a proxy, or the upstream for reference). */
export interface MeasuredProcess {
  /** e.g. 'outbound', 'inbound', 'upstream'. */
  readonly role: string;
  /** Root pid (nginx: the master; its workers are summed). */
  readonly pid: number;
}

/** CPU a process spent in a window. */
export interface ProcessCpu {
  readonly role: string;
  /** CPU seconds per 1,000 completed requests (equals vCPU used per 1,000 rps). */
  readonly cpuSecondsPer1kRequests: number;
  /** Average cores used over the window. */
  readonly cores: number;
}

/** One (topology, rate) result. */
export interface FixedRateResult extends LoadGeneratorResult {
  readonly topology: string;
  readonly rate: number;
  readonly cpu: readonly ProcessCpu[];
  /** TCP connections the upstream accepted during the run: near 0 once pools are warm (keep-alive works). */
  readonly upstreamConnectionsOpened: number;
  /** Percentile-by-percentile latency over direct at the same rate (ms); absent for direct itself. */
  addedMs?: { readonly p50: number; readonly p90: number; readonly p99: number };
}

const RECORDING_EVENT = '"event":"recording"';

/** Runs the generator bundle with opts; measures processes over its recorded window. */
export async function measureFixedRate(opts: {
  readonly registry: ProcessRegistry;
  readonly generatorBundle: string;
  readonly topology: string;
  readonly generator: LoadGeneratorOptions;
  readonly measured: readonly MeasuredProcess[];
  /** The upstream's origin, for its connection counter. */
  readonly upstreamOrigin: string;
}): Promise<FixedRateResult> {
  const { generator } = opts;
  const connectionsBefore = (await upstreamStats(opts.upstreamOrigin)).connections;
  const child: BenchProcess = opts.registry.start(`load generator (${opts.topology} @ ${generator.rate} rps)`, process.execPath,
    [opts.generatorBundle, JSON.stringify({ ...generator, announceRecording: true })]);
  let before: number[] | undefined;
  let windowStart = 0;
  // The generator prints an event line when the recorded window starts: snapshot CPU then.
  child.child.stdout?.on('data', (chunk: Buffer) => {
    if (!before && chunk.toString('utf8').includes(RECORDING_EVENT)) {
      before = opts.measured.map((m) => cpuSeconds(m.pid));
      windowStart = performance.now();
    }
  });
  const bound = (generator.warmupSeconds + generator.durationSeconds + (generator.drainSeconds ?? 10) + 15) * 1000;
  const code = await Promise.race([child.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), bound))]);
  const after = opts.measured.map((m) => cpuSeconds(m.pid));
  const windowSeconds = (performance.now() - windowStart) / 1000;
  if (code !== 0 || !before) {
    child.child.kill('SIGKILL');
    throw new Error(`load generator failed (${code}): ${child.describe()}`);
  }
  const result = JSON.parse(child.stdout.split('\n').filter((l) => l.startsWith('{') && !l.includes(RECORDING_EVENT)).pop() ?? '{}') as LoadGeneratorResult;
  const startCpu = before;
  const cpu = opts.measured.map((m, i) => {
    const spent = after[i] - startCpu[i];
    return { role: m.role, cpuSecondsPer1kRequests: result.ok > 0 ? spent / (result.ok / 1000) : NaN, cores: spent / windowSeconds };
  });
  // The stats request opens one connection of its own, which is not counted against the topology.
  const upstreamConnectionsOpened = (await upstreamStats(opts.upstreamOrigin)).connections - connectionsBefore - 1;
  return { ...result, topology: opts.topology, rate: generator.rate, cpu, upstreamConnectionsOpened };
}

/** The upstream's counters (bench/upstream.ts), on a fresh connection that is closed afterwards. */
export async function upstreamStats(origin: string): Promise<{ connections: number; requests: number }> {
  const res = await request(`${origin}/__bench/stats`, { reset: true, headersTimeout: 5000, bodyTimeout: 5000 });
  return (await res.body.json()) as { connections: number; requests: number };
}

/** Added latency of a result over the direct baseline, per percentile. */
export function addedOver(result: LatencySummary, direct: LatencySummary): { p50: number; p90: number; p99: number } {
  return { p50: result.p50 - direct.p50, p90: result.p90 - direct.p90, p99: result.p99 - direct.p99 };
}
