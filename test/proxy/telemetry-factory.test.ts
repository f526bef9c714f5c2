/**
 * createObserver: telemetry off costs nothing (the no-op observer); any feature on gives the
 * telemetry observer with exactly the features the config asks for.
 */
import { createObserver } from '../../src/proxy-image/observer-factory';
import { NoopObserver } from '../../src/proxy-image/observer';
import { TelemetryObserver } from '../../src/proxy-image/telemetry/telemetry-observer';
import { telemetryConfig } from './telemetry-fixtures';

test('every telemetry feature off: the no-op observer', () => {
  const observer = createObserver(telemetryConfig('order', { metrics: { enabled: false }, tracing: { enabled: false }, accessLog: { enabled: false } }));
  expect(observer).toBeInstanceOf(NoopObserver);
});

test('metrics only: the telemetry observer with metrics and nothing else', async () => {
  const observer = createObserver(telemetryConfig('order', { metrics: { enabled: true }, accessLog: { enabled: false } }));
  expect(observer).toBeInstanceOf(TelemetryObserver);
  const t = observer as TelemetryObserver;
  expect([t.metricsRecorder !== undefined, t.tracing !== undefined, t.accessLog !== undefined]).toEqual([true, false, false]);
  await expect(observer.metrics()).resolves.toContain('# TYPE typemesh_requests_total counter');
  await observer.shutdown();
});

test('the defaults (metrics and access log on, tracing off)', async () => {
  const observer = createObserver(telemetryConfig('order', undefined)) as TelemetryObserver;
  expect([observer.metricsRecorder !== undefined, observer.tracing !== undefined, observer.accessLog !== undefined]).toEqual([true, false, true]);
  await observer.shutdown();
});
