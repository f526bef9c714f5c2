/**
 * The runner's pure pieces, checked without processes: the per-instance config rewrite,
 * chart reading, the Prometheus reader, the latency quantiles and the demo's verdict.
 * (The other files in this folder run them for real.)
 */
import plan from '../../examples/shop/local';
import {
  driverStats, histogramQuantileMs, judgeDemo, LoadReport, localizeSidecarConfig, parsePrometheusText, ServiceVersionStats,
  splitTolerance, summarizeLoad, UNREACHABLE_ENDPOINT, workloadFromConfig, workloadsFromChart,
} from '../../src/local';
import { outboundService, sidecarConfig } from './mesh-fixtures';

test('the shop chart yields one workload per version with replicas and the app env from its Deployment', () => {
  const workloads = workloadsFromChart(plan.chart());
  expect(workloads.map((w) => `${w.key} x${w.replicas}`)).toEqual([
    'inventory-service/v1 x2', 'inventory-service/v2 x1', 'order-service/v1 x2', 'payment-service/v1 x2', 'payment-service/v2 x1',
    // The shop's MeshGateway: a proxy-only workload, the way in from outside.
    'shop-gateway/gateway x2',
  ]);
  const order = workloads.find((w) => w.key === 'order-service/v1')!;
  expect(order.appEnv).toMatchObject({ VERSION: 'v1', PAYMENT_URL: 'http://payment-service' });
  expect(order.config.outbound.services.map((s) => s.subsets[0].discovery.type)).toEqual(['dns', 'dns']);
});

test('localizing a config changes addresses, files and discovery only', () => {
  const w = workloadFromConfig(sidecarConfig('client', 'v1', { outbound: [outboundService('pay', ['v1', 'v2'])] }));
  const local = localizeSidecarConfig(w.config, {
    bindAddress: '127.9.9.1', appAddress: '127.9.9.1',
    tls: { certFile: '/t/cert.pem', keyFile: '/t/key.pem', caFile: '/t/ca.pem' },
    endpointsOf: (_svc, _ns, subset) => (subset.name === 'v1' ? [{ address: '127.9.9.2', port: 15006 }, { address: '127.9.9.3', port: 15006 }] : []),
  });
  expect(local.listeners).toEqual({ ...w.config.listeners, bindAddress: '127.9.9.1' });
  expect(local.inbound.app).toEqual({ address: '127.9.9.1', port: 8080 });
  expect(local.tls).toEqual({ certFile: '/t/cert.pem', keyFile: '/t/key.pem', caFile: '/t/ca.pem' });
  const [v1, v2] = local.outbound.services[0].subsets;
  expect(v1.discovery).toEqual({ type: 'static', endpoints: [{ address: '127.9.9.2', port: 15006 }, { address: '127.9.9.3', port: 15006 }] });
  // A version with no local instance gets an address nothing listens on, not an invalid empty list.
  expect(v2.discovery).toEqual({ type: 'static', endpoints: [UNREACHABLE_ENDPOINT] });
  expect(local.outbound.services[0].routes).toEqual(w.config.outbound.services[0].routes);
  expect(local.inbound.mtls).toEqual(w.config.inbound.mtls);
});

test('the Prometheus reader handles labels with escapes, +Inf and comments', () => {
  const samples = parsePrometheusText([
    '# HELP x y',
    'a_total{l="v\\"q",m="2"} 3',
    'b_bucket{le="+Inf"} 7',
    'c 1.5e3',
    'garbage',
  ].join('\n'));
  expect(samples).toEqual([
    { name: 'a_total', labels: { l: 'v"q', m: '2' }, value: 3 },
    { name: 'b_bucket', labels: { le: '+Inf' }, value: 7 },
    { name: 'c', labels: {}, value: 1500 },
  ]);
});

test('histogram quantiles interpolate within the bucket', () => {
  const buckets = [{ le: 0.001, count: 50 }, { le: 0.01, count: 100 }, { le: Infinity, count: 100 }];
  expect(histogramQuantileMs(buckets, 0.5)).toBeCloseTo(1, 5);
  expect(histogramQuantileMs(buckets, 0.75)).toBeCloseTo(5.5, 5);
  expect(histogramQuantileMs([], 0.5)).toBeNaN();
});

function row(version: string, observed: number, configured: number, identities = ['spiffe://cluster.local/ns/shop/sa/order-service']): ServiceVersionStats {
  return {
    service: 'payment-service', version, requests: 1000, requestsPerSecond: 50, successRate: 1, p50Ms: 1, p99Ms: 2,
    observedSplit: observed, splitSampleSize: 10_000, configuredSplit: configured, retries: 0, ejections: 0, denials: 0, identities,
  };
}

test('the demo verdict flags a low success rate, a split off target and missing identities', () => {
  const ok: LoadReport = summarizeLoad(Array.from({ length: 1000 }, () => ({ status: 200, latencyMs: 1, endedAtMs: 0 })), 10_000);
  expect(judgeDemo(ok, [row('v1', 80.5, 80), row('v2', 19.5, 20)])).toEqual([]);
  const failing = summarizeLoad(Array.from({ length: 1000 }, (_, i) => ({ status: i % 10 === 0 ? 503 : 200, latencyMs: 1, endedAtMs: 0 })), 10_000);
  expect(judgeDemo(failing, [row('v1', 80, 80)])[0]).toMatch(/success rate 90.00% is under 95%/);
  expect(judgeDemo(ok, [row('v1', 70, 80), row('v2', 30, 20)]).join('\n')).toMatch(/v2: observed split 30.0% is more than 5.0 points from the configured 20%/);
  expect(judgeDemo(ok, [row('v1', 80, 80, [])]).join('\n')).toMatch(/zero mTLS identities/);
  // Few requests: the tolerance widens to 4 standard deviations (20% of 100 requests: 16 points).
  expect(splitTolerance(5, 20, 100)).toBeCloseTo(16, 5);
  expect(splitTolerance(5, 20, 10_000)).toBe(5);
});

test('without sidecar metrics the table falls back to the driver and is still judged', () => {
  const report = summarizeLoad(Array.from({ length: 1000 }, (_, i) => ({
    status: 200, latencyMs: i % 100, endedAtMs: 0, version: i % 5 === 0 ? 'v2' : 'v1',
  })), 10_000);
  const rows = driverStats({
    report, entryService: 'order-service', driverIdentity: 'spiffe://cluster.local/ns/shop/sa/typemesh-ingress',
    splitService: 'payment-service', configuredSplit: new Map([['v1', 80], ['v2', 20]]),
  });
  expect(rows.map((r) => [r.service, r.version, Math.round(r.observedSplit), r.configuredSplit])).toEqual([
    ['order-service', '*', NaN, NaN], ['payment-service', 'v1', 80, 80], ['payment-service', 'v2', 20, 20],
  ]);
  expect(rows[0].requestsPerSecond).toBe(100);
  expect(rows[0].identities).toEqual(['spiffe://cluster.local/ns/shop/sa/typemesh-ingress']);
  expect(judgeDemo(report, rows)).toEqual([]);
  const skewed = summarizeLoad(report.results.map((r) => ({ ...r, version: 'v1' })), 10_000);
  expect(judgeDemo(skewed, driverStats({ report: skewed, entryService: 'order-service', driverIdentity: 'spiffe://x/ns/a/sa/b', splitService: 'payment-service', configuredSplit: new Map([['v1', 80], ['v2', 20]]) })).join('\n'))
    .toMatch(/payment-service v2: observed split 0.0% is more than 5.1 points from the configured 20%/);
});
