/**
 * A mesh across namespaces, as the synthesized manifests show it: one trust root (a
 * ClusterIssuer over a self-signed CA in cert-manager's namespace), identities and discovery
 * names per namespace, a caller in one namespace reaching a service of another (and only by
 * its qualified names), authorization by namespace, and the checks against other meshes.
 */
import * as kplus from 'cdk8s-plus-28';
import { Mesh, MeshGateway, MeshService, MeshValidationError, Source, TrustBundle } from '../../src/constructs';
import { find, newChart, sidecarConfigOf, synth } from './helpers';
import { validateObject } from './k8s-schemas';

function estate() {
  const chart = newChart();
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', namespaces: ['billing'] });
  const order = new MeshService(chart, 'order', { mesh, name: 'order', versions: [{ name: 'v1', image: 'example.com/order:1' }] });
  const ledger = new MeshService(chart, 'ledger', { mesh, name: 'ledger', namespace: 'billing', versions: [{ name: 'v1', image: 'example.com/ledger:1' }] });
  order.callsTo(ledger);
  ledger.allowFrom(Source.namespace('shop'));
  return { chart, mesh, order, ledger };
}

function synthValid(chart: ReturnType<typeof newChart>): any[] {
  const objects = synth(chart);
  for (const o of objects) {
    // The ClusterIssuer CRD's spec schema is the Issuer's (cert-manager's IssuerSpec); only the
    // scope differs, so it is checked as an Issuer with a namespace.
    validateObject(o.kind === 'ClusterIssuer' ? { ...o, kind: 'Issuer', metadata: { ...o.metadata, namespace: 'x' } } : o);
  }
  return objects;
}

describe('a Mesh across namespaces', () => {
  test('one trust root: a ClusterIssuer over the self-signed CA in cert-manager\'s namespace signs every namespace\'s workloads', () => {
    const { chart } = estate();
    const objects = synthValid(chart);
    expect(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name)).toEqual(['shop', 'billing']);
    for (const ns of objects.filter((o) => o.kind === 'Namespace')) expect(ns.metadata.labels['typemesh.io/mesh']).toBe('shop');
    const clusterIssuer = find(objects, 'ClusterIssuer', 'typemesh-shop-ca');
    expect(clusterIssuer.metadata.namespace).toBeUndefined();
    const ca = find(objects, 'Certificate', 'typemesh-shop-ca');
    expect(ca.metadata.namespace).toBe('cert-manager');
    expect(ca.spec).toMatchObject({ isCA: true, secretName: 'typemesh-shop-ca' });
    expect(clusterIssuer.spec).toEqual({ ca: { secretName: 'typemesh-shop-ca' } });
    // No namespaced CA Issuer is left for workloads to reference.
    expect(objects.filter((o) => o.kind === 'Issuer').map((o) => `${o.metadata.namespace}/${o.metadata.name}`)).toEqual(['cert-manager/typemesh-shop-selfsigned']);
    const order = find(objects, 'Certificate', 'order');
    const ledger = find(objects, 'Certificate', 'ledger');
    expect(order.metadata.namespace).toBe('shop');
    expect(ledger.metadata.namespace).toBe('billing');
    expect(ledger.spec.uris).toEqual(['spiffe://cluster.local/ns/billing/sa/ledger']);
    for (const c of [order, ledger]) expect(c.spec.issuerRef).toEqual({ name: 'typemesh-shop-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    expect(objects.filter((o) => o.kind === 'Certificate' || o.kind === 'ClusterIssuer' || o.kind === 'Issuer')).toMatchSnapshot();
  });

  test('a one-namespace mesh keeps its namespaced CA Issuer', () => {
    const chart = newChart();
    new Mesh(chart, 'mesh', { namespace: 'shop' });
    const objects = synthValid(chart);
    expect(objects.some((o) => o.kind === 'ClusterIssuer')).toBe(false);
    expect(find(objects, 'Issuer', 'typemesh-ca').metadata.namespace).toBe('shop');
  });

  test('the service\'s objects, identity and discovery names are in its namespace; a caller elsewhere has no bare-name host', () => {
    const { chart, ledger } = estate();
    expect(ledger.identity).toBe('spiffe://cluster.local/ns/billing/sa/ledger');
    expect(ledger.fqdn).toBe('ledger.billing.svc.cluster.local');
    const objects = synthValid(chart);
    for (const [kind, name] of [['Service', 'ledger'], ['Service', 'ledger-v1'], ['Deployment', 'ledger-v1'], ['ServiceAccount', 'ledger'], ['NetworkPolicy', 'ledger'], ['ConfigMap', 'ledger-v1-sidecar']]) {
      expect(find(objects, kind, name).metadata.namespace).toBe('billing');
    }
    const orderCfg = sidecarConfigOf(find(objects, 'ConfigMap', 'order-v1-sidecar'));
    const out = orderCfg.outbound.services.find((s) => s.name === 'ledger')!;
    expect(out.namespace).toBe('billing');
    // "ledger" from a pod in shop resolves to ledger.shop: not this service.
    expect(out.hosts).toEqual(['ledger.billing', 'ledger.billing.svc', 'ledger.billing.svc.cluster.local']);
    expect(out.subsets[0]).toMatchObject({ identity: 'spiffe://cluster.local/ns/billing/sa/ledger', discovery: { type: 'dns', hostname: 'ledger-v1.billing.svc.cluster.local', port: 15006 } });
    const ledgerCfg = sidecarConfigOf(find(objects, 'ConfigMap', 'ledger-v1-sidecar'));
    expect(ledgerCfg.workload).toMatchObject({ namespace: 'billing', identity: 'spiffe://cluster.local/ns/billing/sa/ledger' });
    expect(ledgerCfg.inbound.authorization.rules).toEqual([expect.objectContaining({ action: 'ALLOW', namespaces: ['shop'] })]);
    // Its NetworkPolicy admits the sidecar's ports from any namespace (the sidecar authorizes).
    expect(find(objects, 'NetworkPolicy', 'ledger').spec.ingress[0].from).toBeUndefined();
  });

  test('the gateway in the home namespace reaches a service of billing by its namespaced names', () => {
    const { chart, mesh, ledger } = estate();
    const gateway = new MeshGateway(chart, 'gateway', { mesh, name: 'edge', routes: [{ hosts: ['ledger.example.com'], service: ledger }] });
    ledger.allowFrom(gateway);
    const objects = synthValid(chart);
    const out = sidecarConfigOf(find(objects, 'ConfigMap', 'edge-proxy')).outbound.services;
    expect(out.map((s) => [s.name, s.namespace, s.hosts])).toEqual([['ledger', 'billing', ['ledger.billing', 'ledger.billing.svc', 'ledger.billing.svc.cluster.local']]]);
  });

  test('services of one name in two namespaces; an injected workload in the second namespace', () => {
    const { chart, mesh, ledger } = estate();
    new MeshService(chart, 'ledger-shop', { mesh, name: 'ledger', versions: [{ name: 'v1', image: 'example.com/ledger:2' }] });
    const job = new kplus.Job(chart, 'reconcile', { metadata: { name: 'reconcile', namespace: 'billing' }, containers: [{ image: 'example.com/reconcile:1', portNumber: 8080 }] });
    const w = mesh.inject(job);
    w.calls(ledger);
    expect(w.identity).toBe('spiffe://cluster.local/ns/billing/sa/reconcile');
    const objects = synthValid(chart);
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'reconcile-v1-sidecar'));
    expect(cfg.outbound.services[0].hosts).toContain('ledger');
    expect(find(objects, 'Certificate', 'reconcile').spec.issuerRef.kind).toBe('ClusterIssuer');
  });
});

describe('a Mesh across namespaces refuses', () => {
  test('a service in a namespace the mesh does not span', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    let error: unknown;
    try {
      new MeshService(chart, 'ledger', { mesh, name: 'ledger', namespace: 'billing', versions: [{ name: 'v1', image: 'x' }] });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MeshValidationError);
    expect((error as Error).message).toContain('test/ledger');
    expect((error as Error).message).toContain('namespace');
    expect((error as Error).message).toContain('is not a namespace of the mesh test/mesh (shop)');
    expect((error as Error).message).toContain("namespaces: ['billing']");
  });

  test('a namespace of another mesh, and a service of another mesh', () => {
    const chart = newChart();
    const shop = new Mesh(chart, 'shop', { namespace: 'shop', namespaces: ['billing'] });
    expect(() => new Mesh(chart, 'finance', { namespace: 'finance', namespaces: ['billing'] })).toThrow(/namespaces\[0\].*the mesh test\/shop already spans this namespace/s);
    const finance = new Mesh(chart, 'finance2', { namespace: 'finance' });
    const order = new MeshService(chart, 'order', { mesh: shop, name: 'order', versions: [{ name: 'v1', image: 'x' }] });
    const payroll = new MeshService(chart, 'payroll', { mesh: finance, name: 'payroll', versions: [{ name: 'v1', image: 'x' }] });
    expect(() => order.callsTo(payroll)).toThrow(/not part of the mesh of order \(test\/shop, namespaces shop, billing\): it belongs to the other mesh test\/finance2 \(namespaces finance\)/);
  });

  test('the home namespace listed again, and a trust bundle (not yet spanning namespaces)', () => {
    expect(() => new Mesh(newChart(), 'mesh', { namespace: 'shop', namespaces: ['shop'] })).toThrow(/namespaces\[0\].*is the home namespace/s);
    expect(() => new Mesh(newChart(), 'mesh', { namespace: 'shop', namespaces: ['billing'], trustBundle: TrustBundle.trustManager() })).toThrow(/trustBundle.*not yet supported/s);
  });
});
