/**
 * The admin port serves only what the config declares: each app probe GETs exactly its declared
 * path (a client's `?path=` is ignored, an undeclared probe is 404), observed at the app. Run
 * against the real sidecar on loopback; test/proxy/interception-netns.test.ts repeats the
 * attacks from another network namespace, where /config_dump and /clusters are refused too.
 */
import { request } from 'undici';
import { SidecarConfigSchema, type SidecarConfigInput } from '../../src/config/schema';
import { inboundListenAddresses, outboundListenAddresses } from '../../src/config';
import { isLoopbackPeer } from '../../src/proxy-image/admin';
import {
  cleanup, ORDER_ID, SidecarProcess, sidecarPorts, startSidecar, startUpstream, tempDir, TestPki, Upstream, workloadConfig,
} from './harness';

afterAll(cleanup);

describe('admin port probes, against the real sidecar', () => {
  let app: Upstream;
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    app = await startUpstream((req, res) => {
      // The app says 200 to anything: what matters is which path the sidecar asked for.
      res.end(`ok ${req.url}`);
    });
    const config = workloadConfig({
      name: 'payment', identity: ORDER_ID, ports: await sidecarPorts(), tls: await pki.workload('payment', ORDER_ID), appPort: app.port,
      inbound: { probes: [{ portName: 'http', kind: 'readyz', path: '/healthz?full=1' }] },
    });
    sidecar = await startSidecar(dir, 'payment', config);
  });

  /** GETs an admin path; returns the status and the app paths requested meanwhile. */
  async function admin(p: string): Promise<{ status: number; appSaw: string[] }> {
    const before = app.requests.length;
    const r = await request(`${sidecar.url('admin')}${p}`);
    await r.body.dump();
    return { status: r.statusCode, appSaw: app.requests.slice(before).map((q) => q.url ?? '') };
  }

  it('GETs the declared path (with its query) and nothing else', async () => {
    expect(await admin('/app-health/http/readyz')).toEqual({ status: 200, appSaw: ['/healthz?full=1'] });
  });

  it('ignores ?path=: the app never sees the path a client names', async () => {
    expect(await admin('/app-health/http/readyz?path=/admin/delete-everything%3Fconfirm=yes')).toEqual({ status: 200, appSaw: ['/healthz?full=1'] });
    expect(await admin('/app-health/http/readyz?path=/x&path=/y')).toEqual({ status: 200, appSaw: ['/healthz?full=1'] });
  });

  it('answers 404 for a probe the config does not declare, without touching the app', async () => {
    expect(await admin('/app-health/http/livez?path=/admin')).toEqual({ status: 404, appSaw: [] });
    expect(await admin('/app-health/nope/readyz')).toEqual({ status: 404, appSaw: [] });
    expect(await admin('/app-health/http/readyz/../livez')).toEqual({ status: 404, appSaw: [] });
    expect(await admin('/app-health/http%2Freadyz')).toEqual({ status: 404, appSaw: [] });
  });

  it('serves /config_dump and /clusters to a loopback client', async () => {
    expect((await admin('/config_dump')).status).toBe(200);
    expect((await admin('/clusters')).status).toBe(200);
  });

  it('refuses methods other than GET and HEAD', async () => {
    const r = await request(`${sidecar.url('admin')}/app-health/http/readyz`, { method: 'POST', body: 'x' });
    await r.body.dump();
    expect(r.statusCode).toBe(405);
  });
});

describe('isLoopbackPeer', () => {
  it.each([
    ['127.0.0.1', true], ['127.3.4.5', true], ['::1', true], ['::ffff:127.0.0.1', true],
    ['10.0.0.1', false], ['::ffff:10.0.0.1', false], ['fd00::1', false], ['0.0.0.0', false], [undefined, false], ['128.0.0.1', false],
  ])('%s -> %s', (address, expected) => {
    expect(isLoopbackPeer(address)).toBe(expected);
  });
});

describe('the contract: listener addresses and probes', () => {
  const base: SidecarConfigInput = {
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: {
      name: 'order', namespace: 'shop', version: 'v1', serviceAccount: 'order',
      identity: ORDER_ID, trustDomain: 'cluster.local', appPorts: [{ name: 'http', port: 8080 }],
    },
    tls: { certFile: '/c', keyFile: '/k', caFile: '/ca' },
    inbound: { app: { port: 8080 } },
  };
  const issues = (input: SidecarConfigInput): string[] => {
    const r = SidecarConfigSchema.safeParse(input);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('puts the outbound listener on loopback whatever bindAddress is', () => {
    expect(outboundListenAddresses({ bindAddress: '0.0.0.0' })).toEqual(['127.0.0.1', '::1']);
    expect(outboundListenAddresses({ bindAddress: '10.1.2.3' })).toEqual(['127.0.0.1', '::1']);
    // The local runner's per-instance loopback address stays the outbound address.
    expect(outboundListenAddresses({ bindAddress: '127.0.0.7' })).toEqual(['127.0.0.7']);
    expect(outboundListenAddresses({ bindAddress: '0.0.0.0', outboundBindAddress: '::1' })).toEqual(['::1']);
    expect(inboundListenAddresses({ bindAddress: '0.0.0.0' })).toEqual(['0.0.0.0', '::']);
    expect(inboundListenAddresses({ bindAddress: '127.0.0.7' })).toEqual(['127.0.0.7']);
  });

  it('refuses an outboundBindAddress that is not loopback', () => {
    for (const address of ['0.0.0.0', '::', '10.0.0.1', '127.0.0.256', 'fd00::1']) {
      expect(issues({ ...base, listeners: { outboundBindAddress: address } })).toEqual([
        'listeners.outboundBindAddress: must be a loopback address (127.0.0.0/8 or ::1): the outbound listener must not be reachable from outside the pod',
      ]);
    }
    expect(issues({ ...base, listeners: { outboundBindAddress: '127.0.0.9' } })).toEqual([]);
  });

  it('refuses probes of unknown ports, duplicate probes and paths that are not plain', () => {
    expect(issues({ ...base, inbound: { app: { port: 8080 }, probes: [{ portName: 'grpc', kind: 'livez', path: '/l' }] } }))
      .toEqual(['inbound.probes.0.portName: unknown app port "grpc" (known: http)']);
    expect(issues({ ...base, inbound: { app: { port: 8080 }, probes: [{ portName: 'http', kind: 'livez', path: '/a' }, { portName: 'http', kind: 'livez', path: '/b' }] } }))
      .toEqual(['inbound.probes.1: a second livez probe for port "http": each port has at most one of each kind']);
    expect(issues({ ...base, inbound: { app: { port: 8080 }, probes: [{ portName: 'http', kind: 'livez', path: 'healthz' }] } })).toHaveLength(1);
    expect(issues({ ...base, inbound: { app: { port: 8080 }, probes: [{ portName: 'http', kind: 'livez', path: '/a b' }] } })).toHaveLength(1);
    expect(issues({ ...base, inbound: { app: { port: 8080 }, probes: [{ portName: 'http', kind: 'livez', path: '/a\r\nx: y' }] } })).toHaveLength(1);
  });
});
