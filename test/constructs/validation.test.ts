import { App, Chart, Duration } from 'cdk8s';
import {
  AuthorizationPolicy, Canary, CircuitBreaker, FaultInjection, Mesh, MeshService, MeshValidationError, meshWarnings, PathMatch, Protocol, RetryOn, RetryPolicy,
  Source, StrictMtls, Timeout, TracingCollector, TrafficMirror, TrafficSplit,
} from '../../src';
import { newChart, smallMesh, synth } from './helpers';

/**
 * Every bad configuration must fail with a message naming the construct path, the prop,
 * the bad value (as JSON) and the fix.
 */
function expectProblem(fn: () => unknown, p: { path: string; prop: string; value: unknown; problem: RegExp; fix: RegExp }): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(Error);
  const message = (error as Error).message;
  expect(message).toContain(`${p.path}: ${p.prop} = ${JSON.stringify(p.value)}: `);
  expect(message).toMatch(p.problem);
  const fix = message.slice(message.indexOf('Fix: ') + 5);
  expect(message).toContain('Fix: ');
  expect(fix).toMatch(p.fix);
}

function twoVersions() {
  const chart = newChart();
  const { mesh, services: [order, payment] } = smallMesh(chart, [{ name: 'order' }, { name: 'payment', versions: ['v1', 'v2'] }]);
  order.callsTo(payment);
  return { chart, mesh, order, payment };
}

describe('synth-time validation', () => {
  test('1. weights that do not sum to 100', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new TrafficSplit(chart, 'split', { service: payment, weights: [{ version: 'v1', weight: 70 }, { version: 'v2', weight: 20 }] }), {
      path: 'test/split', prop: 'weights', value: 'v1=70,v2=20', problem: /weights sum to 90, not 100/, fix: /sum to 100/,
    });
  });

  test('2. a canary naming a version the service does not have', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new Canary(chart, 'canary', { service: payment, stable: 'v1', canary: 'v3', canaryWeight: 10 }), {
      path: 'test/canary', prop: 'canary', value: 'v3', problem: /payment has no such version \(known: v1, v2\)/, fix: /name a version of the service/,
    });
  });

  test('3. a split naming an unknown version', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new TrafficSplit(chart, 'split', { service: payment, weights: [{ version: 'v1', weight: 50 }, { version: 'canary', weight: 50 }] }), {
      path: 'test/split', prop: 'weights[1].version', value: 'canary', problem: /no such version \(known: v1, v2\)/, fix: /name one of v1, v2/,
    });
  });

  test('4. duplicate version names', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    expectProblem(() => new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'a:1' }, { name: 'v1', image: 'a:2' }] }), {
      path: 'test/payment', prop: 'versions[1].name', value: 'v1', problem: /two versions have this name/, fix: /different name/,
    });
  });

  test('5. duplicate port numbers and names', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    expectProblem(() => new MeshService(chart, 'a', { mesh, name: 'a', ports: [{ port: 80, targetPort: 8080 }, { port: 80, targetPort: 9090, name: 'metrics' }], versions: [{ name: 'v1', image: 'a:1' }] }), {
      path: 'test/a', prop: 'ports[1].port', value: 80, problem: /duplicates ports\[0\]\.port/, fix: /different port/,
    });
    expectProblem(() => new MeshService(chart, 'b', { mesh, name: 'b', ports: [{ port: 80, name: 'web' }, { port: 81, name: 'web' }], versions: [{ name: 'v1', image: 'a:1' }] }), {
      path: 'test/b', prop: 'ports[1].name', value: 'web', problem: /duplicates ports\[0\]\.name/, fix: /different name/,
    });
  });

  test('6. a per-try timeout longer than the route timeout, in either order', () => {
    const a = twoVersions();
    new Timeout(a.chart, 'timeout', { service: a.payment, timeout: Duration.seconds(1) });
    expectProblem(() => new RetryPolicy(a.chart, 'retries', { service: a.payment, attempts: 3, perTryTimeout: Duration.seconds(2) }), {
      path: 'test/retries', prop: 'perTryTimeout', value: '2000ms', problem: /exceeds the timeout of route "default" of payment \(1000ms\)/, fix: /shorter than the route timeout/,
    });
    const b = twoVersions();
    new RetryPolicy(b.chart, 'retries', { service: b.payment, attempts: 3, perTryTimeout: Duration.seconds(2) });
    expectProblem(() => new Timeout(b.chart, 'timeout', { service: b.payment, timeout: Duration.millis(1500) }), {
      path: 'test/timeout', prop: 'perTryTimeout', value: '2000ms', problem: /exceeds the timeout/, fix: /shorter than the route timeout/,
    });
  });

  test('7. negative and too many retry attempts', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new RetryPolicy(chart, 'retries', { service: payment, attempts: -1 }), {
      path: 'test/retries', prop: 'attempts', value: -1, problem: /integer from 0 to 10/, fix: /0 to 10 retries/,
    });
    expectProblem(() => new RetryPolicy(chart, 'retries2', { service: payment, attempts: 11 }), {
      path: 'test/retries2', prop: 'attempts', value: 11, problem: /integer from 0 to 10/, fix: /0 to 10 retries/,
    });
  });

  test('8. an authorization rule naming a service outside the mesh', () => {
    const { chart, payment } = twoVersions();
    const otherMesh = new Mesh(chart, 'other-mesh', { namespace: 'other' });
    const stranger = new MeshService(chart, 'stranger', { mesh: otherMesh, name: 'stranger', versions: [{ name: 'v1', image: 'a:1' }] });
    expectProblem(() => new AuthorizationPolicy(chart, 'allow-stranger', { service: payment, from: [Source.service(stranger)] }), {
      path: 'test/allow-stranger', prop: 'from[0]', value: 'stranger', problem: /not part of the mesh of payment/, fix: /Source\.principal\(\)\/Source\.namespace\(\)/,
    });
    expectProblem(() => payment.allowFrom(stranger), {
      path: 'test/payment', prop: 'from[0]', value: 'stranger', problem: /not part of the mesh/, fix: /same Mesh/,
    });
  });

  test('9. invalid DNS-1123 names', () => {
    const chart = newChart();
    expectProblem(() => new Mesh(chart, 'mesh', { namespace: 'Shop_NS' }), {
      path: 'test/mesh', prop: 'namespace', value: 'Shop_NS', problem: /DNS-1123 label/, fix: /"shop"/,
    });
    const mesh = new Mesh(chart, 'mesh2', { namespace: 'shop' });
    expectProblem(() => new MeshService(chart, 'payment', { mesh, name: 'Payment_Service', versions: [{ name: 'v1', image: 'a:1' }] }), {
      path: 'test/payment', prop: 'name', value: 'Payment_Service', problem: /DNS-1123 label/, fix: /"payment-service"/,
    });
    expectProblem(() => new MeshService(chart, 'p2', { mesh, name: 'p2', versions: [{ name: 'V2.0', image: 'a:1' }] }), {
      path: 'test/p2', prop: 'versions[0].name', value: 'V2.0', problem: /DNS-1123 label/, fix: /"v1"/,
    });
  });

  test('10. ports out of range and ports in the sidecar range 15000-15090', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    expectProblem(() => new MeshService(chart, 'a', { mesh, name: 'a', ports: [{ port: 70000 }], versions: [{ name: 'v1', image: 'a:1' }] }), {
      path: 'test/a', prop: 'ports[0].port', value: 70000, problem: /integer from 1 to 65535/, fix: /port from 1 to 65535/,
    });
    expectProblem(() => new MeshService(chart, 'b', { mesh, name: 'b', ports: [{ port: 80, targetPort: 15020 }], versions: [{ name: 'v1', image: 'a:1' }] }), {
      path: 'test/b', prop: 'ports[0].targetPort', value: 15020, problem: /collides with the ports 15000-15090 reserved for the sidecar/, fix: /outside 15000-15090/,
    });
  });

  test('11. mirroring to the version that already serves the route', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new TrafficMirror(chart, 'mirror', { service: payment, version: 'v1' }), {
      path: 'test/mirror', prop: 'mirror.version', value: 'v1', problem: /already sends traffic to this version; mirroring to it would duplicate requests to itself/, fix: /weight 0/,
    });
    // Mirroring to v2 is fine until a canary sends v2 real traffic.
    new TrafficMirror(chart, 'mirror-v2', { service: payment, version: 'v2', percentage: 10 });
    expectProblem(() => new Canary(chart, 'canary', { service: payment, stable: 'v1', canary: 'v2', canaryWeight: 20 }), {
      path: 'test/canary', prop: 'mirror.version', value: 'v2', problem: /duplicate requests to itself/, fix: /weight 0/,
    });
  });

  test('12. two services of the same name in a mesh, and callsTo a service of another mesh', () => {
    const { chart, mesh, order } = twoVersions();
    expectProblem(() => new MeshService(chart, 'payment-again', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'a:1' }] }), {
      path: 'test/payment-again', prop: 'name', value: 'payment', problem: /already exists in the mesh \(test\/payment\)/, fix: /different name/,
    });
    const other = new Mesh(chart, 'other', { namespace: 'other' });
    const remote = new MeshService(chart, 'remote', { mesh: other, name: 'remote', versions: [{ name: 'v1', image: 'a:1' }] });
    expectProblem(() => order.callsTo(remote), {
      path: 'test/order', prop: 'callsTo(...)[0]', value: 'remote', problem: /not part of the mesh of order/, fix: /same Mesh/,
    });
  });

  test('13. a canary weight above 100 and a policy set twice on one route', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new Canary(chart, 'canary', { service: payment, stable: 'v1', canary: 'v2', canaryWeight: 120 }), {
      path: 'test/canary', prop: 'canaryWeight', value: 120, problem: /integer from 0 to 100/, fix: /90\/10 canary/,
    });
    new Timeout(chart, 't1', { service: payment, timeout: Duration.seconds(5) });
    expectProblem(() => new Timeout(chart, 't2', { service: payment, timeout: Duration.seconds(3) }), {
      path: 'test/t2', prop: 'timeout', value: 'default', problem: /already set by test\/t1/, fix: /once/,
    });
  });

  test('14. a policy for a route that does not exist', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new Timeout(chart, 't', { service: payment, route: 'checkout', timeout: Duration.seconds(5) }), {
      path: 'test/t', prop: 'route', value: 'checkout', problem: /no such route \(known: default\)/, fix: /addRoute/,
    });
  });

  test('15. bad authorization conditions: unknown method, relative path', () => {
    const { payment, order } = twoVersions();
    expectProblem(() => payment.allowFrom(order, { methods: ['post' as any] }), {
      path: 'test/payment', prop: 'methods[0]', value: 'post', problem: /not an HTTP method/, fix: /upper-case/,
    });
    expectProblem(() => payment.allowFrom(order, { paths: ['process'] }), {
      path: 'test/payment', prop: 'paths[0]', value: 'process', problem: /must start with "\/"/, fix: /"\/process"/,
    });
  });

  test('16. fault percentages, backoff and retry conditions out of range', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new FaultInjection(chart, 'fault', { service: payment, abort: { httpStatus: 503, percentage: 150 } }), {
      path: 'test/fault', prop: 'abort.percentage', value: 150, problem: /percentage from 0 to 100/, fix: /from 0 to 100/,
    });
    expectProblem(() => new RetryPolicy(chart, 'r1', { service: payment, attempts: 2, backoffBaseInterval: Duration.seconds(2), backoffMaxInterval: Duration.seconds(1) }), {
      path: 'test/r1', prop: 'backoffBaseInterval', value: '2000ms', problem: /exceeds backoffMaxInterval \(1000ms\)/, fix: /at most backoffMaxInterval/,
    });
    expectProblem(() => new RetryPolicy(chart, 'r2', { service: payment, attempts: 2, retryOn: [RetryOn.RETRIABLE_STATUS_CODES] }), {
      path: 'test/r2', prop: 'retriableStatusCodes', value: [], problem: /no status codes are listed/, fix: /\[503\]/,
    });
  });

  test('17. an invalid regular expression in a route match', () => {
    const { payment } = twoVersions();
    expectProblem(() => payment.addRoute({ name: 'beta', match: [{ path: PathMatch.regex('^/beta/(') }] }), {
      path: 'test/payment', prop: 'addRoute.match[0].path', value: '^/beta/(', problem: /not a valid regular expression/, fix: /fix the pattern/,
    });
    // A route whose split fails is not left half-configured.
    expectProblem(() => payment.addRoute({ name: 'beta', match: [{ path: PathMatch.prefix('/beta') }], split: [{ version: 'v2', weight: 50 }] }), {
      path: 'test/payment', prop: 'addRoute.split', value: 'v2=50', problem: /weights sum to 50, not 100/, fix: /sum to 100/,
    });
    expect(payment.routeNames).toEqual(['default']);
  });

  test('18. StrictMtls with neither mesh nor service, or set twice', () => {
    const { chart, mesh } = twoVersions();
    expectProblem(() => new StrictMtls(chart, 'mtls', {}), {
      path: 'test/mtls', prop: 'mesh/service', value: {}, problem: /exactly one of mesh or service/, fix: /`mesh`/,
    });
    new StrictMtls(chart, 'mtls-1', { mesh });
    expectProblem(() => new StrictMtls(chart, 'mtls-2', { mesh }), {
      path: 'test/mtls-2', prop: 'mode', value: 'STRICT', problem: /already set by test\/mtls-1/, fix: /one mesh-wide StrictMtls/,
    });
  });

  test('19. a workload name longer than 63 characters', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    const name = 'a'.repeat(60);
    expectProblem(() => new MeshService(chart, 'long', { mesh, name, versions: [{ name: 'v10', image: 'a:1' }] }), {
      path: 'test/long', prop: 'versions[0].name', value: 'v10', problem: /is 64 characters; Service names are at most 63/, fix: /shorten/,
    });
  });

  test('20. what only the contract catches fails synth through node.addValidation, naming the construct', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { tracing: { collector: TracingCollector.otlpHttp('http://[collector') } } });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'a:1' }] });
    expect(() => synth(chart)).toThrow(/\[test\/api\] test\/api: sidecarConfig\(v1\) = "api-v1": invalid sidecar config in the sidecar config of api-v1: .*telemetry\.tracing\.collector\.endpoint.*Fix: /);
  });

  test('errors are MeshValidationErrors carrying the path, prop, value and fix', () => {
    const chart = newChart();
    try {
      new Mesh(chart, 'mesh', { namespace: '-bad-' });
      throw new Error('expected a MeshValidationError');
    } catch (e) {
      expect(e).toBeInstanceOf(MeshValidationError);
      const err = e as MeshValidationError;
      expect([err.constructPath, err.prop, err.value]).toEqual(['test/mesh', 'namespace', '-bad-']);
      expect(err.fix).toMatch(/shop/);
    }
  });
});

describe('probe validation', () => {
  test('21. a probe on a port the service does not have', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    expectProblem(() => new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'a:1', liveness: { path: '/healthz', port: 9999 } }] }), {
      path: 'test/api', prop: 'versions[0].liveness.port', value: 9999, problem: /not one of the app ports \(8080\)/, fix: /targetPort of `ports`/,
    });
    expectProblem(() => new MeshService(chart, 'api2', { mesh, name: 'api2', versions: [{ name: 'v1', image: 'a:1', readiness: { path: '/ready', period: Duration.millis(1500) } }] }), {
      path: 'test/api2', prop: 'versions[0].readiness.period', value: '1500ms', problem: /whole number of seconds/, fix: /Duration\.seconds\(2\)/,
    });
  });
});

describe('telemetry validation', () => {
  function mesh(telemetry?: ConstructorParameters<typeof Mesh>[2]['telemetry']) {
    const chart = newChart();
    return { chart, mesh: new Mesh(chart, 'mesh', { namespace: 'shop', telemetry }) };
  }
  const v1 = [{ name: 'v1', image: 'a:1' }];

  test('22. a service sample rate outside 0-100', () => {
    const { chart, mesh: m } = mesh();
    expectProblem(() => new MeshService(chart, 'api', { mesh: m, name: 'api', versions: v1, telemetry: { tracing: { sampleRate: 150 } } }), {
      path: 'test/api', prop: 'telemetry.tracing.sampleRate', value: 150, problem: /percentage from 0 to 100/, fix: /number from 0 to 100/,
    });
    // A failed service is not registered, so the name stays free.
    expect(m.serviceNames).toEqual([]);
  });

  test('23. a service collector endpoint that is not an http(s) URL', () => {
    const { chart, mesh: m } = mesh();
    expectProblem(() => new MeshService(chart, 'api', { mesh: m, name: 'api', versions: v1, telemetry: { tracing: { collector: TracingCollector.otlpHttp('otel-collector:4318') } } }), {
      path: 'test/api', prop: 'telemetry.tracing.collector.endpoint', value: 'otel-collector:4318', problem: /must be an http\(s\) URL/, fix: /TracingCollector\.otlpHttp\("http:/,
    });
  });

  test('24. tracing turned on for a service with no collector on it or on the mesh', () => {
    const { chart, mesh: m } = mesh();
    expectProblem(() => new MeshService(chart, 'api', { mesh: m, name: 'api', versions: v1, telemetry: { tracing: { enabled: true, sampleRate: 20 } } }), {
      path: 'test/api', prop: 'telemetry.tracing.enabled', value: true, problem: /neither the service nor the mesh sets one/, fix: /set telemetry\.tracing\.collector/,
    });
  });

  test('25. a PodMonitor asked for while metrics are off', () => {
    const { chart, mesh: m } = mesh({ metrics: false });
    expectProblem(() => new MeshService(chart, 'api', { mesh: m, name: 'api', versions: v1, telemetry: { metrics: { podMonitor: true } } }), {
      path: 'test/api', prop: 'telemetry.metrics.podMonitor', value: true, problem: /metrics are off \(inherited from the mesh\)/, fix: /enabled to true/,
    });
    const chart2 = newChart();
    expectProblem(() => new Mesh(chart2, 'mesh', { namespace: 'shop', telemetry: { metrics: { enabled: false, podMonitor: true } } }), {
      path: 'test/mesh', prop: 'telemetry.metrics.podMonitor', value: true, problem: /metrics are off$|metrics are off\./, fix: /drop podMonitor/,
    });
  });

  test('26. a scrape interval under one second or not whole milliseconds', () => {
    const { chart, mesh: m } = mesh({ metrics: { podMonitor: true } });
    expectProblem(() => new MeshService(chart, 'api', { mesh: m, name: 'api', versions: v1, telemetry: { metrics: { scrapeInterval: Duration.millis(500) } } }), {
      path: 'test/api', prop: 'telemetry.metrics.scrapeInterval', value: '500ms', problem: /at least 1000 ms/, fix: /Duration\.millis\(1000\)/,
    });
    const chart2 = newChart();
    expectProblem(() => new Mesh(chart2, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true, scrapeInterval: Duration.seconds(0.0015) } } }), {
      path: 'test/mesh', prop: 'telemetry.metrics.scrapeInterval', value: '1.5ms', problem: /whole number of milliseconds/, fix: /Duration\.millis\(1000\)/,
    });
  });

  test('27. PodMonitor labels that are not Kubernetes labels, or that TypeMesh sets itself', () => {
    const { chart, mesh: m } = mesh({ metrics: { podMonitor: true } });
    expectProblem(() => new MeshService(chart, 'a', { mesh: m, name: 'a', versions: v1, telemetry: { metrics: { podMonitorLabels: { release: 'kube prometheus' } } } }), {
      path: 'test/a', prop: 'telemetry.metrics.podMonitorLabels["release"]', value: 'kube prometheus', problem: /Kubernetes label value/, fix: /kube-prometheus-stack/,
    });
    expectProblem(() => new MeshService(chart, 'b', { mesh: m, name: 'b', versions: v1, telemetry: { metrics: { podMonitorLabels: { 'Bad_Prefix/team': 'x' } } } }), {
      path: 'test/b', prop: 'telemetry.metrics.podMonitorLabels key', value: 'Bad_Prefix/team', problem: /Kubernetes label key/, fix: /release/,
    });
    expectProblem(() => new MeshService(chart, 'c', { mesh: m, name: 'c', versions: v1, telemetry: { metrics: { podMonitorLabels: { app: 'other' } } } }), {
      path: 'test/c', prop: 'telemetry.metrics.podMonitorLabels key', value: 'app', problem: /TypeMesh sets itself/, fix: /another key/,
    });
  });

  test('28. the mesh-level sample rate and collector are checked as before', () => {
    const chart = newChart();
    expectProblem(() => new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { tracing: { collector: TracingCollector.zipkin('http://zipkin:9411'), sampleRate: -1 } } }), {
      path: 'test/mesh', prop: 'telemetry.tracing.sampleRate', value: -1, problem: /percentage from 0 to 100/, fix: /number from 0 to 100/,
    });
    expectProblem(() => new Mesh(chart, 'mesh2', { namespace: 'shop', telemetry: { tracing: { collector: TracingCollector.otlpHttp('grpc://otel:4317') } } }), {
      path: 'test/mesh2', prop: 'telemetry.tracing.collector.endpoint', value: 'grpc://otel:4317', problem: /must be an http\(s\) URL/, fix: /otlpHttp/,
    });
  });
});

describe('declared means done: silent cases fail at synth', () => {
  test('29. two Meshes of one namespace in one app', () => {
    const chart = newChart();
    new Mesh(chart, 'mesh', { namespace: 'shop' });
    const other = new Chart(chart.node.scope as App, 'other');
    expectProblem(() => new Mesh(other, 'mesh2', { namespace: 'shop', createNamespace: false }), {
      path: 'other/mesh2', prop: 'namespace', value: 'shop', problem: /the mesh test\/mesh already uses this namespace in the same app/, fix: /add the services to that Mesh, or give this mesh another namespace/,
    });
    // Two namespaces in one app, or one namespace in two apps, are fine.
    new Mesh(other, 'mesh3', { namespace: 'billing' });
    new Mesh(newChart(), 'mesh', { namespace: 'shop' });
  });

  test('30. a service that allows itself', () => {
    const { payment } = twoVersions();
    expectProblem(() => payment.allowFrom(payment, { methods: ['POST'] }), {
      path: 'test/payment', prop: 'allowFrom', value: 'payment', problem: /payment would allow itself/, fix: /payment\.allowFrom\(callerService\).*Source\.service\(payment\)/,
    });
    expect(payment.authorizationRules).toEqual([]);
    // The explicit form stays possible for replicas that do call each other.
    payment.allowFrom(Source.service(payment));
    expect(payment.authorizationRules.map((r) => r.principals)).toEqual([[payment.identity]]);
  });

  test('31. a Duration that is not one, or negative, names the construct path and prop', () => {
    const { chart, payment } = twoVersions();
    // cdk8s itself refuses Duration.millis(-1) where it is made; a hand-made or foreign Duration reaches TypeMesh.
    expect(() => Duration.millis(-1)).toThrow(/cannot be negative/);
    const negative = { toMilliseconds: () => -500 } as unknown as Duration;
    expectProblem(() => new Timeout(chart, 'timeout', { service: payment, timeout: negative }), {
      path: 'test/timeout', prop: 'timeout', value: '-500ms', problem: /must not be negative/, fix: /Duration\.millis\(1000\)/,
    });
    expectProblem(() => new RetryPolicy(chart, 'retries', { service: payment, attempts: 2, perTryTimeout: 2000 as unknown as Duration }), {
      path: 'test/retries', prop: 'perTryTimeout', value: 2000, problem: /is not a Duration/, fix: /cdk8s Duration/,
    });
    expectProblem(() => new CircuitBreaker(chart, 'cb', { service: payment, outlierDetection: { baseEjectionTime: { toMilliseconds: () => NaN } as unknown as Duration } }), {
      path: 'test/cb', prop: 'outlierDetection.baseEjectionTime', value: 'NaN', problem: /not a finite number of milliseconds/, fix: /Duration\.millis/,
    });
  });

  test('32. a retry budget that allows no retry', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new RetryPolicy(chart, 'retries', { service: payment, attempts: 3, budgetPercent: 0, minRetriesPerSecond: 0 }), {
      path: 'test/retries', prop: 'budgetPercent', value: 0, problem: /allows no retry/, fix: /budgetPercent: 20.*attempts: 0/,
    });
    // attempts: 0 turns retries off on purpose; a budget of nothing is then no contradiction.
    new RetryPolicy(chart, 'off', { service: payment, attempts: 0, budgetPercent: 0, minRetriesPerSecond: 0 });
  });

  test('33. outlier detection that can never eject', () => {
    const { chart, payment } = twoVersions();
    expectProblem(() => new CircuitBreaker(chart, 'cb', { service: payment, outlierDetection: { consecutive5xxErrors: 0 } }), {
      path: 'test/cb', prop: 'outlierDetection.consecutive5xxErrors', value: 0, problem: /no error count ever ejects/, fix: /consecutive5xxErrors \(e\.g\. 5\)/,
    });
    const b = twoVersions();
    expectProblem(() => new CircuitBreaker(b.chart, 'cb', { service: b.payment, outlierDetection: { maxEjectionPercent: 0 } }), {
      path: 'test/cb', prop: 'outlierDetection.maxEjectionPercent', value: 0, problem: /no endpoint may ever be ejected/, fix: /default 10/,
    });
  });
});

describe('declared means done: policies that cannot take effect warn at synth', () => {
  /** Synthesizes the chart (as cdk8s synth does) and returns the TypeMesh warnings, with stderr kept quiet. */
  function warningsOf(chart: Chart): string[] {
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      synth(chart);
      const printed = write.mock.calls.map((c) => String(c[0]));
      const recorded = meshWarnings(chart);
      // What cdk8s synth prints is what the constructs recorded, once each.
      expect(printed).toEqual(recorded.map((w) => `Warning: ${w}\n`));
      return recorded;
    } finally {
      write.mockRestore();
    }
  }

  test('the seed as written synthesizes without a warning', () => {
    const { chart, order, payment } = twoVersions();
    new Timeout(chart, 'timeout', { service: payment, timeout: Duration.seconds(5) });
    new RetryPolicy(chart, 'retries', { service: payment, attempts: 3, perTryTimeout: Duration.seconds(2), retryOn: [RetryOn.FIVE_XX, RetryOn.RESET, RetryOn.CONNECT_FAILURE] });
    new CircuitBreaker(chart, 'cb', { service: payment, maxConnections: 100, maxPendingRequests: 50, maxRequestsPerConnection: 2, outlierDetection: { consecutive5xxErrors: 5 } });
    payment.allowFrom(order, { methods: ['POST'], paths: ['/process'] });
    expect(warningsOf(chart)).toEqual([]);
  });

  test('34. a policy on a service that no sidecar calls', () => {
    const chart = newChart();
    const { services: [, lonely] } = smallMesh(chart, [{ name: 'order' }, { name: 'lonely' }]);
    new RetryPolicy(chart, 'retries', { service: lonely, attempts: 2 });
    new Timeout(chart, 'timeout', { service: lonely, timeout: Duration.seconds(3) });
    new CircuitBreaker(chart, 'cb', { service: lonely, maxConnections: 10 });
    new FaultInjection(chart, 'fault', { service: lonely, abort: { httpStatus: 503, percentage: 1 } });
    const warnings = warningsOf(chart);
    expect(warnings).toHaveLength(4);
    for (const [path, policy] of [['test/retries', 'retry policy'], ['test/timeout', 'timeout'], ['test/cb', 'circuit breaker'], ['test/fault', 'fault injection']]) {
      expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`^${path}: service = "lonely": no MeshService or MeshGateway calls lonely, so no sidecar carries this ${policy} .*Fix: declare the callers`)));
    }
    // Once someone calls it, the warnings go.
    const again = newChart();
    const { services: [order2, lonely2] } = smallMesh(again, [{ name: 'order' }, { name: 'lonely' }]);
    new RetryPolicy(again, 'retries', { service: lonely2, attempts: 2 });
    lonely2.allowFrom(order2);
    expect(warningsOf(again)).toEqual([]);
  });

  test('35. idempotentOnly on a service that admits only POST, or a route that matches only POST', () => {
    const { chart, order, payment } = twoVersions();
    payment.allowFrom(order, { methods: ['POST'], paths: ['/process'] });
    new RetryPolicy(chart, 'retries', { service: payment, attempts: 3, retryOn: [RetryOn.FIVE_XX], idempotentOnly: true });
    expect(warningsOf(chart)).toEqual([
      'test/retries: idempotentOnly = true: payment admits only POST (its allowFrom rules), which idempotentOnly never retries, so no request is ever retried. Fix: drop idempotentOnly (retryOn then applies to every method, as in Envoy and Istio) once a retried request cannot do its work twice, or remove the RetryPolicy',
    ]);
    const b = twoVersions();
    b.payment.addRoute({ name: 'pay', match: [{ method: 'POST', path: PathMatch.exact('/process') }, { method: 'PATCH' }] });
    new RetryPolicy(b.chart, 'retries', { service: b.payment, route: 'pay', attempts: 3, idempotentOnly: true });
    expect(warningsOf(b.chart)).toEqual([expect.stringMatching(/^test\/retries: idempotentOnly = true: route "pay" of payment matches only POST, PATCH, which idempotentOnly never retries/)]);
    // GET admitted too: the policy has something to retry.
    const c = twoVersions();
    c.payment.allowFrom(c.order, { methods: ['GET', 'POST'] });
    new RetryPolicy(c.chart, 'retries', { service: c.payment, attempts: 3, idempotentOnly: true });
    expect(warningsOf(c.chart)).toEqual([]);
  });

  test('36. gRPC retry conditions on a plain HTTP service', () => {
    const { chart, payment } = twoVersions();
    new RetryPolicy(chart, 'retries', { service: payment, attempts: 2, retryOn: [RetryOn.UNAVAILABLE, RetryOn.FIVE_XX] });
    expect(warningsOf(chart)).toEqual([expect.stringMatching(/^test\/retries: retryOn = \["unavailable"\]: payment speaks plain HTTP .* no grpc-status.*Fix: give the service a Protocol\.GRPC port first/)]);
    const g = newChart();
    const { services: [client, grpc] } = smallMesh(g, [{ name: 'client' }, { name: 'grpc', ports: [{ port: 50051, protocol: Protocol.GRPC }] }]);
    client.callsTo(grpc);
    new RetryPolicy(g, 'retries', { service: grpc, attempts: 2, retryOn: [RetryOn.UNAVAILABLE] });
    expect(warningsOf(g)).toEqual([]);
  });

  test('37. a per-try timeout equal to the route timeout', () => {
    const { chart, payment } = twoVersions();
    new Timeout(chart, 'timeout', { service: payment, timeout: Duration.seconds(2) });
    new RetryPolicy(chart, 'retries', { service: payment, attempts: 2, perTryTimeout: Duration.seconds(2) });
    expect(warningsOf(chart)).toEqual([expect.stringMatching(/^test\/retries: perTryTimeout = "2000ms": equals the timeout of route "default" of payment, so a try cut by it ends the whole request.*Fix: make perTryTimeout shorter/)]);
  });
});
