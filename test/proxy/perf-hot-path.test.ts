/**
 * Correctness of the hot-path optimizations (no timing here; the bench measures speed):
 * mTLS connections between sidecars are reused whatever Host alias the app uses for the
 * service (undici would otherwise close a pooled connection each time the per-request TLS
 * server name, derived from Host, changes). Real processes, real certificates, real sockets.
 */
import { request } from 'undici';
import {
  callOutbound, cleanup, echoHandler, freePort, ORDER_ID, PAYMENT_ID, paymentService, sidecarPorts, SidecarProcess,
  startSidecar, startUpstream, tempDir, TestPki, workloadConfig,
} from './harness';

jest.setTimeout(30_000);

let order: SidecarProcess;
let payment: SidecarProcess;

beforeAll(async () => {
  const dir = tempDir();
  const pki = await TestPki.create(dir);
  const app = await startUpstream(echoHandler('payment'));
  const [orderTls, paymentTls] = await Promise.all([pki.workload('order', ORDER_ID), pki.workload('payment', PAYMENT_ID)]);
  const paymentPorts = await sidecarPorts();
  const orderPorts = await sidecarPorts();
  // Metrics on at payment: its connection counter is what shows reuse.
  const paymentConfig = {
    ...workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: paymentTls, appPort: app.port }),
    telemetry: { metrics: { enabled: true }, accessLog: { enabled: false } },
  };
  const orderConfig = workloadConfig({
    name: 'order', identity: ORDER_ID, ports: orderPorts, tls: orderTls, appPort: await freePort(),
    services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }])],
  });
  [payment, order] = await Promise.all([startSidecar(dir, 'payment', paymentConfig), startSidecar(dir, 'order', orderConfig)]);
});
afterAll(cleanup);

/** mTLS connections payment's inbound listener has accepted so far. */
async function inboundMtlsConnections(): Promise<number> {
  const r = await request(`${payment.url('admin')}/metrics`);
  const text = await r.body.text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('typemesh_tcp_connections_opened_total{') && line.includes('reporter="destination"') && line.includes('connection_security_policy="mutual_tls"')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

test('sequential requests alternating Host aliases of one service reuse one mTLS connection', async () => {
  const before = await inboundMtlsConnections();
  const aliases = ['payment', 'payment.shop.svc.cluster.local', 'payment:8080'];
  for (let i = 0; i < 30; i++) {
    const r = await callOutbound(order, aliases[i % aliases.length], `/alias/${i}`);
    expect(r.status).toBe(200);
  }
  const opened = (await inboundMtlsConnections()) - before;
  // At least the first request's connection (so the counter is read right), and at most two
  // (should one close for an unrelated reason), never one per alias switch.
  expect(opened).toBeGreaterThanOrEqual(1);
  expect(opened).toBeLessThanOrEqual(2);
});
