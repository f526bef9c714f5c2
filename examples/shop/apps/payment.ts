/**
 * payment-service: charges an order. Versions differ only by the VERSION variable, and
 * FAIL_RATE (0 to 1) makes it fail that share of requests with FAIL_STATUS (default 503),
 * spread evenly (every 1/FAIL_RATE-th request) so demos and tests are repeatable.
 * `/process?delayMs=N` answers N ms late (at most 10 s): the demo's slow calls, which show a
 * declared timeout cutting them, and its burst, which holds connections to overflow a pool.
 */
import { serveJson } from './json-server';

const version = process.env.VERSION ?? 'v1';
const pod = process.env.POD_NAME ?? `payment-${version}`;
const failRate = Math.min(1, Math.max(0, Number(process.env.FAIL_RATE ?? 0)));
const failStatus = Number(process.env.FAIL_STATUS ?? 503);
const latencyMs = Number(process.env.LATENCY_MS ?? 0);

let requests = 0;
let failures = 0;

/** True for the requests that cross the next multiple of 1/failRate. */
function shouldFail(n: number): boolean {
  return Math.floor(n * failRate) !== Math.floor((n - 1) * failRate);
}

serveJson('payment-service', async (req) => {
  if (req.url.pathname === '/healthz') return { status: 200, body: { ok: true } };
  if (req.url.pathname === '/stats') return { status: 200, body: { requests, failures, version, pod } };
  if (req.url.pathname !== '/process') return { status: 404, body: { error: `no route ${req.url.pathname}` } };
  requests++;
  const delayMs = Math.min(10_000, Math.max(0, Number(req.url.searchParams.get('delayMs') ?? 0) || 0)) + latencyMs;
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  if (shouldFail(requests)) {
    failures++;
    return { status: failStatus, body: { error: 'payment failed (FAIL_RATE)', version, pod } };
  }
  const amount = typeof (req.body as { amount?: unknown } | undefined)?.amount === 'number' ? (req.body as { amount: number }).amount : 0;
  return { status: 200, body: { service: 'payment-service', version, pod, charged: amount } };
});
