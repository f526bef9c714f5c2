/**
 * Egress on the local mesh, as a user would write it: a chart whose order service checks stock
 * with a partner's HTTPS API declared as an ExternalService (CA from a Secret), in a mesh with
 * the default allow-list egress. Locally, the partner is an HTTPS server on loopback with a
 * certificate for the partner's host name from a CA minted here; the plan's externalEndpoints
 * points the service at it. The order app calls `http://stock.partner.example` through its
 * sidecar (HTTP_PROXY), which originates TLS and verifies the certificate; a host nobody
 * declared is refused by the same sidecar with 502 NR.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Chart } from 'cdk8s';
import { ExternalCa, ExternalService, Mesh, MeshService } from '../../src/constructs';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { livingProcesses, LocalMesh, workloadsFromChart } from '../../src/local';
import { callThrough, metricSum, orderApp, paymentApp, prepareApps } from './mesh-fixtures';

const PARTNER_HOST = 'stock.partner.example';

/** The chart a user writes: the partner API is declared once, before the services that call it. */
function shopChart(): Chart {
  const chart = new Chart(new App(), 'shop-egress');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'egress' });
  new ExternalService(chart, 'stock-api', {
    mesh,
    hosts: [PARTNER_HOST],
    caCertificate: ExternalCa.fromSecret('partner-ca'),
  });
  const payment = new MeshService(chart, 'payment', {
    mesh, name: 'payment-service', ports: [{ port: 80, targetPort: 8080 }],
    versions: [{ name: 'v1', image: 'example.com/payment:1', replicas: 1 }],
  });
  const order = new MeshService(chart, 'order', {
    mesh, name: 'order-service', ports: [{ port: 80, targetPort: 8080 }],
    versions: [{ name: 'v1', image: 'example.com/order:1', replicas: 1 }],
  });
  // A client without an app: the test speaks for it through its sidecar.
  const shopper = new MeshService(chart, 'shopper', {
    mesh, name: 'shopper', ports: [{ port: 80, targetPort: 8080 }],
    versions: [{ name: 'v1', image: 'example.com/shopper:1', replicas: 1 }],
  });
  shopper.callsTo(order);
  order.callsTo(payment);
  return chart;
}

let mesh: LocalMesh;
let partnerHits: Array<{ url: string; tls: boolean; sni: string | undefined; source: unknown }>;

beforeAll(async () => {
  prepareApps();
  const dir = path.join(os.tmpdir(), `typemesh-e2e-egress-${process.pid}`);
  const ca = await LocalCertificateAuthority.create({ commonName: 'Partner Test CA' });
  const leaf = await ca.issueWorkload({ spiffeId: 'spiffe://partner.example/not-a-mesh-peer', dnsNames: [PARTNER_HOST] });
  partnerHits = [];
  const partner = https.createServer({ cert: leaf.certPem + ca.certPem, key: leaf.keyPem }, (req, res) => {
    partnerHits.push({ url: req.url ?? '', tls: (req.socket as { encrypted?: boolean }).encrypted === true, sni: (req.socket as { servername?: string }).servername, source: req.headers['x-typemesh-source'] });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ item: req.url?.split('/').pop(), inStock: 7, from: 'partner' }));
  });
  await new Promise<void>((resolve) => partner.listen(0, '127.0.0.1', resolve));
  afterAllCleanups.push(() => new Promise<void>((resolve) => {
    partner.closeAllConnections();
    partner.close(() => resolve());
  }));
  mkdirSync(dir, { recursive: true });
  afterAllCleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const caFile = path.join(dir, 'partner-ca.pem');
  writeFileSync(caFile, ca.certPem);
  mesh = await LocalMesh.start({
    workloads: workloadsFromChart(shopChart()),
    processes: {
      'payment-service/v1': paymentApp(),
      'order-service/v1': orderApp({ CHECK_INVENTORY: 'true', INVENTORY_URL: `http://${PARTNER_HOST}` }),
    },
    // The plan's stand-in for the partner: the loopback server and the CA of its certificate.
    externalEndpoints: { 'stock-api': { address: '127.0.0.1', port: (partner.address() as AddressInfo).port, caFile } },
  });
}, 120_000);

const afterAllCleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  await mesh?.stop();
  for (const c of afterAllCleanups) await c();
  expect(livingProcesses()).toEqual([]);
}, 60_000);

const shopper = () => mesh.instancesOf('shopper/v1')[0];
const order = () => mesh.instancesOf('order-service/v1')[0];

test('the app reaches the external service through its sidecar, over TLS originated and verified by the sidecar', async () => {
  const r = await callThrough(shopper(), 'order-service', '/orders?item=lamp', 'GET');
  expect(r.status).toBe(200);
  expect(r.body.inventory).toEqual({ item: 'lamp', inStock: 7, from: 'partner' });
  const hit = partnerHits.find((h) => h.url === '/stock/lamp');
  expect(hit).toMatchObject({ tls: true, sni: PARTNER_HOST });
  // The partner learns nothing about the workload.
  expect(hit!.source).toBeUndefined();
  // The order sidecar's metrics name the external host.
  expect(await metricSum(order(), 'typemesh_requests_total', { reporter: 'source', destination_service: PARTNER_HOST, response_code: '200' })).toBeGreaterThanOrEqual(1);
});

test('an unknown host is refused by the sidecar under the default allow-list', async () => {
  const before = await metricSum(order(), 'typemesh_requests_total', { response_code: '502', response_flags: 'NR' });
  const r = await callThrough(order(), 'api.unknown.example', '/exfiltrate', 'GET');
  expect(r.status).toBe(502);
  expect(await metricSum(order(), 'typemesh_requests_total', { response_code: '502', response_flags: 'NR', destination_service: 'unknown' })).toBe(before + 1);
  // A loopback server outside the mesh is no exception: it is refused, not passed through.
  const loopback = await callThrough(order(), `127.0.0.1:${order().ports.app}`, '/healthz', 'GET');
  expect(loopback.status).toBe(502);
});
