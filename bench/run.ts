/**
 * `npm run bench`: latency, CPU and memory of the TypeMesh sidecar pair against direct calls
 * and an nginx pair, on loopback, in one bounded run. See docs/performance.md for the method.
 *
 * Flags:
 *   --quick                 short windows for debugging the harness (results go to bench/results/quick.*.tmp)
 *   --rates=500,1000        fixed rates (requests per second)
 *   --warmup=S --duration=S warm-up and recorded seconds per fixed-rate run
 *   --max-duration=S        recorded seconds of each max-throughput run
 *   --connections=N         wrk connections for max throughput
 *   --only=direct,typemesh,typemesh-no-telemetry,nginx,haproxy
 *                           floor-tls-relay,floor-node-http,floor-llhttp (the default: all of them)
 *   --no-floors             skip the floor pairs (bench/floors: minimal Node proxies shown beside the targets)
 *   --no-synth              skip the 100-service chart synthesis timing
 *   --cpu-prof=DIR          run the sidecars under `node --cpu-prof` and write the profiles to DIR
 *                           (summarize with bench/profile-summary.ts)
 *   --node-args="..."       extra node flags for the sidecars, e.g. "--max-semi-space-size=2"
 *   --proxy-bundle=FILE     run this sidecar bundle instead of rebuilding dist/proxy/typemesh-proxy.js (A/B runs)
 *   --out=FILE              JSON output (default bench/results/latest.json)
 *   --no-overload           skip the overload run
 *   --overload-multiple=X   the overload run offers X times the sidecar pair's measured max throughput (default 2)
 *   --overload-duration=S   recorded seconds of the overload run (default 10, --quick 3)
 *   --overload-connections=N  connections of the overload run's generator (default 2048: above the
 *                           sidecar's default admission limit of 1,024 requests in flight, so it must shed)
 *   --overload-queue-delay=MS the TypeMesh pairs run with overload.maxQueueDelayMs=MS, the adaptive limit
 *                           (default: unset, the sidecar's default, off). It acts only above 32 requests in
 *                           flight per listener
 *   --strict                exit 1 when a target FAILs
 *   --help                  this text
 *
 * Targets are ratios to the nginx pair measured in the same run (PASS/FAIL), with the HAProxy
 * pair's ratios printed beside them: see bench/lib/targets.ts and docs/performance.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoadGeneratorOptions } from './load-generator';
import { PROXY_BUNDLE, REPO_ROOT } from './lib/bundle';
import { request } from 'undici';
import { addedOver, FixedRateResult, MeasuredProcess, measureFixedRate } from './lib/fixed-rate';
import { HAPROXY_BINARY, haproxyAvailable } from './lib/haproxy';
import { NGINX_BINARY, nginxAvailable } from './lib/nginx';
import { AnonPeakSampler, cpuSeconds, peakRssBytes } from './lib/proc-stats';
import { ProcessRegistry } from './lib/processes';
import { BenchReport, formatReport, MaxThroughputResult, MemoryResult, OverloadResult, SynthResult, TargetResult, TopologyDescription } from './lib/report';
import { memoryTargets, PairFigures, ratioTargets } from './lib/targets';
import { timeChartSynthesis } from './lib/synth-timing';
import { ANCHOR_IDS, DEFAULT_TOPOLOGY_IDS, FLOOR_IDS, startTopologies, Topology, TOPOLOGY_IDS } from './lib/topologies';
import { runWrk, wrkAvailable, writeWrkScript } from './lib/wrk';

/** The whole run must end within this, whatever happens (the issue's bound is 10 minutes). */
const HARD_LIMIT_MS = 9.5 * 60 * 1000;
const REQUEST_BYTES = 1024;
const RESPONSE_BYTES = 1024;

interface Options {
  readonly quick: boolean;
  readonly rates: readonly number[];
  readonly warmupSeconds: number;
  readonly durationSeconds: number;
  readonly maxDurationSeconds: number;
  readonly connections: number;
  readonly only?: readonly string[];
  readonly synth: boolean;
  readonly cpuProfDir?: string;
  readonly sidecarNodeArgs: readonly string[];
  readonly proxyBundle?: string;
  readonly out: string;
  readonly strict: boolean;
  readonly overload: boolean;
  readonly overloadMultiple: number;
  readonly overloadSeconds: number;
  readonly overloadConnections: number;
  readonly overloadQueueDelayMs: number;
}

function parseOptions(argv: readonly string[]): Options {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unknown argument "${arg}" (flags are --name or --name=value; see bench/run.ts)`);
    flags.set(m[1], m[2] ?? 'true');
  }
  const known = ['quick', 'rates', 'warmup', 'duration', 'max-duration', 'connections', 'only', 'no-floors', 'no-synth', 'cpu-prof', 'node-args', 'proxy-bundle', 'out', 'strict',
    'no-overload', 'overload-multiple', 'overload-duration', 'overload-connections', 'overload-queue-delay', 'help'];
  for (const name of flags.keys()) {
    if (!known.includes(name)) throw new Error(`unknown flag --${name} (known: ${known.map((k) => `--${k}`).join(', ')})`);
  }
  const quick = flags.has('quick');
  const num = (name: string, dflt: number): number => {
    const v = flags.get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!(n > 0)) throw new Error(`--${name} must be a positive number, got "${v}"`);
    return n;
  };
  const results = path.join(REPO_ROOT, 'bench', 'results');
  return {
    quick,
    rates: (flags.get('rates') ?? '500,1000').split(',').map((r) => {
      const n = Number(r);
      if (!(n > 0)) throw new Error(`--rates must be positive numbers separated by commas, got "${r}"`);
      return n;
    }),
    warmupSeconds: num('warmup', quick ? 1 : 3),
    durationSeconds: num('duration', quick ? 3 : 15),
    maxDurationSeconds: num('max-duration', quick ? 2 : 6),
    connections: num('connections', 32),
    only: flags.get('only')?.split(',').map((id) => {
      if (!(TOPOLOGY_IDS as readonly string[]).includes(id)) throw new Error(`--only: unknown topology "${id}" (known: ${TOPOLOGY_IDS.join(', ')})`);
      return id;
    }) ?? (flags.has('no-floors') ? DEFAULT_TOPOLOGY_IDS.filter((id) => !FLOOR_IDS.includes(id)) : [...DEFAULT_TOPOLOGY_IDS]),
    synth: !flags.has('no-synth'),
    cpuProfDir: flags.get('cpu-prof') ? path.resolve(flags.get('cpu-prof')!) : undefined,
    sidecarNodeArgs: (flags.get('node-args') ?? '').split(/\s+/).filter((a) => a.length > 0),
    proxyBundle: flags.get('proxy-bundle') ? path.resolve(flags.get('proxy-bundle')!) : undefined,
    out: path.resolve(flags.get('out') ?? path.join(results, quick ? 'quick.json.tmp' : 'latest.json')),
    strict: flags.has('strict'),
    overload: !flags.has('no-overload'),
    overloadMultiple: num('overload-multiple', 2),
    overloadSeconds: num('overload-duration', quick ? 3 : 10),
    overloadConnections: num('overload-connections', 2048),
    overloadQueueDelayMs: flags.get('overload-queue-delay') === '0' ? 0 : num('overload-queue-delay', 0),
  };
}

/** The usage text: this file's header comment. */
function usage(): string {
  const source = readFileSync(__filename, 'utf8');
  const header = /\/\*\*([\s\S]*?)\*\//.exec(source)?.[1] ?? '';
  return `${header.split('\n').map((l) => l.replace(/^ \* ?/, '')).join('\n').trim()}\n`;
}

const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

function environment(): Record<string, unknown> {
  const version = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (e) {
      // nginx -v writes to stderr
      return String((e as { stderr?: string }).stderr ?? '').trim() || 'unavailable';
    }
  };
  const nginxV = nginxAvailable() ? execFileSync('sh', ['-c', `${NGINX_BINARY} -v 2>&1`], { encoding: 'utf8' }).trim() : 'not installed';
  return {
    node: process.version,
    nginx: nginxV.replace('nginx version: ', ''),
    haproxy: haproxyAvailable() ? version(HAPROXY_BINARY, ['-v']).split('\n')[0].replace('HAProxy version ', '') : 'not installed',
    wrk: wrkAvailable() ? version('sh', ['-c', 'wrk -v 2>&1 | head -1']).split(' [')[0] : 'not installed',
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    kernel: os.release(),
    loadAverageAtStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

function evaluateTargets(fixed: readonly FixedRateResult[], maxResults: readonly MaxThroughputResult[], memory: readonly MemoryResult[], synth: SynthResult): TargetResult[] {
  const at1k = (id: string): FixedRateResult | undefined => fixed.find((f) => f.topology === id && f.rate === 1000);
  /** A figure of each floor pair measured in this run, formatted; undefined when no floor ran. */
  const floorsOf = (figure: (id: string) => string | undefined): Record<string, string> | undefined => {
    const out: Record<string, string> = {};
    for (const id of FLOOR_IDS) {
      const v = figure(id);
      if (v !== undefined) out[id] = v;
    }
    return Object.keys(out).length ? out : undefined;
  };
  const pair = (id: string): PairFigures => {
    const f = at1k(id);
    const cpu = f?.cpu.filter((c) => c.role === 'outbound' || c.role === 'inbound');
    return {
      cpuPer1k: cpu && cpu.length === 2 ? cpu[0].cpuSecondsPer1kRequests + cpu[1].cpuSecondsPer1kRequests : undefined,
      maxRps: maxResults.find((m) => m.topology === id)?.requestsPerSecond,
      addedP90Ms: f?.addedMs?.p90,
    };
  };
  const anchors: Record<string, PairFigures> = {};
  for (const id of ANCHOR_IDS) anchors[id] = pair(id);
  const ratios = ratioTargets(pair('typemesh'), anchors, 'nginx');
  // The floors beside the ratio rows, in the same units.
  const floorCells = [
    floorsOf((id) => pair(id).cpuPer1k?.toFixed(3)),
    floorsOf((id) => pair(id).maxRps?.toFixed(0)),
    floorsOf((id) => pair(id).addedP90Ms?.toFixed(3)),
  ];
  const targets: TargetResult[] = ratios.map((t, i) => ({ ...t, floors: floorCells[i] }));
  targets.push(...memoryTargets(['outbound', 'inbound'].map((role) => {
    const m = memory.find((x) => x.topology === 'typemesh' && x.role === role);
    return { role, rssMB: m?.peakRssMBAtFixedRates, privateMB: m?.peakAnonMBAtFixedRates };
  })));
  const synthMs = 'skipped' in synth ? undefined : synth.constructMs + synth.synthMs;
  targets.push({
    name: `${'skipped' in synth ? 100 : synth.services}-service chart synthesis`, target: '< 2,000 ms',
    measured: synthMs === undefined ? `skipped (${(synth as { skipped: string }).skipped})` : `${synthMs.toFixed(0)} ms`,
    status: synthMs === undefined ? 'SKIP' : synthMs < 2000 ? 'PASS' : 'FAIL',
  });
  return targets;
}

/** Requests the sidecars shed (typemesh_requests_total with response_flags="OL"), summed over their admin ports. */
async function shedCount(adminPorts: readonly number[]): Promise<number> {
  let sum = 0;
  for (const port of adminPorts) {
    const res = await request(`http://127.0.0.1:${port}/metrics`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    const text = await res.body.text();
    for (const line of text.split('\n')) {
      if (line.startsWith('typemesh_requests_total{') && line.includes('response_flags="OL"')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

/**
 * The overload run: the TypeMesh pair offered `multiple` x its own max throughput of this run,
 * open loop, over more connections than its admission limit, so it must shed rather than queue.
 */
async function overloadRun(opts: Options, registry: ProcessRegistry, generatorBundle: string, upstream: MeasuredProcess, upstreamPort: number,
  ready: readonly Topology[], maxResults: readonly MaxThroughputResult[]): Promise<OverloadResult> {
  if (!opts.overload) return { skipped: 'disabled with --no-overload' };
  const t = ready.find((x) => x.id === 'typemesh');
  if (!t || !t.adminPorts) return { skipped: 'the typemesh pair did not run' };
  const max = maxResults.find((m) => m.topology === 'typemesh')?.requestsPerSecond;
  if (!max) return { skipped: 'no max throughput of the typemesh pair (wrk missing?)' };
  const offered = Math.round(max * opts.overloadMultiple);
  const shedBefore = await shedCount(t.adminPorts);
  const result = await measureFixedRate({
    registry, generatorBundle, topology: t.id, measured: [...t.proxies, upstream], upstreamOrigin: `http://127.0.0.1:${upstreamPort}`,
    generator: {
      origin: t.origin, host: t.host, path: '/bench', rate: offered, warmupSeconds: Math.min(2, opts.warmupSeconds), durationSeconds: opts.overloadSeconds,
      connections: opts.overloadConnections, requestBytes: REQUEST_BYTES, drainSeconds: 10,
    },
  });
  const shedOL = (await shedCount(t.adminPorts)) - shedBefore;
  const l = result.latencyMs;
  return {
    topology: t.id, offeredRps: offered, multiple: opts.overloadMultiple, connections: opts.overloadConnections,
    scheduled: result.scheduled, ok: result.ok, shedOL, errorKinds: result.errorKinds, achievedRps: result.achievedRps,
    admittedLatencyMs: { p50: l.p50, p90: l.p90, p99: l.p99, max: l.max },
    admittedServiceMs: { p50: result.serviceTimeMs.p50, p90: result.serviceTimeMs.p90, p99: result.serviceTimeMs.p99, max: result.serviceTimeMs.max },
    generatorLagP99Ms: result.sendLagMs.p99,
    generatorCpuCores: result.generatorCpuCores,
    cpuCores: Object.fromEntries(result.cpu.map((c) => [c.role, c.cores])),
  };
}

async function main(opts: Options, registry: ProcessRegistry, tmp: string): Promise<number> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const env = environment();
  log(`temp dir ${tmp}; rates ${opts.rates.join(', ')} rps; ${opts.warmupSeconds} s warm-up + ${opts.durationSeconds} s per run`);

  const { helpers, upstream, upstreamPort, ready, skipped } = await startTopologies({
    registry, tmp, only: opts.only, sidecarNodeArgs: opts.sidecarNodeArgs, cpuProfDir: opts.cpuProfDir, proxyBundle: opts.proxyBundle,
    overloadQueueDelayMs: opts.overloadQueueDelayMs,
    requestBytes: REQUEST_BYTES, responseBytes: RESPONSE_BYTES,
  });
  for (const [t, why] of Object.entries(skipped)) log(`SKIPPED ${t}: ${why}`);
  if (ready.length === 0) throw new Error('no topology could run');

  const anonSampler = new AnonPeakSampler([upstream.pid, ...ready.flatMap((t) => t.proxies.map((p) => p.pid))]);
  anonSampler.start();

  // Fixed rates. Topologies are interleaved per rate so that a drift in the machine's load
  // (other users of the 2 cores) spreads over all of them instead of biasing one.
  const fixed: FixedRateResult[] = [];
  for (const rate of opts.rates) {
    for (const t of ready) {
      const generator: LoadGeneratorOptions = {
        origin: t.origin, host: t.host, path: '/bench', rate, warmupSeconds: opts.warmupSeconds, durationSeconds: opts.durationSeconds,
        connections: 64, requestBytes: REQUEST_BYTES,
      };
      const result = await measureFixedRate({ registry, generatorBundle: helpers.loadGenerator, topology: t.id, generator, measured: [...t.proxies, upstream], upstreamOrigin: `http://127.0.0.1:${upstreamPort}` });
      const direct = fixed.find((f) => f.topology === 'direct' && f.rate === rate);
      if (direct && t.id !== 'direct') result.addedMs = addedOver(result.latencyMs, direct.latencyMs);
      fixed.push(result);
      log(`${t.id} @ ${rate} rps: p50 ${result.latencyMs.p50.toFixed(3)} p90 ${result.latencyMs.p90.toFixed(3)} p99 ${result.latencyMs.p99.toFixed(3)} ms, ` +
        `${result.errors} errors, ${result.upstreamConnectionsOpened} new upstream conns, ${result.cpu.map((c) => `${c.role} ${c.cpuSecondsPer1kRequests.toFixed(3)}`).join(' ')} CPU-s/1k, generator ${result.generatorCpuCores.toFixed(2)} cores`);
    }
  }

  const rssMB = (pid: number): number => peakRssBytes(pid) / 1e6;
  const rssAtFixed = new Map<string, number>();
  const anonAtFixed = new Map<string, number>();
  for (const t of ready) {
    for (const p of t.proxies) {
      rssAtFixed.set(`${t.id}/${p.role}`, rssMB(p.pid));
      anonAtFixed.set(`${t.id}/${p.role}`, anonSampler.peakBytes(p.pid) / 1e6);
    }
  }
  // For reference: the floor of a plain Node HTTP server that did the same requests.
  rssAtFixed.set('direct/upstream', rssMB(upstream.pid));
  anonAtFixed.set('direct/upstream', anonSampler.peakBytes(upstream.pid) / 1e6);

  // Maximum throughput, closed loop: a short unrecorded run first warms the pools to the
  // higher connection count, then the recorded one.
  const maxResults: MaxThroughputResult[] = [];
  if (!wrkAvailable()) {
    log('wrk is not installed: max throughput skipped (apt-get install wrk)');
  } else {
    for (const t of ready) {
      const script = writeWrkScript(tmp, REQUEST_BYTES, t.host);
      const url = `${t.origin}/bench`;
      await runWrk(registry, url, script, opts.connections, 2);
      const measured = [...t.proxies, upstream];
      const before = measured.map((m) => cpuSeconds(m.pid));
      const wrk = await runWrk(registry, url, script, opts.connections, opts.maxDurationSeconds);
      const after = measured.map((m) => cpuSeconds(m.pid));
      const cpu = measured.map((m, i) => ({
        role: m.role,
        cpuSecondsPer1kRequests: (after[i] - before[i]) / (wrk.requests / 1000),
        cores: (after[i] - before[i]) / opts.maxDurationSeconds,
      }));
      maxResults.push({ topology: t.id, requestsPerSecond: wrk.requestsPerSecond, requests: wrk.requests, errors: wrk.errors, cpu });
      log(`${t.id} max: ${wrk.requestsPerSecond.toFixed(0)} rps, ${wrk.errors} errors`);
    }
  }

  // After the max-throughput runs: the overload run needs the pair's capacity of this run.
  const overload = await overloadRun(opts, registry, helpers.loadGenerator, upstream, upstreamPort, ready, maxResults);
  if ('skipped' in overload) log(`overload run skipped: ${overload.skipped}`);
  else log(`overload @ ${overload.offeredRps} rps: ${overload.ok} served, ${overload.shedOL} shed (OL), admitted p99 ${overload.admittedLatencyMs.p99.toFixed(1)} ms`);

  anonSampler.stop();
  const memoryOf = (topology: string, role: string, pid: number): MemoryResult => ({
    topology, role,
    peakRssMBAtFixedRates: rssAtFixed.get(`${topology}/${role}`) ?? NaN,
    peakRssMBOverall: rssMB(pid),
    peakAnonMBAtFixedRates: anonAtFixed.get(`${topology}/${role}`) ?? NaN,
    peakAnonMBOverall: anonSampler.peakBytes(pid) / 1e6,
  });
  const memory: MemoryResult[] = [memoryOf('direct', 'upstream', upstream.pid)];
  for (const t of ready) for (const p of t.proxies) memory.push(memoryOf(t.id, p.role, p.pid));

  // Everything else is stopped first so the synthesis timing does not compete with the proxies.
  await registry.stopAll();
  let synth: SynthResult = { skipped: 'disabled with --no-synth' };
  if (opts.synth) {
    log('timing the synthesis of a 100-service chart');
    synth = await timeChartSynthesis(registry, 100);
  }

  const env2 = { ...env, loadAverageAtEnd: os.loadavg().map((l) => Number(l.toFixed(2))) };
  const descriptions: TopologyDescription[] = ready.map((t) => ({ id: t.id, description: t.description }));
  const report: BenchReport = {
    schemaVersion: 1,
    startedAt,
    wallSeconds: (performance.now() - started) / 1000,
    environment: env2,
    method: {
      requestBytes: REQUEST_BYTES,
      responseBytes: RESPONSE_BYTES,
      rates: opts.rates,
      warmupSeconds: opts.warmupSeconds,
      durationSeconds: opts.durationSeconds,
      fixedRateGenerator: 'bench/load-generator.ts: open loop on undici (64 keep-alive connections max), latency from intended send time',
      maxThroughput: { tool: 'wrk -t1', connections: opts.connections, durationSeconds: opts.maxDurationSeconds },
      cpu: '/proc/<pid>/stat utime+stime over the recorded window; nginx = master + worker',
      sidecarNodeArgs: opts.sidecarNodeArgs,
      proxyBundle: path.relative(REPO_ROOT, opts.proxyBundle ?? PROXY_BUNDLE),
      sidecarOverload: opts.overloadQueueDelayMs ? { maxQueueDelayMs: opts.overloadQueueDelayMs } : 'sidecar defaults',
      memory: '/proc/<pid>/status VmHWM (peak total RSS), and the peak of RssAnon sampled every 200 ms (private memory)',
      quick: opts.quick,
    },
    topologies: descriptions,
    fixedRate: fixed,
    maxThroughput: maxResults,
    memory,
    synth,
    overload,
    targets: evaluateTargets(fixed, maxResults, memory, synth),
    skipped,
  };
  const text = formatReport(report);
  mkdirSync(path.dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  const textOut = opts.out.replace(/\.json(\.tmp)?$/, (_m, tmpSuffix: string | undefined) => `.txt${tmpSuffix ?? ''}`);
  writeFileSync(textOut, `${text}\n`);
  process.stdout.write(`${text}\n`);
  log(`wrote ${path.relative(REPO_ROOT, opts.out)} and ${path.relative(REPO_ROOT, textOut)}; wall ${report.wallSeconds.toFixed(0)} s`);
  return opts.strict && report.targets.some((t) => t.status === 'FAIL') ? 1 : 0;
}

if (require.main === module) {
  const registry = new ProcessRegistry();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'typemesh-bench-'));
  let cleaning: Promise<void> | undefined;
  let aborting = false;
  // Idempotent: whoever comes first (normal end, error, signal) stops everything; the others wait for it.
  const cleanup = (): Promise<void> => {
    cleaning ??= registry.stopAll().finally(() => rmSync(tmp, { recursive: true, force: true }));
    return cleaning;
  };
  const abort = (code: number, why: string): void => {
    if (aborting) return;
    aborting = true;
    log(`${why}: stopping every process the bench started`);
    void cleanup().finally(() => process.exit(code));
  };
  process.on('SIGINT', () => abort(130, 'interrupted'));
  process.on('SIGTERM', () => abort(143, 'terminated'));
  // Last resort if something exits the process without the cleanup above.
  process.on('exit', () => {
    registry.killAllSync();
    rmSync(tmp, { recursive: true, force: true });
  });
  const hardLimit = setTimeout(() => abort(124, `the bench exceeded its ${HARD_LIMIT_MS / 60000} minute limit`), HARD_LIMIT_MS);
  hardLimit.unref();
  if (process.argv.includes('--help')) {
    process.stdout.write(usage());
    process.exit(0);
  }
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    log((e as Error).message);
    process.exit(2);
  }
  main(opts, registry, tmp).then(async (code) => {
    await cleanup();
    if (!aborting) process.exit(code);
  }, async (err: Error) => {
    // After a signal, the failures of the runs it cut short are expected: the signal's exit code wins.
    if (aborting) return;
    log(`failed: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(1);
  });
}
