/**
 * Tracing through the observer hooks: the headers each hop propagates (W3C traceparent, B3
 * single and multi, x-request-id) and the spans exported over real HTTP to a capture
 * collector speaking OTLP/HTTP JSON and Zipkin v2.
 */
import type { SidecarConfig } from '../../src/config/schema';
import type { RequestInfo, RequestOutcome } from '../../src/proxy-image/observer';
import { collectorUrl } from '../../src/proxy-image/telemetry/tracing';
import { CaptureCollector, CapturedSpan } from './telemetry-capture-collector';
import { inboundInfo, okOutcome, ORDER_ID, outboundInfo, PAYMENT_ID, telemetryConfig } from './telemetry-fixtures';
import { RemoteObservation, RemoteObservers } from './telemetry-remote-observers';

jest.setTimeout(30000);

// The observers run in a real Node.js process: see telemetry-observer-driver.ts for why.
let driver: RemoteObservers;
let collector: CaptureCollector;
let created: string[] = [];
let seq = 0;

beforeAll(() => {
  driver = RemoteObservers.start();
});

afterAll(async () => {
  await driver.close();
});

beforeEach(async () => {
  collector = await CaptureCollector.start();
});

afterEach(async () => {
  await Promise.all(created.map((name) => driver.shutdown(name)));
  created = [];
  await collector.close();
});

/** An observer handle: the driver's methods bound to one observer. */
interface Observer {
  start(info: RequestInfo): Promise<RemoteObservation>;
  end(observation: RemoteObservation, outcome: RequestOutcome): Promise<void>;
  shutdown(): Promise<void>;
}

async function createObserver(config: SidecarConfig, spanExportDelayMillis = 50): Promise<Observer> {
  const name = `${config.workload.name}-${++seq}`;
  await driver.create(name, config, spanExportDelayMillis);
  created.push(name);
  return {
    start: (info) => driver.start(name, info),
    end: (observation, outcome) => driver.end(observation, outcome),
    shutdown: async () => {
      created = created.filter((n) => n !== name);
      await driver.shutdown(name);
    },
  };
}

function tracingConfig(name: 'order' | 'payment', protocol: 'otlp-http' | 'zipkin', sampleRate = 100): SidecarConfig {
  return telemetryConfig(name, { metrics: { enabled: false }, accessLog: { enabled: false }, tracing: { enabled: true, sampleRate, collector: { protocol, endpoint: collector.url } } });
}

function tracingObserver(name: 'order' | 'payment', protocol: 'otlp-http' | 'zipkin', sampleRate = 100): Promise<Observer> {
  return createObserver(tracingConfig(name, protocol, sampleRate));
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])$/;

/** order's app calls payment: order's outbound hop, then payment's inbound hop. Returns what payment's app receives. */
async function callPayment(order: Observer, payment: Observer, appHeaders: Record<string, string> = {}) {
  const out = await order.start(outboundInfo({ headers: { 'host': 'payment:8080', 'user-agent': 'test-client/1.0', ...appHeaders } }));
  const inbound = await payment.start(inboundInfo(out.propagationHeaders));
  await payment.end(inbound, okOutcome({ destinationSubset: undefined, destinationPrincipal: undefined, upstreamHost: '127.0.0.1:8080' }));
  await order.end(out, okOutcome());
  return { out, inbound, toApp: inbound.propagationHeaders };
}

describe.each(['otlp-http', 'zipkin'] as const)('%s export', (protocol) => {
  test('one trace links the CLIENT span of the caller\'s sidecar and the SERVER span of the callee\'s', async () => {
    const order = await tracingObserver('order', protocol);
    const payment = await tracingObserver('payment', protocol);
    const { out, inbound, toApp } = await callPayment(order, payment);

    const [, outTrace, clientSpanId] = TRACEPARENT.exec(out.propagationHeaders.traceparent)!;
    const [, appTrace, serverSpanId, sampled] = TRACEPARENT.exec(toApp.traceparent)!;
    expect(appTrace).toBe(outTrace);
    expect(sampled).toBe('1');
    expect(out.traceId).toBe(outTrace);
    expect(inbound.traceId).toBe(outTrace);

    const spans = await collector.waitForSpans((s) => s.length >= 2);
    const client = spans.find((s) => s.kind === 'CLIENT')!;
    const server = spans.find((s) => s.kind === 'SERVER')!;
    expect(client).toMatchObject({ serviceName: 'order', traceId: outTrace, spanId: clientSpanId, name: expect.stringMatching(/^post payment$/i) });
    expect(client.parentSpanId).toBeUndefined();
    expect(server).toMatchObject({ serviceName: 'payment', traceId: outTrace, spanId: serverSpanId, parentSpanId: clientSpanId });
    expect(collector.exports.every((e) => e.path === (protocol === 'zipkin' ? '/api/v2/spans' : '/v1/traces'))).toBe(true);
    if (protocol === 'otlp-http') {
      expect(collector.exports[0].headers['content-type']).toMatch(/^application\/json/);
    }
    assertHttpAttributes(client, server);
  });
});

function assertHttpAttributes(client: CapturedSpan, server: CapturedSpan): void {
  // Zipkin tags are strings; OTLP keeps types. Compare as strings.
  const attrs = (s: CapturedSpan) => Object.fromEntries(Object.entries(s.attributes).map(([k, v]) => [k, String(v)]));
  expect(attrs(client)).toMatchObject({
    'http.request.method': 'POST',
    'url.path': '/charge/12345',
    'url.scheme': 'http',
    'server.address': 'payment',
    'server.port': '8080',
    'http.response.status_code': '200',
    'network.peer.address': '127.0.0.2',
    'network.peer.port': '15006',
    'user_agent.original': 'test-client/1.0',
    'typemesh.direction': 'outbound',
    'typemesh.destination_service': 'payment',
    'typemesh.destination_subset': 'v2',
    'typemesh.destination_principal': PAYMENT_ID,
    'typemesh.upstream_host': '127.0.0.2:15006',
    'typemesh.retries': '0',
    'typemesh.connection_security_policy': 'mutual_tls',
  });
  // The query (it may hold secrets) is not part of url.path.
  expect(JSON.stringify(client.attributes)).not.toContain('secret');
  expect(attrs(server)).toMatchObject({
    'http.request.method': 'POST',
    'url.path': '/charge/12345',
    'http.response.status_code': '200',
    'network.peer.address': '127.0.0.1',
    'typemesh.direction': 'inbound',
    'typemesh.source_principal': ORDER_ID,
  });
  expect(attrs(server)['typemesh.request_id']).toBe(attrs(client)['typemesh.request_id']);
}

describe('propagation', () => {
  test('the next hop gets traceparent, b3 and x-b3-* for the same span, and one x-request-id end to end', async () => {
    const order = await tracingObserver('order', 'otlp-http');
    const payment = await tracingObserver('payment', 'otlp-http');
    const { out, toApp } = await callPayment(order, payment);
    for (const headers of [out.propagationHeaders, toApp]) {
      const [, traceId, spanId] = TRACEPARENT.exec(headers.traceparent)!;
      expect(headers.b3).toBe(`${traceId}-${spanId}-1`);
      expect(headers['x-b3-traceid']).toBe(traceId);
      expect(headers['x-b3-spanid']).toBe(spanId);
      expect(headers['x-b3-sampled']).toBe('1');
    }
    expect(out.propagationHeaders['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(toApp['x-request-id']).toBe(out.propagationHeaders['x-request-id']);
  });

  test.each([
    ['W3C traceparent', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }],
    ['single b3', { b3: '0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1' }],
    ['multi x-b3-*', { 'x-b3-traceid': '0af7651916cd43dd8448eb211c80319c', 'x-b3-spanid': 'b7ad6b7169203331', 'x-b3-sampled': '1' }],
  ])('a sampled parent in %s is continued even at 0%% sampling', async (_format, parentHeaders) => {
    const payment = await tracingObserver('payment', 'otlp-http', 0);
    const inbound = await payment.start(inboundInfo(parentHeaders));
    await payment.end(inbound, okOutcome());
    expect(inbound.propagationHeaders.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    const [server] = await collector.waitForSpans((s) => s.length >= 1);
    expect(server).toMatchObject({ kind: 'SERVER', traceId: '0af7651916cd43dd8448eb211c80319c', parentSpanId: 'b7ad6b7169203331' });
  });

  test('traceparent wins over b3 when a request carries both', async () => {
    const payment = await tracingObserver('payment', 'otlp-http');
    const inbound = await payment.start(inboundInfo({
      traceparent: '00-11111111111111111111111111111111-2222222222222222-01',
      b3: '33333333333333333333333333333333-4444444444444444-1',
    }));
    expect(inbound.traceId).toBe('11111111111111111111111111111111');
    await payment.end(inbound, okOutcome());
  });

  test('at 0% sampling a new trace is propagated as not sampled and nothing is exported', async () => {
    const order = await tracingObserver('order', 'otlp-http', 0);
    const out = await order.start(outboundInfo());
    await order.end(out, okOutcome());
    expect(out.propagationHeaders.traceparent).toMatch(/-00$/);
    expect(out.propagationHeaders['x-b3-sampled']).toBe('0');
    await order.shutdown();
    expect(collector.exports).toEqual([]);
  });

  test('a 5xx ends the CLIENT span with status ERROR and error.type', async () => {
    const order = await tracingObserver('order', 'otlp-http');
    await order.end(await order.start(outboundInfo()), okOutcome({ status: 503, flags: ['URX'], retries: 2 }));
    const [client] = await collector.waitForSpans((s) => s.length >= 1);
    expect(client.statusCode).toBe(2);
    expect(client.attributes).toMatchObject({ 'error.type': '503', 'typemesh.response_flags': 'URX', 'typemesh.retries': 2 });
  });
});

test('a collector URL without a path gets the protocol\'s standard path; one with a path is kept', () => {
  expect(collectorUrl({ protocol: 'otlp-http', endpoint: 'http://otel:4318' })).toBe('http://otel:4318/v1/traces');
  expect(collectorUrl({ protocol: 'zipkin', endpoint: 'http://zipkin:9411/' })).toBe('http://zipkin:9411/api/v2/spans');
  expect(collectorUrl({ protocol: 'otlp-http', endpoint: 'http://otel:4318/custom/traces' })).toBe('http://otel:4318/custom/traces');
});

test('shutdown exports the spans still queued', async () => {
  const observer = await createObserver(tracingConfig('order', 'otlp-http'), 60000);
  await observer.end(await observer.start(outboundInfo()), okOutcome());
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(collector.exports).toEqual([]);
  await observer.shutdown();
  expect(collector.spans()).toHaveLength(1);
});

test('shutdown does not wait for an unreachable collector longer than 3 s', async () => {
  // A port that was just closed: connections are refused, and the OTLP exporter retries them.
  const closed = await CaptureCollector.start();
  const endpoint = closed.url;
  await closed.close();
  const observer = await createObserver(telemetryConfig('order', { metrics: { enabled: false }, accessLog: { enabled: false }, tracing: { enabled: true, sampleRate: 100, collector: { protocol: 'otlp-http', endpoint } } }));
  for (let i = 0; i < 3; i++) await observer.end(await observer.start(outboundInfo()), okOutcome());
  await new Promise((resolve) => setTimeout(resolve, 200));
  const started = Date.now();
  await observer.shutdown();
  expect(Date.now() - started).toBeLessThan(4500);
});
