/**
 * Telemetry props of the Mesh and MeshService: per-service overrides reaching the sidecar
 * config, scrape annotations, and the optional Prometheus operator PodMonitor.
 */
import { Duration } from 'cdk8s';
import { AccessLogFormat, Mesh, MeshService, TracingCollector } from '../../src';
import { find, newChart, sidecarConfigOf, synth } from './helpers';
import { validateObject } from './k8s-schemas';

const OTLP = 'http://otel-collector.observability:4318/v1/traces';
const ZIPKIN = 'http://zipkin.observability:9411/api/v2/spans';
const SCRAPE_ANNOTATIONS = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/metrics' };
/** The pod template's prometheus.io/* annotations (the pod has others, e.g. kubectl's default container). */
const scrapeAnnotations = (dep: any): Record<string, string> =>
  Object.fromEntries(Object.entries<string>(dep.spec.template.metadata.annotations ?? {}).filter(([k]) => k.startsWith('prometheus.io/')));

function synthValid(chart: ReturnType<typeof newChart>): any[] {
  const objects = synth(chart);
  for (const o of objects) validateObject(o);
  return objects;
}

function service(chart: ReturnType<typeof newChart>, mesh: Mesh, name: string, extra: Partial<ConstructorParameters<typeof MeshService>[2]> = {}, versions = ['v1']): MeshService {
  return new MeshService(chart, name, { mesh, name, versions: versions.map((v) => ({ name: v, image: `example.com/${name}:${v}` })), ...extra });
}

function podMonitors(objects: any[]): any[] {
  return objects.filter((o) => o.kind === 'PodMonitor');
}

describe('PodMonitor', () => {
  test('mesh-wide: one per service, selecting all its versions\' pods, scraping the sidecar admin port by name', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true } } });
    const order = service(chart, mesh, 'order');
    const payment = service(chart, mesh, 'payment', {}, ['v1', 'v2']);
    order.callsTo(payment);
    const objects = synthValid(chart);
    expect(podMonitors(objects)).toMatchSnapshot();

    expect(podMonitors(objects).map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['shop/order-sidecar-metrics', 'shop/payment-sidecar-metrics']);
    const pm = find(objects, 'PodMonitor', 'payment-sidecar-metrics');
    expect(pm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(pm.spec).toEqual({
      selector: { matchLabels: { app: 'payment' } },
      podMetricsEndpoints: [{ port: 'mesh-admin', path: '/metrics', scheme: 'http', interval: '15s' }],
    });
    expect(pm.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'typemesh', app: 'payment' });

    // The selector matches the pods of both payment versions and none of order's, and those
    // pods' sidecar declares the port the endpoint names, on the admin port.
    for (const dep of objects.filter((o) => o.kind === 'Deployment')) {
      const podLabels = dep.spec.template.metadata.labels;
      const selected = Object.entries(pm.spec.selector.matchLabels).every(([k, v]) => podLabels[k] === v);
      expect([dep.metadata.name, selected]).toEqual([dep.metadata.name, dep.metadata.name.startsWith('payment-')]);
      // A native sidecar: an init container.
      const sidecar = dep.spec.template.spec.initContainers.find((c: any) => c.name === 'typemesh-proxy');
      expect(sidecar.ports).toContainEqual({ name: 'mesh-admin', containerPort: 15020, protocol: 'TCP' });
      // The annotations stay for Prometheus servers that discover pods by annotation.
      expect(scrapeAnnotations(dep)).toEqual(SCRAPE_ANNOTATIONS);
    }
  });

  test('off by default: annotations only', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    service(chart, mesh, 'api');
    const objects = synthValid(chart);
    expect(podMonitors(objects)).toEqual([]);
    expect(scrapeAnnotations(find(objects, 'Deployment', 'api-v1'))).toEqual(SCRAPE_ANNOTATIONS);
  });

  test('scrape interval: the mesh default and a per-service override, as Prometheus durations', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true, scrapeInterval: Duration.seconds(30) } } });
    service(chart, mesh, 'api');
    service(chart, mesh, 'batch', { telemetry: { metrics: { scrapeInterval: Duration.seconds(90) } } });
    service(chart, mesh, 'fast', { telemetry: { metrics: { scrapeInterval: Duration.millis(1500) } } });
    const objects = synthValid(chart);
    const intervals = podMonitors(objects).map((o) => [o.metadata.name, o.spec.podMetricsEndpoints[0].interval]);
    expect(intervals).toEqual([['api-sidecar-metrics', '30s'], ['batch-sidecar-metrics', '90s'], ['fast-sidecar-metrics', '1500ms']]);
  });

  test('extra PodMonitor labels for the operator\'s podMonitorSelector: the mesh\'s, or a service\'s instead', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true, podMonitorLabels: { release: 'kube-prometheus-stack' } } } });
    service(chart, mesh, 'api');
    service(chart, mesh, 'billing', { telemetry: { metrics: { podMonitorLabels: { 'monitoring.example.com/team': 'payments' } } } });
    const objects = synthValid(chart);
    const api = find(objects, 'PodMonitor', 'api-sidecar-metrics').metadata.labels;
    expect(api).toMatchObject({ release: 'kube-prometheus-stack', app: 'api', 'app.kubernetes.io/managed-by': 'typemesh' });
    const billing = find(objects, 'PodMonitor', 'billing-sidecar-metrics').metadata.labels;
    // A service's labels replace the mesh's as a whole (the field falls back, not each label).
    expect(billing).toMatchObject({ 'monitoring.example.com/team': 'payments', app: 'billing' });
    expect(billing.release).toBeUndefined();
    // Only the PodMonitor gets them.
    expect(find(objects, 'Deployment', 'api-v1').metadata.labels.release).toBeUndefined();
  });

  test('a service may ask for a PodMonitor the mesh does not enable, and metrics the mesh turns off', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: false } });
    service(chart, mesh, 'quiet');
    service(chart, mesh, 'loud', { telemetry: { metrics: { enabled: true, podMonitor: true } } });
    const objects = synthValid(chart);
    expect(podMonitors(objects).map((o) => o.metadata.name)).toEqual(['loud-sidecar-metrics']);
    expect(scrapeAnnotations(find(objects, 'Deployment', 'quiet-v1'))).toEqual({});
    expect(scrapeAnnotations(find(objects, 'Deployment', 'loud-v1'))).toEqual(SCRAPE_ANNOTATIONS);
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'quiet-v1-sidecar')).telemetry.metrics).toEqual({ enabled: false });
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'loud-v1-sidecar')).telemetry.metrics).toEqual({ enabled: true });
  });

  test('a service that turns metrics off gets neither scrape annotations nor a PodMonitor', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true } } });
    service(chart, mesh, 'api');
    const off = service(chart, mesh, 'legacy', { telemetry: { metrics: false } });
    const objects = synthValid(chart);
    expect(podMonitors(objects).map((o) => o.metadata.name)).toEqual(['api-sidecar-metrics']);
    expect(scrapeAnnotations(find(objects, 'Deployment', 'legacy-v1'))).toEqual({});
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'legacy-v1-sidecar')).telemetry.metrics).toEqual({ enabled: false });
    expect(off.telemetry).toMatchObject({ metricsEnabled: false, podMonitor: false });
    // `enabled: false` inside an object behaves the same as `false`.
    const chart2 = newChart();
    const mesh2 = new Mesh(chart2, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true } } });
    service(chart2, mesh2, 'legacy', { telemetry: { metrics: { enabled: false } } });
    expect(podMonitors(synthValid(chart2))).toEqual([]);
  });

  test('the structural check rejects a malformed PodMonitor, naming the field', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true } } });
    service(chart, mesh, 'api');
    const good = find(synthValid(chart), 'PodMonitor', 'api-sidecar-metrics');
    const broken = (mutate: (o: any) => void) => {
      const o = JSON.parse(JSON.stringify(good));
      mutate(o);
      return () => validateObject(o);
    };
    expect(broken((o) => { o.spec.podMetricsEndpoints[0].port = 15020; })).toThrow(/podMetricsEndpoints\[0\]\.port: must be a container port name/);
    expect(broken((o) => { o.spec.podMetricsEndpoints[0].interval = '15 seconds'; })).toThrow(/podMetricsEndpoints\[0\]\.interval: must be a Prometheus duration/);
    expect(broken((o) => { o.spec.podMetricsEndpoints[0].path = 'metrics'; })).toThrow(/podMetricsEndpoints\[0\]\.path/);
    expect(broken((o) => { o.spec.podMetricsEndpoints = []; })).toThrow(/spec\.podMetricsEndpoints: must be a non-empty list/);
    expect(broken((o) => { o.spec.selector.matchLabels = {}; })).toThrow(/spec\.selector\.matchLabels: must not be empty/);
    expect(broken((o) => { o.spec.podMetricEndpoints = o.spec.podMetricsEndpoints; })).toThrow(/spec: unknown field\(s\) podMetricEndpoints/);
    expect(broken((o) => { delete o.metadata.namespace; })).toThrow(/metadata\.namespace/);
    expect(broken((o) => { o.apiVersion = 'monitoring.coreos.com/v1alpha1'; })).toThrow(/no schema validator for monitoring\.coreos\.com\/v1alpha1\/PodMonitor/);
  });
});

describe('per-service telemetry overrides', () => {
  test('each field falls back to the mesh default on its own', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', {
      namespace: 'shop',
      telemetry: { tracing: { collector: TracingCollector.otlpHttp(OTLP), sampleRate: 10 }, accessLog: AccessLogFormat.TEXT },
    });
    service(chart, mesh, 'inherits');
    service(chart, mesh, 'sampled', { telemetry: { tracing: { sampleRate: 100 } } });
    service(chart, mesh, 'zipkin', { telemetry: { tracing: { collector: TracingCollector.zipkin(ZIPKIN) } } });
    service(chart, mesh, 'untraced', { telemetry: { tracing: { enabled: false }, accessLog: AccessLogFormat.OFF } });
    service(chart, mesh, 'jsonlog', { telemetry: { accessLog: AccessLogFormat.JSON } });
    const objects = synthValid(chart);
    const telemetryOf = (name: string) => sidecarConfigOf(find(objects, 'ConfigMap', `${name}-v1-sidecar`)).telemetry;

    expect(telemetryOf('inherits')).toEqual({
      metrics: { enabled: true },
      tracing: { enabled: true, sampleRate: 10, collector: { protocol: 'otlp-http', endpoint: OTLP } },
      accessLog: { enabled: true, format: 'text' },
    });
    expect(telemetryOf('sampled').tracing).toEqual({ enabled: true, sampleRate: 100, collector: { protocol: 'otlp-http', endpoint: OTLP } });
    expect(telemetryOf('sampled').accessLog).toEqual({ enabled: true, format: 'text' });
    expect(telemetryOf('zipkin').tracing).toEqual({ enabled: true, sampleRate: 10, collector: { protocol: 'zipkin', endpoint: ZIPKIN } });
    expect(telemetryOf('untraced')).toEqual({ metrics: { enabled: true }, tracing: { enabled: false, sampleRate: 1 }, accessLog: { enabled: false, format: 'json' } });
    expect(telemetryOf('jsonlog').accessLog).toEqual({ enabled: true, format: 'json' });
  });

  test('a service traces to its own collector when the mesh does not trace', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    service(chart, mesh, 'plain');
    service(chart, mesh, 'traced', { telemetry: { tracing: { collector: TracingCollector.otlpHttp(OTLP) } } });
    const objects = synthValid(chart);
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'plain-v1-sidecar')).telemetry.tracing).toEqual({ enabled: false, sampleRate: 1 });
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'traced-v1-sidecar')).telemetry.tracing).toEqual({ enabled: true, sampleRate: 1, collector: { protocol: 'otlp-http', endpoint: OTLP } });
  });

  test('snapshot: a small chart with mesh defaults and per-service overrides', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', {
      namespace: 'obs',
      telemetry: { metrics: { podMonitor: true, scrapeInterval: Duration.seconds(20) }, tracing: { collector: TracingCollector.otlpHttp(OTLP), sampleRate: 5 } },
    });
    service(chart, mesh, 'web', { telemetry: { tracing: { sampleRate: 50 }, accessLog: AccessLogFormat.TEXT } });
    service(chart, mesh, 'worker', { telemetry: { metrics: false, tracing: { enabled: false } } });
    const objects = synthValid(chart);
    expect(objects.filter((o) => ['PodMonitor', 'ConfigMap', 'Deployment'].includes(o.kind))).toMatchSnapshot();
  });
});
