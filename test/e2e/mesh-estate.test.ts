/**
 * A mesh across two namespaces with an injected workload, built with the constructs and run by
 * the local runner as real processes: `checkout` is a cdk8s-plus Deployment TypeMesh did not
 * write (namespace shop), joined with mesh.inject(); `payment` is a MeshService of namespace
 * billing that admits only workloads of namespace shop, under STRICT mTLS; `reports` is a raw
 * ApiObject Deployment of namespace shop, injected too.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { ApiObject, App, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Mesh, MeshService, Source } from '../../src/constructs';
import { LocalMesh, workloadsFromChart } from '../../src/local';
import { callInbound, callThrough, metricSum, paymentApp, prepareApps } from './mesh-fixtures';

const id = (ns: string, account: string): string => `spiffe://cluster.local/ns/${ns}/sa/${account}`;

function estate(): Chart {
  // Synthesized in memory only: the outdir is never written.
  const chart = new Chart(new App({ outdir: path.join(os.tmpdir(), 'typemesh-tests-never-written') }), 'estate');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', namespaces: ['billing'] });
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', namespace: 'billing', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
  payment.allowFrom(Source.namespace('shop'));
  const checkout = new kplus.Deployment(chart, 'checkout', {
    metadata: { name: 'checkout', namespace: 'shop' },
    containers: [{ name: 'app', image: 'example.com/checkout:1', ports: [{ number: 8080, name: 'http' }] }],
  });
  mesh.inject(checkout).calls(payment);
  const reports = new ApiObject(chart, 'reports', {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'reports', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'reports' } },
      template: { metadata: { labels: { app: 'reports' } }, spec: { containers: [{ name: 'reports', image: 'example.com/reports:1', ports: [{ containerPort: 8080 }] }] } },
    },
  });
  const injectedReports = mesh.inject(reports, { callerPort: 80 });
  injectedReports.calls(payment);
  // And the other way: the MeshService of billing calls the injected raw workload of shop.
  payment.callsTo(injectedReports);
  return chart;
}

let mesh: LocalMesh;

beforeAll(async () => {
  prepareApps();
  const workloads = workloadsFromChart(estate());
  expect(workloads.map((w) => `${w.namespace}/${w.key}`)).toEqual(['shop/checkout/v1', 'billing/payment/v1', 'shop/reports/v1']);
  mesh = await LocalMesh.start({
    workloads,
    // Any HTTP app will do for the callers: the tests call through their sidecars.
    processes: { 'checkout/v1': { ...paymentApp(), replicas: 1 }, 'reports/v1': { ...paymentApp(), replicas: 1 }, 'payment/v1': { ...paymentApp(), replicas: 1 } },
  });
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
}, 60_000);

test('the injected Deployment in shop calls payment in billing by its namespaced name, over mTLS with its shop identity', async () => {
  const [checkout] = mesh.instancesOf('checkout');
  const [payment] = mesh.instancesOf('payment');
  for (let i = 0; i < 5; i++) expect((await callThrough(checkout, 'payment.billing', '/process')).status).toBe(200);
  const seen = await metricSum(payment, 'typemesh_requests_total', {
    reporter: 'destination', source_principal: id('shop', 'checkout'), connection_security_policy: 'mutual_tls',
  });
  expect(seen).toBe(5);
}, 60_000);

test('the injected raw ApiObject Deployment carries meshed traffic with its own identity', async () => {
  const [reports] = mesh.instancesOf('reports');
  const [payment] = mesh.instancesOf('payment');
  for (let i = 0; i < 3; i++) expect((await callThrough(reports, 'payment.billing.svc.cluster.local', '/process')).status).toBe(200);
  expect(await metricSum(payment, 'typemesh_requests_total', {
    reporter: 'destination', source_principal: id('shop', 'reports'), connection_security_policy: 'mutual_tls',
  })).toBe(3);
}, 60_000);

test('a MeshService of billing calls the injected raw workload of shop (made callable with callerPort)', async () => {
  const [payment] = mesh.instancesOf('payment');
  const [reports] = mesh.instancesOf('reports');
  for (let i = 0; i < 2; i++) expect((await callThrough(payment, 'reports.shop', '/process')).status).toBe(200);
  expect(await metricSum(reports, 'typemesh_requests_total', {
    reporter: 'destination', source_principal: id('billing', 'payment'), connection_security_policy: 'mutual_tls',
  })).toBe(2);
}, 60_000);

test('the bare name "payment" is not a host of payment for a caller in shop (it would be payment.shop)', async () => {
  const [checkout] = mesh.instancesOf('checkout');
  const [payment] = mesh.instancesOf('payment');
  const before = await metricSum(payment, 'typemesh_requests_total', { reporter: 'destination' });
  expect((await callThrough(checkout, 'payment', '/process')).status).not.toBe(200);
  expect(await metricSum(payment, 'typemesh_requests_total', { reporter: 'destination' })).toBe(before);
}, 60_000);

test('authorization by namespace: a workload of shop is admitted, one of billing (same trust root) gets 403', async () => {
  const [payment] = mesh.instancesOf('payment');
  const fromShop = await mesh.clientCredentials(id('shop', 'auditor'));
  const fromBilling = await mesh.clientCredentials(id('billing', 'intruder'));
  expect((await callInbound(payment, fromShop, '/process')).status).toBe(200);
  expect((await callInbound(payment, fromBilling, '/process')).status).toBe(403);
}, 60_000);
