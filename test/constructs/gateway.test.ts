/**
 * MeshGateway as a chart author meets it: the objects it synthesizes (checked against the
 * Kubernetes and cert-manager schemas), the proxy config it writes, `allowFrom(gateway)` in
 * the callee's authorization rules, and the synth errors a wrong prop gets.
 */
import { Chart } from 'cdk8s';
import { parseSidecarConfig, SidecarConfig } from '../../src/config';
import { GatewayServiceType, GatewayTls, Mesh, MeshGateway, MeshService, MeshValidationError } from '../../src/constructs';
import { find, newChart, sidecarConfigOf, smallMesh, synth } from './helpers';
import { validateObject } from './k8s-schemas';

function shop(chart: Chart): { mesh: Mesh; order: MeshService; payment: MeshService } {
  const { mesh, services } = smallMesh(chart, [{ name: 'order' }, { name: 'payment' }]);
  return { mesh, order: services[0], payment: services[1] };
}

describe('MeshGateway', () => {
  test('synthesizes a proxy Deployment, Service, identity and server certificate that validate', () => {
    const chart = newChart();
    const { mesh, order, payment } = shop(chart);
    const gateway = new MeshGateway(chart, 'gateway', {
      mesh, name: 'shop-gateway',
      tls: GatewayTls.fromIssuer({ name: 'letsencrypt' }),
      routes: [{ hosts: ['shop.example.com'], service: order }],
    });
    gateway.addRoute({ hosts: ['api.example.com'], pathPrefix: '/pay', service: payment });
    order.allowFrom(gateway);
    payment.allowFrom(gateway, { methods: ['POST'], paths: ['/pay/*'] });
    const objects = synth(chart);
    for (const o of objects) validateObject(o);
    const mine = objects.filter((o) => o.metadata?.labels?.app === 'shop-gateway');
    expect(mine.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'Certificate/shop-gateway', 'Certificate/shop-gateway-server-tls', 'ConfigMap/shop-gateway-proxy',
      'Deployment/shop-gateway', 'NetworkPolicy/shop-gateway', 'Service/shop-gateway', 'ServiceAccount/shop-gateway',
    ]);
    // Outside clients reach the HTTP and HTTPS listeners, the kubelet the admin port; nothing else.
    expect(find(objects, 'NetworkPolicy', 'shop-gateway').spec.ingress).toEqual([{ ports: [
      { port: 8080, protocol: 'TCP' }, { port: 8443, protocol: 'TCP' }, { port: 15020, protocol: 'TCP' },
    ] }]);
    // The proxy config is checked field by field below; in the snapshot it would change with
    // every default the contract gains.
    expect(mine.map((o) => (o.kind === 'ConfigMap' ? { ...o, data: Object.keys(o.data) } : o))).toMatchSnapshot();

    // The identity certificate comes from the mesh CA; the server certificate from the user's issuer, for the routes' hosts.
    const identity = find(objects, 'Certificate', 'shop-gateway');
    expect(identity.spec.uris).toEqual(['spiffe://cluster.local/ns/shop/sa/shop-gateway']);
    expect(identity.spec.issuerRef).toEqual(mesh.issuer);
    const server = find(objects, 'Certificate', 'shop-gateway-server-tls');
    expect(server.spec.dnsNames).toEqual(['shop.example.com', 'api.example.com']);
    expect(server.spec.issuerRef).toEqual({ name: 'letsencrypt', kind: 'ClusterIssuer', group: 'cert-manager.io' });

    // No app container and no interception init container: the proxy is the pod.
    const pod = find(objects, 'Deployment', 'shop-gateway').spec.template.spec;
    expect(pod.containers.map((c: any) => c.name)).toEqual(['typemesh-proxy']);
    expect(pod.initContainers).toBeUndefined();
    const svc = find(objects, 'Service', 'shop-gateway');
    expect(svc.spec.type).toBe('LoadBalancer');
    expect(svc.spec.ports).toEqual([
      { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', appProtocol: 'http' },
      { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP', appProtocol: 'https' },
    ]);

    // The proxy config: gateway listeners and routes over the same outbound services a sidecar has.
    const config = sidecarConfigOf(find(objects, 'ConfigMap', 'shop-gateway-proxy'));
    expect(config.gateway).toEqual({
      bindAddress: '0.0.0.0',
      listeners: [
        { name: 'http', port: 8080, protocol: 'http' },
        { name: 'https', port: 8443, protocol: 'https', tls: { certFile: '/etc/typemesh/gateway-tls/tls.crt', keyFile: '/etc/typemesh/gateway-tls/tls.key' } },
      ],
      routes: [
        { name: 'order', hosts: ['shop.example.com'], pathPrefix: '/', service: 'order' },
        { name: 'payment', hosts: ['api.example.com'], pathPrefix: '/pay', service: 'payment' },
      ],
    });
    expect(config.outbound.services.map((s) => s.name)).toEqual(['order', 'payment']);
    expect(config.outbound.passthrough).toBe(false);
    expect(config.inbound.authorization.rules).toEqual([{ name: 'gateway-accepts-no-mesh-traffic', action: 'DENY', principals: ['*'] }]);
  });

  test('allowFrom(gateway) puts the gateway identity in the callee sidecar config', () => {
    const chart = newChart();
    const { mesh, order, payment } = shop(chart);
    const gateway = new MeshGateway(chart, 'gateway', { mesh, routes: [{ service: payment }] });
    payment.allowFrom(order, { methods: ['POST'], paths: ['/process'] });
    payment.allowFrom(gateway, { methods: ['GET'], paths: ['/status'] });
    const objects = synth(chart);
    const rules = sidecarConfigOf(find(objects, 'ConfigMap', 'payment-v1-sidecar')).inbound.authorization.rules;
    expect(rules).toEqual([
      { name: 'allow-from-order', action: 'ALLOW', principals: ['spiffe://cluster.local/ns/shop/sa/order'], methods: ['POST'], paths: ['/process'] },
      { name: 'allow-from-typemesh-gateway', action: 'ALLOW', principals: ['spiffe://cluster.local/ns/shop/sa/typemesh-gateway'], methods: ['GET'], paths: ['/status'] },
    ]);
    // Without TLS: HTTP only, no server certificate.
    expect(objects.filter((o) => o.kind === 'Certificate' && o.metadata.name.startsWith('typemesh-gateway')).map((o) => o.metadata.name)).toEqual(['typemesh-gateway']);
    expect(find(objects, 'Service', 'typemesh-gateway').spec.ports.map((p: any) => p.name)).toEqual(['http']);
  });

  test('a PodMonitor when the mesh asks for one', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true } } });
    const order = new MeshService(chart, 'order', { mesh, name: 'order', versions: [{ name: 'v1', image: 'x:1' }] });
    new MeshGateway(chart, 'gateway', { mesh, routes: [{ service: order }] });
    const objects = synth(chart);
    for (const o of objects) validateObject(o);
    const monitor = find(objects, 'PodMonitor', 'typemesh-gateway-proxy-metrics');
    expect(monitor.spec.selector).toEqual({ matchLabels: { app: 'typemesh-gateway' } });
    expect(monitor.spec.podMetricsEndpoints).toEqual([{ port: 'mesh-admin', path: '/metrics', scheme: 'http', interval: '15s' }]);
  });

  test('a given secret and service type are used as declared', () => {
    const chart = newChart();
    const { mesh, order } = shop(chart);
    new MeshGateway(chart, 'gateway', { mesh, serviceType: GatewayServiceType.NODE_PORT, tls: GatewayTls.fromSecret('shop-tls'), routes: [{ service: order }] });
    const objects = synth(chart);
    expect(find(objects, 'Service', 'typemesh-gateway').spec.type).toBe('NodePort');
    const volumes = find(objects, 'Deployment', 'typemesh-gateway').spec.template.spec.volumes;
    expect(volumes).toContainEqual({ name: 'gateway-server-tls', secret: { secretName: 'shop-tls' } });
  });

  describe('errors name the path, prop, value and fix', () => {
    const cases: Array<[string, (chart: Chart) => void, RegExp]> = [
      ['bad name', (c) => new MeshGateway(c, 'gw', { mesh: shop(c).mesh, name: 'Shop_GW' }), /test\/gw: name = "Shop_GW": .*Fix: /],
      ['bad host', (c) => {
        const { mesh, order } = shop(c);
        new MeshGateway(c, 'gw', { mesh, routes: [{ hosts: ['https://shop.example.com'], service: order }] });
      }, /test\/gw: routes\[0\]\.hosts\[0\] = "https:\/\/shop\.example\.com": .*Fix: use e\.g\. "shop\.example\.com"/],
      ['bad path prefix', (c) => {
        const { mesh, order } = shop(c);
        new MeshGateway(c, 'gw', { mesh, routes: [{ pathPrefix: 'api', service: order }] });
      }, /routes\[0\]\.pathPrefix = "api": must start with "\/"/],
      ['service of another mesh', (c) => {
        const { mesh } = shop(c);
        const other = new Mesh(c, 'other', { namespace: 'other' });
        const stranger = new MeshService(c, 'stranger', { mesh: other, name: 'stranger', versions: [{ name: 'v1', image: 'x:1' }] });
        new MeshGateway(c, 'gw', { mesh }).addRoute({ service: stranger });
      }, /test\/gw: addRoute\.service = "stranger": is not a MeshService of the gateway's mesh/],
      ['same port for http and https', (c) => new MeshGateway(c, 'gw', { mesh: shop(c).mesh, httpPort: 8000, httpsPort: 8000, tls: GatewayTls.fromSecret('t') }), /httpsPort = 8000: is the same as httpPort/],
      ['name taken by a service', (c) => new MeshGateway(c, 'gw', { mesh: shop(c).mesh, name: 'order' }), /name = "order": a MeshService of the mesh already uses this name/],
      ['duplicate route', (c) => {
        const { mesh, order, payment } = shop(c);
        new MeshGateway(c, 'gw', { mesh, routes: [{ service: order }, { service: payment }] });
      }, /routes\[1\]\.pathPrefix = "\/": route "order" already matches the same host and path prefix/],
    ];
    test.each(cases)('%s', (_name, build, message) => {
      const chart = newChart();
      let error: unknown;
      try {
        build(chart);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MeshValidationError);
      expect((error as Error).message).toMatch(message);
    });

    test('at synth: no routes, and a route to a service whose allow rules leave the gateway out', () => {
      const empty = newChart();
      new MeshGateway(empty, 'gw', { mesh: shop(empty).mesh });
      expect(() => synth(empty)).toThrow(/test\/gw: routes = \[\]: a gateway without routes answers 404 to every request\. Fix: add a route/);

      const chart = newChart();
      const { mesh, order, payment } = shop(chart);
      new MeshGateway(chart, 'gw', { mesh, routes: [{ service: payment }] });
      payment.allowFrom(order);
      expect(() => synth(chart)).toThrow(/routes\[0\]\.service = "payment": its allow rules do not admit the gateway \(spiffe:\/\/cluster\.local\/ns\/shop\/sa\/typemesh-gateway\).*Fix: add payment\.allowFrom\(gateway\)/);
    });
  });
});

describe('the gateway section of the contract', () => {
  /** A valid gateway config, as MeshGateway writes it, to break one field at a time. */
  function gatewayConfig(): SidecarConfig {
    const chart = newChart();
    const { mesh, order } = shop(chart);
    return new MeshGateway(chart, 'gw', { mesh, tls: GatewayTls.fromSecret('t'), routes: [{ hosts: ['shop.example.com'], service: order }] }).sidecarConfig();
  }
  const cases: Array<[string, (c: any) => void, RegExp]> = [
    ['an https listener without tls', (c) => delete c.gateway.listeners[1].tls, /gateway\.listeners\[1\]\.tls: an https listener needs tls\.certFile and tls\.keyFile/],
    ['an http listener with tls', (c) => (c.gateway.listeners[0].tls = { certFile: 'a', keyFile: 'b' }), /gateway\.listeners\[0\]\.tls: an http listener takes no tls/],
    ['a route to no outbound service', (c) => (c.gateway.routes[0].service = 'nowhere'), /gateway\.routes\[0\]\.service: unknown outbound service "nowhere" \(known: order\)/],
    ['a port of the sidecar', (c) => (c.gateway.listeners[0].port = 15020), /gateway\.listeners\[0\]\.port: port 15020 is already listeners\.adminPort/],
    ['two listeners on one port', (c) => (c.gateway.listeners[1].port = 8080), /gateway\.listeners\[1\]\.port: two gateway listeners use port 8080/],
    ['an upper-case host', (c) => (c.gateway.routes[0].hosts = ['Shop.Example.com']), /gateway\.routes\[0\]\.hosts\[0\]: must be a lower-case host name/],
    ['an unknown field (strict)', (c) => (c.gateway.routes[0].rewrite = '/'), /gateway\.routes\[0\]: Unrecognized key: "rewrite"/],
  ];
  test('a valid section parses', () => {
    expect(parseSidecarConfig(gatewayConfig()).gateway?.routes[0].service).toBe('order');
  });
  test.each(cases)('%s is refused, naming the field', (_name, breakIt, message) => {
    const c = JSON.parse(JSON.stringify(gatewayConfig()));
    breakIt(c);
    expect(() => parseSidecarConfig(c)).toThrow(message);
  });
});
