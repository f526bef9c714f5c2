/**
 * The local runner's rewrite of a sidecar config for one instance also covers TCP services:
 * their subsets are found among the local instances (like HTTP services'), and their listener
 * ports stay (each instance binds them on its own 127.x address).
 */
import { parseSidecarConfig } from '../../src/config';
import { localizeSidecarConfig, UNREACHABLE_ENDPOINT } from '../../src/local';

test('TCP services get the local endpoints of their subsets and keep their listener ports', () => {
  const config = parseSidecarConfig({
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: { name: 'order', namespace: 'shop', version: 'v1', serviceAccount: 'order', identity: 'spiffe://cluster.local/ns/shop/sa/order', trustDomain: 'cluster.local', appPorts: [{ name: 'http', port: 8080 }] },
    tls: { certFile: '/c', keyFile: '/k', caFile: '/ca' },
    inbound: { app: { port: 8080 } },
    outbound: {
      tcpServices: [{
        name: 'redis', namespace: 'data', port: 6379, listenerPort: 15101,
        subsets: ['v1', 'v2'].map((v) => ({ name: v, identity: 'spiffe://cluster.local/ns/data/sa/redis', discovery: { type: 'dns', hostname: `redis-${v}.data.svc.cluster.local`, port: 15006 } })),
      }],
    },
  });
  const seen: string[] = [];
  const local = localizeSidecarConfig(config, {
    bindAddress: '127.9.9.1', appAddress: '127.9.9.1',
    tls: { certFile: '/t/cert.pem', keyFile: '/t/key.pem', caFile: '/t/ca.pem' },
    endpointsOf: (svc, ns, subset) => {
      seen.push(`${svc}.${ns}/${subset.name}`);
      return subset.name === 'v1' ? [{ address: '127.9.9.2', port: 15006 }] : [];
    },
  });
  expect(seen).toEqual(['redis.data/v1', 'redis.data/v2']);
  const [svc] = local.outbound.tcpServices;
  expect(svc.listenerPort).toBe(15101);
  expect(svc.subsets.map((s) => s.discovery)).toEqual([
    { type: 'static', endpoints: [{ address: '127.9.9.2', port: 15006 }] },
    { type: 'static', endpoints: [UNREACHABLE_ENDPOINT] },
  ]);
});
