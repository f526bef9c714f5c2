/**
 * Open-loop, fixed-rate HTTP load generator with coordinated-omission-free latency accounting.
 *
 * Why our own: wrk (Debian) is closed-loop only, wrk2 is not packaged in Debian, and autocannon's
 * fixed rate measures latency from the moment a request is actually written, so a stalled
 * server silently lowers the offered load and hides the stall (coordinated omission). Here
 * request i has an intended send time t0 + i/rate that does not depend on any response; its
 * latency is measured from that intended time to the end of its response body. A server that
 * stalls therefore makes every request scheduled during the stall count as late, as a real
 * client population would see it. The generator runs in its own process (the harness measures
 * its CPU and its own send lag), on undici's pool with keep-alive connections, so a 1,000 rps
 * run costs it a small fraction of one core.
 *
 * Usage: node bench-load-generator.js '<LoadGeneratorOptions as JSON>'
 * Prints one JSON line (LoadGeneratorResult) on stdout and exits.
 */
import { Worker } from 'node:worker_threads';
import { Pool } from 'undici';

/** What the harness asks for. */
export interface LoadGeneratorOptions {
  /** Origin to connect to, e.g. http://127.0.0.1:15001. */
  readonly origin: string;
  /** Host header to send (the sidecar routes on it). @default the origin's host */
  readonly host?: string;
  /** Request path. @default '/' */
  readonly path?: string;
  /** Requests per second, fixed. */
  readonly rate: number;
  /** Seconds sent at the rate before recording starts (connections, JIT, pools warm up). */
  readonly warmupSeconds: number;
  /** Seconds recorded. */
  readonly durationSeconds: number;
  /** Maximum keep-alive connections; open loop needs enough that the pool is not the queue. @default 64 */
  readonly connections?: number;
  /** Bytes of the POST body. @default 1024 */
  readonly requestBytes?: number;
  /** Seconds to wait for the last responses after the schedule ends. @default 10 */
  readonly drainSeconds?: number;
  /** Print {"event":"recording"} on stdout when the recorded window starts (the harness snapshots CPU then). @default false */
  readonly announceRecording?: boolean;
}

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** What the generator reports. */
export interface LoadGeneratorResult {
  /** Requests scheduled in the recorded window. */
  readonly scheduled: number;
  /** Recorded requests that completed with status 200 and the full body. */
  readonly ok: number;
  /** Recorded requests that failed (non-200, connection error, or no answer before the drain ended). */
  readonly errors: number;
  /** Error kinds and counts, for diagnosis. */
  readonly errorKinds: Readonly<Record<string, number>>;
  /** Completed requests per second over the recorded window. */
  readonly achievedRps: number;
  /** Latency from the intended send time (coordinated-omission corrected): the headline figure. */
  readonly latencyMs: LatencySummary;
  /** Latency from the actual dispatch (what a closed-loop tool would report), for comparison. */
  readonly serviceTimeMs: LatencySummary;
  /** How late the generator itself dispatched requests (timer granularity, its own CPU). */
  readonly sendLagMs: LatencySummary;
  /** The generator's own CPU use over the recorded window, in cores (1 = one full core). */
  readonly generatorCpuCores: number;
  /** p50 and max latency (ms) of the requests scheduled in each second of the window: shows when a backlog formed. */
  readonly perSecond: ReadonlyArray<{ readonly second: number; readonly p50: number; readonly max: number }>;
}

/** One monotonic clock for both threads: milliseconds since this base, from process.hrtime. */
const HRTIME_BASE = process.hrtime.bigint();
const now = (): number => Number(process.hrtime.bigint() - HRTIME_BASE) / 1e6;

/** The clock thread (plain JS, run with eval so the bundle stays one file). */
const CLOCK_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const { base, t0, intervalMs, total } = workerData;
const now = () => Number(process.hrtime.bigint() - base) / 1e6;
const cell = new Int32Array(new SharedArrayBuffer(4));
let i = 0;
while (i < total) {
  const wait = t0 + i * intervalMs - now();
  if (wait > 0) Atomics.wait(cell, 0, 0, wait);
  const t = now();
  let upTo = i;
  while (upTo < total && t0 + upTo * intervalMs <= t) upTo++;
  if (upTo > i) {
    parentPort.postMessage(upTo);
    i = upTo;
  }
}
`;

function summarize(values: Float64Array): LatencySummary {
  if (values.length === 0) return { p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(values).sort();
  // Nearest-rank percentiles: exact over every sample (no histogram bucketing).
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted[sorted.length - 1], mean: sum / sorted.length };
}

/** Runs one fixed-rate measurement in this process. */
export async function runLoad(opts: LoadGeneratorOptions): Promise<LoadGeneratorResult> {
  const url = new URL(opts.path ?? '/', opts.origin);
  const pool = new Pool(url.origin, {
    connections: opts.connections ?? 64,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const body = Buffer.alloc(opts.requestBytes ?? 1024, 'q');
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (opts.host) headers.host = opts.host;

  const intervalMs = 1000 / opts.rate;
  const warmup = Math.round(opts.rate * opts.warmupSeconds);
  const recorded = Math.round(opts.rate * opts.durationSeconds);
  const total = warmup + recorded;
  const latency = new Float64Array(recorded);
  const service = new Float64Array(recorded);
  const lag = new Float64Array(recorded);
  const done = new Uint8Array(recorded);
  const errorKinds: Record<string, number> = {};
  let ok = 0;
  let outstanding = 0;
  let cpuAtWindowStart: NodeJS.CpuUsage | undefined;
  let windowStart = 0;
  let lastRecordedEnd = 0;

  const fail = (i: number, kind: string): void => {
    if (i >= warmup) errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };

  const send = (i: number, intended: number): void => {
    const dispatched = now();
    outstanding++;
    pool.request({ path: url.pathname, method: 'POST', headers, body }).then(async (res) => {
      const received = await res.body.arrayBuffer();
      const end = now();
      if (res.statusCode !== 200) return fail(i, `status ${res.statusCode}`);
      if (received.byteLength === 0) return fail(i, 'empty body');
      if (i < warmup) return;
      const r = i - warmup;
      latency[r] = end - intended;
      service[r] = end - dispatched;
      lag[r] = dispatched - intended;
      done[r] = 1;
      ok++;
      lastRecordedEnd = end;
    }, (err: Error & { code?: string }) => fail(i, err.code ?? err.name)).finally(() => {
      outstanding--;
    });
  };

  // The schedule: every request has a fixed intended time, independent of any response. A
  // clock thread sleeps until each intended time with Atomics.wait (sub-millisecond precision,
  // unlike setTimeout's 1 ms ticks, and without spinning a core) and tells this thread how far
  // the schedule has come; this thread sends everything that is due. If this thread is busy,
  // the due requests go out together, late, and are charged that lateness.
  const t0 = now() + 50;
  let next = 0;
  await new Promise<void>((resolve, reject) => {
    const clock = new Worker(CLOCK_THREAD, { eval: true, workerData: { base: HRTIME_BASE, t0, intervalMs, total } });
    clock.on('message', (upTo: number) => {
      while (next < upTo) {
        const intended = t0 + next * intervalMs;
        if (next === warmup) {
          cpuAtWindowStart = process.cpuUsage();
          windowStart = intended;
          // Tells the harness to snapshot the measured processes' CPU now.
          if (opts.announceRecording) process.stdout.write('{"event":"recording"}\n');
        }
        send(next, intended);
        next++;
      }
      if (next >= total) resolve();
    });
    clock.on('error', reject);
  });

  const drainDeadline = now() + (opts.drainSeconds ?? 10) * 1000;
  while (outstanding > 0 && now() < drainDeadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const cpu = process.cpuUsage(cpuAtWindowStart);
  const windowEnd = Math.max(lastRecordedEnd, t0 + total * intervalMs);
  let missing = 0;
  for (let r = 0; r < recorded; r++) if (!done[r]) missing++;
  const failed = Object.values(errorKinds).reduce((a, b) => a + b, 0);
  if (missing > failed) errorKinds['no answer before drain deadline'] = missing - failed;
  // Copy before destroying the pool: destroy fails the stragglers, which are already counted.
  const kinds = { ...errorKinds };
  await pool.destroy();

  const okOnly = (a: Float64Array): Float64Array => a.filter((_, r) => done[r] === 1);
  const perSecond: Array<{ second: number; p50: number; max: number }> = [];
  for (let sec = 0; sec * opts.rate < recorded; sec++) {
    const from = Math.round(sec * opts.rate);
    const to = Math.min(recorded, Math.round((sec + 1) * opts.rate));
    const slice = latency.slice(from, to).filter((_, k) => done[from + k] === 1);
    const summary = summarize(slice);
    perSecond.push({ second: sec, p50: Number(summary.p50.toFixed(3)), max: Number(summary.max.toFixed(3)) });
  }
  const windowSeconds = (windowEnd - windowStart) / 1000;
  return {
    scheduled: recorded,
    ok,
    errors: recorded - ok,
    errorKinds: kinds,
    achievedRps: ok / windowSeconds,
    latencyMs: summarize(okOnly(latency)),
    serviceTimeMs: summarize(okOnly(service)),
    sendLagMs: summarize(okOnly(lag)),
    generatorCpuCores: (cpu.user + cpu.system) / 1e6 / windowSeconds,
    perSecond,
  };
}

if (require.main === module) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as LoadGeneratorOptions;
  runLoad(opts).then((result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  }, (err) => {
    process.stderr.write(`load generator failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
