/**
 * The demo (`npm run demo`) on the shop chart, shortened to 8 s of traffic: it must print
 * the stat table, judge the mesh healthy (exit code 0), and stop everything it started.
 */
import plan from '../../examples/shop/local';
import { livingProcesses, runDemo } from '../../src/local';

test('the demo prints the stat table and exits 0 on a healthy mesh', async () => {
  let text = '';
  const code = await runDemo(plan, { durationMs: 8000, out: { write: (s: string) => ((text += s), true), isTTY: false } });
  expect(text).toMatch(/SERVICE\s+VERSION\s+RPS\s+SUCCESS\s+P50\s+P99\s+SPLIT obs\/cfg %\s+RETRIES\s+EJECTED\s+DENIED\s+MTLS IDENTITIES SEEN/);
  // One row per payment version with its configured weight, and order-service's identity seen over mTLS.
  expect(text).toMatch(/payment-service\s+v1\s+.*\/80\s+/);
  expect(text).toMatch(/payment-service\s+v2\s+.*\/20\s+.*shop\/order-service/);
  expect(text).toContain('the mesh behaved (exit 0)');
  expect(code).toBe(0);
  expect(livingProcesses()).toEqual([]);
}, 120_000);
