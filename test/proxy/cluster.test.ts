/**
 * Upstream clusters: connection pool limits (503 + x-typemesh-overflow), pooled keep-alive
 * mTLS connections between sidecars, maxRequestsPerConnection, outlier detection with
 * maxEjectionPercent, and the two load balancers.
 */
import type * as http from 'node:http';
import { request } from 'undici';
import { callOutbound, cleanup, FakePeer, PAYMENT_ID, ServerInstance, SidecarProcess, sleep, startClientSidecar, startFakePeer, startServerInstance, subset, tempDir, TestPki } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

function slowOrFast(name: string, delayMs: number) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const d = (req.url ?? '').startsWith('/slow') ? delayMs : 0;
    setTimeout(() => {
      res.writeHead(200, { 'x-app': name });
      res.end(name);
    }, d);
  };
}

describe('clusters', () => {
  let a: ServerInstance;
  let b: ServerInstance;
  let failing: ServerInstance;
  let peer: FakePeer;
  let cappedPeer: FakePeer;
  let order: SidecarProcess;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    [a, b, failing] = await Promise.all([
      startServerInstance(dir, pki, 'payment-a', slowOrFast('a', 400)),
      startServerInstance(dir, pki, 'payment-b', slowOrFast('b', 0)),
      startServerInstance(dir, pki, 'payment-bad', (_req, res) => {
        res.writeHead(503);
        res.end('always failing');
      }),
    ]);
    const peerHandler: http.RequestListener = (_req, res) => res.end('peer');
    peer = await startFakePeer(pki, PAYMENT_ID, peerHandler);
    cappedPeer = await startFakePeer(pki, PAYMENT_ID, peerHandler);
    const to = [{ subset: 'v1', weight: 100 }];
    const svc = (name: string, subsets: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name, namespace: 'shop', hosts: [name], port: 8080, subsets, routes: [{ name: 'all', destinations: to }], ...extra });
    const services = [
      svc('pending', [subset('v1', [a])], { connectionPool: { maxConnections: 1, maxPendingRequests: 1 } }),
      svc('noqueue', [subset('v1', [a])], { connectionPool: { maxConnections: 1, maxPendingRequests: 0 } }),
      svc('rr', [subset('v1', [a, b])], { loadBalancer: { policy: 'ROUND_ROBIN' } }),
      svc('least', [subset('v1', [a, b])], { loadBalancer: { policy: 'LEAST_REQUEST' } }),
      svc('outlier', [subset('v1', [b, failing])], {
        loadBalancer: { policy: 'ROUND_ROBIN' },
        outlierDetection: { consecutive5xxErrors: 2, intervalMs: 1000, baseEjectionTimeMs: 30000, maxEjectionPercent: 50 },
      }),
      svc('capped', [subset('v1', [failing])], { outlierDetection: { consecutive5xxErrors: 1, baseEjectionTimeMs: 30000, maxEjectionPercent: 0 } }),
      svc('allout', [subset('v1', [failing])], { outlierDetection: { consecutive5xxErrors: 1, baseEjectionTimeMs: 30000, maxEjectionPercent: 100 } }),
      svc('peer', [subset('v1', [peer.port])]),
      svc('peer-capped', [subset('v1', [cappedPeer.port])], { connectionPool: { maxRequestsPerConnection: 2 } }),
    ];
    order = (await startClientSidecar(dir, pki, services as never)).sidecar;
  });

  test('maxPendingRequests: requests beyond connections + queue get 503 with x-typemesh-overflow: pending', async () => {
    const results = await Promise.all([0, 1, 2, 3].map(() => callOutbound(order, 'pending', '/slow')));
    const ok = results.filter((r) => r.status === 200);
    const overflow = results.filter((r) => r.status === 503);
    expect(ok.length).toBe(2);
    expect(overflow.length).toBe(2);
    for (const r of overflow) {
      expect(r.headers['x-typemesh-overflow']).toBe('pending');
      expect(r.body).toContain('maxPendingRequests=1');
    }
  });

  test('maxPendingRequests 0: overflow is reported as connections', async () => {
    const results = await Promise.all([0, 1, 2].map(() => callOutbound(order, 'noqueue', '/slow')));
    expect(results.filter((r) => r.status === 200).length).toBe(1);
    const overflow = results.filter((r) => r.status === 503);
    expect(overflow.length).toBe(2);
    expect(overflow[0].headers['x-typemesh-overflow']).toBe('connections');
  });

  test('ROUND_ROBIN alternates endpoints', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) seen.push((await callOutbound(order, 'rr', '/fast')).body);
    expect(seen.filter((s) => s === 'a').length).toBe(5);
    expect(seen.filter((s) => s === 'b').length).toBe(5);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
  });

  test('LEAST_REQUEST prefers the endpoint with fewer requests in flight', async () => {
    const counts: Record<string, number> = { a: 0, b: 0 };
    // 4 workers: requests to "a" take 400 ms, so "a" keeps requests in flight and "b" wins most picks.
    await Promise.all([0, 1, 2, 3].map(async () => {
      for (let i = 0; i < 8; i++) counts[(await callOutbound(order, 'least', '/slow')).body]++;
    }));
    expect(counts.a + counts.b).toBe(32);
    expect(counts.b).toBeGreaterThan(counts.a * 2);
  });

  test('pooled keep-alive mTLS: 20 sequential requests to a peer use one TLS connection', async () => {
    for (let i = 0; i < 20; i++) expect((await callOutbound(order, 'peer', `/p/${i}`)).status).toBe(200);
    expect(peer.connections).toBe(1);
  });

  test('maxRequestsPerConnection: a connection serves at most N requests', async () => {
    for (let i = 0; i < 10; i++) expect((await callOutbound(order, 'peer-capped', `/p/${i}`)).status).toBe(200);
    expect(cappedPeer.connections).toBe(5);
  });

  test('outlier detection ejects an endpoint after consecutive 5xx; traffic then goes to the healthy one', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await callOutbound(order, 'outlier', `/o/${i}`)).status);
    expect(statuses.filter((s) => s === 503).length).toBe(2);
    expect(statuses.slice(-10).every((s) => s === 200)).toBe(true);
    const clusters = (await (await request(`${order.url('admin')}/clusters`)).body.json()) as { services: Array<{ name: string; subsets: Array<{ endpoints: Array<{ address: string; ejected: boolean; timesEjected: number }> }> }> };
    const eps = clusters.services.find((s) => s.name === 'outlier')!.subsets[0].endpoints;
    expect(eps.find((e) => e.address.endsWith(`:${failing.sidecar.ports.inbound}`))).toMatchObject({ ejected: true, timesEjected: 1 });
    expect(eps.find((e) => e.address.endsWith(`:${b.sidecar.ports.inbound}`))).toMatchObject({ ejected: false });
  });

  test('maxEjectionPercent 0 turns ejection off: a failing endpoint keeps being called', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await callOutbound(order, 'capped', '/x');
      expect(r.status).toBe(503);
      expect(r.body).toBe('always failing');
    }
  });

  test('all endpoints ejected: 503 "no healthy upstream"', async () => {
    expect((await callOutbound(order, 'allout', '/x')).body).toBe('always failing');
    await sleep(10);
    const r = await callOutbound(order, 'allout', '/x');
    expect(r.status).toBe(503);
    expect(r.body).toBe('no healthy upstream\n');
  });
});
