/**
 * Counts the system calls each proxy makes per request, under the bench's fixed-rate load:
 * `strace -c` attached to every thread of each proxy process (nginx: master and worker) while
 * the open-loop generator sends a fixed number of requests. Comparing the sidecars with nginx
 * shows how much of their cost is socket I/O they could batch (writes per response, reads per
 * request) as opposed to JavaScript. strace slows the traced process, so this reports counts
 * only, never latency. Needs /usr/bin/strace; loopback only; stops everything it started.
 *
 * Usage: ts-node --transpile-only bench/syscall-profile.ts [--rate=200] [--seconds=5] [--only=typemesh,nginx] [--bundle=FILE]
 */
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { upstreamStats } from './lib/fixed-rate';
import { processGroup } from './lib/proc-stats';
import { BenchProcess, ProcessRegistry, sleep } from './lib/processes';
import { startTopologies } from './lib/topologies';

/** Calls per request of one syscall. */
interface SyscallRow {
  readonly syscall: string;
  readonly callsPerRequest: number;
}

/** Parses the table `strace -c` prints (columns: % time, seconds, usecs/call, calls, [errors], syscall). */
export function parseStraceSummary(text: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (m && m[2] !== 'total') calls.set(m[2], Number(m[1]));
  }
  return calls;
}

function threadsOf(pids: readonly number[]): number[] {
  return pids.flatMap((pid) => {
    try {
      return readdirSync(`/proc/${pid}/task`).map(Number);
    } catch {
      return [];
    }
  });
}

async function main(): Promise<void> {
  const flags = new Map(process.argv.slice(2).map((a) => {
    const m = /^--([a-z]+)=(.*)$/.exec(a);
    if (!m) throw new Error(`unknown argument "${a}" (use --rate=N, --seconds=N, --only=ids, --bundle=FILE)`);
    return [m[1], m[2]] as const;
  }));
  const rate = Number(flags.get('rate') ?? 200);
  const seconds = Number(flags.get('seconds') ?? 5);
  const only = (flags.get('only') ?? 'typemesh,typemesh-no-telemetry,nginx').split(',');
  const registry = new ProcessRegistry();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'typemesh-syscalls-'));
  const stop = (): void => {
    void registry.stopAll().finally(() => {
      rmSync(tmp, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    const { helpers, upstreamPort, ready, skipped } = await startTopologies({
      registry, tmp, only, requestBytes: 1024, responseBytes: 1024, proxyBundle: flags.get('bundle') ? path.resolve(flags.get('bundle')!) : undefined,
    });
    for (const [id, why] of Object.entries(skipped)) process.stderr.write(`skipped ${id}: ${why}\n`);
    const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;
    for (const t of ready) {
      // Warm the pools and the JIT untraced first.
      const warm = registry.start('warm-up', process.execPath, [helpers.loadGenerator, JSON.stringify({ origin: t.origin, host: t.host, path: '/bench', rate, warmupSeconds: 0, durationSeconds: 2 })]);
      await warm.exited;
      const tracers: Array<{ role: string; proc: BenchProcess; out: string }> = t.proxies.map((p) => {
        const out = path.join(tmp, `strace-${t.id}-${p.role}.txt`);
        const pids = threadsOf(processGroup(p.pid));
        const proc = registry.start(`strace ${t.id} ${p.role}`, '/usr/bin/strace', ['-c', '-q', '-o', out, ...pids.flatMap((pid) => ['-p', String(pid)])]);
        return { role: p.role, proc, out };
      });
      await sleep(500); // strace attaches asynchronously
      const before = (await upstreamStats(upstreamOrigin)).requests;
      const gen = registry.start('load', process.execPath, [helpers.loadGenerator, JSON.stringify({ origin: t.origin, host: t.host, path: '/bench', rate, warmupSeconds: 0, durationSeconds: seconds })]);
      await gen.exited;
      const requests = (await upstreamStats(upstreamOrigin)).requests - before;
      for (const tr of tracers) tr.proc.child.kill('SIGINT');
      await Promise.all(tracers.map((tr) => tr.proc.exited));
      for (const tr of tracers) {
        const calls = parseStraceSummary(readFileSync(tr.out, 'utf8'));
        const rows: SyscallRow[] = [...calls.entries()].map(([syscall, n]) => ({ syscall, callsPerRequest: n / requests }))
          .filter((r) => r.callsPerRequest >= 0.05).sort((a, b) => b.callsPerRequest - a.callsPerRequest);
        const total = [...calls.values()].reduce((a, b) => a + b, 0) / requests;
        process.stdout.write(`${t.id} ${tr.role}: ${total.toFixed(1)} syscalls per request (${requests} requests at ${rate} rps): ` +
          `${rows.map((r) => `${r.syscall} ${r.callsPerRequest.toFixed(2)}`).join(', ')}\n`);
      }
    }
  } finally {
    await registry.stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().then(() => process.exit(0), (e: Error) => {
    process.stderr.write(`syscall profile failed: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
