/**
 * Every port of a service, and TCP, as a chart author sees them: what the callers' sidecar
 * configs and init steps get for a service with two HTTP ports and for a TCP service (checked
 * against the contract and the strict Kubernetes schemas), and the synth-time errors for HTTP
 * policies that a byte stream cannot carry.
 */
import { Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import {
  Canary, CircuitBreaker, Mesh, MeshService, MeshValidationError, PathMatch, Protocol, RetryPolicy, Source, Timeout, meshWarnings,
} from '../../src/constructs';
import { TCP_LISTENER_PORT_MIN } from '../../src/config/pod-contract';
import { find, newChart, sidecarConfigOf, synth } from './helpers';
import { validateObject } from './k8s-schemas';

function estate() {
  const chart = newChart();
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
  const api = new MeshService(chart, 'api', {
    mesh, name: 'api',
    ports: [{ port: 80, targetPort: 8080 }, { port: 9090, targetPort: 9091, name: 'admin' }],
    versions: [{ name: 'v1', image: 'example.com/api:v1', readiness: { path: '/ready', port: 9091 } }],
  });
  const db = new MeshService(chart, 'db', {
    mesh, name: 'db',
    ports: [{ port: 5432, targetPort: 5433, protocol: Protocol.TCP }],
    versions: [{ name: 'v1', image: 'example.com/db:v1' }, { name: 'v2', image: 'example.com/db:v2' }],
  });
  const cache = new MeshService(chart, 'cache', {
    mesh, name: 'cache',
    ports: [{ port: 6379, protocol: Protocol.TCP }],
    versions: [{ name: 'v1', image: 'example.com/cache:v1' }],
  });
  const web = new MeshService(chart, 'web', { mesh, name: 'web', versions: [{ name: 'v1', image: 'example.com/web:v1' }] });
  web.callsTo(api, db, cache);
  db.allowFrom(web);
  return { chart, mesh, api, db, cache, web };
}

function initArgs(objects: any[], deployment: string): string[] {
  const pod = find(objects, 'Deployment', deployment).spec.template.spec;
  return pod.initContainers.find((c: any) => c.name === 'typemesh-init').args;
}

describe('ports', () => {
  test('a caller gets one outbound service per HTTP port and a TCP service with its own listener per TCP port', () => {
    const { chart } = estate();
    const objects = synth(chart);
    const web = sidecarConfigOf(find(objects, 'ConfigMap', 'web-v1-sidecar'));

    // Two HTTP ports: the same hosts, each its own port and app port, unique names.
    const api = web.outbound.services.filter((s) => s.hosts.includes('api.shop.svc.cluster.local'));
    expect(api.map((s) => [s.name, s.port, s.targetPort])).toEqual([['api', 80, 8080], ['api-admin', 9090, 9091]]);
    expect(api[1].hosts).toEqual(api[0].hosts);

    // TCP: listener ports from the pod contract's base, in declaration order; both versions.
    expect(web.outbound.tcpServices.map((s) => [s.name, s.port, s.targetPort, s.listenerPort, s.subsets.map((x) => x.name)])).toEqual([
      ['db', 5432, 5433, TCP_LISTENER_PORT_MIN, ['v1', 'v2']],
      ['cache', 6379, 6379, TCP_LISTENER_PORT_MIN + 1, ['v1']],
    ]);
    expect(web.outbound.tcpServices[0].subsets[0].identity).toBe('spiffe://cluster.local/ns/shop/sa/db');
    expect(web.outbound.tcpServices).toMatchSnapshot();

    // The caller's init step redirects each TCP service port to its listener, before the HTTP capture.
    const args = initArgs(objects, 'web-v1');
    expect(args[args.indexOf('--tcp-redirects') + 1]).toBe(`5432:${TCP_LISTENER_PORT_MIN},6379:${TCP_LISTENER_PORT_MIN + 1}`);
    expect(args[args.indexOf('--outbound-ports') + 1].split(',')).toEqual(expect.arrayContaining(['80', '9090', '5432', '6379']));
    expect(args).not.toContain('--no-outbound-capture');

    // The callee declares its app port as TCP, with its rule by principal only.
    const db = sidecarConfigOf(find(objects, 'ConfigMap', 'db-v1-sidecar'));
    expect(db.workload.appPorts).toEqual([{ name: 'tcp-5432', port: 5433, protocol: 'tcp' }]);
    expect(db.inbound.authorization.rules).toEqual([{ name: 'allow-from-web', action: 'ALLOW', principals: ['spiffe://cluster.local/ns/shop/sa/web'] }]);
    expect(initArgs(objects, 'db-v1')).toContain('--no-outbound-capture');
    expect(find(objects, 'Service', 'db').spec.ports).toEqual([{ name: 'tcp-5432', port: 5432, targetPort: 5433, protocol: 'TCP', appProtocol: 'tcp' }]);

    // The multi-port service probes its second port by name.
    const apiCfg = sidecarConfigOf(find(objects, 'ConfigMap', 'api-v1-sidecar'));
    expect(apiCfg.inbound.probes).toEqual([{ portName: 'admin', kind: 'readyz', path: '/ready' }]);

    for (const o of objects) validateObject(o);
  });

  test('a caller of TCP services only captures just their ports', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    const db = new MeshService(chart, 'db', { mesh, name: 'db', ports: [{ port: 5432, protocol: Protocol.TCP }], versions: [{ name: 'v1', image: 'example.com/db:v1' }] });
    const job = new MeshService(chart, 'job', { mesh, name: 'job', versions: [{ name: 'v1', image: 'example.com/job:v1' }] });
    job.callsTo(db);
    const args = initArgs(synth(chart), 'job-v1');
    expect(args.slice(args.indexOf('--outbound-ports'))).toEqual(['--outbound-ports', '5432', '--tcp-redirects', `5432:${TCP_LISTENER_PORT_MIN}`]);
  });

  test('an injected workload calling a TCP service gets its listener and redirect too', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', namespaces: ['billing'] });
    const ledger = new MeshService(chart, 'ledger', { mesh, name: 'ledger', namespace: 'billing', ports: [{ port: 7000, targetPort: 7001, protocol: Protocol.TCP }], versions: [{ name: 'v1', image: 'example.com/ledger:v1' }] });
    const worker = new kplus.Deployment(chart, 'worker', { metadata: { name: 'worker', namespace: 'shop' }, containers: [{ name: 'app', image: 'example.com/worker:1', portNumber: 8080 }] });
    ledger.allowFrom(mesh.inject(worker));
    const objects = synth(chart);
    const cfg = sidecarConfigOf(find(objects, 'ConfigMap', 'worker-v1-sidecar'));
    expect(cfg.outbound.tcpServices.map((t) => [t.name, t.namespace, t.port, t.targetPort, t.listenerPort])).toEqual([['ledger', 'billing', 7000, 7001, TCP_LISTENER_PORT_MIN]]);
    expect(initArgs(objects, 'worker')).toEqual(expect.arrayContaining(['--tcp-redirects', `7000:${TCP_LISTENER_PORT_MIN}`]));
    const ledgerCfg = sidecarConfigOf(find(objects, 'ConfigMap', 'ledger-v1-sidecar'));
    expect(ledgerCfg.inbound.authorization.rules[0].principals).toEqual(['spiffe://cluster.local/ns/shop/sa/worker']);
    for (const o of objects) validateObject(o);
  });

  describe('synth-time errors name the construct, prop, value and fix', () => {
    test('a TCP port of an injected workload (not meshed yet)', () => {
      const chart = newChart();
      const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
      const redis = new kplus.Deployment(chart, 'redis', { metadata: { name: 'redis', namespace: 'shop' }, containers: [{ name: 'app', image: 'example.com/redis:1', portNumber: 6379 }] });
      expect(() => mesh.inject(redis, { ports: [{ port: 6379, protocol: Protocol.TCP }] })).toThrow(/ports\[0\]\.protocol.*tcp.*not meshed yet.*MeshService/s);
    });

    function tcpService() {
      const chart = newChart();
      const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
      const db = new MeshService(chart, 'db', { mesh, name: 'db', ports: [{ port: 5432, protocol: Protocol.TCP }], versions: [{ name: 'v1', image: 'example.com/db:v1' }, { name: 'v2', image: 'example.com/db:v2' }] });
      const web = new MeshService(chart, 'web', { mesh, name: 'web', versions: [{ name: 'v1', image: 'example.com/web:v1' }] });
      return { chart, mesh, db, web };
    }

    test('allowFrom with methods or paths on a TCP service', () => {
      const { db, web } = tcpService();
      expect(() => db.allowFrom(web, { methods: ['GET'] })).toThrow(MeshValidationError);
      expect(() => db.allowFrom(web, { paths: ['/api/*'] })).toThrow(/test\/db.*paths.*\/api\/\*.*TCP port "tcp-5432" \(5432\).*principal and namespace only.*drop paths/s);
      // Without conditions it is an ordinary rule.
      expect(() => db.allowFrom(Source.namespace('shop'))).not.toThrow();
    });

    test('route policies on a TCP-only service', () => {
      const { chart, db } = tcpService();
      expect(() => new RetryPolicy(chart, 'retries', { service: db, attempts: 2 })).toThrow(/test\/retries.*retries.*db.*TCP ports only.*remove this policy/s);
      expect(() => new Timeout(chart, 'timeout', { service: db, timeout: Duration.seconds(2) })).toThrow(MeshValidationError);
      expect(() => new Canary(chart, 'canary', { service: db, stable: 'v1', canary: 'v2', canaryWeight: 10 })).toThrow(/TCP ports only/);
      expect(() => db.addRoute({ name: 'r', match: [{ path: PathMatch.prefix('/x') }] })).toThrow(/addRoute.*TCP ports only/s);
      expect(() => new CircuitBreaker(chart, 'breaker', { service: db, maxConnections: 10 })).toThrow(/test\/breaker.*service.*db.*TCP ports only.*no connection pool limits/s);
    });

    test('a route policy on a service with HTTP and TCP ports is a warning', () => {
      const chart = newChart();
      const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
      const svc = new MeshService(chart, 'kafka', {
        mesh, name: 'kafka',
        ports: [{ port: 8080 }, { port: 9092, protocol: Protocol.TCP }],
        versions: [{ name: 'v1', image: 'example.com/kafka:v1' }],
      });
      new MeshService(chart, 'web', { mesh, name: 'web', versions: [{ name: 'v1', image: 'example.com/web:v1' }] }).callsTo(svc);
      new Timeout(chart, 'timeout', { service: svc, timeout: Duration.seconds(2) });
      const objects = synth(chart);
      // The timeout reaches the HTTP port's outbound service; the TCP service has none to carry it.
      const web = sidecarConfigOf(find(objects, 'ConfigMap', 'web-v1-sidecar'));
      expect(web.outbound.services.map((s) => [s.name, s.routes[0].timeoutMs])).toEqual([['kafka', 2000]]);
      expect(web.outbound.tcpServices.map((s) => s.name)).toEqual(['kafka-tcp-9092']);
      expect(meshWarnings(chart)).toEqual([expect.stringMatching(/test\/timeout.*HTTP ports of kafka only.*"tcp-9092" \(9092\)/s)]);
    });

    test('an HTTP probe of a TCP port', () => {
      const chart = newChart();
      const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
      expect(() => new MeshService(chart, 'db', {
        mesh, name: 'db', ports: [{ port: 5432, protocol: Protocol.TCP }],
        versions: [{ name: 'v1', image: 'example.com/db:v1', readiness: { path: '/ready' } }],
      })).toThrow(/test\/db.*versions\[0\]\.readiness\.port.*5432.*is TCP.*health path on an HTTP port/s);
    });

    test('a caller of a TCP service and an HTTP service on the same port', () => {
      const chart = newChart();
      const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
      const db = new MeshService(chart, 'db', { mesh, name: 'db', ports: [{ port: 80, targetPort: 5432, protocol: Protocol.TCP }], versions: [{ name: 'v1', image: 'example.com/db:v1' }] });
      const api = new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'example.com/api:v1' }] });
      const web = new MeshService(chart, 'web', { mesh, name: 'web', versions: [{ name: 'v1', image: 'example.com/web:v1' }] });
      web.callsTo(api, db);
      expect(() => synth(chart)).toThrow(/test\/web.*callsTo.*db\.shop:80.*also the port of the HTTP service api\.shop.*a port of its own/s);
    });

    test('a gateway-style HTTP use of a TCP-only service', () => {
      const { db } = tcpService();
      expect(() => db.outboundService()).toThrow(/test\/db.*ports.*TCP ports only/s);
    });
  });
});
