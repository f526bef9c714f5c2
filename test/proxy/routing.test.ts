/**
 * Outbound routing with real sidecars: ordered matches (path exact/prefix/regex, method,
 * headers), weighted subsets, header rewrites, fault injection, mirroring, passthrough.
 */
import { ProxyAgent, request } from 'undici';
import { callOutbound, cleanup, echoHandler, SidecarProcess, startClientSidecar, startServerInstance, startUpstream, subset, tempDir, TestPki, Upstream, ServerInstance, sleep } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

describe('outbound routing', () => {
  let v1: ServerInstance;
  let v2: ServerInstance;
  let order: SidecarProcess;
  let closedEgress: SidecarProcess;
  let external: Upstream;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    [v1, v2] = await Promise.all([
      startServerInstance(dir, pki, 'payment-v1', echoHandler('v1')),
      startServerInstance(dir, pki, 'payment-v2', echoHandler('v2')),
    ]);
    external = await startUpstream(echoHandler('external'));
    const to = (s: string): Array<{ subset: string; weight: number }> => [{ subset: s, weight: 100 }];
    const services = [{
      name: 'payment',
      namespace: 'shop',
      hosts: ['payment'],
      port: 8080,
      subsets: [subset('v1', [v1]), subset('v2', [v2])],
      routes: [
        { name: 'exact', match: [{ path: { exact: '/exact' } }], destinations: to('v2') },
        { name: 'post-api', match: [{ path: { prefix: '/api/' }, method: 'POST' as const }], destinations: to('v2') },
        { name: 'canary-header', match: [{ headers: [{ name: 'X-Canary', exact: 'true' }] }, { headers: [{ name: 'x-beta', present: true }] }], destinations: to('v2') },
        {
          name: 'regex',
          match: [{ path: { regex: '/items/[0-9]+' } }],
          destinations: to('v2'),
          headers: {
            request: { set: { 'x-set': 'set-by-route' }, add: { 'x-add': 'added' }, remove: ['x-remove'] },
            response: { set: { 'x-route': 'regex' }, remove: ['x-app'] },
          },
        },
        { name: 'abort', match: [{ path: { prefix: '/fault/abort' } }], destinations: to('v1'), fault: { abort: { httpStatus: 418, percentage: 100 } } },
        { name: 'delay', match: [{ path: { prefix: '/fault/delay' } }], destinations: to('v1'), fault: { delay: { fixedDelayMs: 400, percentage: 100 } } },
        { name: 'mirror', match: [{ path: { prefix: '/mirror' } }], destinations: to('v1'), mirror: { subset: 'v2', percentage: 100 } },
        { name: 'weighted', match: [{ path: { prefix: '/weighted' } }], destinations: [{ subset: 'v1', weight: 75 }, { subset: 'v2', weight: 25 }] },
        { name: 'default', destinations: to('v1') },
      ],
    }, {
      name: 'ledger',
      namespace: 'shop',
      hosts: ['ledger'],
      port: 8080,
      subsets: [subset('v1', [v1])],
      routes: [{ name: 'only', match: [{ path: { exact: '/only' } }], destinations: to('v1') }],
    }];
    order = (await startClientSidecar(dir, pki, services as never)).sidecar;
    closedEgress = (await startClientSidecar(dir, pki, [], { passthrough: false }, 'closed-egress')).sidecar;
  });

  const app = async (path: string, init?: Parameters<typeof callOutbound>[3]): Promise<string> => {
    const r = await callOutbound(order, 'payment', path, init);
    expect(r.status).toBe(200);
    return JSON.parse(r.body).app;
  };

  test('path exact and prefix, method, and header matches, in order', async () => {
    expect(await app('/exact')).toBe('v2');
    expect(await app('/exact/more')).toBe('v1');
    expect(await app('/exact?with=query')).toBe('v2');
    expect(await app('/api/pay', { method: 'POST', body: '{}' })).toBe('v2');
    expect(await app('/api/pay', { method: 'GET' })).toBe('v1');
    expect(await app('/anything', { headers: { 'x-canary': 'true' } })).toBe('v2');
    expect(await app('/anything', { headers: { 'x-canary': 'false' } })).toBe('v1');
    expect(await app('/anything', { headers: { 'x-beta': '' } })).toBe('v2');
  });

  test('regex matches the whole path and header rewrites apply both ways', async () => {
    const r = await callOutbound(order, 'payment', '/items/42', { headers: { 'x-remove': 'gone', 'x-add': 'client', 'x-set': 'client' } });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body);
    expect(echo.app).toBe('v2');
    expect(echo.headers['x-remove']).toBeUndefined();
    expect(echo.headers['x-set']).toBe('set-by-route');
    expect(echo.headers['x-add']).toBe('client, added');
    expect(r.headers['x-route']).toBe('regex');
    expect(r.headers['x-app']).toBeUndefined();
    expect(await app('/items/42x')).toBe('v1');
    expect(await app('/prefix/items/42')).toBe('v1');
  });

  test('fault abort answers with the configured status without calling upstream', async () => {
    const before = v1.app.requests.length;
    const r = await callOutbound(order, 'payment', '/fault/abort');
    expect(r.status).toBe(418);
    expect(r.body).toBe('fault filter abort\n');
    expect(v1.app.requests.length).toBe(before);
  });

  test('fault delay holds the request, then forwards it', async () => {
    const t0 = Date.now();
    expect(await app('/fault/delay')).toBe('v1');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
  });

  test('mirroring sends a copy to the mirror subset with a -shadow host; the client gets the primary answer', async () => {
    const before = v2.app.requests.length;
    const r = await callOutbound(order, 'payment', '/mirror/1', { method: 'PUT', body: 'mirrored-body' });
    expect(JSON.parse(r.body).app).toBe('v1');
    const deadline = Date.now() + 3000;
    while (v2.app.requests.length === before && Date.now() < deadline) await sleep(20);
    const copy = v2.app.requests[v2.app.requests.length - 1];
    expect(copy.url).toBe('/mirror/1');
    expect(copy.headers.host).toBe('payment-shadow');
  });

  test('weighted destinations split traffic by weight (75/25, 200 requests)', async () => {
    const counts: Record<string, number> = { v1: 0, v2: 0 };
    for (let i = 0; i < 200; i++) counts[await app('/weighted')]++;
    expect(counts.v2).toBeGreaterThan(25);
    expect(counts.v2).toBeLessThan(80);
  });

  test('no matching route: 404 naming the service', async () => {
    const r = await callOutbound(order, 'ledger', '/other');
    expect(r.status).toBe(404);
    expect(r.body).toContain('no route of service "ledger" matches GET /other');
    expect((await callOutbound(order, 'ledger', '/only')).status).toBe(200);
  });

  test('hosts outside the mesh pass through to their own address', async () => {
    const r = await callOutbound(order, `127.0.0.1:${external.port}`, '/out?q=1');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ app: 'external', url: '/out?q=1' });
  });

  test('CONNECT tunnels (HTTP_PROXY clients) to a host outside the mesh pass through', async () => {
    const agent = new ProxyAgent(order.url('outbound'));
    try {
      const r = await request(`http://127.0.0.1:${external.port}/tunneled`, { dispatcher: agent });
      expect(r.statusCode).toBe(200);
      expect(JSON.parse(await r.body.text())).toMatchObject({ app: 'external', url: '/tunneled' });
    } finally {
      await agent.close();
    }
    const refused = new ProxyAgent(closedEgress.url('outbound'));
    try {
      await expect(request(`http://127.0.0.1:${external.port}/tunneled`, { dispatcher: refused })).rejects.toThrow(/403/);
    } finally {
      await refused.close();
    }
  });

  test('a passthrough request to the sidecar\'s own outbound port is refused (508), not looped', async () => {
    const r = await callOutbound(order, `127.0.0.1:${order.ports.outbound}`, '/loop');
    expect(r.status).toBe(508);
    expect(r.body).toContain('loop detected');
  });

  test('with passthrough off, an unknown host gets 502', async () => {
    const r = await callOutbound(closedEgress, `127.0.0.1:${external.port}`, '/out');
    expect(r.status).toBe(502);
    expect(r.body).toContain('outbound.passthrough is off');
  });
});
