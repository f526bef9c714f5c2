/**
 * The dependency rules of MeshChart as plain data: which references between objects make one wait
 * for another. No Pulumi here (the component's registration is tested under mocks in
 * mesh-chart.test.ts); these cover the reference shapes the fixture chart does not use.
 */
import { planDependencies } from '../../src/pulumi/dependencies';
import { MeshChartInputError, readManifest } from '../../src/pulumi/manifest';

function plan(objects: unknown[], declared: Array<[string, string]> = []) {
  const p = planDependencies(readManifest(objects), declared);
  return { order: p.order.map((o) => o.key), deps: Object.fromEntries(p.dependsOn) };
}

const ns = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const configMap = (name: string, namespace = 'mesh') => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace } });
const secret = (name: string, namespace = 'mesh') => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace } });
const serviceAccount = (name: string, namespace = 'mesh') => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } });
const certificate = (name: string, secretName: string, issuerRef: object, namespace = 'mesh') => ({
  apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name, namespace }, spec: { secretName, issuerRef },
});

describe('planDependencies', () => {
  test('pod specs: projected volumes, envFrom and env references, in every workload shape', () => {
    const podSpec = {
      serviceAccountName: 'worker',
      initContainers: [{ name: 'init', envFrom: [{ configMapRef: { name: 'init-env' } }] }],
      containers: [{
        name: 'app',
        env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'token', key: 't' } } }],
        envFrom: [{ secretRef: { name: 'env-secret' } }],
      }],
      volumes: [{ name: 'p', projected: { sources: [{ configMap: { name: 'projected-cm' } }, { secret: { name: 'projected-tls' } }] } }],
    };
    const needs = ['serviceaccount/mesh/worker', 'configmap/mesh/init-env', 'secret/mesh/token', 'secret/mesh/env-secret',
      'configmap/mesh/projected-cm', 'certificate/mesh/projected'].sort();
    const { deps } = plan([
      { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly', namespace: 'mesh' }, spec: { jobTemplate: { spec: { template: { spec: podSpec } } } } },
      { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db', namespace: 'mesh' }, spec: { template: { spec: podSpec } } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'debug', namespace: 'mesh' }, spec: podSpec },
      serviceAccount('worker'), configMap('init-env'), secret('token'), secret('env-secret'), configMap('projected-cm'),
      certificate('projected', 'projected-tls', { name: 'external', kind: 'ClusterIssuer' }),
    ]);
    for (const key of ['cronjob/mesh/nightly', 'statefulset/mesh/db', 'pod/mesh/debug']) {
      expect({ key, deps: [...deps[key]].sort() }).toEqual({ key, deps: needs });
    }
  });

  test('references to objects outside the chart and to other namespaces add no dependency', () => {
    const { deps } = plan([
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'a', namespace: 'one' }, spec: { template: { spec: { serviceAccountName: 'a', volumes: [{ name: 'c', configMap: { name: 'shared' } }] } } } },
      serviceAccount('a', 'two'), configMap('shared', 'two'),
      certificate('a', 'a-tls', { name: 'not-in-chart' }, 'one'),
    ]);
    expect(deps['deployment/one/a']).toEqual([]);
    expect(deps['certificate/one/a']).toEqual([]);
  });

  test('a CA ClusterIssuer waits for the Certificate writing its Secret in any namespace; custom objects wait for their CRD', () => {
    const { deps, order } = plan([
      { apiVersion: 'cert-manager.io/v1', kind: 'ClusterIssuer', metadata: { name: 'mesh-ca' }, spec: { ca: { secretName: 'mesh-ca' } } },
      { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w', namespace: 'mesh' } },
      certificate('mesh-ca', 'mesh-ca', { name: 'bootstrap', kind: 'ClusterIssuer' }, 'cert-manager'),
      { apiVersion: 'cert-manager.io/v1', kind: 'ClusterIssuer', metadata: { name: 'bootstrap' }, spec: { selfSigned: {} } },
      { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'widgets.example.com' }, spec: { group: 'example.com', names: { kind: 'Widget' } } },
      ns('mesh'),
    ]);
    expect(deps['clusterissuer/mesh-ca']).toEqual(['certificate/cert-manager/mesh-ca']);
    expect(deps['certificate/cert-manager/mesh-ca']).toEqual(['clusterissuer/bootstrap']);
    expect([...deps['widget/mesh/w']].sort()).toEqual(['customresourcedefinition/widgets.example.com', 'namespace/mesh']);
    expect(order).toEqual([
      'clusterissuer/bootstrap', 'certificate/cert-manager/mesh-ca', 'clusterissuer/mesh-ca',
      'customresourcedefinition/widgets.example.com', 'namespace/mesh', 'widget/mesh/w',
    ]);
  });

  test('declared dependencies are added; objects without dependencies keep the chart order', () => {
    const { order, deps } = plan([configMap('a'), configMap('b'), configMap('c')], [['configmap/mesh/a', 'configmap/mesh/c']]);
    expect(deps['configmap/mesh/a']).toEqual(['configmap/mesh/c']);
    expect(order).toEqual(['configmap/mesh/b', 'configmap/mesh/c', 'configmap/mesh/a']);
  });
});

describe('readManifest', () => {
  test.each([
    [[null], /object #0 of the chart is null, not a Kubernetes object/],
    [[{ kind: 'ConfigMap', metadata: { name: 'a' } }], /object #0 \(ConfigMap "a"\) has apiVersion undefined: set apiVersion/],
    [[{ apiVersion: 'v1', metadata: { name: 'a' } }], /object #0 \(apiVersion v1\) has kind undefined: set kind/],
    [[{ apiVersion: 'v1', kind: 'ConfigMap' }], /object #0 \(ConfigMap\) has no metadata: every object needs an explicit metadata.name/],
    [[{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 7 } }], /object #0 \(ConfigMap "a"\) has metadata.namespace 7/],
  ])('rejects %j', (objects, message) => {
    expect(() => readManifest(objects)).toThrow(MeshChartInputError);
    expect(() => readManifest(objects)).toThrow(message);
  });

  test('keys are lower-case kind/namespace/name, or kind/name without a namespace', () => {
    expect(readManifest([configMap('a'), ns('mesh')]).map((o) => o.key)).toEqual(['configmap/mesh/a', 'namespace/mesh']);
  });
});
