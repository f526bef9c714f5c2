/**
 * The constructs' side of CA rotation: the CA Certificate keeps its key on renewal
 * (rotationPolicy: Never), and a trust bundle (trust-manager Bundle or a ConfigMap you run) is
 * mounted by every sidecar and named as its caFile. The Bundle is checked structurally by hand
 * below: no trust-manager CRD is vendored in test/schemas (nor in /work/shared/k8s-schemas); the
 * rules come from trust-manager's CRD (trust.cert-manager.io/v1alpha1, deploy/crds in its
 * repository) and its webhook (exactly one source kind per source, a target key).
 */
import { Testing } from 'cdk8s';
import { CertificateAuthority, Mesh, MeshGateway, MeshService, TrustBundle } from '../../src/constructs';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { find, newChart, sidecarConfigOf, synth } from '../constructs/helpers';
import { validateObject } from '../constructs/k8s-schemas';

const SOURCE_KINDS = ['configMap', 'secret', 'inLine', 'useDefaultCAs'];
const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Throws, naming the field, unless `o` is a structurally valid trust-manager Bundle. */
function validateBundle(o: any): void {
  const only = (where: string, v: any, keys: string[]): void => {
    const extra = Object.keys(v).filter((k) => !keys.includes(k));
    if (extra.length) throw new Error(`${where}: unknown field(s) ${extra.join(', ')}`);
  };
  only('Bundle', o, ['apiVersion', 'kind', 'metadata', 'spec']);
  expect(o.apiVersion).toBe('trust.cert-manager.io/v1alpha1');
  expect(o.kind).toBe('Bundle');
  only('metadata', o.metadata, ['name', 'labels', 'annotations']);
  // Cluster-scoped: a namespace would be rejected.
  expect(o.metadata.namespace).toBeUndefined();
  expect(o.metadata.name).toMatch(DNS_1123_LABEL);
  only('spec', o.spec, ['sources', 'target']);
  expect(Array.isArray(o.spec.sources) && o.spec.sources.length > 0).toBe(true);
  for (const [i, s] of (o.spec.sources as any[]).entries()) {
    only(`spec.sources[${i}]`, s, SOURCE_KINDS);
    expect(Object.keys(s)).toHaveLength(1);
    if (s.secret || s.configMap) {
      const ref = s.secret ?? s.configMap;
      only(`spec.sources[${i}] ref`, ref, ['name', 'key']);
      expect(ref.name).toMatch(DNS_1123_LABEL);
      expect(ref.key).toMatch(/^[-._a-zA-Z0-9]+$/);
    }
    if ('inLine' in s) expect(s.inLine).toMatch(/^-----BEGIN CERTIFICATE-----/);
  }
  only('spec.target', o.spec.target, ['configMap', 'secret', 'namespaceSelector', 'additionalFormats']);
  only('spec.target.configMap', o.spec.target.configMap, ['key']);
  expect(o.spec.target.configMap.key).toMatch(/^[-._a-zA-Z0-9]+$/);
  only('spec.target.namespaceSelector', o.spec.target.namespaceSelector, ['matchLabels']);
}

function meshWith(props: Partial<ConstructorParameters<typeof Mesh>[2]>) {
  const chart = newChart();
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', ...props });
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'example.com/payment:v1' }] });
  return { chart, mesh, payment };
}

test('the CA Certificate keeps its key on renewal (rotationPolicy Never) and validates against the cert-manager CRD', () => {
  const objects = synth(meshWith({}).chart);
  const ca = find(objects, 'Certificate', 'typemesh-ca');
  expect(ca.spec.isCA).toBe(true);
  expect(ca.spec.privateKey).toEqual({ algorithm: 'ECDSA', size: 256, rotationPolicy: 'Never' });
  validateObject(ca);
  // Workload leaves still get a new key at each renewal.
  expect(find(objects, 'Certificate', 'payment').spec.privateKey.rotationPolicy).toBe('Always');
});

test('without a trust bundle each sidecar trusts its own Secret\'s ca.crt and mounts nothing more', () => {
  const objects = synth(meshWith({}).chart);
  expect(objects.filter((o) => o.kind === 'Bundle')).toEqual([]);
  expect(sidecarConfigOf(find(objects, 'ConfigMap', 'payment-v1-sidecar')).tls.caFile).toBe('/etc/typemesh/certs/ca.crt');
});

test('TrustBundle.trustManager(): a Bundle from the mesh CA into the mesh namespace, mounted by every sidecar and gateway as its caFile', () => {
  const { chart, mesh, payment } = meshWith({ trustBundle: TrustBundle.trustManager() });
  const gateway = new MeshGateway(chart, 'gateway', { mesh, routes: [{ service: payment }] });
  payment.allowFrom(gateway);
  const objects = synth(chart);
  const bundle = find(objects, 'Bundle', 'typemesh-trust-bundle');
  validateBundle(bundle);
  expect(bundle.spec).toEqual({
    sources: [{ secret: { name: 'typemesh-ca', key: 'tls.crt' } }],
    target: { configMap: { key: 'ca-bundle.pem' }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } },
  });

  const deployments = objects.filter((o) => o.kind === 'Deployment');
  expect(deployments.length).toBeGreaterThanOrEqual(2); // payment and the gateway
  for (const d of deployments) {
    validateObject(d);
    const pod = d.spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'typemesh-trust', configMap: { name: 'typemesh-trust-bundle', items: [{ key: 'ca-bundle.pem', path: 'ca-bundle.pem' }] } });
    const proxy = [...(pod.initContainers ?? []), ...pod.containers].find((c: any) => c.name === 'typemesh-proxy' || c.name === 'gateway' || (c.volumeMounts ?? []).some((m: any) => m.name === 'typemesh-certs'));
    // A directory mount (no subPath): the kubelet updates ConfigMap contents only there.
    expect(proxy.volumeMounts).toContainEqual({ name: 'typemesh-trust', mountPath: '/etc/typemesh/trust', readOnly: true });
    expect(proxy.volumeMounts.find((m: any) => m.name === 'typemesh-trust').subPath).toBeUndefined();
  }
  for (const cm of objects.filter((o) => o.kind === 'ConfigMap' && o.data?.['sidecar.yaml'])) {
    expect(sidecarConfigOf(cm).tls.caFile).toBe('/etc/typemesh/trust/ca-bundle.pem');
  }
});

test('during a rotation the old CA is kept as an inLine source next to the (new) mesh CA', async () => {
  const oldCa = await LocalCertificateAuthority.create({ commonName: 'old' });
  const objects = synth(meshWith({ trustBundle: TrustBundle.trustManager({ additionalCas: [oldCa.certPem], secrets: [{ name: 'corp-root', key: 'ca.crt' }] }) }).chart);
  const bundle = find(objects, 'Bundle', 'typemesh-trust-bundle');
  validateBundle(bundle);
  expect(bundle.spec.sources).toEqual([
    { secret: { name: 'typemesh-ca', key: 'tls.crt' } },
    { secret: { name: 'corp-root', key: 'ca.crt' } },
    { inLine: oldCa.certPem },
  ]);
});

test('TrustBundle.fromConfigMap(): your ConfigMap is mounted, nothing is synthesized', () => {
  const objects = synth(meshWith({ trustBundle: TrustBundle.fromConfigMap({ name: 'mesh-roots', key: 'roots.pem' }) }).chart);
  expect(objects.filter((o) => o.kind === 'Bundle')).toEqual([]);
  expect(sidecarConfigOf(find(objects, 'ConfigMap', 'payment-v1-sidecar')).tls.caFile).toBe('/etc/typemesh/trust/roots.pem');
  const pod = find(objects, 'Deployment', 'payment-v1').spec.template.spec;
  expect(pod.volumes).toContainEqual({ name: 'typemesh-trust', configMap: { name: 'mesh-roots', items: [{ key: 'roots.pem', path: 'roots.pem' }] } });
});

describe('synth-time validation names the mesh, the prop, the value and the fix', () => {
  test('an additional CA that is a leaf, holds a private key or is no PEM', async () => {
    const ca = await LocalCertificateAuthority.create();
    const leaf = await ca.issueWorkload({ spiffeId: 'spiffe://cluster.local/ns/shop/sa/x' });
    expect(() => meshWith({ trustBundle: TrustBundle.trustManager({ additionalCas: [leaf.certPem] }) }))
      .toThrow(/test\/mesh: trustBundle\.additionalCas\[0\] = .*is not a CA certificate.*Fix: pass the CA certificate/);
    expect(() => meshWith({ trustBundle: TrustBundle.trustManager({ additionalCas: [ca.certPem + leaf.keyPem] }) }))
      .toThrow(/trustBundle\.additionalCas\[0\] = "<redacted: holds a private key>": holds a private key/);
    expect(() => meshWith({ trustBundle: TrustBundle.trustManager({ additionalCas: ['not a pem'] }) }))
      .toThrow(/trustBundle\.additionalCas\[0\] = "not a pem\.\.\.": holds no PEM certificate/);
  });

  test('a Bundle without sources, the mesh CA with an issuer you operate or outside the trust namespace', () => {
    const corp = CertificateAuthority.fromIssuer({ name: 'corp-ca', kind: 'ClusterIssuer' });
    expect(() => meshWith({ certificateAuthority: corp, trustBundle: TrustBundle.trustManager() }))
      .toThrow(/trustBundle = .*the Bundle has no source.*Fix:/);
    expect(() => meshWith({ certificateAuthority: corp, trustBundle: TrustBundle.trustManager({ includeMeshCa: true, secrets: [{ name: 'corp', key: 'ca.crt' }] }) }))
      .toThrow(/trustBundle\.includeMeshCa = true: the mesh bootstraps no CA/);
    expect(() => meshWith({ trustBundle: TrustBundle.trustManager({ includeMeshCa: true, trustNamespace: 'cert-manager' }) }))
      .toThrow(/trustBundle\.includeMeshCa = true: trust-manager reads sources only from its trust namespace "cert-manager".*Fix: install trust-manager with trust namespace "shop"/);
    // With another trust namespace, the default leaves the mesh CA out: then other sources are needed.
    expect(() => meshWith({ trustBundle: TrustBundle.trustManager({ trustNamespace: 'cert-manager' }) })).toThrow(/the Bundle has no source/);
  });

  test('bad names and keys, and two meshes with one cluster-scoped Bundle name', () => {
    expect(() => meshWith({ trustBundle: TrustBundle.fromConfigMap({ name: 'Bad_Name' }) })).toThrow(/trustBundle\.name = "Bad_Name"/);
    expect(() => meshWith({ trustBundle: TrustBundle.fromConfigMap({ name: 'roots', key: 'a/b' }) })).toThrow(/trustBundle\.key = "a\/b": is not a ConfigMap key/);
    const chart = newChart();
    new Mesh(chart, 'shop', { namespace: 'shop', trustBundle: TrustBundle.trustManager() });
    expect(() => new Mesh(chart, 'billing', { namespace: 'billing', trustBundle: TrustBundle.trustManager() }))
      .toThrow(/test\/billing: trustBundle\.name = "typemesh-trust-bundle": trust-manager Bundles are cluster-scoped and test\/shop\/trust-bundle already has this name/);
    expect(() => new Mesh(chart, 'billing2', { namespace: 'billing2', trustBundle: TrustBundle.trustManager({ name: 'billing-trust' }) })).not.toThrow();
    expect(Testing.synth(chart).filter((o) => o.kind === 'Bundle').map((o) => o.metadata.name)).toEqual(['typemesh-trust-bundle', 'billing-trust']);
  });
});
