/**
 * ExternalService and the mesh's egress mode, as a chart author sees them: what every sidecar
 * config of the mesh gets (validated against the contract), the CA mounted into the sidecars,
 * and the early errors that name the construct, the prop, the value and the fix.
 */
import { Duration } from 'cdk8s';
import { EgressMode, ExternalCa, ExternalProtocol, ExternalService, Mesh, MeshService, MeshValidationError, RetryOn } from '../../src/constructs';
import { find, newChart, sidecarConfigOf, synth } from './helpers';
import { validateObject } from './k8s-schemas';

function service(chart: ReturnType<typeof newChart>, mesh: Mesh, name: string): MeshService {
  return new MeshService(chart, name, { mesh, name, versions: [{ name: 'v1', image: `example.com/${name}:v1` }] });
}

describe('ExternalService', () => {
  test('becomes an external entry of every sidecar config of the mesh; the mesh is allow-list by default', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    new ExternalService(chart, 'payments-api', {
      mesh,
      hosts: ['api.payments.example', 'payments.example'],
      caCertificate: ExternalCa.fromSecret('payments-ca'),
      timeout: Duration.seconds(3),
      retries: { attempts: 2, retryOn: [RetryOn.CONNECT_FAILURE, RetryOn.GATEWAY_ERROR], perTryTimeout: Duration.seconds(1) },
      connectionPool: { maxConnections: 50, connectTimeout: Duration.seconds(2) },
      outlierDetection: { consecutiveGatewayErrors: 3 },
    });
    new ExternalService(chart, 'legacy', { mesh, hosts: ['legacy.internal.example'], protocol: ExternalProtocol.HTTP, port: 8080 });
    const order = service(chart, mesh, 'order');
    const payment = service(chart, mesh, 'payment');
    order.callsTo(payment);
    const objects = synth(chart);

    for (const name of ['order-v1', 'payment-v1']) {
      const cfg = sidecarConfigOf(find(objects, 'ConfigMap', `${name}-sidecar`));
      expect(cfg.outbound.passthrough).toBe(false);
      expect(cfg.outbound.externalServices.map((e) => e.name)).toEqual(['payments-api', 'legacy']);
    }
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'order-v1-sidecar'));
    expect(cfg.outbound.externalServices).toMatchSnapshot();

    // The CA Secret is mounted read-only into the sidecar where the config says it is.
    const pod = find(objects, 'Deployment', 'order-v1').spec.template.spec;
    const volume = pod.volumes.find((v: any) => v.secret?.secretName === 'payments-ca');
    expect(volume).toEqual({ name: 'typemesh-ext-ca-payments-api', secret: { secretName: 'payments-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
    const sidecar = [...(pod.initContainers ?? []), ...pod.containers].find((c: any) => c.name === 'typemesh-proxy');
    const mount = sidecar.volumeMounts.find((m: any) => m.name === volume.name);
    expect(`${mount.mountPath}/ca.crt`).toBe(cfg.outbound.externalServices[0].tls?.caFile);
    expect(mount.readOnly).toBe(true);
    // The objects with the CA volume are still valid Kubernetes (strict schemas).
    for (const o of objects) validateObject(o);
  });

  test('EgressMode.PASSTHROUGH passes unknown hosts through', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', egress: EgressMode.PASSTHROUGH });
    service(chart, mesh, 'order');
    const cfg = sidecarConfigOf(find(synth(chart), 'ConfigMap', 'order-v1-sidecar'));
    expect(cfg.outbound.passthrough).toBe(true);
    expect(cfg.outbound.externalServices).toEqual([]);
  });

  test('an ExternalService declared after the services still reaches their configs (the config is built at synth)', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    service(chart, mesh, 'order');
    new ExternalService(chart, 'maps', { mesh, hosts: ['maps.example'] });
    const cfg = sidecarConfigOf(find(synth(chart), 'ConfigMap', 'order-v1-sidecar'));
    expect(cfg.outbound.externalServices).toEqual([expect.objectContaining({ name: 'maps', protocol: 'https', discovery: { type: 'dns', hostname: 'maps.example', port: 443, refreshIntervalMs: 30000 } })]);
    expect(cfg.outbound.externalServices[0].tls).toBeUndefined();
  });

  describe('early errors name the construct, the prop, the value and the fix', () => {
    const cases: Array<[string, (chart: ReturnType<typeof newChart>, mesh: Mesh) => void, RegExp]> = [
      ['no host', (c, mesh) => new ExternalService(c, 'x', { mesh, hosts: [] }), /test\/x: hosts = \[\]: an external service needs at least one host name\. Fix: set hosts/],
      ['a URL as host', (c, mesh) => new ExternalService(c, 'x', { mesh, hosts: ['https://api.example.com'] }), /test\/x: hosts\[0\] = "https:\/\/api\.example\.com": must be a lower-case DNS name.*Fix: write the bare host/],
      ['a host with a port', (c, mesh) => new ExternalService(c, 'x', { mesh, hosts: ['api.example.com:443'] }), /hosts\[0\] = "api\.example\.com:443"/],
      ['a CA on plain HTTP', (c, mesh) => new ExternalService(c, 'x', { mesh, hosts: ['a.example'], protocol: ExternalProtocol.HTTP, caCertificate: ExternalCa.fromConfigMap('ca') }), /test\/x: caCertificate = "configMap": applies to ExternalProtocol.HTTPS only.*Fix: set protocol: ExternalProtocol.HTTPS/],
      ['a bad port', (c, mesh) => new ExternalService(c, 'x', { mesh, hosts: ['a.example'], port: 70000 }), /test\/x: port = 70000/],
      ['a bad name', (c, mesh) => new ExternalService(c, 'Bad_Name', { mesh, hosts: ['a.example'] }), /test\/Bad_Name: name = "Bad_Name": .*DNS-1123/],
      ['a per-try timeout over the timeout', (c, mesh) => new ExternalService(c, 'x', { mesh, hosts: ['a.example'], timeout: Duration.seconds(1), retries: { attempts: 1, perTryTimeout: Duration.seconds(2) } }), /test\/x: retries\.perTryTimeout = "2000ms": exceeds the timeout \(1000 ms\)/],
      ['a host declared twice', (c, mesh) => {
        new ExternalService(c, 'a', { mesh, hosts: ['a.example'] });
        new ExternalService(c, 'b', { mesh, hosts: ['b.example', 'a.example'] });
      }, /test\/b: hosts = "a\.example": the host is already declared by test\/a/],
      ['a name of a MeshService', (c, mesh) => {
        service(c, mesh, 'order');
        new ExternalService(c, 'order-ext', { mesh, name: 'order', hosts: ['a.example'] });
      }, /test\/order-ext: name = "order": a MeshService of this name exists/],
      ['a CA declared after the pods', (c, mesh) => {
        service(c, mesh, 'order');
        new ExternalService(c, 'x', { mesh, hosts: ['a.example'], caCertificate: ExternalCa.fromSecret('ca') });
      }, /test\/x: caCertificate = "secret ca": the mesh's pods are already built \(test\/order\).*Fix: declare ExternalServices with a caCertificate before the MeshServices/],
      ['an unknown egress mode', (c) => new Mesh(c, 'mesh2', { namespace: 'other', egress: 'ALLOW_ANY' as EgressMode }), /test\/mesh2: egress = "ALLOW_ANY": must be one of ALLOW_LIST, PASSTHROUGH/],
    ];
    test.each(cases)('%s', (_name, build, message) => {
      const chart = newChart();
      const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
      let error: unknown;
      try {
        build(chart, mesh);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MeshValidationError);
      expect((error as Error).message).toMatch(message);
    });
  });
});
