import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Duration } from 'cdk8s';
import {
  AccessLogFormat, AuthorizationAction, AuthorizationPolicy, Canary, CertificateAuthority, CircuitBreaker,
  FaultInjection, HeaderCondition, LoadBalancerPolicy, Mesh, MeshService, MtlsMode, PathMatch, Protocol,
  RetryOn, RetryPolicy, Source, StrictMtls, Timeout, TracingCollector, TrafficMirror, TrafficSplit,
} from '../../src';
import { find, newChart, sidecarConfigOf, smallMesh, synth } from './helpers';
import { validateObject } from './k8s-schemas';

/** Synthesizes, validates every object, and returns the objects. */
function synthValid(chart: ReturnType<typeof newChart>): any[] {
  const objects = synth(chart);
  for (const o of objects) validateObject(o);
  return objects;
}

/** The outbound entry for `dest` in the sidecar config of `caller`-v1. */
function outbound(objects: any[], caller: string, dest: string) {
  const cfg = sidecarConfigOf(find(objects, 'ConfigMap', `${caller}-v1-sidecar`));
  const svc = cfg.outbound.services.find((s) => s.name === dest);
  if (!svc) throw new Error(`${caller} has no outbound entry for ${dest}`);
  return svc;
}

describe('Mesh', () => {
  test('alone: the namespace and the self-signed CA chain', () => {
    const chart = newChart();
    new Mesh(chart, 'mesh', { namespace: 'payments' });
    const objects = synthValid(chart);
    expect(objects).toMatchSnapshot();
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Namespace/payments', 'Issuer/typemesh-selfsigned', 'Certificate/typemesh-ca', 'Issuer/typemesh-ca',
    ]);
    expect(find(objects, 'Issuer', 'typemesh-selfsigned').spec).toEqual({ selfSigned: {} });
    expect(find(objects, 'Certificate', 'typemesh-ca').spec).toMatchObject({ isCA: true, secretName: 'typemesh-ca', issuerRef: { name: 'typemesh-selfsigned', kind: 'Issuer' } });
    expect(find(objects, 'Issuer', 'typemesh-ca').spec).toEqual({ ca: { secretName: 'typemesh-ca' } });
  });

  test('a user-supplied ClusterIssuer replaces the CA chain; no Namespace when createNamespace is false', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', {
      namespace: 'shop', createNamespace: false, trustDomain: 'prod.example.com',
      certificateAuthority: CertificateAuthority.fromIssuer({ name: 'corp-ca', kind: 'ClusterIssuer' }),
    });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'example.com/api:1' }] });
    const objects = synthValid(chart);
    expect(objects.filter((o) => o.kind === 'Namespace' || o.kind === 'Issuer')).toEqual([]);
    const cert = find(objects, 'Certificate', 'api');
    expect(cert.spec.issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    expect(cert.spec.uris).toEqual(['spiffe://prod.example.com/ns/shop/sa/api']);
  });

  test('sidecar image defaults to ghcr.io/typemesh/proxy:<package.json version>; telemetry defaults reach every sidecar', () => {
    const version = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', {
      namespace: 'shop',
      telemetry: {
        tracing: { collector: TracingCollector.zipkin('http://zipkin.observability:9411/api/v2/spans'), sampleRate: 25 },
        metrics: false,
        accessLog: AccessLogFormat.TEXT,
      },
    });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'example.com/api:1' }] });
    const objects = synthValid(chart);
    const dep = find(objects, 'Deployment', 'api-v1');
    expect(dep.spec.template.spec.initContainers.find((c: any) => c.name === 'typemesh-proxy').image).toBe(`ghcr.io/typemesh/proxy:${version}`);
    // Metrics off: no scrape annotations.
    expect(dep.spec.template.metadata.annotations).toEqual({ 'kubectl.kubernetes.io/default-container': 'app' });
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'api-v1-sidecar'));
    expect(cfg.telemetry).toEqual({
      metrics: { enabled: false },
      tracing: { enabled: true, sampleRate: 25, collector: { protocol: 'zipkin', endpoint: 'http://zipkin.observability:9411/api/v2/spans' } },
      accessLog: { enabled: true, format: 'text' },
    });
  });
});

describe('MeshService', () => {
  test('alone: every object it synthesizes', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', createNamespace: false });
    new MeshService(chart, 'catalog', {
      mesh, name: 'catalog',
      ports: [{ port: 80, targetPort: 8080 }, { port: 9090, name: 'grpc', protocol: Protocol.GRPC }],
      loadBalancer: LoadBalancerPolicy.ROUND_ROBIN,
      versions: [{
        name: 'v1', image: 'example.com/catalog:1.0.0', replicas: 3,
        env: { LOG_LEVEL: 'info' }, command: ['node'], args: ['server.js'],
        resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
        liveness: { path: '/live', initialDelay: Duration.seconds(5), period: Duration.seconds(20), failureThreshold: 5 },
        readiness: { path: '/ready', port: 9090, timeout: Duration.seconds(2) },
      }],
    });
    const objects = synthValid(chart);
    expect(objects.filter((o) => !o.metadata.name.startsWith('typemesh-'))).toMatchSnapshot();
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).filter((k) => !k.includes('typemesh-'))).toEqual([
      'ServiceAccount/catalog', 'Certificate/catalog', 'Service/catalog', 'NetworkPolicy/catalog',
      'ConfigMap/catalog-v1-sidecar', 'Service/catalog-v1', 'Deployment/catalog-v1',
    ]);
    const app = find(objects, 'Deployment', 'catalog-v1').spec.template.spec.containers[0];
    expect(app.livenessProbe).toEqual({ httpGet: { path: '/app-health/http/livez', port: 15020, scheme: 'HTTP' }, initialDelaySeconds: 5, periodSeconds: 20, timeoutSeconds: 1, failureThreshold: 5 });
    expect(app.readinessProbe.httpGet.path).toBe('/app-health/grpc/readyz');
    expect(app.readinessProbe.timeoutSeconds).toBe(2);
    expect(app.env).toEqual([{ name: 'LOG_LEVEL', value: 'info' }]);
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'catalog-v1-sidecar'));
    expect(cfg.workload.appPorts).toEqual([{ name: 'http', port: 8080, protocol: 'http' }, { name: 'grpc', port: 9090, protocol: 'grpc' }]);
    expect(cfg.inbound.app).toEqual({ address: '127.0.0.1', port: 8080 });
    // The probes' app paths are in the sidecar config, not in the kubelet's URL: the admin
    // port probes only these.
    expect(cfg.inbound.probes).toEqual([{ portName: 'http', kind: 'livez', path: '/live' }, { portName: 'grpc', kind: 'readyz', path: '/ready' }]);
    expect(find(objects, 'Deployment', 'catalog-v1').spec.template.spec.initContainers[0].args).toEqual(expect.arrayContaining(['--app-ports', '8080,9090', '--no-outbound-capture']));
  });

  test('without a split, a service with several versions sends everything to its first (stable) version', () => {
    const chart = newChart();
    const { services: [client, api] } = smallMesh(chart, [{ name: 'client' }, { name: 'api', versions: ['v1', 'v2'], loadBalancer: LoadBalancerPolicy.ROUND_ROBIN }]);
    client.callsTo(api, api);
    const svc = outbound(synthValid(chart), 'client', 'api');
    expect(svc.routes).toEqual([{ name: 'default', match: [], destinations: [{ subset: 'v1', weight: 100 }], timeoutMs: 15000 }]);
    expect(svc.loadBalancer).toEqual({ policy: 'ROUND_ROBIN' });
    expect(svc.outlierDetection).toBeUndefined();
    expect(client.calls).toEqual([api]);
  });

  test('addRoute: matches on path, method and headers come before the default route, in order', () => {
    const chart = newChart();
    const { services: [client, api] } = smallMesh(chart, [{ name: 'client' }, { name: 'api', versions: ['v1', 'v2', 'v3'] }]);
    client.callsTo(api);
    api.addRoute({
      name: 'beta-testers',
      match: [{ headers: [HeaderCondition.exact('X-Beta', 'yes'), HeaderCondition.present('x-user')] }, { path: PathMatch.regex('^/beta/.*$') }],
      split: [{ version: 'v3', weight: 100 }],
      timeout: Duration.seconds(3),
      retries: { attempts: 2, retriableStatusCodes: [409], retryOn: [RetryOn.RESET] },
    });
    api.addRoute({ name: 'writes', match: [{ method: 'POST', path: PathMatch.prefix('/orders') }, { method: 'PUT', path: PathMatch.exact('/cart') }] });
    new Canary(chart, 'canary', { service: api, stable: 'v1', canary: 'v2', canaryWeight: 10 });
    const svc = outbound(synthValid(chart), 'client', 'api');
    expect(api.routeNames).toEqual(['beta-testers', 'writes', 'default']);
    expect(svc.routes).toMatchSnapshot();
    expect(svc.routes[0].match).toEqual([
      { headers: [{ name: 'x-beta', exact: 'yes' }, { name: 'x-user', present: true }] },
      { path: { regex: '^/beta/.*$' } },
    ]);
    expect(svc.routes[0].retries?.retryOn).toEqual(['reset', 'retriable-status-codes']);
    expect(svc.routes[1].destinations).toEqual([{ subset: 'v1', weight: 100 }]);
    expect(svc.routes[2].destinations).toEqual([{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }]);
  });
});

describe('traffic constructs', () => {
  function shop() {
    const chart = newChart();
    const { services: [order, payment] } = smallMesh(chart, [{ name: 'order' }, { name: 'payment', versions: ['v1', 'v2', 'v3'] }]);
    order.callsTo(payment);
    return { chart, order, payment };
  }

  test('TrafficSplit across three versions', () => {
    const { chart, payment } = shop();
    new TrafficSplit(chart, 'split', { service: payment, weights: [{ version: 'v1', weight: 70 }, { version: 'v2', weight: 20 }, { version: 'v3', weight: 10 }] });
    expect(outbound(synthValid(chart), 'order', 'payment').routes[0].destinations).toEqual([
      { subset: 'v1', weight: 70 }, { subset: 'v2', weight: 20 }, { subset: 'v3', weight: 10 },
    ]);
  });

  test('Timeout + RetryPolicy with backoff and budget', () => {
    const { chart, payment } = shop();
    new Timeout(chart, 'timeout', { service: payment, timeout: Duration.seconds(5) });
    new RetryPolicy(chart, 'retries', {
      service: payment, attempts: 3, perTryTimeout: Duration.seconds(2),
      retryOn: [RetryOn.FIVE_XX, RetryOn.RESET, RetryOn.CONNECT_FAILURE],
      backoffBaseInterval: Duration.millis(50), backoffMaxInterval: Duration.seconds(1),
      budgetPercent: 25, minRetriesPerSecond: 5,
    });
    const route = outbound(synthValid(chart), 'order', 'payment').routes[0];
    expect(route).toMatchSnapshot();
    expect(route.timeoutMs).toBe(5000);
    expect(route.retries).toEqual({
      attempts: 3, perTryTimeoutMs: 2000, retryOn: ['5xx', 'reset', 'connect-failure'], retriableStatusCodes: [],
      backoff: { baseIntervalMs: 50, maxIntervalMs: 1000 }, budget: { percent: 25, minRetriesPerSecond: 5 },
      idempotentOnly: false, maxBufferedBodyBytes: 65536,
    });
  });

  test('CircuitBreaker: connection pool and outlier detection', () => {
    const { chart, payment } = shop();
    new CircuitBreaker(chart, 'cb', {
      service: payment, maxConnections: 100, maxPendingRequests: 50, maxRequestsPerConnection: 2,
      outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, interval: Duration.seconds(30), baseEjectionTime: Duration.seconds(30), maxEjectionPercent: 50 },
    });
    const svc = outbound(synthValid(chart), 'order', 'payment');
    expect({ connectionPool: svc.connectionPool, outlierDetection: svc.outlierDetection }).toMatchSnapshot();
    expect(svc.connectionPool).toEqual({ maxConnections: 100, maxPendingRequests: 50, maxRequestsPerConnection: 2, connectTimeoutMs: 10000, idleTimeoutMs: 60000 });
    expect(svc.outlierDetection).toEqual({ consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, intervalMs: 30000, baseEjectionTimeMs: 30000, maxEjectionPercent: 50 });
  });

  test('FaultInjection and TrafficMirror', () => {
    const { chart, payment } = shop();
    new FaultInjection(chart, 'fault', { service: payment, delay: { fixedDelay: Duration.millis(500), percentage: 10 }, abort: { httpStatus: 503, percentage: 5 } });
    new TrafficMirror(chart, 'mirror', { service: payment, version: 'v3', percentage: 50 });
    const route = outbound(synthValid(chart), 'order', 'payment').routes[0];
    expect(route.fault).toEqual({ delay: { fixedDelayMs: 500, percentage: 10 }, abort: { httpStatus: 503, percentage: 5 } });
    expect(route.mirror).toEqual({ subset: 'v3', percentage: 50 });
  });
});

describe('security constructs', () => {
  test('StrictMtls: mesh-wide STRICT with a PERMISSIVE exception that also opens the app port in the NetworkPolicy', () => {
    const chart = newChart();
    const { mesh, services: [legacy, api] } = smallMesh(chart, [{ name: 'legacy' }, { name: 'api' }]);
    new StrictMtls(chart, 'mesh-mtls', { mesh });
    new StrictMtls(chart, 'legacy-mtls', { service: legacy, mode: MtlsMode.PERMISSIVE });
    const objects = synthValid(chart);
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'api-v1-sidecar')).inbound.mtls.mode).toBe('STRICT');
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'legacy-v1-sidecar')).inbound.mtls.mode).toBe('PERMISSIVE');
    expect(find(objects, 'NetworkPolicy', 'legacy').spec.ingress[0].ports).toEqual([
      { port: 15006, protocol: 'TCP' }, { port: 15020, protocol: 'TCP' }, { port: 8080, protocol: 'TCP' },
    ]);
    expect(find(objects, 'NetworkPolicy', 'api').spec.ingress[0].ports).toEqual([{ port: 15006, protocol: 'TCP' }, { port: 15020, protocol: 'TCP' }]);
    expect(api.mtlsMode).toBe(MtlsMode.STRICT);
  });

  test('the mesh default mode applies without a StrictMtls', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', mtlsMode: MtlsMode.PERMISSIVE });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'example.com/api:1' }] });
    expect(sidecarConfigOf(find(synthValid(chart), 'ConfigMap', 'api-v1-sidecar')).inbound.mtls.mode).toBe('PERMISSIVE');
  });

  test('authorization: allow, deny, namespaces, principals and any authenticated peer', () => {
    const chart = newChart();
    const { services: [order, admin, payment] } = smallMesh(chart, [{ name: 'order' }, { name: 'admin' }, { name: 'payment' }]);
    payment.allowFrom(order, { methods: ['POST'], paths: ['/process'] });
    payment.allowFrom(order, { methods: ['GET'], paths: ['/status/*'], headers: [HeaderCondition.prefix('x-tenant', 'acme-')] });
    payment.denyFrom(Source.namespace('sandbox'));
    new AuthorizationPolicy(chart, 'admins-read', { service: payment, from: [Source.service(admin), Source.principal('spiffe://cluster.local/ns/ops/sa/oncall')], methods: ['GET'] });
    new AuthorizationPolicy(chart, 'no-debug', { service: payment, action: AuthorizationAction.DENY, from: [Source.anyAuthenticated()], paths: ['/debug/*'] });
    const objects = synthValid(chart);
    const rules = sidecarConfigOf(find(objects, 'ConfigMap', 'payment-v1-sidecar')).inbound.authorization.rules;
    expect(rules).toMatchSnapshot();
    expect(rules.map((r) => [r.name, r.action])).toEqual([
      ['allow-from-order', 'ALLOW'], ['allow-from-order-2', 'ALLOW'], ['deny-from-ns-sandbox', 'DENY'], ['admins-read', 'ALLOW'], ['no-debug', 'DENY'],
    ]);
    expect(rules[2].namespaces).toEqual(['sandbox']);
    expect(rules[3].principals).toEqual(['spiffe://cluster.local/ns/shop/sa/admin', 'spiffe://cluster.local/ns/ops/sa/oncall']);
    expect(rules[4].principals).toEqual(['*']);
    // allowFrom and an ALLOW policy imply the caller's outbound entry; a deny does not.
    expect(order.calls).toEqual([payment]);
    expect(admin.calls).toEqual([payment]);
    expect(outbound(objects, 'order', 'payment').name).toBe('payment');
  });
});
