/**
 * The demo (`npm run demo`) on the shop chart, shortened to 8 s of traffic: it must print
 * the stat table with payment's retries and ejections (the plan breaks one payment v1
 * replica and fails 10% of v2's requests on purpose), judge the mesh healthy (exit code 0),
 * and stop everything it started.
 */
import plan from '../../examples/shop/local';
import { judgeDemo, livingProcesses, LoadReport, runDemo, ServiceVersionStats, summarizeLoad } from '../../src/local';

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
