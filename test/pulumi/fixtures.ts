/**
 * A small mesh chart built from plain cdk8s ApiObjects, shaped like what the TypeMesh constructs
 * synthesize: a Namespace, cert-manager's CA chain (self-signed ClusterIssuer -> CA Certificate ->
 * CA Issuer -> workload Certificate), and one workload with its ServiceAccount, sidecar ConfigMap,
 * Service, Deployment and NetworkPolicy. The objects are added dependents-first on purpose, so the
 * chart's own order is the wrong creation order and the component has to fix it.
 */
import { ApiObject, App, Chart } from 'cdk8s';

export const NS = 'shop';

export function buildFixtureChart(app: App = new App(), id = 'fixture'): Chart {
  const chart = new Chart(app, id);
  const labels = { 'app.kubernetes.io/name': 'order' };
  new ApiObject(chart, 'deployment', {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'order', namespace: NS, labels },
    spec: {
      replicas: 2,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: 'order',
          containers: [
            { name: 'app', image: 'ghcr.io/example/order:1.0.0', ports: [{ containerPort: 8080 }] },
            {
              name: 'typemesh-proxy',
              image: 'ghcr.io/typemesh/proxy:0.1.0',
              volumeMounts: [
                { name: 'sidecar-config', mountPath: '/etc/typemesh' },
                { name: 'workload-certs', mountPath: '/var/run/typemesh/certs' },
              ],
            },
          ],
          volumes: [
            { name: 'sidecar-config', configMap: { name: 'order-sidecar' } },
            { name: 'workload-certs', secret: { secretName: 'order-tls' } },
          ],
        },
      },
    },
  });
  new ApiObject(chart, 'workload-certificate', {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: 'order', namespace: NS },
    spec: {
      secretName: 'order-tls',
      uris: [`spiffe://cluster.local/ns/${NS}/sa/order`],
      duration: '24h',
      renewBefore: '8h',
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      issuerRef: { name: 'typemesh-ca', kind: 'Issuer', group: 'cert-manager.io' },
    },
  });
  new ApiObject(chart, 'ca-issuer', {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Issuer',
    metadata: { name: 'typemesh-ca', namespace: NS },
    spec: { ca: { secretName: 'typemesh-ca' } },
  });
  new ApiObject(chart, 'ca-certificate', {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: 'typemesh-ca', namespace: NS },
    spec: {
      isCA: true,
      commonName: 'typemesh-ca',
      secretName: 'typemesh-ca',
      privateKey: { algorithm: 'ECDSA', size: 256 },
      issuerRef: { name: 'typemesh-selfsigned', kind: 'ClusterIssuer', group: 'cert-manager.io' },
    },
  });
  new ApiObject(chart, 'selfsigned-issuer', {
    apiVersion: 'cert-manager.io/v1',
    kind: 'ClusterIssuer',
    metadata: { name: 'typemesh-selfsigned' },
    spec: { selfSigned: {} },
  });
  new ApiObject(chart, 'service-account', {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'order', namespace: NS },
    automountServiceAccountToken: false,
  });
  new ApiObject(chart, 'sidecar-config', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'order-sidecar', namespace: NS },
    data: { 'config.json': JSON.stringify({ apiVersion: 'typemesh.io/v1alpha1', kind: 'SidecarConfig' }) },
  });
  new ApiObject(chart, 'service', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'order', namespace: NS, labels },
    spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  });
  new ApiObject(chart, 'network-policy', {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'order', namespace: NS },
    spec: {
      podSelector: { matchLabels: labels },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [{ port: 15006, protocol: 'TCP' }] }],
    },
  });
  new ApiObject(chart, 'namespace', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: NS, labels: { 'typemesh.io/mesh': 'enabled' } },
  });
  return chart;
}

/** The dependencies the fixture's objects must get, by object key: the design, written out. */
export const FIXTURE_DEPENDENCIES: Readonly<Record<string, readonly string[]>> = {
  'namespace/shop': [],
  'clusterissuer/typemesh-selfsigned': [],
  'certificate/shop/typemesh-ca': ['namespace/shop', 'clusterissuer/typemesh-selfsigned'],
  'issuer/shop/typemesh-ca': ['namespace/shop', 'certificate/shop/typemesh-ca'],
  'certificate/shop/order': ['namespace/shop', 'issuer/shop/typemesh-ca'],
  'serviceaccount/shop/order': ['namespace/shop'],
  'configmap/shop/order-sidecar': ['namespace/shop'],
  'service/shop/order': ['namespace/shop'],
  'deployment/shop/order': ['namespace/shop', 'serviceaccount/shop/order', 'configmap/shop/order-sidecar', 'certificate/shop/order'],
  'networkpolicy/shop/order': ['namespace/shop'],
};
