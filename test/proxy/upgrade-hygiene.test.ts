/**
 * The Upgrade (WebSocket) path is held to the HTTP path's rules: the app receives the same
 * headers either way (hop-by-hop, mesh-internal and forged identity headers stripped, the
 * peer's identity stated by the sidecar), and a connection is spliced raw only after the app
 * answered 101, so requests pipelined behind an Upgrade request the app did not switch on never
 * reach the app unchecked.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { cleanup, ORDER_ID, PAYMENT_ID, rawExchange, startClientSidecar, startServerInstance, subset, tempDir, TestPki, ServerInstance, SidecarProcess } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

/** What the app received, per path: the HTTP request's headers or the upgrade request's. */
const received = new Map<string, http.IncomingHttpHeaders>();

/** An app that records headers, answers requests with 200 and upgrades on /ws/* with 101. */
function recordingApp(req: http.IncomingMessage, res: http.ServerResponse): void {
  received.set(req.url ?? '', req.headers);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`ok ${req.url}\n`);
}
function addUpgrade(server: http.Server): void {
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    received.set(req.url ?? '', req.headers);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\nbye');
  });
}

/** Headers every attacker-ish client sends; none of the hop-by-hop or forged ones may arrive. */
const SENT = [
  'keep-alive: timeout=5',
  'te: gzip',
  'proxy-authorization: Basic c2VjcmV0',
  'x-typemesh-source: spiffe://cluster.local/ns/shop/sa/forged',
  'x-typemesh-loop: 0123456789abcdef',
  'x-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/shop/sa/forged',
  'x-hop: named-by-connection',
  'x_debug: 1',
  'x-end-to-end: kept',
].join('\r\n');

/** The headers that legitimately differ between the two paths (x-request-id: one per request). */
const PATH_SPECIFIC = new Set(['connection', 'upgrade', 'content-length', 'x-request-id']);

function comparable(h: http.IncomingHttpHeaders | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h ?? {})) if (!PATH_SPECIFIC.has(k)) out[k] = v;
  return out;
}

/** Sends the same request once as plain HTTP and once as an Upgrade; returns what the app got for each. */
async function bothPaths(port: number, host: string, id: string): Promise<{ http: Record<string, unknown>; upgrade: Record<string, unknown>; httpOut: string; upgradeOut: string }> {
  const httpOut = await rawExchange(port, `GET /http/${id} HTTP/1.1\r\nHost: ${host}\r\nConnection: close, x-hop\r\n${SENT}\r\n\r\n`);
  const upgradeOut = await rawExchange(port, `GET /ws/${id} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, x-hop\r\nUpgrade: websocket\r\n${SENT}\r\n\r\n`);
  return { http: comparable(received.get(`/http/${id}`)), upgrade: comparable(received.get(`/ws/${id}`)), httpOut, upgradeOut };
}

describe('the Upgrade path shares the HTTP path\'s header hygiene, identity and authorization', () => {
  let payment: ServerInstance;
  let gated: ServerInstance;
  let order: SidecarProcess;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    payment = await startServerInstance(dir, pki, 'payment', recordingApp);
    addUpgrade(payment.app.server);
    // Plaintext allowed (PERMISSIVE) so a raw socket can play the attacker; only /public/* is allowed.
    gated = await startServerInstance(dir, pki, 'gated', (req, res, body) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`app saw ${req.method} ${req.url} xfcc=${req.headers['x-forwarded-client-cert'] ?? ''} ${body.length}\n`);
    }, { inbound: { mtls: { mode: 'PERMISSIVE' }, authorization: { rules: [{ name: 'public', action: 'ALLOW', paths: ['/public/*'] }] } } });
    const svc = { name: 'payment', namespace: 'shop', hosts: ['payment'], port: 8080, subsets: [subset('v1', [payment])], routes: [{ name: 'all', destinations: [{ subset: 'v1', weight: 100 }] }] };
    order = (await startClientSidecar(dir, pki, [svc] as never)).sidecar;
  });

  test('mesh service: the app receives the same headers over HTTP and over Upgrade', async () => {
    const r = await bothPaths(order.ports.outbound, 'payment', 'mesh');
    expect(r.httpOut).toMatch(/^HTTP\/1\.1 200/);
    expect(r.upgradeOut).toMatch(/^HTTP\/1\.1 101/);
    expect(r.upgradeOut).toContain('bye');
    expect(r.upgrade).toEqual(r.http);
    // And what they are: the sidecar's statement of the peer, nothing hop-by-hop or forged.
    expect(r.http['x-forwarded-client-cert']).toBe(`By=${PAYMENT_ID};URI=${ORDER_ID}`);
    expect(r.http['x-end-to-end']).toBe('kept');
    for (const name of ['keep-alive', 'te', 'proxy-authorization', 'x-typemesh-source', 'x-typemesh-loop', 'x-hop', 'x_debug']) expect(r.http).not.toHaveProperty(name);
  });

  test('passthrough host: the same headers over HTTP and over Upgrade, none of the hop-by-hop or mesh-internal ones', async () => {
    const r = await bothPaths(order.ports.outbound, `127.0.0.1:${payment.app.port}`, 'passthrough');
    expect(r.httpOut).toMatch(/^HTTP\/1\.1 200/);
    expect(r.upgradeOut).toMatch(/^HTTP\/1\.1 101/);
    expect(r.upgrade).toEqual(r.http);
    for (const name of ['keep-alive', 'te', 'proxy-authorization', 'x-typemesh-source', 'x-hop', 'x_debug']) expect(r.http).not.toHaveProperty(name);
    // The hop marker: the app's value, then this sidecar's token (loops are refused by it).
    expect(r.http['x-typemesh-loop']).toMatch(/^0123456789abcdef,[0-9a-f]{16}$/);
  });

  test('inbound: requests pipelined behind an Upgrade the app did not switch on never reach the app', async () => {
    const before = gated.app.requests.length;
    const out = await rawExchange(gated.sidecar.ports.inbound,
      'GET /public/a HTTP/1.1\r\nHost: gated\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'
      + 'GET /admin HTTP/1.1\r\nHost: gated\r\nx-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/shop/sa/order\r\n\r\n'
      + 'DELETE /public/b HTTP/1.1\r\nHost: gated\r\n\r\n');
    // The allowed request is answered as an ordinary response, then the connection closes.
    expect(out).toMatch(/^HTTP\/1\.1 200/);
    expect(out).toContain('app saw GET /public/a xfcc= 0');
    expect(out.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(out).not.toContain('/admin');
    expect(gated.app.requests.slice(before).map((r) => r.url)).toEqual(['/public/a']);
  });

  test('inbound: a denied request sent after the non-upgraded answer on the same connection does not reach the app', async () => {
    const before = gated.app.requests.length;
    const out = await new Promise<string>((resolve) => {
      const socket = net.connect(gated.sidecar.ports.inbound, '127.0.0.1', () => {
        socket.write('GET /public/c HTTP/1.1\r\nHost: gated\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      });
      let data = '';
      let sentSecond = false;
      socket.on('data', (d) => {
        data += d.toString('latin1');
        if (!sentSecond && data.includes('app saw')) {
          sentSecond = true;
          socket.write('GET /admin HTTP/1.1\r\nHost: gated\r\n\r\n');
        }
      });
      const timer = setTimeout(() => socket.destroy(), 3000);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(data);
      });
    });
    expect(out).toContain('app saw GET /public/c');
    expect(out).not.toContain('/admin');
    expect(gated.app.requests.slice(before).map((r) => r.url)).toEqual(['/public/c']);
  });

  test('inbound: a denied Upgrade request is refused with 403 like any request', async () => {
    const before = gated.app.requests.length;
    const out = await rawExchange(gated.sidecar.ports.inbound, 'GET /admin HTTP/1.1\r\nHost: gated\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 403/);
    expect(out).toContain('RBAC: access denied');
    expect(gated.app.requests.length).toBe(before);
  });

  test('an Upgrade request with a body is refused (its body could not be told from post-switch bytes)', async () => {
    const before = gated.app.requests.length;
    const out = await rawExchange(gated.sidecar.ports.inbound, 'POST /public/d HTTP/1.1\r\nHost: gated\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 35\r\n\r\nGET /admin HTTP/1.1\r\nHost: gated\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 400/);
    expect(out).toContain('an Upgrade request cannot carry a body');
    expect(gated.app.requests.length).toBe(before);
  });

  test('h2c upgrade is not honoured: the request is answered as HTTP/1.1 and the connection closes', async () => {
    const before = gated.app.requests.length;
    const out = await rawExchange(gated.sidecar.ports.inbound, 'GET /public/e HTTP/1.1\r\nHost: gated\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /admin HTTP/1.1\r\nHost: gated\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 200/);
    expect(out).not.toContain('/admin');
    expect(gated.app.requests.slice(before).map((r) => [r.url, r.headers.upgrade])).toEqual([['/public/e', undefined]]);
  });
});
