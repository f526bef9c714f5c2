/**
 * Issue 14's estate in one local plan, driven in one run: a mesh over namespaces shop and
 * billing (STRICT mTLS, allow-list egress); `checkout` is a cdk8s-plus Deployment of shop that
 * TypeMesh did not write, joined with mesh.inject(); `payment` (HTTP, admits namespace shop)
 * and `ledger` (TCP, admits checkout) are MeshServices of billing; `partner` is an
 * ExternalService played by a loopback server. The test speaks for checkout through its sidecar.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { App, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { ExternalProtocol, ExternalService, Mesh, MeshService, Protocol, Source } from '../../src/constructs';
import { defineLocalPlan, LocalMesh, LocalPlan, workloadsFromChart } from '../../src/local';
import { callThrough, metricSum, paymentApp, prepareApps } from './mesh-fixtures';

const id = (ns: string, account: string): string => `spiffe://cluster.local/ns/${ns}/sa/${account}`;
const PARTNER_HOST = 'partner.example';

function estate(): Chart {
  // Synthesized in memory only: the outdir is never written.
  const chart = new Chart(new App({ outdir: path.join(os.tmpdir(), 'typemesh-tests-never-written') }), 'estate-plan');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', namespaces: ['billing'] });
  new ExternalService(chart, 'partner', { mesh, name: 'partner', hosts: [PARTNER_HOST], protocol: ExternalProtocol.HTTP });
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', namespace: 'billing', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
  payment.allowFrom(Source.namespace('shop'));
  const ledger = new MeshService(chart, 'ledger', {
    mesh, name: 'ledger', namespace: 'billing',
    ports: [{ port: 7000, targetPort: 7001, protocol: Protocol.TCP }],
    versions: [{ name: 'v1', image: 'example.com/ledger:1' }],
  });
  const checkout = new kplus.Deployment(chart, 'checkout', {
    metadata: { name: 'checkout', namespace: 'shop' },
    containers: [{ name: 'app', image: 'example.com/checkout:1', ports: [{ number: 8080, name: 'http' }] }],
  });
  const injected = mesh.inject(checkout);
  injected.calls(payment);
  ledger.allowFrom(injected);
  // A workload of billing: same trust root, but payment admits namespace shop only.
  new MeshService(chart, 'auditor', { mesh, name: 'auditor', namespace: 'billing', versions: [{ name: 'v1', image: 'example.com/auditor:1' }] }).callsTo(payment);
  return chart;
}

/** A TCP echo server on PORT. */
const ECHO_APP = `require('node:net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(Number(process.env.PORT), process.env.HOST);`;

function plan(partnerPort: number): LocalPlan {
  return defineLocalPlan({
    chart: estate,
    prepare: prepareApps,
    processes: {
      'payment/v1': paymentApp(),
      'ledger/v1': { command: process.execPath, args: ['-e', ECHO_APP] },
    },
    externalEndpoints: { partner: { address: '127.0.0.1', port: partnerPort } },
  });
}

let mesh: LocalMesh;
let partner: http.Server;
const partnerHits: string[] = [];

beforeAll(async () => {
  partner = http.createServer((req, res) => {
    partnerHits.push(`${req.headers.host} ${req.url}`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ from: 'partner' }));
  });
  await new Promise<void>((resolve) => partner.listen(0, '127.0.0.1', resolve));
  const p = plan((partner.address() as AddressInfo).port);
  await p.prepare?.();
  const workloads = workloadsFromChart(p.chart());
  expect(workloads.map((w) => `${w.namespace}/${w.key}`).sort()).toEqual(['billing/auditor/v1', 'billing/ledger/v1', 'billing/payment/v1', 'shop/checkout/v1']);
  mesh = await LocalMesh.start({ workloads, processes: p.processes, externalEndpoints: p.externalEndpoints });
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
  partner?.closeAllConnections();
  await new Promise((resolve) => partner?.close(resolve));
}, 60_000);

function echoThrough(address: string, port: number, data: string): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, address, () => s.end(data));
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

test('the injected workload of shop reaches the HTTP service of billing, the TCP service of billing and the external service; unknown hosts are refused', async () => {
  const [checkout] = mesh.instancesOf('checkout');
  const [payment] = mesh.instancesOf('payment');
  const [ledger] = mesh.instancesOf('ledger');
  const shopCheckout = id('shop', 'checkout');

  // HTTP across namespaces, admitted by namespace.
  for (let i = 0; i < 3; i++) expect((await callThrough(checkout, 'payment.billing', '/process')).status).toBe(200);
  expect(await metricSum(payment, 'typemesh_requests_total', { reporter: 'destination', source_principal: shopCheckout, connection_security_policy: 'mutual_tls' })).toBe(3);

  // TCP across namespaces, admitted by principal, through the injected sidecar's listener.
  const listener = checkout.config.outbound.tcpServices.find((t) => t.namespace === 'billing' && t.port === 7000)!.listenerPort;
  expect(await echoThrough(checkout.address, listener, 'ledger entry 42')).toBe('ledger entry 42');
  expect(await metricSum(ledger, 'typemesh_tcp_connections_opened_total', { reporter: 'destination', source_principal: shopCheckout, connection_security_policy: 'mutual_tls' })).toBe(1);

  // The external service through the allow-list, reaching its stand-in; an unknown host is refused.
  const hits = partnerHits.length;
  expect((await callThrough(checkout, PARTNER_HOST, '/stock', 'GET')).body).toEqual({ from: 'partner' });
  expect(partnerHits.slice(hits)).toEqual([`${PARTNER_HOST} /stock`]);
  expect((await callThrough(checkout, 'api.unknown.example', '/exfiltrate', 'GET')).status).toBe(502);
  expect(partnerHits.length).toBe(hits + 1);
}, 60_000);

test('a workload of billing (same trust root) is refused by payment, which admits namespace shop only', async () => {
  const [auditor] = mesh.instancesOf('auditor');
  const [payment] = mesh.instancesOf('payment');
  expect((await callThrough(auditor, 'payment', '/process')).status).toBe(403);
  expect(await metricSum(payment, 'typemesh_requests_total', { reporter: 'destination', source_principal: id('billing', 'auditor'), response_code: '403' })).toBe(1);
}, 60_000);
