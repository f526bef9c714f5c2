/**
 * The vertical slice: app -> order's outbound listener -> mTLS -> payment's inbound listener
 * -> payment's app, with real processes, real certificates and real sockets.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'undici';
import { callOutbound, cleanup, MeshPair, ORDER_ID, PAYMENT_ID, startMeshPair } from './harness';

jest.setTimeout(30_000);
const execFileAsync = promisify(execFile);

describe('sidecar request path', () => {
  let mesh: MeshPair;
  beforeAll(async () => {
    mesh = await startMeshPair();
  });
  afterAll(cleanup);

  test('outbound HTTP/1.1 -> mTLS -> inbound -> app, with the peer principal passed to the app', async () => {
    const r = await callOutbound(mesh.order, 'payment', '/charge?amount=5', { method: 'POST', body: 'card=1', headers: { 'content-type': 'text/plain' } });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body);
    expect(echo).toMatchObject({ app: 'payment', method: 'POST', url: '/charge?amount=5', body: 'card=1' });
    expect(echo.headers.host).toBe('payment');
    expect(echo.headers['x-forwarded-client-cert']).toBe(`By=${PAYMENT_ID};URI=${ORDER_ID}`);
    expect(echo.headers['x-request-id']).toEqual(expect.any(String));
    expect(r.headers['x-app']).toBe('payment');
  });

  test('Host with a port and the fully qualified name select the same service', async () => {
    const a = await callOutbound(mesh.order, 'payment:8080', '/a');
    const b = await callOutbound(mesh.order, 'payment.shop.svc.cluster.local', '/b');
    expect([a.status, b.status]).toEqual([200, 200]);
  });

  test('absolute-form request target (HTTP_PROXY clients) is routed by its authority', async () => {
    const { ProxyAgent } = await import('undici');
    const agent = new ProxyAgent(mesh.order.url('outbound'));
    try {
      const r = await request('http://payment/process?x=1', { dispatcher: agent });
      expect(r.statusCode).toBe(200);
      expect(JSON.parse(await r.body.text()).url).toBe('/process?x=1');
    } finally {
      await agent.close();
    }
  });

  test('curl through HTTP_PROXY sends an absolute-form target, routed to the mesh service', async () => {
    const { stdout: out } = await execFileAsync('curl', ['-sS', '--max-time', '5', '-x', mesh.order.url('outbound'), '-w', '\n%{http_code}', 'http://payment/via-curl?y=2'], { env: { PATH: process.env.PATH } });
    const [body, code] = out.split('\n');
    expect(code).toBe('200');
    expect(JSON.parse(body).url).toBe('/via-curl?y=2');
  });

  test('keep-alive: many sequential requests reuse few connections to the app', async () => {
    const before = mesh.app.connections;
    for (let i = 0; i < 30; i++) {
      const r = await callOutbound(mesh.order, 'payment', `/seq/${i}`);
      expect(r.status).toBe(200);
    }
    expect(mesh.app.connections - before).toBeLessThanOrEqual(2);
  });

  test('a client x-forwarded-client-cert is replaced, never trusted', async () => {
    const r = await callOutbound(mesh.order, 'payment', '/xfcc', { headers: { 'x-forwarded-client-cert': 'URI=spiffe://evil/ns/x/sa/y' } });
    expect(JSON.parse(r.body).headers['x-forwarded-client-cert']).toBe(`By=${PAYMENT_ID};URI=${ORDER_ID}`);
  });

  test('admin: /healthz/ready, /config_dump, /clusters', async () => {
    const ready = await request(`${mesh.order.url('admin')}/healthz/ready`);
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    const dump = await request(`${mesh.order.url('admin')}/config_dump`);
    const body = await dump.body.text();
    expect(JSON.parse(body).config.workload.identity).toBe(ORDER_ID);
    expect(body).not.toContain('PRIVATE KEY');
    const clusters = await request(`${mesh.order.url('admin')}/clusters`);
    const c = (await clusters.body.json()) as { services: Array<{ name: string; subsets: Array<{ name: string; endpoints: Array<{ address: string; ejected: boolean }> }> }> };
    expect(c.services[0].name).toBe('payment');
    expect(c.services[0].subsets[0].endpoints[0]).toMatchObject({ address: `127.0.0.1:${mesh.payment.ports.inbound}`, ejected: false });
  });
});
