/**
 * `typemesh demo <plan>`: starts the plan's mesh, drives traffic into it for a while with
 * a progress display and a live table, prints the final table, stops everything and
 * returns the exit code (0 when the mesh behaved, 1 when it did not).
 */
import { DemoExpectations, DemoThresholds, explainPolicies, judgeDemo } from './demo-verdict';
import { driverStats } from './driver-stats';
import { LoadReport, LoadResult, LoadTarget, runLoad, summarizeLoad } from './load-driver';
import { ClientCredentials, LocalMesh } from './local-mesh';
import { computeStats, configuredSplits, MeshScrape, scrapeMesh } from './mesh-stats';
import type { DeniedProbeSpec, InjectedRequestsSpec, LocalPlan, LocalTrafficSpec } from './plan';
import { renderStatTable } from './stat-table';
import { workloadsFromChart } from './topology';

/** Where the demo writes (process.stdout, or a collector in tests). */
export interface DemoOutput {
  write(text: string): boolean;
  readonly isTTY?: boolean;
}

/**
 * A plan's traffic section with the resilience the demo must show. Build it as a typed
 * constant (`const traffic: DemoTrafficSpec = {...}`) and pass that to `defineLocalPlan`.
 */
export interface DemoTrafficSpec extends LocalTrafficSpec, DemoExpectations {}

/** Options of {@link runDemo}. */
export interface DemoOptions extends DemoThresholds, DemoExpectations {
  /**
   * How long traffic runs, in ms.
   * @default 20000
   */
  readonly durationMs?: number;
  /**
   * Requests in flight at once.
   * @default 8
   */
  readonly concurrency?: number;
  /**
   * Where the display goes; a TTY gets a live, redrawn table.
   * @default process.stdout
   */
  readonly out?: DemoOutput;
  /**
   * Run every instance in its own network namespace with transparent interception (root).
   * @default false
   */
  readonly netns?: boolean;
  /** Aborts the run (Ctrl-C). */
  readonly signal?: AbortSignal;
}

/** Runs the demo; resolves with the exit code. Everything it started is stopped before it resolves. */
export async function runDemo(plan: LocalPlan, options: DemoOptions = {}): Promise<number> {
  const out = options.out ?? process.stdout;
  const say = (line: string): void => void out.write(`${line}\n`);
  const traffic: DemoTrafficSpec | undefined = plan.traffic;
  if (!traffic) throw new Error('the plan has no `traffic` section: the demo needs to know where to send requests (entryWorkload, path)');
  const durationMs = options.durationMs ?? 20_000;

  say('typemesh demo: preparing');
  await plan.prepare?.();
  const workloads = workloadsFromChart(plan.chart());
  say(`typemesh demo: starting ${workloads.map((w) => `${w.key}${w.replicas > 1 ? ` x${w.replicas}` : ''}`).join(', ')}`);
  const mesh = await LocalMesh.start({ workloads, processes: plan.processes, externalEndpoints: plan.externalEndpoints, netns: options.netns ? 'all' : undefined, log: (l) => say(`  ${l}`) });
  try {
    const entry = mesh.instancesOf(traffic.entryWorkload);
    if (entry.length === 0) throw new Error(`traffic.entryWorkload "${traffic.entryWorkload}" names no workload of the chart (have: ${workloads.map((w) => w.name).join(', ')})`);
    const way = await entryWay(mesh, traffic);
    const configs = workloads.map((w) => w.config);
    printLegend(say, traffic, mesh);
    const before: MeshScrape = await scrapeMesh(mesh.instances);
    const results: LoadResult[] = [];
    const started = Date.now();
    const tty = out.isTTY === true;
    let drawnLines = 0;
    let lastTable = '';
    const draw = async (): Promise<void> => {
      const now = await scrapeMesh(mesh.instances);
      lastTable = renderStatTable(computeStats(before, now, configs));
      const s = summarizeLoad(results, Date.now() - started);
      const elapsed = Math.min(durationMs, Date.now() - started);
      const width = 30;
      const filled = Math.round((width * elapsed) / durationMs);
      const progress = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(elapsed / 1000).toFixed(0)}/${(durationMs / 1000).toFixed(0)} s  ${s.total} requests  ${(s.successRate * 100).toFixed(1)}% ok  ${s.requestsPerSecond.toFixed(0)} rps`;
      if (tty) {
        const text = `${progress}\n\n${lastTable}\n`;
        if (drawnLines > 0) out.write(`\u001b[${drawnLines}A\u001b[0J`);
        out.write(text);
        drawnLines = text.split('\n').length - 1;
      } else {
        say(progress);
      }
    };
    const probe = traffic.deniedProbe ? await startDeniedProbe(mesh, traffic.deniedProbe) : undefined;
    say(`typemesh demo: sending traffic ${way.description} for ${durationMs / 1000} s`);
    // The slow calls run alongside the traffic; their failures are theirs, not the traffic's.
    const slow = traffic.slowCalls ? injected(traffic.slowCalls, 3, way, traffic) : undefined;
    let drawing = Promise.resolve();
    const timer = setInterval(() => {
      drawing = drawing.then(draw).catch(() => undefined);
    }, tty ? 1000 : 5000);
    let report: LoadReport;
    try {
      report = await runLoad({
        targets: way.targets, credentials: way.credentials, path: traffic.path, method: traffic.method, host: way.host,
        concurrency: options.concurrency ?? 8, durationMs, versionOf: traffic.versionOf,
        onResult: (r) => results.push(r), signal: options.signal,
      });
    } finally {
      clearInterval(timer);
      await drawing;
      await probe?.stop();
    }
    const slowReport = await slow;
    if (options.signal?.aborted) {
      say('\ntypemesh demo: interrupted');
      return 130;
    }
    // Let the last responses' metrics land before the scrape. The table covers the traffic
    // (and the slow calls) only: the burst comes after it and is measured on its own.
    await new Promise((r) => setTimeout(r, 300));
    const after = await scrapeMesh(mesh.instances);
    if (tty && drawnLines > 0) out.write(`\u001b[${drawnLines}A\u001b[0J`);
    drawnLines = 0;
    let burst: { report: LoadReport; after: MeshScrape } | undefined;
    if (traffic.burst) {
      const n = traffic.burst.requests ?? 400;
      say(`typemesh demo: burst of ${n} concurrent requests (${traffic.burst.path}) to show ${traffic.burst.service}'s connection pool overflow`);
      const burstReport = await injected(traffic.burst, 400, way, traffic);
      await new Promise((r) => setTimeout(r, 300));
      burst = { report: burstReport, after: await scrapeMesh(mesh.instances) };
    }
    const splitService = traffic.splitService;
    const configured = splitService ? configuredSplits(configs).get(splitService) : undefined;
    const metricRows = computeStats(before, after, configs);
    // Without sidecar metrics, the table falls back to what the driver measured itself.
    const fromDriver = metricRows.length === 0;
    const rows = fromDriver
      ? driverStats({ report, entryService: traffic.entryWorkload, driverIdentity: way.identity, splitService, configuredSplit: configured })
      : metricRows;
    if (tty && drawnLines > 0) out.write(`\u001b[${drawnLines}A\u001b[0J`);
    say('');
    if (fromDriver) say('(no sidecar metrics: figures from the load driver; identities are the ones the driver presented over mTLS)');
    say(renderStatTable(rows));
    say('');
    say(`driver: ${report.total} requests in ${(report.elapsedMs / 1000).toFixed(1)} s (${report.requestsPerSecond.toFixed(1)} rps), ${(report.successRate * 100).toFixed(2)}% 2xx, p50 ${report.p50Ms.toFixed(1)} ms, p99 ${report.p99Ms.toFixed(1)} ms, statuses ${JSON.stringify(report.statuses)}`);
    if (splitService && Object.keys(report.versions).length > 0) {
      const total = Object.values(report.versions).reduce((a, b) => a + b, 0);
      say(`driver: ${splitService} versions seen in responses: ${Object.entries(report.versions).sort().map(([v, n]) => `${v} ${((100 * n) / total).toFixed(1)}%`).join(', ')}`);
    }
    // Options override the plan's expectations. The driver's fallback rows cannot count
    // retries or ejections (only the callers' sidecars see them), so those checks need metrics.
    const expectRetries = options.expectRetries ?? traffic.expectRetries ?? [];
    const expectEjections = options.expectEjections ?? traffic.expectEjections ?? [];
    if (fromDriver && expectRetries.length + expectEjections.length > 0) say('(retries and ejections are counted by the callers\' sidecars: without their metrics they are not checked)');
    const expectations = fromDriver ? { expectRetries: [], expectEjections: [] } : { expectRetries, expectEjections };
    const problems = judgeDemo(report, rows, { ...options, ...expectations }, splitService && configured ? { service: splitService, configured } : undefined);
    if (probe) {
      const p = probe.statuses();
      const total = Object.values(p).reduce((a, b) => a + b, 0);
      say(`driver: ${total} requests from ${probe.identity} to ${traffic.deniedProbe!.workload} (no policy allows it): statuses ${JSON.stringify(p)}`);
      const notDenied = total - (p['403'] ?? 0);
      if (total === 0) problems.push(`no denied-probe request completed against ${traffic.deniedProbe!.workload}`);
      if (notDenied > 0) problems.push(`${notDenied} of ${total} requests from ${probe.identity} to ${traffic.deniedProbe!.workload} were not refused with 403`);
    }
    if (!fromDriver) {
      const verdicts = explainPolicies({
        configs, rows, before, after, splitService,
        slowCalls: traffic.slowCalls && slowReport ? { service: traffic.slowCalls.service, report: slowReport } : undefined,
        burst: traffic.burst && burst ? { service: traffic.burst.service, report: burst.report, before: after, after: burst.after } : undefined,
        intruder: probe ? { workload: traffic.deniedProbe!.workload, identity: probe.identity, statuses: probe.statuses() } : undefined,
        gateway: traffic.gateway ? { name: traffic.gateway, host: way.host, report } : undefined,
      });
      say('');
      say('typemesh demo: what was declared, and what happened');
      for (const v of verdicts) {
        say(`  ${v.ok ? 'ok  ' : 'FAIL'} ${v.declared}`);
        say(`       -> ${v.observed}`);
        if (!v.ok) problems.push(`${v.declared}: ${v.observed}`);
      }
      say('');
    }
    if (problems.length === 0) {
      say('typemesh demo: the mesh behaved (exit 0)');
      return 0;
    }
    say('typemesh demo: the mesh misbehaved (exit 1):');
    for (const p of problems) say(`  - ${p}`);
    return 1;
  } finally {
    say('typemesh demo: stopping (sidecars drain, apps stop, temp dir removed)');
    await mesh.stop();
  }
}

/** Sends the denied probe to every instance of the workload twice a second until stopped. */
async function startDeniedProbe(mesh: LocalMesh, spec: DeniedProbeSpec): Promise<{ identity: string; statuses(): Record<string, number>; stop(): Promise<void> }> {
  const targets = mesh.instancesOf(spec.workload);
  if (targets.length === 0) throw new Error(`traffic.deniedProbe.workload "${spec.workload}" names no workload of the chart`);
  const w = targets[0].workload.config.workload;
  const identity = spec.identity ?? `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/typemesh-intruder`;
  const credentials = await mesh.clientCredentials(identity);
  const statuses: Record<string, number> = {};
  let inFlight: Promise<unknown> = Promise.resolve();
  let round = 0;
  const timer = setInterval(() => {
    const target = targets[round++ % targets.length];
    inFlight = Promise.all([inFlight, runLoad({
      targets: [{ address: target.address, port: target.ports.inbound, identity: w.identity }],
      credentials, path: spec.path, method: spec.method, host: spec.workload, concurrency: 1, requests: 1,
    }).then((r) => {
      for (const [status, n] of Object.entries(r.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
    })]);
  }, 500);
  return {
    identity,
    statuses: () => ({ ...statuses }),
    stop: async () => {
      clearInterval(timer);
      await inFlight;
    },
  };
}

/** How the driver reaches the mesh: through a gateway (plain HTTP), or straight to the entry workload over mTLS. */
interface EntryWay {
  readonly targets: readonly LoadTarget[];
  readonly credentials?: ClientCredentials;
  readonly host: string;
  /** Who the entry workload sees as the caller. */
  readonly identity: string;
  readonly description: string;
}

async function entryWay(mesh: LocalMesh, traffic: LocalTrafficSpec): Promise<EntryWay> {
  const host = traffic.host ?? traffic.entryWorkload;
  if (traffic.gateway) {
    const gateways = mesh.instancesOf(traffic.gateway).filter((i) => i.gatewayListeners.length > 0);
    if (gateways.length === 0) throw new Error(`traffic.gateway "${traffic.gateway}" names no MeshGateway of the chart`);
    const listeners = gateways.map((g) => g.gatewayListeners.find((l) => l.protocol === 'http'));
    if (listeners.some((l) => l === undefined)) throw new Error(`gateway ${traffic.gateway} has no http listener for the demo's traffic`);
    return {
      targets: listeners.map((l) => ({ address: l!.address, port: l!.port })),
      host,
      identity: gateways[0].workload.config.workload.identity,
      description: `through gateway ${traffic.gateway} (${listeners.map((l) => l!.url).join(', ')}, Host: ${host}), as a customer outside the mesh`,
    };
  }
  const entry = mesh.instancesOf(traffic.entryWorkload);
  const credentials = await mesh.clientCredentials();
  return {
    targets: entry.map((i) => ({ address: i.address, port: i.ports.inbound, identity: i.workload.config.workload.identity })),
    credentials,
    host,
    identity: credentials.spiffeId,
    description: `to ${traffic.entryWorkload} (${entry.length} instance${entry.length > 1 ? 's' : ''}) over mTLS as ${credentials.spiffeId}`,
  };
}

/** Sends an injected batch (slow calls or burst) all at once the way the traffic enters. */
function injected(spec: InjectedRequestsSpec, defaultCount: number, way: EntryWay, traffic: LocalTrafficSpec): Promise<LoadReport> {
  const n = spec.requests ?? defaultCount;
  return runLoad({ targets: way.targets, credentials: way.credentials, path: spec.path, method: traffic.method, host: way.host, concurrency: n, requests: n, timeoutMs: 30_000 });
}

/** Says, before anything fails, which failures are injected on purpose and why. */
function printLegend(say: (line: string) => void, traffic: LocalTrafficSpec, mesh: LocalMesh): void {
  const lines = [...(traffic.legend ?? [])];
  if (traffic.deniedProbe) {
    const w = mesh.instancesOf(traffic.deniedProbe.workload)[0]?.workload.config.workload;
    const identity = traffic.deniedProbe.identity ?? (w ? `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/typemesh-intruder` : 'typemesh-intruder');
    lines.push(`an intruder (${identity}) sends ${traffic.deniedProbe.method ?? 'GET'} ${traffic.deniedProbe.path} to ${traffic.deniedProbe.workload} twice a second: no policy allows it, so every reply must be 403 (DENIED column)`);
  }
  if (traffic.slowCalls) lines.push(`${traffic.slowCalls.requests ?? 3} slow calls (${traffic.slowCalls.path}): ${traffic.slowCalls.why}`);
  if (traffic.burst) lines.push(`after the traffic, a burst of ${traffic.burst.requests ?? 400} concurrent requests (${traffic.burst.path}): ${traffic.burst.why}`);
  if (lines.length === 0) return;
  say('typemesh demo: legend: these failures are injected on purpose, to show the declared policies at work');
  for (const l of lines) say(`  - ${l}`);
}
