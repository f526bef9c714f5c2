/**
 * Telemetry end to end with real processes: order's app -> order's sidecar (outbound) ->
 * mTLS -> payment's sidecar (inbound) -> payment's app, both sidecars with metrics, JSON access
 * logs and tracing on. order's sidecar exports to Zipkin, payment's over OTLP/HTTP, both to
 * one capture collector, so one run covers both exporters as bundled in the real proxy.
 */
import { request } from 'undici';
import type { SidecarConfigInput } from '../../src/config';
import { CaptureCollector } from './telemetry-capture-collector';
import { find, parseExposition } from './telemetry-fixtures';
import {
  callOutbound, cleanup, echoHandler, freePort, onCleanup, ORDER_ID, PAYMENT_ID, paymentService, sidecarPorts, SidecarProcess,
  startSidecar, startUpstream, tempDir, TestPki, workloadConfig,
} from './harness';

jest.setTimeout(60_000);

function withTelemetry(config: SidecarConfigInput, protocol: 'otlp-http' | 'zipkin', endpoint: string): SidecarConfigInput {
  return {
    ...config,
    telemetry: {
      metrics: { enabled: true },
      accessLog: { enabled: true, format: 'json' },
      tracing: { enabled: true, sampleRate: 100, collector: { protocol, endpoint } },
    },
  };
}

async function scrape(p: SidecarProcess): Promise<{ contentType: string; text: string }> {
  const r = await request(`${p.url('admin')}/metrics`);
  return { contentType: String(r.headers['content-type']), text: await r.body.text() };
}

/** The JSON access log lines a sidecar wrote to stdout. */
function accessLog(p: SidecarProcess): Array<Record<string, unknown>> {
  return p.stdout.join('').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

describe('telemetry across two sidecars', () => {
  let collector: CaptureCollector;
  let order: SidecarProcess;
  let payment: SidecarProcess;
  let response: { status: number; body: string };

  beforeAll(async () => {
    collector = await CaptureCollector.start();
    onCleanup(() => collector.close());
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    const app = await startUpstream(echoHandler('payment'));
    const [orderTls, paymentTls] = await Promise.all([pki.workload('order', ORDER_ID), pki.workload('payment', PAYMENT_ID)]);
    const paymentPorts = await sidecarPorts();
    const orderPorts = await sidecarPorts();
    const paymentConfig = withTelemetry(workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: paymentTls, appPort: app.port }), 'otlp-http', collector.url);
    const orderConfig = withTelemetry(workloadConfig({
      name: 'order',
      identity: ORDER_ID,
      ports: orderPorts,
      tls: orderTls,
      appPort: await freePort(),
      services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }])],
    }), 'zipkin', collector.url);
    [payment, order] = await Promise.all([startSidecar(dir, 'payment', paymentConfig), startSidecar(dir, 'order', orderConfig)]);

    // order's app calls payment through its sidecar, with no trace context and no request id.
    response = await callOutbound(order, 'payment:8080', '/charge/12345?amount=5', { method: 'POST', body: 'card=1', headers: { 'content-type': 'text/plain' } });
  });

  afterAll(cleanup);

  test('the request went through', () => {
    expect(response.status).toBe(200);
  });

  test('/metrics: order reports as source, payment as destination, with both workloads named', async () => {
    const [orderMetrics, paymentMetrics] = await Promise.all([scrape(order), scrape(payment)]);
    expect(orderMetrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const outbound = find(parseExposition(orderMetrics.text), 'typemesh_requests_total', { reporter: 'source' });
    expect(outbound).toHaveLength(1);
    expect(outbound[0]).toMatchObject({
      value: 1,
      labels: {
        source_workload: 'order', source_workload_namespace: 'shop', source_principal: ORDER_ID, source_version: 'v1',
        destination_workload: 'payment', destination_workload_namespace: 'shop', destination_principal: PAYMENT_ID, destination_version: 'v1',
        destination_service: 'payment', connection_security_policy: 'mutual_tls', response_code: '200', response_flags: '-',
      },
    });
    const inbound = find(parseExposition(paymentMetrics.text), 'typemesh_requests_total', { reporter: 'destination' });
    expect(inbound).toHaveLength(1);
    expect(inbound[0]).toMatchObject({
      value: 1,
      labels: {
        // Learned from x-typemesh-source, trusted because it came over mTLS from ORDER_ID's namespace.
        source_workload: 'order', source_workload_namespace: 'shop', source_principal: ORDER_ID, source_version: 'v1',
        destination_workload: 'payment', destination_principal: PAYMENT_ID, connection_security_policy: 'mutual_tls', response_code: '200',
      },
    });
    // Each sidecar has loaded its certificate and accepted connections.
    expect(find(parseExposition(orderMetrics.text), 'typemesh_certificate_expiry_timestamp_seconds')[0].value).toBeGreaterThan(Date.now() / 1000);
    expect(find(parseExposition(paymentMetrics.text), 'typemesh_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' })[0].value).toBeGreaterThanOrEqual(1);
  });

  describe('after both sidecars drained', () => {
    let app: { headers: Record<string, string> };
    let traceId: string;

    beforeAll(async () => {
      app = JSON.parse(response.body);
      // SIGTERM makes each sidecar flush its spans and its access log before exiting.
      await Promise.all([order.stop('SIGTERM'), payment.stop('SIGTERM')]);
      traceId = /^00-([0-9a-f]{32})-/.exec(app.headers.traceparent)?.[1] ?? 'no traceparent at the app';
    });

    test('one trace links the CLIENT span of order\'s sidecar and the SERVER span of payment\'s', async () => {
      const spans = await collector.waitForSpans((s) => s.length >= 2);
      expect(spans).toHaveLength(2);
      const client = spans.find((s) => s.kind === 'CLIENT')!;
      const server = spans.find((s) => s.kind === 'SERVER')!;
      expect(client).toMatchObject({ protocol: 'zipkin', serviceName: 'order', traceId });
      expect(server).toMatchObject({ protocol: 'otlp', serviceName: 'payment', traceId, parentSpanId: client.spanId });
      expect(client.parentSpanId).toBeUndefined();
      expect(server.attributes).toMatchObject({ 'http.request.method': 'POST', 'url.path': '/charge/12345', 'http.response.status_code': 200 });
      expect(client.attributes).toMatchObject({ 'http.request.method': 'POST', 'server.address': 'payment', 'typemesh.destination_service': 'payment' });
    });

    test('the app receives traceparent and b3 for the SERVER span, and the x-request-id the first sidecar created', async () => {
      const server = collector.spans().find((s) => s.kind === 'SERVER')!;
      expect(app.headers.traceparent).toBe(`00-${traceId}-${server.spanId}-01`);
      expect(app.headers.b3).toBe(`${traceId}-${server.spanId}-1`);
      expect(app.headers['x-b3-traceid']).toBe(traceId);
      expect(app.headers['x-b3-spanid']).toBe(server.spanId);
      expect(app.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });

    test('each sidecar wrote one access log line on stdout with the trace id and request id', () => {
      const orderLines = accessLog(order);
      const paymentLines = accessLog(payment);
      expect(orderLines).toHaveLength(1);
      expect(paymentLines).toHaveLength(1);
      expect(orderLines[0]).toMatchObject({
        direction: 'outbound', method: 'POST', authority: 'payment:8080', path: '/charge/12345?amount=5', status: 200,
        request_bytes: 6, destination_service: 'payment', retries: 0, response_flags: '-', principal: PAYMENT_ID,
        request_id: app.headers['x-request-id'], trace_id: traceId,
      });
      expect(orderLines[0].upstream_host).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(paymentLines[0]).toMatchObject({
        direction: 'inbound', method: 'POST', path: '/charge/12345?amount=5', status: 200, principal: ORDER_ID,
        request_id: app.headers['x-request-id'], trace_id: traceId,
      });
      expect(paymentLines[0].response_bytes).toBeGreaterThan(0);
    });
  });
});
