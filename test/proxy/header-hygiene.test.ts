/**
 * Mesh-internal and stale headers never cross a sidecar, proven with real processes: order's
 * app -> order's sidecar -> mTLS (HTTP/2) -> payment's sidecar (STRICT) -> payment's app,
 * a passthrough host outside the mesh, and a plaintext client calling a second payment
 * sidecar (PERMISSIVE) directly. The apps echo the headers they received. All sidecars have
 * metrics and tracing on (exporting over OTLP to a capture collector, to read SERVER spans).
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import type { SidecarConfigInput } from '../../src/config';
import { CaptureCollector } from './telemetry-capture-collector';
import { find, parseExposition } from './telemetry-fixtures';
import {
  callOutbound, cleanup, echoHandler, freePort, onCleanup, ORDER_ID, PAYMENT_ID, paymentService, sidecarPorts, SidecarProcess,
  startSidecar, startUpstream, tempDir, TestPki, workloadConfig,
} from './harness';

jest.setTimeout(60_000);

function withTelemetry(config: SidecarConfigInput, endpoint: string): SidecarConfigInput {
  return {
    ...config,
    telemetry: {
      metrics: { enabled: true },
      accessLog: { enabled: false },
      tracing: { enabled: true, sampleRate: 100, collector: { protocol: 'otlp-http', endpoint } },
    },
  };
}

/** What an app sends that must not travel on: a forged source and a b3 context whose parent and flags would go stale. */
const APP_HEADERS = {
  'x-typemesh-source': 'intruder;other;v9',
  'x-b3-traceid': '463ac35c9f6413ad48485a3953bb6124',
  'x-b3-spanid': 'a2fb4a1d1a96d312',
  'x-b3-parentspanid': '0020000000000001',
  'x-b3-sampled': '1',
  'x-b3-flags': '1',
};

type Echo = { headers: Record<string, string> };

describe('header hygiene across sidecars', () => {
  let collector: CaptureCollector;
  let order: SidecarProcess;
  let payment: SidecarProcess;
  let permissive: SidecarProcess;
  let meshEcho: Echo;
  let passthroughEcho: Echo;
  let plaintextEcho: Echo;
  let paymentMetrics: string;
  let permissiveMetrics: string;
  let permissiveMtlsStatus: number;

  beforeAll(async () => {
    collector = await CaptureCollector.start();
    onCleanup(() => collector.close());
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    const app = await startUpstream(echoHandler('payment'));
    const outside = await startUpstream(echoHandler('outside'));
    const permissiveApp = await startUpstream(echoHandler('payment-permissive'));
    const [orderTls, paymentTls, permissiveTls] = await Promise.all([
      pki.workload('order', ORDER_ID), pki.workload('payment', PAYMENT_ID), pki.workload('payment-permissive', PAYMENT_ID),
    ]);
    const paymentPorts = await sidecarPorts();
    const orderPorts = await sidecarPorts();
    const permissivePorts = await sidecarPorts();
    const paymentConfig = withTelemetry(workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: paymentTls, appPort: app.port }), collector.url);
    const permissiveConfig = withTelemetry(workloadConfig({
      name: 'payment', identity: PAYMENT_ID, ports: permissivePorts, tls: permissiveTls, appPort: permissiveApp.port, inbound: { mtls: { mode: 'PERMISSIVE' } },
    }), collector.url);
    const orderConfig = withTelemetry(workloadConfig({
      name: 'order',
      identity: ORDER_ID,
      ports: orderPorts,
      tls: orderTls,
      appPort: await freePort(),
      // HTTP/2 between the sidecars: the inbound side reads the peer address through the h2 compat layer.
      services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }], { protocol: 'http2' })],
      passthrough: true,
    }), collector.url);
    [payment, order, permissive] = await Promise.all([
      startSidecar(dir, 'payment', paymentConfig), startSidecar(dir, 'order', orderConfig), startSidecar(dir, 'payment-permissive', permissiveConfig),
    ]);

    const mesh = await callOutbound(order, 'payment:8080', '/charge', { headers: APP_HEADERS });
    const pass = await callOutbound(order, `127.0.0.1:${outside.port}`, '/elsewhere', { headers: APP_HEADERS });
    // A plaintext client (no certificate) claims to be order: it must neither be believed nor reach the app.
    const plain = await request(`http://127.0.0.1:${permissivePorts.inbound}/plain`, { headers: { 'x-typemesh-source': 'order;shop;v1' } });
    const plainBody = await plain.body.text();
    expect([mesh.status, pass.status, plain.statusCode]).toEqual([200, 200, 200]);
    meshEcho = JSON.parse(mesh.body);
    passthroughEcho = JSON.parse(pass.body);
    plaintextEcho = JSON.parse(plainBody);
    const scrape = async (p: SidecarProcess): Promise<string> => (await request(`${p.url('admin')}/metrics`)).body.text();
    [paymentMetrics, permissiveMetrics] = await Promise.all([scrape(payment), scrape(permissive)]);
    // After the scrape (the metrics tests count one request per sidecar): an mTLS client with
    // order's certificate calls the PERMISSIVE sidecar, whose TLS runs over a stream wrapper.
    const mtlsAgent = new Agent({
      connect: { cert: readFileSync(orderTls.certFile), key: readFileSync(orderTls.keyFile), ca: readFileSync(orderTls.caFile), checkServerIdentity: () => undefined },
    });
    const viaMtls = await request(`https://127.0.0.1:${permissivePorts.inbound}/permissive-mtls`, { dispatcher: mtlsAgent, headers: { host: 'payment' } });
    await viaMtls.body.dump();
    permissiveMtlsStatus = viaMtls.statusCode;
    await mtlsAgent.close();
    // SIGTERM flushes the spans.
    await Promise.all([order.stop('SIGTERM'), payment.stop('SIGTERM'), permissive.stop('SIGTERM')]);
  });

  afterAll(cleanup);

  test('inbound: the app never sees x-typemesh-source (over mTLS or plaintext)', () => {
    expect(meshEcho.headers).not.toHaveProperty('x-typemesh-source');
    expect(plaintextEcho.headers).not.toHaveProperty('x-typemesh-source');
  });

  test('inbound: the source read over mTLS is the one order\'s sidecar wrote; a plaintext forgery is not trusted', () => {
    const overMtls = find(parseExposition(paymentMetrics), 'typemesh_requests_total', { reporter: 'destination' });
    const plaintext = find(parseExposition(permissiveMetrics), 'typemesh_requests_total', { reporter: 'destination' });
    expect(overMtls).toHaveLength(1);
    expect(overMtls[0].labels.connection_security_policy).toBe('mutual_tls');
    // The app's "intruder;other;v9" was dropped by order's sidecar, which stated its own workload.
    expect(overMtls[0].labels).toMatchObject({ source_workload: 'order', source_workload_namespace: 'shop', source_version: 'v1', source_principal: ORDER_ID });
    expect(plaintext).toHaveLength(1);
    expect(plaintext[0].labels.connection_security_policy).toBe('none');
    expect(plaintext[0].labels).toMatchObject({ source_workload: 'unknown', source_workload_namespace: 'unknown', source_principal: 'unknown' });
  });

  test('outbound: a passthrough host gets neither the app\'s x-typemesh-source nor stale x-b3-parentspanid / x-b3-flags', () => {
    const h = passthroughEcho.headers;
    expect(h).not.toHaveProperty('x-typemesh-source');
    expect(h).not.toHaveProperty('x-b3-parentspanid');
    expect(h).not.toHaveProperty('x-b3-flags');
    // The trace continues with the sidecar's CLIENT span as the new span id.
    expect(h['x-b3-traceid']).toBe(APP_HEADERS['x-b3-traceid']);
    expect(h['x-b3-spanid']).toMatch(/^[0-9a-f]{16}$/);
    expect(h['x-b3-spanid']).not.toBe(APP_HEADERS['x-b3-spanid']);
  });

  test('mesh: the payment app gets the SERVER span\'s b3 context with no stale parent or flags', () => {
    const h = meshEcho.headers;
    expect(h).not.toHaveProperty('x-b3-parentspanid');
    expect(h).not.toHaveProperty('x-b3-flags');
    expect(h['x-b3-traceid']).toBe(APP_HEADERS['x-b3-traceid']);
  });

  test('inbound: SERVER spans carry network.peer.address (HTTP/2 from the peer sidecar, HTTP/1.1 plaintext and mTLS to PERMISSIVE)', async () => {
    expect(permissiveMtlsStatus).toBe(200);
    const spans = await collector.waitForSpans((s) => s.filter((x) => x.kind === 'SERVER').length >= 3);
    const servers = spans.filter((s) => s.kind === 'SERVER');
    expect(servers).toHaveLength(3);
    for (const s of servers) expect(s.attributes['network.peer.address']).toBe('127.0.0.1');
    // The PERMISSIVE sidecar's mTLS request: its TLSSocket sits on a stream wrapper, not the TCP socket.
    const permissiveMtls = servers.find((s) => s.attributes['url.path'] === '/permissive-mtls');
    expect(permissiveMtls?.attributes).toMatchObject({ 'typemesh.connection_security_policy': 'mutual_tls', 'network.peer.address': '127.0.0.1' });
    // The mesh request's SERVER span is the one the app's b3 context names.
    expect(servers.map((s) => s.spanId)).toContain(meshEcho.headers['x-b3-spanid']);
  });
});
