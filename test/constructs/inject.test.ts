/**
 * Mesh.inject(): the sidecar in workloads TypeMesh did not write (cdk8s-plus workloads, raw
 * ApiObjects, objects pulled in with Include), seen from the synthesized manifests: the pod
 * equals a MeshService's for the same inputs, every object passes the strict Kubernetes
 * schemas, and misuse fails at synth naming the construct, the prop, the value and the fix.
 */
import * as path from 'node:path';
import { ApiObject, Chart, Cron, Include } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { InterceptionMode, Mesh, MeshService, MeshValidationError, SidecarMode, Source } from '../../src/constructs';
import { find, newChart, sidecarConfigOf, synth } from './helpers';
import { validateObject } from './k8s-schemas';

const INCLUDED = path.join(__dirname, 'fixtures', 'included-worker.yaml');

function meshIn(chart: Chart, props: Partial<ConstructorParameters<typeof Mesh>[2]> = {}): Mesh {
  return new Mesh(chart, 'mesh', { namespace: 'shop', ...props });
}

function podTemplate(o: any): any {
  return o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template : o.spec.template;
}

function synthValid(chart: Chart): any[] {
  const objects = synth(chart);
  for (const o of objects) validateObject(o);
  return objects;
}

const typemesh = (c: { name: string }) => c.name.startsWith('typemesh-');

describe('Mesh.inject', () => {
  test('a cdk8s-plus Deployment gets the pod of a MeshService with the same inputs', () => {
    // The same workload twice: as a MeshService, and as a Deployment someone else wrote.
    const a = newChart('a');
    const svc = new MeshService(a, 'api', { mesh: meshIn(a), name: 'api', ports: [{ port: 8080 }], versions: [{ name: 'v1', image: 'example.com/api:1' }] });
    const b = newChart('b');
    const deployment = new kplus.Deployment(b, 'api', {
      metadata: { name: 'api', namespace: 'shop' },
      containers: [{ name: 'app', image: 'example.com/api:1', ports: [{ number: 8080, name: 'http' }] }],
    });
    meshIn(b).inject(deployment, { name: 'api', serviceAccountName: svc.serviceAccountName });

    const own = podTemplate(find(synthValid(a), 'Deployment', 'api-v1'));
    const injected = podTemplate(find(synthValid(b), 'Deployment', 'api'));
    expect(injected.spec.initContainers).toEqual(own.spec.initContainers);
    expect(injected.spec.initContainers.map((c: any) => c.name)).toEqual(['typemesh-init', 'typemesh-proxy']);
    expect(injected.spec.volumes.filter(typemesh)).toEqual(own.spec.volumes.filter(typemesh));
    expect(injected.metadata.annotations).toEqual(own.metadata.annotations);
    expect(injected.spec.serviceAccountName).toBe(own.spec.serviceAccountName);
    expect(injected.spec.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    // The app container stays the author's.
    expect(injected.spec.containers.map((c: any) => c.name)).toEqual(['app']);
    expect(injected.spec.containers[0].image).toBe('example.com/api:1');
  });

  test('the legacy layout is the same too (the proxy is the first container)', () => {
    const a = newChart('a');
    new MeshService(a, 'api', { mesh: meshIn(a, { sidecarMode: SidecarMode.LEGACY }), name: 'api', ports: [{ port: 8080 }], versions: [{ name: 'v1', image: 'example.com/api:1' }] });
    const b = newChart('b');
    const deployment = new kplus.Deployment(b, 'api', {
      metadata: { name: 'api', namespace: 'shop' },
      containers: [{ name: 'app', image: 'example.com/api:1', ports: [{ number: 8080, name: 'http' }] }],
    });
    meshIn(b, { sidecarMode: SidecarMode.LEGACY }).inject(deployment, { name: 'api' });
    const own = podTemplate(find(synthValid(a), 'Deployment', 'api-v1'));
    const injected = podTemplate(find(synthValid(b), 'Deployment', 'api'));
    expect(injected.spec.containers[0]).toEqual(own.spec.containers[0]);
    expect(injected.spec.containers.map((c: any) => c.name)).toEqual(['typemesh-proxy', 'app']);
    expect(injected.spec.initContainers).toEqual(own.spec.initContainers);
  });

  test.each([
    ['StatefulSet', (c: Chart) => new kplus.StatefulSet(c, 'w', { metadata: { name: 'w' }, service: new kplus.Service(c, 'w-svc', { metadata: { name: 'w' }, clusterIP: 'None', ports: [{ port: 8080 }] }), containers: [{ image: 'example.com/w:1', portNumber: 8080 }] })],
    ['DaemonSet', (c: Chart) => new kplus.DaemonSet(c, 'w', { metadata: { name: 'w' }, containers: [{ image: 'example.com/w:1', portNumber: 8080 }] })],
    ['Job', (c: Chart) => new kplus.Job(c, 'w', { metadata: { name: 'w' }, containers: [{ image: 'example.com/w:1', portNumber: 8080 }] })],
    ['CronJob', (c: Chart) => new kplus.CronJob(c, 'w', { metadata: { name: 'w' }, schedule: Cron.daily(), containers: [{ image: 'example.com/w:1', portNumber: 8080 }] })],
  ])('a cdk8s-plus %s gets the sidecar, its config, identity and certificate', (kind, make) => {
    const chart = newChart();
    const mesh = meshIn(chart);
    const workload = mesh.inject(make(chart));
    expect(workload.identity).toBe('spiffe://cluster.local/ns/shop/sa/w');
    const objects = synthValid(chart);
    const o = find(objects, kind, 'w');
    expect(o.metadata.namespace).toBe('shop');
    const pod = podTemplate(o);
    expect(pod.spec.initContainers.map((c: any) => c.name)).toEqual(['typemesh-init', 'typemesh-proxy']);
    expect(pod.spec.serviceAccountName).toBe('w');
    expect(pod.spec.volumes.map((v: any) => v.name)).toEqual(expect.arrayContaining(['typemesh-config', 'typemesh-certs', 'typemesh-tmp']));
    expect(find(objects, 'ServiceAccount', 'w').metadata.namespace).toBe('shop');
    expect(find(objects, 'Certificate', 'w').spec.uris).toEqual(['spiffe://cluster.local/ns/shop/sa/w']);
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'w-v1-sidecar'));
    expect(cfg.workload).toMatchObject({ name: 'w', namespace: 'shop', identity: 'spiffe://cluster.local/ns/shop/sa/w' });
    expect(cfg.workload.appPorts.map((p) => p.port)).toEqual([8080]);
  });

  test('an object pulled in with Include: the sidecar first, the vendor\'s init container after it, its probe moved to the admin port', () => {
    const chart = newChart();
    const mesh = meshIn(chart);
    const include = new Include(chart, 'vendor', { url: INCLUDED });
    const deployment = include.apiObjects.find((o) => o.kind === 'Deployment')!;
    mesh.inject(deployment, { container: 'worker' });
    const objects = synthValid(chart);
    const worker = find(objects, 'Deployment', 'report-worker');
    expect(worker).toMatchSnapshot();
    const pod = podTemplate(worker);
    expect(pod.spec.initContainers.map((c: any) => c.name)).toEqual(['typemesh-init', 'typemesh-proxy', 'migrate']);
    expect(pod.spec.containers[0].readinessProbe).toEqual({ httpGet: { path: '/app-health/http/readyz', port: 15020, scheme: 'HTTP' }, periodSeconds: 5 });
    expect(pod.spec.volumes.map((v: any) => v.name)).toEqual(['typemesh-config', 'typemesh-certs', 'typemesh-tmp', 'scratch']);
    expect(pod.metadata.annotations['kubectl.kubernetes.io/default-container']).toBe('worker');
    // Keys in sorted order, as cdk8s writes every other object (the YAML reads the same).
    expect(Object.keys(pod.spec)).toEqual([...Object.keys(pod.spec)].sort());
    expect(Object.keys(pod.spec.initContainers[1])).toEqual([...Object.keys(pod.spec.initContainers[1])].sort());
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'report-worker-v1-sidecar'));
    expect(cfg.inbound.app.port).toBe(9090);
    expect(cfg.inbound.probes).toEqual([{ portName: 'http', kind: 'readyz', path: '/ready' }]);
    // The vendor's other objects are left alone.
    expect(find(objects, 'ConfigMap', 'report-worker-settings').data).toEqual({ mode: 'batch' });
  });

  test('a raw ApiObject; calls and allowFrom reach its sidecar config and its init arguments', () => {
    const chart = newChart();
    const mesh = meshIn(chart);
    const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
    const raw = new ApiObject(chart, 'raw', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'legacy-billing' },
      spec: {
        selector: { matchLabels: { app: 'legacy-billing' } },
        template: {
          metadata: { labels: { app: 'legacy-billing' } },
          spec: { containers: [{ name: 'billing', image: 'example.com/billing:7', ports: [{ containerPort: 7000 }] }] },
        },
      },
    });
    const billing = mesh.inject(raw, { version: 'v7' });
    billing.calls(payment);
    billing.allowFrom(Source.namespace('shop'), payment);
    const objects = synthValid(chart);
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'legacy-billing-v7-sidecar'));
    expect(cfg.outbound.services.map((s) => s.name)).toEqual(['payment']);
    expect(cfg.inbound.authorization.rules).toEqual([
      expect.objectContaining({ action: 'ALLOW', namespaces: ['shop'], principals: ['spiffe://cluster.local/ns/shop/sa/payment'] }),
    ]);
    const pod = podTemplate(find(objects, 'Deployment', 'legacy-billing'));
    const init = pod.spec.initContainers.find((c: any) => c.name === 'typemesh-init');
    expect(init.args.slice(-4)).toEqual(['--app-ports', '7000', '--outbound-ports', '80']);
  });
});

test('service.allowFrom(injected) admits its identity and declares the call', () => {
  const chart = newChart();
  const mesh = meshIn(chart);
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
  const w = mesh.inject(new kplus.Deployment(chart, 'batch', { metadata: { name: 'batch' }, containers: [{ image: 'x', portNumber: 8080 }] }));
  payment.allowFrom(w, { methods: ['POST'] });
  const objects = synthValid(chart);
  expect(sidecarConfigOf(find(objects, 'ConfigMap', 'payment-v1-sidecar')).inbound.authorization.rules)
    .toEqual([expect.objectContaining({ name: 'allow-from-batch', action: 'ALLOW', principals: ['spiffe://cluster.local/ns/shop/sa/batch'], methods: ['POST'] })]);
  expect(sidecarConfigOf(find(objects, 'ConfigMap', 'batch-v1-sidecar')).outbound.services.map((s) => s.name)).toEqual(['payment']);
  const other = new Mesh(chart, 'other', { namespace: 'finance' });
  const foreign = other.inject(new kplus.Deployment(chart, 'f', { metadata: { name: 'f' }, containers: [{ image: 'x', portNumber: 8080 }] }));
  expect(() => payment.allowFrom(foreign)).toThrow(/allowFrom.*belongs to the other mesh test\/other \(namespaces finance\)/s);
});

describe('an injected workload with callerPort', () => {
  test('gets a ClusterIP and a discovery Service on its own selector; a MeshService in another namespace calls it by its namespaced names', () => {
    const chart = newChart();
    const mesh = meshIn(chart, { namespaces: ['billing'] });
    const reports = new kplus.Deployment(chart, 'reports', { metadata: { name: 'reports', namespace: 'shop' }, containers: [{ image: 'example.com/reports:1', ports: [{ number: 9000, name: 'http' }] }] });
    const w = mesh.inject(reports, { callerPort: 80 });
    const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', namespace: 'billing', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
    payment.callsTo(w);
    const objects = synthValid(chart);
    const deployment = find(objects, 'Deployment', 'reports');
    const svc = find(objects, 'Service', 'reports');
    expect(svc.spec).toEqual({ type: 'ClusterIP', selector: deployment.spec.selector.matchLabels, ports: [{ name: 'http', port: 80, targetPort: 9000, protocol: 'TCP' }] });
    const discovery = find(objects, 'Service', 'reports-v1');
    expect(discovery.spec).toEqual({ clusterIP: 'None', selector: deployment.spec.selector.matchLabels, ports: [{ name: 'mesh-inbound', port: 15006, targetPort: 15006, protocol: 'TCP' }] });
    // The selector selects the injected pods.
    expect(podTemplate(deployment).metadata.labels).toMatchObject(svc.spec.selector);
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'payment-v1-sidecar'));
    expect(cfg.outbound.services).toEqual([expect.objectContaining({
      name: 'reports', namespace: 'shop', port: 80,
      hosts: ['reports.shop', 'reports.shop.svc', 'reports.shop.svc.cluster.local'],
      subsets: [expect.objectContaining({ identity: 'spiffe://cluster.local/ns/shop/sa/reports', discovery: expect.objectContaining({ type: 'dns', hostname: 'reports-v1.shop.svc.cluster.local', port: 15006 }) })],
    })]);
  });

  test('is refused as a destination without callerPort, and callerPort on a Job', () => {
    const chart = newChart();
    const mesh = meshIn(chart);
    const w = mesh.inject(new kplus.Deployment(chart, 'd', { metadata: { name: 'd' }, containers: [{ image: 'x', portNumber: 8080 }] }));
    const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'x' }] });
    expect(() => payment.callsTo(w)).toThrow(/callsTo\(\.\.\.\)\[0\].*not callable: it has no callerPort.*callerPort: 80/s);
    expect(() => mesh.inject(new kplus.Job(chart, 'j', { containers: [{ image: 'x', portNumber: 8080 }] }), { callerPort: 80 })).toThrow(/callerPort.*a Job has no stable selector/s);
  });
});

describe('Mesh.inject refuses', () => {
  function expectError(f: () => unknown, ...parts: string[]): void {
    let error: unknown;
    try {
      f();
    } catch (e) {
      error = e;
    }
    expect(error).toBeDefined();
    for (const p of parts) expect(String((error as Error).message)).toContain(p);
  }

  test('an object without a pod template', () => {
    const chart = newChart();
    const cm = new ApiObject(chart, 'cm', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } });
    expectError(() => meshIn(chart).inject(cm), 'workload', 'ConfigMap x', 'has no pod template', 'inject into one of Deployment');
  });

  test('a workload in a namespace the mesh does not span', () => {
    const chart = newChart();
    const d = new kplus.Deployment(chart, 'd', { metadata: { name: 'd', namespace: 'billing' }, containers: [{ image: 'x', portNumber: 8080 }] });
    expect(() => meshIn(chart).inject(d)).toThrow(MeshValidationError);
    const other = newChart();
    expectError(() => meshIn(other).inject(new kplus.Deployment(other, 'd', { metadata: { namespace: 'billing' }, containers: [{ image: 'x', portNumber: 8080 }] })),
      'workload.metadata.namespace', 'billing', 'is not a namespace of the mesh', "namespaces: ['billing']");
  });

  test('a Job under the legacy sidecar, which would never complete', () => {
    const chart = newChart();
    const job = new kplus.Job(chart, 'j', { containers: [{ image: 'x', portNumber: 8080 }] });
    expectError(() => meshIn(chart, { sidecarMode: SidecarMode.LEGACY }).inject(job), 'would never complete', 'SidecarMode.NATIVE');
  });

  test('a second injection of the same workload', () => {
    const chart = newChart();
    const mesh = meshIn(chart);
    const d = new kplus.Deployment(chart, 'd', { containers: [{ image: 'x', portNumber: 8080 }] });
    mesh.inject(d);
    expectError(() => mesh.inject(d, { name: 'again' }), 'is already injected by', 'inject a workload once');
  });

  test('at synth: a pod running as another ServiceAccount, an unknown container, no port', () => {
    const chart = newChart();
    const mesh = meshIn(chart);
    const raw = (name: string, spec: Record<string, unknown>) => new ApiObject(chart, name, {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
      spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec } },
    });
    mesh.inject(raw('sa', { serviceAccountName: 'other', containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 80 }] }] }), { serviceAccountName: 'mine' });
    expectError(() => synth(chart), 'runs as ServiceAccount other', 'spiffe://cluster.local/ns/shop/sa/mine', 'serviceAccountName: "other"');
    const chart2 = newChart();
    const mesh2 = meshIn(chart2);
    mesh2.inject(new ApiObject(chart2, 'np', {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'np' },
      spec: { selector: { matchLabels: { app: 'np' } }, template: { metadata: { labels: { app: 'np' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
    }), { container: 'nope' });
    expectError(() => synth(chart2), 'container "nope" not found (containers: c)');
    const chart3 = newChart();
    const mesh3 = meshIn(chart3);
    new MeshService(chart3, 'payment', { mesh: mesh3, name: 'payment', versions: [{ name: 'v1', image: 'x' }] });
    mesh3.inject(new kplus.Deployment(chart3, 'd', { metadata: { name: 'payment' }, containers: [{ image: 'x', portNumber: 8080 }] }));
    expectError(() => synth(chart3), 'the mesh name payment is taken in namespace shop by the MeshService test/payment', 'set `name` in inject()');
  });

  test('at synth, in a restricted mesh (CNI): a container that would not pass restricted; a compliant one passes', () => {
    const chart = newChart();
    const mesh = meshIn(chart, { interception: InterceptionMode.CNI });
    const raw = (name: string, securityContext: Record<string, unknown>) => new ApiObject(chart, name, {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
      spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 80 }], securityContext }] } } },
    });
    mesh.inject(raw('good', { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }));
    const objects = synthValid(chart);
    expect(podTemplate(find(objects, 'Deployment', 'good')).spec.initContainers.map((c: any) => c.name)).toEqual(['typemesh-proxy']);
    mesh.inject(raw('bad', { runAsNonRoot: true, capabilities: { add: ['NET_ADMIN'] } }));
    expectError(() => synth(chart), 'workload Deployment bad: container c would not pass the restricted Pod Security level',
      'allowPrivilegeEscalation must be false', 'capabilities.drop must include ALL', 'not NET_ADMIN', 'InterceptionMode.INIT_CONTAINER');
  });

  test('a service of another mesh in calls()', () => {
    const chart = newChart();
    const mesh = meshIn(chart);
    const other = new Mesh(chart, 'other', { namespace: 'billing' });
    const foreign = new MeshService(chart, 'ledger', { mesh: other, name: 'ledger', versions: [{ name: 'v1', image: 'x' }] });
    const w = mesh.inject(new kplus.Deployment(chart, 'd', { containers: [{ image: 'x', portNumber: 8080 }] }));
    expectError(() => w.calls(foreign), 'calls', 'ledger', 'belongs to another mesh', 'call services of the same Mesh');
  });
});
