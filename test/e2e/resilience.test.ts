/**
 * Resilience on a local mesh of real processes, from hand-written sidecar configs: a
 * client workload (sidecar only; the test is its app and calls its outbound listener as
 * an HTTP_PROXY client would) calls three payment services:
 *   flaky    1 instance failing every 5th request, retried (2 attempts on 5xx)
 *   ejecting 2 instances, #1 always failing, outlier detection after 3 consecutive 5xx
 *   stable   2 healthy instances and no retries (re-certified, then one rolled out): nothing
 *            may fail, so graceful endpoint removal, drain and certificate reload alone must hold
 */
import { LocalMesh, workloadFromConfig } from '../../src/local';
import { appStats, callMany, callThrough, idOf, metricSum, outboundService, paymentApp, peerCertificate, prepareApps, sidecarConfig } from './mesh-fixtures';

let mesh: LocalMesh;

beforeAll(async () => {
  prepareApps();
  const client = sidecarConfig('client', 'v1', {
    outbound: [
      outboundService('flaky', ['v1'], {
        routes: [{
          name: 'default', destinations: [{ subset: 'v1', weight: 100 }],
          // One try in five fails, so retries add 25% to the requests: the budget allows 50%.
          retries: { attempts: 2, retryOn: ['5xx'], backoff: { baseIntervalMs: 5, maxIntervalMs: 20 }, budget: { percent: 50, minRetriesPerSecond: 10 } },
        }],
      }),
      outboundService('ejecting', ['v1'], {
        outlierDetection: { consecutive5xxErrors: 3, intervalMs: 500, baseEjectionTimeMs: 60_000, maxEjectionPercent: 50 },
      }),
      // No retries: rolling and rotation must lose nothing on their own merits.
      outboundService('stable', ['v1']),
    ],
  });
  mesh = await LocalMesh.start({
    workloads: [
      workloadFromConfig(client),
      workloadFromConfig(sidecarConfig('flaky', 'v1')),
      workloadFromConfig(sidecarConfig('ejecting', 'v1'), 2),
      workloadFromConfig(sidecarConfig('stable', 'v1', { drainTimeoutMs: 5000 }), 2),
    ],
    processes: {
      'flaky/v1': paymentApp({ FAIL_RATE: '0.2' }),
      'ejecting/v1': paymentApp({}, (i): Record<string, string> => (i === 1 ? { FAIL_RATE: '1' } : {})),
      'stable/v1': paymentApp({ LATENCY_MS: '20' }),
    },
  });
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
}, 60_000);

function client() {
  return mesh.instancesOf('client/v1')[0];
}

test('a consistently failing endpoint is ejected and traffic moves to the healthy one', async () => {
  const [healthy, failing] = mesh.instancesOf('ejecting/v1');
  // Round robin: the failing endpoint gets every other request until it has failed 3 times in a row.
  const first = await callMany(20, 1, () => callThrough(client(), 'ejecting', '/process'));
  expect(first.filter((r) => r.status === 503).length).toBeGreaterThanOrEqual(3);
  expect(await metricSum(client(), 'typemesh_outlier_ejections_total', { destination_service: 'ejecting' })).toBeGreaterThanOrEqual(1);
  const failingBefore = (await appStats(failing)).requests;
  const after = await callMany(40, 2, () => callThrough(client(), 'ejecting', '/process'));
  expect(after.map((r) => r.status)).toEqual(Array(40).fill(200));
  expect(new Set(after.map((r) => r.body.pod))).toEqual(new Set([healthy.podName]));
  expect((await appStats(failing)).requests).toBe(failingBefore);
}, 60_000);

test('a certificate rotated mid-traffic fails no request', async () => {
  const [stable0] = mesh.instancesOf('stable/v1');
  const creds = await mesh.clientCredentials(idOf('client'));
  const before = await peerCertificate(stable0, creds);
  let rotated = false;
  const traffic = callMany(150, 4, async (i) => {
    if (i === 50) {
      await mesh.rotateCertificate(stable0.id);
      await mesh.rotateCertificate(client().id);
      rotated = true;
    }
    return callThrough(client(), 'stable', '/process');
  });
  const replies = await traffic;
  expect(rotated).toBe(true);
  expect(replies.filter((r) => r.status !== 200)).toEqual([]);
  // The sidecar now presents the new certificate, same identity.
  let after = await peerCertificate(stable0, creds);
  for (let i = 0; i < 30 && after.fingerprint256 === before.fingerprint256; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await peerCertificate(stable0, creds);
  }
  expect(after.fingerprint256).not.toBe(before.fingerprint256);
  expect(after.uris).toEqual([idOf('stable')]);
  // And traffic keeps flowing with it.
  const more = await callMany(20, 2, () => callThrough(client(), 'stable', '/process'));
  expect(more.filter((r) => r.status !== 200)).toEqual([]);
}, 60_000);

test('rolling a version (stopping one instance) loses no accepted request', async () => {
  const [stable0, stable1] = mesh.instancesOf('stable/v1');
  let stopped = false;
  const stopping = new Promise<void>((resolve, reject) => {
    setTimeout(() => {
      mesh.stopInstance(stable1.id).then(() => {
        stopped = true;
        resolve();
      }, reject);
    }, 700);
  });
  // ~20 ms per request at the app, 4 in flight: the stop lands in the middle of the traffic.
  const replies = await callMany(400, 4, () => callThrough(client(), 'stable', '/process'));
  await stopping;
  expect(stopped).toBe(true);
  expect(replies.filter((r) => r.status !== 200)).toEqual([]);
  const servedBy = new Set(replies.map((r) => r.body.pod));
  expect(servedBy).toEqual(new Set([stable0.podName, stable1.podName]));
  expect(stable1.sidecar.running).toBe(false);
  expect(stable1.app?.running).toBe(false);
  // Afterwards only the remaining instance serves.
  const after = await callMany(20, 2, () => callThrough(client(), 'stable', '/process'));
  expect(after.map((r) => r.status)).toEqual(Array(20).fill(200));
  expect(new Set(after.map((r) => r.body.pod))).toEqual(new Set([stable0.podName]));
}, 90_000);

test('a failing upstream is retried to success within the retry budget', async () => {
  // One at a time: a retry is the very next try the app sees, never the next failing slot
  // (every 5th), so every request must succeed. (With requests in flight concurrently, a
  // retry's backoff can line up with later failing slots and the outcome becomes chance.)
  const replies = await callMany(200, 1, () => callThrough(client(), 'flaky', '/process'));
  expect(replies.filter((r) => r.status !== 200)).toEqual([]);
  const [flaky] = mesh.instancesOf('flaky/v1');
  const stats = await appStats(flaky);
  // One try in five failed at the app, and every one of those was retried.
  expect(stats.failures).toBeGreaterThanOrEqual(40);
  expect(stats.requests).toBe(200 + stats.failures);
  const retries = await metricSum(client(), 'typemesh_retries_total', { destination_service: 'flaky' });
  expect(retries).toBe(stats.failures);
  // All within the budget: no retry was refused for lack of it.
  expect(await metricSum(client(), 'typemesh_retry_budget_exhausted_total', { destination_service: 'flaky' })).toBe(0);
}, 60_000);
