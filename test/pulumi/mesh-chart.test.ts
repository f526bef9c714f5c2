/**
 * MeshChart under Pulumi's own mocks.
 *
 * Why mocks: neither the Pulumi engine (the `pulumi` CLI and its gRPC resource monitor) nor a
 * Kubernetes API server can run on this machine, so `pulumi up` cannot be exercised for real.
 * `pulumi.runtime.setMocks` replaces the engine's resource monitor in-process; everything on our
 * side of it (the component, the @pulumi/kubernetes classes, the SDK's serialization of inputs,
 * parents, dependencies and provider references) runs for real. The tests record two things:
 * - what the mock's `newResource` receives (type, name, inputs, provider reference), and
 * - the registration requests as sent to the monitor (parent URN, dependency URNs), by wrapping
 *   the mock monitor's `registerResource`, because `newResource` is not told about either.
 *
 * `setMocks` is global to the process, so every Pulumi test of the component lives in this file.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { ApiObject, App, Chart, JsonPatch } from 'cdk8s';
import { Mesh, MeshService } from '../../src/constructs';
import { MESH_CHART_TYPE, MeshChart, MeshChartArgs } from '../../src/pulumi';
import { buildShopChart } from '../../examples/shop/chart';
import { buildFixtureChart, FIXTURE_DEPENDENCIES, NS } from './fixtures';

/** One resource registration, as the engine would see it. */
interface Registration {
  readonly type: string;
  readonly name: string;
  readonly parentUrn: string;
  readonly dependencyUrns: readonly string[];
  /** Position in the stream of registrations sent to the monitor. */
  readonly sequence: number;
  inputs?: Record<string, unknown>;
  providerRef?: string;
  urn?: string;
}

const registrations = new Map<string, Registration>();
let sequence = 0;

/** The subset of the protobuf RegisterResourceRequest the wrapper reads. */
interface RegisterResourceRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
}

beforeAll(async () => {
  await pulumi.runtime.setMocks({
    newResource(args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult {
      const registration = registrations.get(args.name);
      if (registration !== undefined) {
        registration.inputs = args.inputs;
        registration.providerRef = args.provider;
      }
      // The state echoes the inputs, as the cluster would for these fields.
      return { id: `${args.name}-id`, state: args.inputs };
    },
    call(args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult {
      throw new Error(`unexpected invoke ${args.token}: MeshChart must not call functions`);
    },
  }, 'typemesh-test', 'test', false);
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource(req: RegisterResourceRequest, callback: (err: unknown, response: { getUrn(): string }) => void): unknown;
  };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) => {
    registrations.set(req.getName(), {
      type: req.getType(),
      name: req.getName(),
      parentUrn: req.getParent(),
      dependencyUrns: req.getDependenciesList(),
      sequence: sequence++,
    });
    return register(req, (err, response) => {
      if (!err) registrations.get(req.getName())!.urn = response.getUrn();
      callback(err, response);
    });
  };
});

function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/** Creates a MeshChart, waits until it and every child are registered, and returns their registrations. */
async function deploy(name: string, args: MeshChartArgs, opts?: pulumi.ComponentResourceOptions) {
  const mesh = new MeshChart(name, args, opts);
  await valueOf(pulumi.all([mesh.urn, ...Object.values(mesh.resources).map((r) => r.urn)]));
  const children = new Map<string, Registration>();
  for (const key of Object.keys(mesh.resources)) children.set(key, registrations.get(childName(name, key))!);
  return { mesh, component: registrations.get(name)!, children };
}

/** The registration of `name` once the monitor has answered it; fails after 5 s. */
async function registeredNamed(name: string): Promise<Registration> {
  const deadline = Date.now() + 5_000;
  while (registrations.get(name)?.urn === undefined) {
    if (Date.now() > deadline) throw new Error(`${name} was not registered within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return registrations.get(name)!;
}

function childName(componentName: string, key: string): string {
  return `${componentName}:${key}`;
}

type ObjectIdentity = { kind: string; metadata: { name: string; namespace?: string } };

function objectKey(o: ObjectIdentity): string {
  return [o.kind, o.metadata.namespace, o.metadata.name].filter((p) => p !== undefined).join('/').toLowerCase();
}

describe('MeshChart registers the chart object for object', () => {
  test('every synthesized object becomes one child whose type and inputs match chart.toJson()', async () => {
    const chart = buildFixtureChart();
    const synthesized = chart.toJson();
    const { children, mesh } = await deploy('fixture-objects', { chart });

    expect(synthesized).toHaveLength(10);
    expect(children.size).toBe(synthesized.length);
    for (const object of synthesized) {
      const child = children.get(objectKey(object));
      expect(child).toBeDefined();
      // The SDK's type tokens spell the core group "core/v1".
      expect(child!.type).toBe(`kubernetes:${object.apiVersion === 'v1' ? 'core/v1' : object.apiVersion}:${object.kind}`);
      // Inputs as the provider receives them: exactly the synthesized object, nothing dropped.
      expect(child!.inputs).toEqual(object);
    }
    expect(Object.keys(mesh.resources).sort()).toEqual(Object.keys(FIXTURE_DEPENDENCIES).sort());
  });

  test('uses the typed @pulumi/kubernetes classes, and CustomResource for cert-manager objects', () => {
    const mesh = new MeshChart('fixture-classes', { chart: buildFixtureChart() });
    const r = mesh.resources;
    expect(r['namespace/shop']).toBeInstanceOf(k8s.core.v1.Namespace);
    expect(r['serviceaccount/shop/order']).toBeInstanceOf(k8s.core.v1.ServiceAccount);
    expect(r['configmap/shop/order-sidecar']).toBeInstanceOf(k8s.core.v1.ConfigMap);
    expect(r['service/shop/order']).toBeInstanceOf(k8s.core.v1.Service);
    expect(r['deployment/shop/order']).toBeInstanceOf(k8s.apps.v1.Deployment);
    expect(r['networkpolicy/shop/order']).toBeInstanceOf(k8s.networking.v1.NetworkPolicy);
    for (const key of ['clusterissuer/typemesh-selfsigned', 'issuer/shop/typemesh-ca', 'certificate/shop/typemesh-ca', 'certificate/shop/order']) {
      expect(r[key]).toBeInstanceOf(k8s.apiextensions.CustomResource);
    }
  });

  test('a function building the chart deploys the same objects as the chart itself', async () => {
    const { children } = await deploy('fixture-builder', { chart: (app) => buildFixtureChart(app) });
    const expected = buildFixtureChart().toJson();
    expect([...children.values()].map((c) => c.inputs as ObjectIdentity).sort(byKey)).toEqual([...expected].sort(byKey));
  });

  test('objects of charts nested in the chart are deployed too, after the Namespace of the parent chart', async () => {
    const parent = new Chart(new App(), 'parent');
    new ApiObject(parent, 'ns', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nested' } });
    const child = new Chart(parent, 'child');
    new ApiObject(child, 'cm', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'nested' }, data: { a: 'b' } });
    const { children } = await deploy('nested', { chart: parent });
    expect([...children.keys()].sort()).toEqual(['configmap/nested/cm', 'namespace/nested']);
    expect(children.get('configmap/nested/cm')!.inputs).toEqual(child.toJson()[0]);
    expect(children.get('configmap/nested/cm')!.dependencyUrns).toEqual([children.get('namespace/nested')!.urn]);
    expect(children.get('namespace/nested')!.dependencyUrns).toEqual([]);
  });

  test('a Prometheus operator PodMonitor from the constructs is deployed as a CustomResource, after the Namespace', async () => {
    const chart = new Chart(new App(), 'monitored');
    const mesh = new Mesh(chart, 'mesh', { namespace: 'monitored', telemetry: { metrics: { podMonitor: true } } });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'example.com/api:1' }] });
    const podMonitor = chart.toJson().find((o) => o.kind === 'PodMonitor');
    const { mesh: component, children } = await deploy('monitored', { chart });
    expect(component.resources['podmonitor/monitored/api-sidecar-metrics']).toBeInstanceOf(k8s.apiextensions.CustomResource);
    const child = children.get('podmonitor/monitored/api-sidecar-metrics')!;
    expect(child.type).toBe('kubernetes:monitoring.coreos.com/v1:PodMonitor');
    expect(child.inputs).toEqual(podMonitor);
    expect(child.dependencyUrns).toContain(children.get('namespace/monitored')!.urn);
  });
});

function byKey(a: ObjectIdentity, b: ObjectIdentity): number {
  return objectKey(a).localeCompare(objectKey(b));
}

describe('MeshChart parents, dependencies and provider', () => {
  test('every child is parented to the component', async () => {
    const { component, children } = await deploy('fixture-parents', { chart: buildFixtureChart() });
    expect(component.type).toBe(MESH_CHART_TYPE);
    for (const child of children.values()) {
      expect(child.parentUrn).toBe(component.urn);
      // A child's URN carries its parent's type: <stack>::<project>::typemesh:index:MeshChart$kubernetes:...
      expect(child.urn).toContain(`::${MESH_CHART_TYPE}$kubernetes:`);
    }
  });

  test('each child depends on exactly the objects it needs, and is registered after them', async () => {
    const { children, mesh } = await deploy('fixture-deps', { chart: buildFixtureChart() });
    for (const [key, expected] of Object.entries(FIXTURE_DEPENDENCIES)) {
      const child = children.get(key)!;
      const expectedUrns = expected.map((dep) => children.get(dep)!.urn);
      expect({ key, dependencies: [...child.dependencyUrns].sort() }).toEqual({ key, dependencies: [...expectedUrns].sort() });
      for (const dep of expected) expect(children.get(dep)!.sequence).toBeLessThan(child.sequence);
    }
    const sorted = (deps: Iterable<[string, readonly string[]]>) => Object.fromEntries([...deps].map(([k, v]) => [k, [...v].sort()]));
    expect(sorted(mesh.dependencies)).toEqual(sorted(Object.entries(FIXTURE_DEPENDENCIES)));
  });

  test('a dependency declared between cdk8s ApiObjects becomes a dependsOn', async () => {
    const app = new App();
    const chart = new Chart(app, 'declared');
    const first = new ApiObject(chart, 'first', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'first', namespace: 'default' } });
    const second = new ApiObject(chart, 'second', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'second', namespace: 'default' } });
    first.node.addDependency(second);
    const { children } = await deploy('declared', { chart });
    expect(children.get('configmap/default/first')!.dependencyUrns).toEqual([children.get('configmap/default/second')!.urn]);
    expect(children.get('configmap/default/second')!.dependencyUrns).toEqual([]);
  });

  test.each([
    ['provider', (p: k8s.Provider): pulumi.ComponentResourceOptions => ({ provider: p })],
    ['providers', (p: k8s.Provider): pulumi.ComponentResourceOptions => ({ providers: { kubernetes: p } })],
  ])('the component option %s reaches every child', async (option, options) => {
    const provider = new k8s.Provider(`cluster-${option}`, { kubeconfig: 'unused-under-mocks' });
    const { children } = await deploy(`fixture-${option}`, { chart: buildFixtureChart() }, options(provider));
    const reference = `${await valueOf(provider.urn)}::${await valueOf(provider.id)}`;
    for (const child of children.values()) expect(child.providerRef).toBe(reference);
  });

  test('without a provider option the children use the default provider', async () => {
    const { children } = await deploy('fixture-default-provider', { chart: buildFixtureChart() });
    // An empty reference tells the engine to use its default kubernetes provider (the ambient kubeconfig).
    for (const child of children.values()) expect(child.providerRef).toBe('');
  });
});

describe('MeshChart outputs', () => {
  test('namespaces, service names and services come from the registered resources', async () => {
    const mesh = new MeshChart('fixture-outputs', { chart: buildFixtureChart() });
    expect(await valueOf(mesh.namespaces)).toEqual([NS]);
    expect(await valueOf(mesh.serviceNames)).toEqual(['order']);
    expect(await valueOf(mesh.services)).toEqual([{ name: 'order', namespace: NS }]);
  });

  test('a chart without Namespaces or Services has empty lists', async () => {
    const chart = new Chart(new App(), 'bare');
    new ApiObject(chart, 'cm', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bare' }, data: { a: 'b' } });
    const mesh = new MeshChart('bare', { chart });
    expect(await valueOf(mesh.namespaces)).toEqual([]);
    expect(await valueOf(mesh.services)).toEqual([]);
  });
});

describe('MeshChart rejects bad input with a ResourceError that says what to fix', () => {
  function expectResourceError(build: () => unknown, message: RegExp): void {
    let thrown: unknown;
    try {
      build();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(pulumi.ResourceError);
    expect((thrown as Error).message).toMatch(message);
  }

  test('an object without metadata.name', () => {
    const chart = new Chart(new App(), 'unnamed');
    new ApiObject(chart, 'cm', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'default' } })
      .addJsonPatch(JsonPatch.remove('/metadata/name'));
    expectResourceError(() => new MeshChart('unnamed', { chart }),
      /^MeshChart "unnamed": object #0 \(ConfigMap\) has metadata.name undefined: .*set metadata.name on the ApiObject/);
  });

  test('two objects with the same kind, namespace and name', () => {
    const chart = new Chart(new App(), 'duplicates');
    new ApiObject(chart, 'a', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dup', namespace: NS } });
    new ApiObject(chart, 'b', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dup', namespace: NS } });
    expectResourceError(() => new MeshChart('duplicates', { chart }),
      /objects #0 and #1 are both configmap\/shop\/dup \(kind\/namespace\/name\): .*rename one of them/);
  });

  test.each([
    ['a plain object', {}, /args.chart is a plain object, not a cdk8s Chart: pass a Chart/],
    ['a cdk8s App', new App(), /args.chart is an instance of App, not a cdk8s Chart/],
    ['a string', 'shop', /args.chart is a string \("shop"\), not a cdk8s Chart/],
    ['undefined', undefined, /args.chart is undefined, not a cdk8s Chart/],
  ])('a non-chart argument: %s', (label, chart, message) => {
    expectResourceError(() => new MeshChart(`not-a-chart-${label.replace(/\W/g, '')}`, { chart: chart as any }), message);
  });

  test('a builder function that does not return a chart', () => {
    expectResourceError(() => new MeshChart('builder-returns-nothing', { chart: (() => undefined) as any }),
      /the chart builder function \(args.chart\) returned undefined, not a cdk8s Chart/);
  });

  test('a chart whose synthesis fails', () => {
    const chart = new Chart(new App(), 'invalid');
    chart.node.addValidation({ validate: () => ['replicas must be at least 1'] });
    expectResourceError(() => new MeshChart('invalid', { chart }), /synthesizing chart "invalid" failed: .*replicas must be at least 1/s);
  });

  test('references that form a cycle (a CA Issuer whose CA Certificate it issues itself)', () => {
    const chart = new Chart(new App(), 'cycle');
    new ApiObject(chart, 'issuer', {
      apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name: 'ca', namespace: NS }, spec: { ca: { secretName: 'ca' } },
    });
    new ApiObject(chart, 'cert', {
      apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'ca', namespace: NS },
      spec: { isCA: true, secretName: 'ca', issuerRef: { name: 'ca', kind: 'Issuer' } },
    });
    expectResourceError(() => new MeshChart('cycle', { chart }),
      /depend on each other in a cycle.*issuer\/shop\/ca -> certificate\/shop\/ca; certificate\/shop\/ca -> issuer\/shop\/ca/);
  });

  test('a field the typed class would silently drop', () => {
    const chart = new Chart(new App(), 'typo');
    new ApiObject(chart, 'cm', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'typo' }, spec: { a: 'b' } });
    expectResourceError(() => new MeshChart('typo', { chart }),
      /configmap\/typo has a top-level field "spec" that v1 ConfigMap does not take \(it takes metadata, data, binaryData, immutable\)/);
  });
});

describe('MeshChart deploys the shop example (examples/shop)', () => {
  type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: any };

  test('object for object, every child parented, each after what it references', async () => {
    const expected: K8sObject[] = buildShopChart().chart.toJson();
    const { component, children } = await deploy('shop-test', { chart: (app) => buildShopChart(app).chart });

    expect(children.size).toBe(expected.length);
    for (const object of expected) {
      const key = objectKey(object);
      const child = children.get(key)!;
      expect({ key, inputs: child.inputs }).toEqual({ key, inputs: object });
      expect(child.parentUrn).toBe(component.urn);
    }

    const urnOf = (key: string) => {
      expect(children.has(key)).toBe(true);
      return children.get(key)!.urn;
    };
    const dependsOn = (key: string) => children.get(key)!.dependencyUrns;
    const namespaces = expected.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name);
    expect(namespaces).toEqual(['shop']);
    for (const object of expected.filter((o) => o.metadata.namespace === 'shop')) {
      expect(dependsOn(objectKey(object))).toContain(urnOf('namespace/shop'));
    }
    // cert-manager: every Certificate after its Issuer; the CA Issuer after the CA Certificate.
    const certificates = expected.filter((o) => o.apiVersion === 'cert-manager.io/v1' && o.kind === 'Certificate');
    expect(certificates.length).toBeGreaterThan(1);
    for (const certificate of certificates) {
      const issuer = certificate.spec.issuerRef;
      expect(issuer.kind).toBe('Issuer');
      expect(dependsOn(objectKey(certificate))).toContain(urnOf(`issuer/shop/${issuer.name}`));
    }
    for (const issuer of expected.filter((o) => o.kind === 'Issuer' && o.spec.ca !== undefined)) {
      const caCertificate = certificates.find((c) => c.spec.secretName === issuer.spec.ca.secretName)!;
      expect(dependsOn(objectKey(issuer))).toContain(urnOf(objectKey(caCertificate)));
    }
    // Workloads: after their ServiceAccount, sidecar ConfigMap and the Certificate of their mesh Secret.
    const deployments = expected.filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => d.metadata.name)).toEqual(expect.arrayContaining(['order-service-v1', 'payment-service-v1', 'payment-service-v2']));
    for (const deployment of deployments) {
      const pod = deployment.spec.template.spec;
      const deps = dependsOn(objectKey(deployment));
      expect(deps).toContain(urnOf(`serviceaccount/shop/${pod.serviceAccountName}`));
      const configMaps = pod.volumes.filter((v: any) => v.configMap).map((v: any) => v.configMap.name);
      const secrets = pod.volumes.filter((v: any) => v.secret).map((v: any) => v.secret.secretName);
      expect(configMaps.length).toBeGreaterThan(0);
      expect(secrets.length).toBeGreaterThan(0);
      for (const name of configMaps) expect(deps).toContain(urnOf(`configmap/shop/${name}`));
      for (const name of secrets) {
        const certificate = certificates.find((c) => c.spec.secretName === name)!;
        expect(deps).toContain(urnOf(objectKey(certificate)));
      }
    }
    // The engine received every dependency before the dependent.
    for (const child of children.values()) {
      for (const dep of child.dependencyUrns) {
        const dependency = [...children.values()].find((c) => c.urn === dep)!;
        expect(dependency.sequence).toBeLessThan(child.sequence);
      }
    }
  });

  test('the shop outputs: its namespace and Services', async () => {
    const { mesh } = await deploy('shop-outputs', { chart: (app) => buildShopChart(app).chart });
    expect(await valueOf(mesh.namespaces)).toEqual(['shop']);
    expect(await valueOf(mesh.serviceNames)).toEqual(expect.arrayContaining(['order-service', 'payment-service', 'inventory-service']));
    for (const service of await valueOf(mesh.services)) expect(service.namespace).toBe('shop');
  });

  test('the Pulumi program in examples/pulumi deploys the shop and exports its outputs', async () => {
    // The program reads the kubeContext config; set, it deploys through an explicit provider.
    pulumi.runtime.setConfig(`${pulumi.getProject()}:kubeContext`, 'kind-shop');
    // Loading the module runs the program, as `pulumi up` would.
    const program: { namespaces: pulumi.Output<string[]>; serviceNames: pulumi.Output<string[]> } = require('../../examples/pulumi/index');
    expect(await valueOf(program.namespaces)).toEqual(['shop']);
    expect(await valueOf(program.serviceNames)).toContain('payment-service');
    // The program exports no resource to wait on, so wait (bounded) for the registration to finish.
    const deployment = await registeredNamed('shop:deployment/shop/payment-service-v1');
    const provider = await registeredNamed('cluster');
    expect(provider.type).toBe('pulumi:providers:kubernetes');
    expect(provider.inputs).toMatchObject({ context: 'kind-shop' });
    expect(deployment.providerRef).toMatch(/::pulumi:providers:kubernetes::cluster::/);
  });
});
