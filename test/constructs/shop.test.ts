import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App } from 'cdk8s';
import * as YAML from 'yaml';
import { buildShopChart } from '../../examples/shop/chart';
import { interceptionArgsFor } from '../../src/proxy-image/interception/args';
import { find, sidecarConfigOf, testApp } from './helpers';
import { validateObject } from './k8s-schemas';

const ROOT = path.resolve(__dirname, '..', '..');

function shopYaml(): string {
  const app = testApp();
  buildShopChart(app);
  return app.synthYaml();
}

describe('examples/shop', () => {
  const yaml = shopYaml();
  const objects: any[] = YAML.parseAllDocuments(yaml).map((d) => d.toJSON());

  test('synthesized YAML matches the snapshot', () => {
    expect(yaml).toMatchSnapshot();
  });

  test('two synths are byte-identical', () => {
    expect(shopYaml()).toBe(yaml);
  });

  test('every object validates against the Kubernetes and cert-manager schemas', () => {
    expect(objects.length).toBeGreaterThan(20);
    for (const obj of objects) validateObject(obj);
  });

  test('the schema check fails on an object kind it has no validator for', () => {
    expect(() => validateObject({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' } }))
      .toThrow(/no schema validator for networking.istio.io\/v1\/VirtualService/);
    const broken = JSON.parse(JSON.stringify(find(objects, 'Deployment', 'payment-service-v1')));
    broken.spec.replicas = 'two';
    expect(() => validateObject(broken)).toThrow(/does not validate/);
  });

  test('objects have explicit, readable names and every name is unique per kind', () => {
    const keys = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual(expect.arrayContaining([
      'Namespace/shop', 'Issuer/typemesh-selfsigned', 'Certificate/typemesh-ca', 'Issuer/typemesh-ca',
      'Deployment/payment-service-v1', 'Deployment/payment-service-v2', 'Deployment/order-service-v1',
      'Service/payment-service', 'Service/payment-service-v1', 'ConfigMap/payment-service-v2-sidecar',
      'ServiceAccount/order-service', 'Certificate/order-service', 'NetworkPolicy/inventory-service',
    ]));
    for (const o of objects) if (o.kind !== 'Namespace') expect(o.metadata.namespace).toBe('shop');
  });

  test('every ConfigMap holds a sidecar config that validates against src/config', () => {
    const configMaps = objects.filter((o) => o.kind === 'ConfigMap');
    expect(configMaps.map((c) => c.metadata.name)).toEqual([
      'payment-service-v1-sidecar', 'payment-service-v2-sidecar', 'inventory-service-v1-sidecar',
      'inventory-service-v2-sidecar', 'order-service-v1-sidecar', 'shop-gateway-proxy',
    ]);
    for (const cm of configMaps) {
      const cfg = sidecarConfigOf(cm);
      // A workload version's sidecar, or the gateway's proxy (it has no versions).
      expect(cfg.gateway ? `${cfg.workload.name}-proxy` : `${cfg.workload.name}-${cfg.workload.version}-sidecar`).toBe(cm.metadata.name);
      expect(cfg.inbound.mtls.mode).toBe('STRICT');
    }
  });

  test('order-service routes to payment 80/20 with the seed timeout, retries and circuit breaker', () => {
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'order-service-v1-sidecar'));
    expect(cfg.outbound.services.map((s) => s.name)).toEqual(['payment-service', 'inventory-service']);
    const payment = cfg.outbound.services[0];
    expect(payment.hosts).toContain('payment-service');
    expect(payment.port).toBe(80);
    expect(payment.subsets.map((s) => [s.name, s.discovery])).toEqual([
      ['v1', { type: 'dns', hostname: 'payment-service-v1.shop.svc.cluster.local', port: 15006, refreshIntervalMs: 5000 }],
      ['v2', { type: 'dns', hostname: 'payment-service-v2.shop.svc.cluster.local', port: 15006, refreshIntervalMs: 5000 }],
    ]);
    expect(payment.subsets[0].identity).toBe('spiffe://cluster.local/ns/shop/sa/payment-service');
    const route = payment.routes[0];
    expect(route.destinations).toEqual([{ subset: 'v1', weight: 80 }, { subset: 'v2', weight: 20 }]);
    expect(route.timeoutMs).toBe(5000);
    expect(route.retries).toMatchObject({ attempts: 3, perTryTimeoutMs: 2000, retryOn: ['5xx', 'reset', 'connect-failure'] });
    expect(payment.connectionPool).toMatchObject({ maxConnections: 100, maxPendingRequests: 50, maxRequestsPerConnection: 2 });
    expect(payment.outlierDetection).toMatchObject({ consecutive5xxErrors: 5, intervalMs: 30000, baseEjectionTimeMs: 30000 });
    const inventory = cfg.outbound.services[1];
    expect(inventory.routes[0].destinations).toEqual([{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }]);
    expect(inventory.connectionPool.maxConnections).toBe(1024);
  });

  test('only order-service may POST /process on payment-service; services nobody calls have no outbound entries', () => {
    for (const v of ['v1', 'v2']) {
      const cfg = sidecarConfigOf(find(objects, 'ConfigMap', `payment-service-${v}-sidecar`));
      expect(cfg.inbound.authorization.rules).toEqual([{
        name: 'allow-from-order-service', action: 'ALLOW',
        principals: ['spiffe://cluster.local/ns/shop/sa/order-service'], methods: ['POST'], paths: ['/process'],
      }]);
      expect(cfg.outbound.services).toEqual([]);
    }
    expect(sidecarConfigOf(find(objects, 'ConfigMap', 'inventory-service-v1-sidecar')).inbound.authorization.rules).toEqual([]);
  });

  test('the payment Deployment has the sidecar and init container injected', () => {
    const dep = find(objects, 'Deployment', 'payment-service-v1');
    const pod = dep.spec.template.spec;
    expect(dep.spec.selector.matchLabels).toEqual({ app: 'payment-service', version: 'v1' });
    expect(dep.spec.template.metadata.annotations).toEqual({
      'kubectl.kubernetes.io/default-container': 'app',
      'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/metrics',
    });
    expect(pod.serviceAccountName).toBe('payment-service');
    // Native sidecar: the rules, then the proxy (restartPolicy Always) as init containers; the app alone.
    const [init, sidecar] = pod.initContainers;
    const [app] = pod.containers;
    expect(pod.containers).toHaveLength(1);
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.startupProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15020, scheme: 'HTTP' });
    expect(sidecar.livenessProbe.httpGet).toEqual({ path: '/healthz/live', port: 15020, scheme: 'HTTP' });
    expect(sidecar.name).toBe('typemesh-proxy');
    expect(sidecar.image).toBe('ghcr.io/typemesh/proxy:0.1.0');
    expect([...sidecar.command, ...sidecar.args]).toEqual(['typemesh-proxy', '--config', '/etc/typemesh/config/sidecar.yaml']);
    expect(sidecar.securityContext).toMatchObject({ runAsUser: 1337, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(sidecar.securityContext.capabilities.add).toBeUndefined();
    expect(sidecar.volumeMounts.map((m: any) => m.mountPath)).toEqual(['/etc/typemesh/config', '/etc/typemesh/certs', '/tmp']);
    expect(pod.volumes).toEqual(expect.arrayContaining([
      { name: 'typemesh-config', configMap: { name: 'payment-service-v1-sidecar' } },
      { name: 'typemesh-certs', secret: { secretName: 'payment-service-mesh-tls' } },
    ]));

    expect(app.name).toBe('app');
    expect(app.image).toBe('ghcr.io/typemesh/examples-shop:0.1.0');
    expect(app.args).toEqual(['payment']);
    expect(app.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    // The kubelet probes the sidecar's admin port, which GETs the app path its config declares.
    expect(app.livenessProbe.httpGet).toEqual({ path: '/app-health/http/livez', port: 15020, scheme: 'HTTP' });
    expect(app.readinessProbe.httpGet).toEqual({ path: '/app-health/http/readyz', port: 15020, scheme: 'HTTP' });

    expect(init.image).toBe(sidecar.image);
    expect(init.command).toEqual(['typemesh-init']);
    expect(init.securityContext.capabilities.add).toEqual(['NET_ADMIN']);
    // The arguments come from the sidecar config through the proxy's own interceptionArgsFor;
    // payment calls nobody, so its outbound traffic is not captured.
    expect(init.args).toEqual(['--proxy-uid', '1337', '--outbound-port', '15001', '--inbound-port', '15006', '--admin-port', '15020', '--app-ports', '8080', '--no-outbound-capture']);
    expect(init.args).toEqual(interceptionArgsFor(sidecarConfigOf(find(objects, 'ConfigMap', 'payment-service-v1-sidecar'))));
    const orderInit = find(objects, 'Deployment', 'order-service-v1').spec.template.spec.initContainers[0];
    expect(orderInit.args.slice(-2)).toEqual(['--outbound-ports', '80']);
    // Only the init container has network capabilities.
    const withCaps = objects.filter((o) => o.kind === 'Deployment')
      .flatMap((d) => [...d.spec.template.spec.containers, ...(d.spec.template.spec.initContainers ?? [])])
      .filter((c) => c.securityContext?.capabilities?.add);
    expect(new Set(withCaps.map((c) => c.name))).toEqual(new Set(['typemesh-init']));
  });

  test('identity, discovery and network policy objects', () => {
    const cert = find(objects, 'Certificate', 'payment-service');
    expect(cert.spec.uris).toEqual(['spiffe://cluster.local/ns/shop/sa/payment-service']);
    expect(cert.spec.issuerRef).toEqual({ name: 'typemesh-ca', kind: 'Issuer', group: 'cert-manager.io' });
    expect(cert.spec.secretName).toBe('payment-service-mesh-tls');
    const headless = find(objects, 'Service', 'payment-service-v2');
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.selector).toEqual({ app: 'payment-service', version: 'v2' });
    expect(headless.spec.ports).toEqual([{ name: 'mesh-inbound', port: 15006, targetPort: 15006, protocol: 'TCP' }]);
    const svc = find(objects, 'Service', 'payment-service');
    expect(svc.spec.type).toBe('ClusterIP');
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', appProtocol: 'http' }]);
    const np = find(objects, 'NetworkPolicy', 'payment-service');
    expect(np.spec.ingress).toEqual([{ ports: [{ port: 15006, protocol: 'TCP' }, { port: 15020, protocol: 'TCP' }] }]);
    expect(find(objects, 'Deployment', 'payment-service-v1').metadata.labels).toEqual({
      'app': 'payment-service',
      'version': 'v1',
      'app.kubernetes.io/name': 'payment-service',
      'app.kubernetes.io/instance': 'payment-service-v1',
      'app.kubernetes.io/version': 'v1',
      'app.kubernetes.io/component': 'workload',
      'app.kubernetes.io/part-of': 'shop',
      'app.kubernetes.io/managed-by': 'typemesh',
    });
  });

  test('examples/shop/main.ts (npm run synth) writes dist/shop.k8s.yaml identical to the in-memory synth', () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'typemesh-synth-'));
    try {
      execFileSync(path.join(ROOT, 'node_modules/.bin/ts-node'), ['--transpile-only', path.join(ROOT, 'examples/shop/main.ts')], { cwd, timeout: 60_000, stdio: 'pipe' });
      expect(readdirSync(path.join(cwd, 'dist'))).toEqual(['shop.k8s.yaml']);
      expect(readFileSync(path.join(cwd, 'dist', 'shop.k8s.yaml'), 'utf8')).toBe(yaml);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  test('buildShopChart accepts an app and returns the constructs', () => {
    const app = new App({ outdir: path.join(tmpdir(), 'unused') });
    const shop = buildShopChart(app);
    expect(shop.app).toBe(app);
    expect(shop.services.payment.versionNames).toEqual(['v1', 'v2']);
    expect(shop.services.order.calls.map((s) => s.serviceName)).toEqual(['payment-service', 'inventory-service']);
  });
});
