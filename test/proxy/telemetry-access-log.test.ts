/**
 * Access log lines written through the observer hooks to a real asynchronous pino
 * destination (a file here; stdout in the sidecar, covered by the integration test).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { TelemetryObserver } from '../../src/proxy-image/telemetry/telemetry-observer';
import { inboundInfo, okOutcome, ORDER_ID, outboundInfo, PAYMENT_ID, telemetryConfig } from './telemetry-fixtures';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'typemesh-access-log-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function accessLogObserver(name: 'order' | 'payment', format: 'json' | 'text'): { observer: TelemetryObserver; file: string } {
  const file = path.join(dir, `${name}-${format}.log`);
  const observer = TelemetryObserver.fromConfig(
    telemetryConfig(name, { metrics: { enabled: false }, accessLog: { enabled: true, format } }),
    { accessLogDestination: pino.destination({ dest: file, sync: false, mkdir: true }) },
  );
  return { observer, file };
}

test('json: one line per request with the access log fields', async () => {
  const order = accessLogObserver('order', 'json');
  const payment = accessLogObserver('payment', 'json');
  const out = order.observer.requestStarted(outboundInfo({ headers: { 'host': 'payment:8080', 'x-request-id': 'req-42' } }));
  const inbound = payment.observer.requestStarted(inboundInfo(out.propagationHeaders));
  inbound.end(okOutcome({ destinationSubset: undefined, destinationPrincipal: undefined, upstreamHost: '127.0.0.1:8080' }));
  out.end(okOutcome({ status: 503, flags: ['URX'], retries: 2 }));
  await Promise.all([order.observer.shutdown(), payment.observer.shutdown()]);

  const orderLines = readFileSync(order.file, 'utf8').trim().split('\n');
  expect(orderLines).toHaveLength(1);
  const entry = JSON.parse(orderLines[0]);
  expect(Object.keys(entry).sort()).toEqual([
    'authority', 'destination_service', 'direction', 'duration_ms', 'method', 'path', 'principal', 'request_bytes', 'request_id',
    'response_bytes', 'response_flags', 'retries', 'status', 'time', 'trace_id', 'upstream_host',
  ]);
  expect(entry).toMatchObject({
    direction: 'outbound',
    method: 'POST',
    authority: 'payment:8080',
    path: '/charge/12345?card=secret',
    status: 503,
    request_bytes: 120,
    response_bytes: 2048,
    upstream_host: '127.0.0.2:15006',
    destination_service: 'payment',
    retries: 2,
    response_flags: 'URX',
    principal: PAYMENT_ID,
    request_id: 'req-42',
    trace_id: '-',
  });
  expect(Date.now() - Date.parse(entry.time)).toBeLessThan(60000);
  expect(typeof entry.duration_ms).toBe('number');

  const paymentEntry = JSON.parse(readFileSync(payment.file, 'utf8').trim());
  expect(paymentEntry).toMatchObject({ direction: 'inbound', status: 200, principal: ORDER_ID, request_id: 'req-42', destination_service: 'payment', upstream_host: '127.0.0.1:8080', response_flags: '-' });
});

test('text: an Envoy-like line whose quoted fields cannot be forged', async () => {
  const order = accessLogObserver('order', 'text');
  order.observer.requestStarted(outboundInfo({ path: '/a"b\\c', headers: { 'x-request-id': 'r-1' } })).end(okOutcome());
  await order.observer.shutdown();
  const line = readFileSync(order.file, 'utf8');
  expect(line).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] "POST \/a\\"b\\\\c" 200 - 120 2048 [\d.]+ "127\.0\.0\.2:15006" "payment:8080" "r-1" "-" outbound payment 0 "spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payment"\n$/);
});

test('requests that end after shutdown are not written and do not throw', async () => {
  const order = accessLogObserver('order', 'json');
  const observation = order.observer.requestStarted(outboundInfo());
  await order.observer.shutdown();
  expect(() => observation.end(okOutcome())).not.toThrow();
  expect(readFileSync(order.file, 'utf8')).toBe('');
});
