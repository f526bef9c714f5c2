/**
 * The demo (`npm run demo`) on the shop chart, shortened to 8 s of traffic: its traffic
 * enters through the shop's MeshGateway; it must print a legend of the failures it injects on
 * purpose, the stat table with payment's retries and ejections (the plan breaks one payment
 * v1 replica and fails 10% of v2's requests on purpose), a verdict line per declared policy
 * with what was observed (the slow calls cut by the timeout, the burst refused by the pool),
 * judge the mesh healthy (exit code 0), and stop everything it started.
 */
import plan from '../../examples/shop/local';
import { explainPolicies, judgeDemo, livingProcesses, LoadReport, MeshScrape, runDemo, ServiceVersionStats, summarizeLoad, workloadsFromChart } from '../../src/local';

/** The table's cells of one row, keyed by column header (cells are separated by 2+ spaces). */
function tableRow(text: string, service: string, version: string): Record<string, string> {
  const lines = text.split('\n');
  const header = lines.find((l) => l.startsWith('SERVICE'));
  const line = lines.find((l) => new RegExp(`^${service}\\s+${version}\\s`).test(l));
  if (!header || !line) throw new Error(`no table row for ${service} ${version} in:\n${text}`);
  const names = header.split(/\s{2,}/);
  const cells = line.split(/\s{2,}/);
  return Object.fromEntries(names.map((n, i) => [n, cells[i]]));
}

test('the demo prints the stat table with retries and ejections and exits 0 on a healthy mesh', async () => {
  let text = '';
  const code = await runDemo(plan, { durationMs: 8000, out: { write: (s: string) => ((text += s), true), isTTY: false } });
  expect(text).toMatch(/SERVICE\s+VERSION\s+RPS\s+SUCCESS\s+P50\s+P99\s+SPLIT obs\/cfg %\s+RETRIES\s+EJECTED\s+DENIED\s+MTLS IDENTITIES SEEN/);
  // One row per payment version with its configured weight, and order-service's identity seen over mTLS.
  expect(text).toMatch(/payment-service\s+v1\s+.*\/80\s+/);
  expect(text).toMatch(/payment-service\s+v2\s+.*\/20\s+.*shop\/order-service/);
  // The broken v1 replica is retried around and ejected by order's sidecars (one ejection
  // each at most in 8 s: the ejection lasts 30 s); v2's injected failures are retried.
  const v1 = tableRow(text, 'payment-service', 'v1');
  const v2 = tableRow(text, 'payment-service', 'v2');
  expect(Number(v1.RETRIES)).toBeGreaterThan(0);
  expect(Number(v1.EJECTED)).toBeGreaterThanOrEqual(1);
  expect(Number(v1.EJECTED)).toBeLessThanOrEqual(2);
  expect(Number(v2.RETRIES)).toBeGreaterThan(0);
  // v2 has a single endpoint whose failures are 1 in 10, evenly spaced: never 5 in a row, so never ejected.
  expect(v2.EJECTED).toBe('0');
  // The traffic came in through the gateway: order-service saw the gateway's identity.
  expect(text).toMatch(/sending traffic through gateway shop-gateway \(http:\/\/127\.[0-9.]+:8080.*Host: shop\.example\.com\)/);
  expect(tableRow(text, 'order-service', 'v1')['MTLS IDENTITIES SEEN']).toBe('shop/shop-gateway');

  // The legend, before the traffic, names every injected failure and why.
  const legendAt = text.indexOf('legend: these failures are injected on purpose');
  expect(legendAt).toBeGreaterThan(0);
  expect(legendAt).toBeLessThan(text.indexOf('sending traffic'));
  const legend = text.slice(legendAt, text.indexOf('sending traffic'));
  expect(legend).toMatch(/payment-service v1 replica #1 is broken: it answers every \/process with 503/);
  expect(legend).toMatch(/an intruder \(spiffe:\/\/cluster\.local\/ns\/shop\/sa\/typemesh-intruder\) sends POST \/process to payment-service/);
  expect(legend).toMatch(/3 slow calls .*2 s per-try timeout/);
  expect(legend).toMatch(/a burst of 60 concurrent requests .*100 connections \+ 50 pending/);

  // The verdict ties each declared policy to what happened, and every one held.
  const verdict = (declared: RegExp): string => {
    const lines = text.split('\n');
    const i = lines.findIndex((l) => declared.test(l));
    if (i < 0) throw new Error(`no verdict line ${declared} in:\n${text}`);
    return `${lines[i]}\n${lines[i + 1]}`;
  };
  expect(verdict(/^ {2}ok {3}gateway shop-gateway: shop\.example\.com\/ -> order-service/)).toMatch(/order-service v1 saw the gateway's identity/);
  expect(verdict(/^ {2}ok {3}split payment-service: v1 80% \/ v2 20%/)).toMatch(/-> v1 [0-9.]+% \/ v2 [0-9.]+%/);
  expect(verdict(/^ {2}ok {3}retries payment-service: 3 attempts, 2 s per try/)).toMatch(/-> [1-9][0-9]* retries/);
  expect(verdict(/^ {2}ok {3}outlier detection payment-service: eject after 5 consecutive 5xx for 30 s/)).toMatch(/ejections: v1 [12], v2 0/);
  expect(verdict(/^ {2}ok {3}timeout payment-service: 5 s per request, 2 s per try/)).toMatch(/-> 3 slow calls: [3-9][0-9]* cut by the callers' sidecars with 504 \(UT\)/);
  expect(verdict(/^ {2}ok {3}connection pool payment-service: 100 connections \+ 50 pending/)).toMatch(/burst of 60 concurrent requests: [1-9][0-9]* calls to payment-service refused with 503 overflow/);
  expect(verdict(/^ {2}ok {3}authorization payment-service: allow only order-service POST \/process/)).toMatch(/intruder typemesh-intruder: ([1-9][0-9]*) of \1 requests refused with 403/);
  expect(text).not.toMatch(/^ {2}FAIL /m);
  expect(text).toContain('the mesh behaved (exit 0)');
  expect(code).toBe(0);
  expect(livingProcesses()).toEqual([]);
}, 120_000);

test('the verdict fails a run whose expected retries or ejections did not happen', () => {
  const ok: LoadReport = summarizeLoad(Array.from({ length: 1000 }, () => ({ status: 200, latencyMs: 1, endedAtMs: 0 })), 10_000);
  const row = (version: string, retries: number, ejections: number): ServiceVersionStats => ({
    service: 'payment-service', version, requests: 500, requestsPerSecond: 50, successRate: 1, p50Ms: 1, p99Ms: 2,
    observedSplit: NaN, splitSampleSize: 0, configuredSplit: NaN, retries, ejections, denials: 0,
    identities: ['spiffe://cluster.local/ns/shop/sa/order-service'],
  });
  const expectations = { expectRetries: ['payment-service'], expectEjections: ['payment-service/v1'] };
  expect(judgeDemo(ok, [row('v1', 3, 1), row('v2', 0, 0)], expectations)).toEqual([]);
  // Retries anywhere in the service satisfy a service-wide expectation; ejections must be v1's.
  expect(judgeDemo(ok, [row('v1', 0, 1), row('v2', 4, 0)], expectations)).toEqual([]);
  expect(judgeDemo(ok, [row('v1', 0, 0), row('v2', 0, 2)], expectations)).toEqual([
    'payment-service: the plan expects retries (it makes requests fail on purpose) but the callers\' sidecars counted no retry',
    'payment-service/v1: the plan expects ejections (it makes requests fail on purpose) but the callers\' sidecars counted no ejection',
  ]);
  expect(judgeDemo(ok, [row('v2', 1, 1)], { expectEjections: ['payment-service/v1'] })).toEqual([
    'payment-service/v1: the plan expects ejections but the table has no row for it',
  ]);
  // Without expectations, zero retries and ejections are fine.
  expect(judgeDemo(ok, [row('v1', 0, 0)])).toEqual([]);
});

test('a policy the demo exercised but that did not act is a failed verdict', () => {
  const configs = workloadsFromChart(plan.chart()).map((w) => w.config);
  const report = (status: number, n: number): LoadReport => summarizeLoad(Array.from({ length: n }, () => ({ status, latencyMs: 5000, endedAtMs: 0 })), 5000);
  const scrape = (samples: Array<{ name: string; labels: Record<string, string>; value: number }>): MeshScrape => ({ at: 0, samples: new Map([['order-service/v1#0', samples]]) });
  const empty = scrape([]);
  const cut = { name: 'typemesh_requests_total', labels: { reporter: 'source', destination_service: 'payment-service', response_code: '504', response_flags: 'UT' }, value: 3 };
  const overflow = { name: 'typemesh_pool_overflows_total', labels: { destination_service: 'payment-service' }, value: 7 };
  const judge = (after: MeshScrape) => explainPolicies({
    configs, rows: [], before: empty, after,
    slowCalls: { service: 'payment-service', report: report(502, 3) },
    burst: { service: 'payment-service', report: report(200, 10), before: empty, after },
  }).filter((v) => /^(timeout|connection pool)/.test(v.declared));
  // Nothing cut, nothing refused: both policies failed to show.
  expect(judge(empty).map((v) => [v.declared, v.ok])).toEqual([
    ['timeout payment-service: 5 s per request, 2 s per try', false],
    ['connection pool payment-service: 100 connections + 50 pending per caller sidecar', false],
  ]);
  const seen = judge(scrape([cut, overflow]));
  expect(seen.map((v) => v.ok)).toEqual([true, true]);
  expect(seen[0].observed).toMatch(/^3 slow calls: 3 cut by the callers' sidecars with 504 \(UT\)/);
  expect(seen[1].observed).toMatch(/^burst of 10 concurrent requests: 7 calls to payment-service refused with 503 overflow/);
});
