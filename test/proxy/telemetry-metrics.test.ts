/**
 * The sidecar's Prometheus metrics, recorded through the observer hooks the proxy calls and
 * read back from the real exposition text (and checked by the real promtool).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { TelemetryObserver } from '../../src/proxy-image/telemetry/telemetry-observer';
import { find, inboundInfo, okOutcome, ORDER_ID, outboundInfo, parseExposition, PAYMENT_ID, telemetryConfig } from './telemetry-fixtures';

const METRICS_ONLY = { metrics: { enabled: true }, tracing: { enabled: false }, accessLog: { enabled: false } };

function metricsObserver(name: 'order' | 'payment', maxRequestLabelSets?: number): TelemetryObserver {
  return TelemetryObserver.fromConfig(telemetryConfig(name, METRICS_ONLY), { metrics: { maxRequestLabelSets } });
}

async function samplesOf(observer: TelemetryObserver) {
  const text = await observer.metrics();
  expect(text).toBeDefined();
  return parseExposition(text!);
}

describe('request metrics', () => {
  test('outbound requests are reported by the source with Istio labels', async () => {
    const order = metricsObserver('order');
    const obs = order.requestStarted(outboundInfo());
    expect(obs.propagationHeaders['x-typemesh-source']).toBe('order;shop;v1');
    obs.end(okOutcome());
    order.requestStarted(outboundInfo()).end(okOutcome({ status: 503, flags: ['URX', 'UF'], retries: 2 }));

    const samples = await samplesOf(order);
    const ok = find(samples, 'typemesh_requests_total', { response_code: '200' });
    expect(ok).toEqual([{
      name: 'typemesh_requests_total',
      value: 1,
      labels: {
        reporter: 'source',
        source_workload: 'order',
        source_workload_namespace: 'shop',
        source_principal: ORDER_ID,
        source_version: 'v1',
        destination_workload: 'payment',
        destination_workload_namespace: 'shop',
        destination_principal: PAYMENT_ID,
        destination_version: 'v2',
        destination_service: 'payment',
        connection_security_policy: 'mutual_tls',
        response_code: '200',
        grpc_response_status: '',
        response_flags: '-',
      },
    }]);
    const failed = find(samples, 'typemesh_requests_total', { response_code: '503' });
    expect(failed.map((s) => s.labels.response_flags)).toEqual(['UF,URX']);
    // The histograms share the labels; sizes land in their buckets.
    expect(find(samples, 'typemesh_request_duration_seconds_count', { response_code: '200' })[0].value).toBe(1);
    expect(find(samples, 'typemesh_request_bytes_sum', { response_code: '200' })[0].value).toBe(120);
    expect(find(samples, 'typemesh_response_bytes_bucket', { response_code: '200', le: '1000' })[0].value).toBe(0);
    expect(find(samples, 'typemesh_response_bytes_bucket', { response_code: '200', le: '10000' })[0].value).toBe(1);
  });

  test('the raw path, query and authority never become label values', async () => {
    const order = metricsObserver('order');
    order.requestStarted(outboundInfo({ path: '/charge/98765?card=4111111111111111' })).end(okOutcome());
    const text = (await order.metrics())!;
    expect(text).not.toContain('98765');
    expect(text).not.toContain('4111');
    expect(text).not.toContain('payment:8080');
  });

  test('the inbound side labels the source from x-typemesh-source over mTLS', async () => {
    const order = metricsObserver('order');
    const payment = metricsObserver('payment');
    const out = order.requestStarted(outboundInfo());
    payment.requestStarted(inboundInfo(out.propagationHeaders)).end(okOutcome({ destinationSubset: undefined, destinationPrincipal: undefined }));

    const [sample] = find(await samplesOf(payment), 'typemesh_requests_total');
    expect(sample.labels).toMatchObject({
      reporter: 'destination',
      source_workload: 'order',
      source_workload_namespace: 'shop',
      source_principal: ORDER_ID,
      source_version: 'v1',
      destination_workload: 'payment',
      destination_workload_namespace: 'shop',
      destination_principal: PAYMENT_ID,
      destination_version: 'v1',
      destination_service: 'payment',
    });
  });

  test('x-typemesh-source is not trusted without mTLS or from another namespace', async () => {
    const payment = metricsObserver('payment');
    // Plain text: anyone could send the header.
    payment.requestStarted(inboundInfo({ 'x-typemesh-source': 'order;shop;v1' }, { connectionSecurity: 'none', sourcePrincipal: undefined }))
      .end(okOutcome({ status: 201 }));
    // mTLS, but the certificate says namespace "evil" while the header claims "shop".
    payment.requestStarted(inboundInfo({ 'x-typemesh-source': 'order;shop;v1' }, { sourcePrincipal: 'spiffe://cluster.local/ns/evil/sa/x' }))
      .end(okOutcome({ status: 202 }));
    // mTLS, malformed header.
    payment.requestStarted(inboundInfo({ 'x-typemesh-source': 'order;shop' })).end(okOutcome({ status: 204 }));

    const samples = await samplesOf(payment);
    expect(find(samples, 'typemesh_requests_total', { response_code: '201' })[0].labels).toMatchObject({
      source_workload: 'unknown', source_workload_namespace: 'unknown', source_principal: 'unknown', source_version: 'unknown', connection_security_policy: 'none',
    });
    expect(find(samples, 'typemesh_requests_total', { response_code: '202' })[0].labels).toMatchObject({
      source_workload: 'unknown', source_workload_namespace: 'evil', source_principal: 'spiffe://cluster.local/ns/evil/sa/x', source_version: 'unknown',
    });
    expect(find(samples, 'typemesh_requests_total', { response_code: '204' })[0].labels).toMatchObject({
      source_workload: 'unknown', source_workload_namespace: 'shop', source_principal: ORDER_ID,
    });
  });

  test('values that are not names, principals or status codes collapse to unknown', async () => {
    const order = metricsObserver('order');
    order.requestStarted(outboundInfo({ destinationService: undefined, authority: 'example.com' }))
      .end(okOutcome({ status: 999, destinationSubset: 'V2_Upper', destinationPrincipal: 'not-a-spiffe-id', flags: ['made-up'], grpcStatus: 99 }));
    const [sample] = find(await samplesOf(order), 'typemesh_requests_total');
    expect(sample.labels).toMatchObject({
      destination_workload: 'unknown',
      destination_workload_namespace: 'unknown',
      destination_principal: 'unknown',
      destination_version: 'unknown',
      destination_service: 'unknown',
      response_code: 'unknown',
      grpc_response_status: 'unknown',
      response_flags: 'unknown',
    });
  });

  test('distinct label sets are capped; the excess goes to one overflow series', async () => {
    const order = metricsObserver('order', 3);
    for (let i = 0; i < 10; i++) {
      order.requestStarted(outboundInfo({ destinationService: `svc-${i}` })).end(okOutcome());
    }
    const samples = await samplesOf(order);
    const series = find(samples, 'typemesh_requests_total');
    expect(series.map((s) => s.labels.destination_service).sort()).toEqual(['svc-0', 'svc-1', 'svc-2', 'unknown']);
    expect(find(series, 'typemesh_requests_total', { destination_service: 'unknown' })[0]).toMatchObject({
      value: 7,
      labels: { reporter: 'source', response_code: '200', connection_security_policy: 'mutual_tls', destination_version: 'unknown', source_workload: 'unknown' },
    });
    expect(find(samples, 'typemesh_metric_label_sets_overflowed_total')[0].value).toBe(7);
  });

  test('a repeated label set is one series', async () => {
    // Its cost (about 3 µs a request) is measured by the benchmark, not timed here.
    const order = metricsObserver('order');
    const info = outboundInfo();
    const outcome = okOutcome();
    for (let i = 0; i < 20000; i++) order.requestStarted(info).end(outcome);
    const series = find(await samplesOf(order), 'typemesh_requests_total');
    expect(series.map((s) => s.value)).toEqual([20000]);
  });

  test('end() records once, and requestStarted keeps a usable x-request-id and replaces a bad one', async () => {
    const order = metricsObserver('order');
    const given = order.requestStarted(outboundInfo({ headers: { 'x-request-id': 'abc-123' } }));
    expect(given.requestId).toBe('abc-123');
    expect(given.propagationHeaders['x-request-id']).toBe('abc-123');
    given.end(okOutcome());
    given.end(okOutcome());
    const tooLong = order.requestStarted(outboundInfo({ headers: { 'x-request-id': 'x'.repeat(500) } }));
    expect(tooLong.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const created = order.requestStarted(outboundInfo());
    expect(created.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(created.requestId).not.toBe(tooLong.requestId);
    expect(find(await samplesOf(order), 'typemesh_requests_total')[0].value).toBe(1);
  });
});

describe('proxy metrics', () => {
  test('retries, budget exhaustions, ejections, overflows, reloads, certificate expiry and TCP connections', async () => {
    const order = metricsObserver('order');
    order.retried('payment', 'v2');
    order.retried('payment', 'v2');
    order.retryBudgetExhausted('payment');
    order.endpointEjected('payment', 'v1', '127.0.0.3:15006');
    order.poolOverflow('payment');
    order.configReload(true);
    order.configReload(false);
    order.configReload(false);
    order.certificateLoaded(new Date('2030-01-02T03:04:05Z'));
    order.tcpConnectionOpened('outbound', 'none');
    order.tcpConnectionOpened('outbound', 'none');
    order.tcpConnectionClosed('outbound', 'none');
    order.tcpConnectionOpened('inbound', 'mutual_tls');

    const samples = await samplesOf(order);
    expect(find(samples, 'typemesh_retries_total')).toEqual([{ name: 'typemesh_retries_total', labels: { destination_service: 'payment', destination_version: 'v2' }, value: 2 }]);
    expect(find(samples, 'typemesh_retry_budget_exhausted_total', { destination_service: 'payment' })[0].value).toBe(1);
    expect(find(samples, 'typemesh_outlier_ejections_total')).toEqual([{ name: 'typemesh_outlier_ejections_total', labels: { destination_service: 'payment', destination_version: 'v1' }, value: 1 }]);
    expect(find(samples, 'typemesh_pool_overflows_total', { destination_service: 'payment' })[0].value).toBe(1);
    expect(find(samples, 'typemesh_config_reloads_total', { result: 'accepted' })[0].value).toBe(1);
    expect(find(samples, 'typemesh_config_reloads_total', { result: 'refused' })[0].value).toBe(2);
    expect(find(samples, 'typemesh_certificate_expiry_timestamp_seconds')[0].value).toBe(Date.parse('2030-01-02T03:04:05Z') / 1000);
    expect(find(samples, 'typemesh_tcp_connections_opened_total', { reporter: 'source', source_workload: 'order', connection_security_policy: 'none' })[0].value).toBe(2);
    expect(find(samples, 'typemesh_tcp_connections_closed_total', { reporter: 'source', source_workload: 'order' })[0].value).toBe(1);
    expect(find(samples, 'typemesh_tcp_connections_opened_total', { reporter: 'destination', destination_workload: 'order', connection_security_policy: 'mutual_tls' })[0].value).toBe(1);
  });

  test('both reload results are exported before the first reload', async () => {
    const samples = await samplesOf(metricsObserver('order'));
    expect(find(samples, 'typemesh_config_reloads_total').map((s) => [s.labels.result, s.value])).toEqual([['accepted', 0], ['refused', 0]]);
  });

  test('metrics() is undefined when metrics are off', async () => {
    const observer = TelemetryObserver.fromConfig(telemetryConfig('order', { metrics: { enabled: false }, accessLog: { enabled: false } }));
    observer.requestStarted(outboundInfo()).end(okOutcome());
    await expect(observer.metrics()).resolves.toBeUndefined();
  });
});

const PROMTOOL = '/usr/bin/promtool';
const promtoolPresent = existsSync(PROMTOOL);
if (!promtoolPresent) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED: promtool check metrics — ${PROMTOOL} is absent (Debian/Ubuntu: apt-get install prometheus)`);
}

(promtoolPresent ? test : test.skip)('promtool check metrics accepts the exposition of a busy sidecar', async () => {
  const order = metricsObserver('order');
  const payment = metricsObserver('payment');
  for (const status of [200, 404, 503]) {
    const out = order.requestStarted(outboundInfo());
    payment.requestStarted(inboundInfo(out.propagationHeaders)).end(okOutcome({ status }));
    out.end(okOutcome({ status, flags: status === 503 ? ['URX'] : [], grpcStatus: status === 503 ? 14 : undefined }));
  }
  order.retried('payment', 'v2');
  order.retryBudgetExhausted('payment');
  order.endpointEjected('payment', 'v2', '127.0.0.9:1');
  order.poolOverflow('payment');
  order.configReload(true);
  order.certificateLoaded(new Date(Date.now() + 86400000));
  order.tcpConnectionOpened('outbound', 'none');
  order.tcpConnectionClosed('outbound', 'none');

  for (const observer of [order, payment]) {
    const text = (await observer.metrics())!;
    expect(text).toContain('typemesh_requests_total{');
    const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10000 });
    expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
  }
});
