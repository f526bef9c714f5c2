/**
 * Faults and bad input on real sockets: upstream resets (before and during the response),
 * truncated bodies, malformed request lines, a CL+TE smuggling attempt, oversized headers,
 * and WebSocket (Upgrade) pass-through across both sidecars.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { request } from 'undici';
import { callOutbound, cleanup, echoHandler, FakePeer, onCleanup, PAYMENT_ID, rawExchange, ServerInstance, sidecarPorts, SidecarProcess, startClientSidecar, startFakePeer, startServerInstance, startSidecar, subset, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

function faultyApp(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  switch (req.url) {
    case '/reset-mid-response':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial-');
      setTimeout(() => req.socket.destroy(), 50);
      return;
    case '/truncated':
      res.writeHead(200, { 'content-length': '100' });
      res.write('only ten b');
      setTimeout(() => req.socket.destroy(), 50);
      return;
    default:
      echoHandler('payment')(req, res, body);
  }
}

/** A minimal WebSocket-style upgrade: answers 101 and echoes bytes upper-cased. */
function addUpgradeEcho(server: http.Server): void {
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-upgrade-path: ${req.url}\r\nx-xfcc: ${req.headers['x-forwarded-client-cert'] ?? ''}\r\n\r\n`);
    if (head.length) socket.write(head.toString().toUpperCase());
    socket.on('data', (d) => socket.write(d.toString().toUpperCase()));
    socket.on('end', () => socket.end());
  });
}

describe('robustness', () => {
  let server: ServerInstance;
  let order: SidecarProcess;
  let slowloris: SidecarProcess;
  let resetPeer: FakePeer;
  let resetHits = 0;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    server = await startServerInstance(dir, pki, 'payment', faultyApp);
    addUpgradeEcho(server.app.server);
    // A peer that resets the first two connections' requests, then answers.
    resetPeer = await startFakePeer(pki, PAYMENT_ID, (req, res) => {
      resetHits++;
      if (resetHits <= 2) req.socket.destroy();
      else res.end(`answered on hit ${resetHits}`);
    });
    // An "app" that answers every request with bytes that are not HTTP.
    const garbageApp = net.createServer((socket) => {
      socket.once('data', () => socket.end('NOT HTTP AT ALL\r\n\r\n'));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => garbageApp.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => garbageApp.close(() => resolve())));
    const garbageFiles = await pki.workload('garbage', PAYMENT_ID);
    const garbage = await startSidecar(dir, 'garbage', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: garbageFiles, appPort: (garbageApp.address() as net.AddressInfo).port }));
    const to = [{ subset: 'v1', weight: 100 }];
    const backoff = { baseIntervalMs: 5, maxIntervalMs: 10 };
    order = (await startClientSidecar(dir, pki, [
      { name: 'payment', namespace: 'shop', hosts: ['payment'], port: 8080, subsets: [subset('v1', [server])], routes: [{ name: 'all', destinations: to }] },
      { name: 'garbage', namespace: 'shop', hosts: ['garbage'], port: 8080, subsets: [subset('v1', [garbage.ports.inbound])], routes: [{ name: 'all', destinations: to }] },
      { name: 'resetting', namespace: 'shop', hosts: ['resetting'], port: 8080, subsets: [subset('v1', [resetPeer.port])], routes: [{ name: 'all', destinations: to, retries: { attempts: 3, retryOn: ['reset'], backoff } }] },
    ] as never)).sidecar;
    slowloris = (await startClientSidecar(dir, pki, [], {}, 'slowloris-guard', undefined, { TYPEMESH_REQUEST_HEAD_TIMEOUT_MS: '500' })).sidecar;
  });

  test('an upstream reset between sidecars is retried under "reset"', async () => {
    const r = await callOutbound(order, 'resetting', '/x');
    expect(r.status).toBe(200);
    expect(r.body).toBe('answered on hit 3');
  });

  test('upstream reset mid-response: the client connection is cut (no fake success), the next request works', async () => {
    await expect(callOutbound(order, 'payment', '/reset-mid-response')).rejects.toThrow();
    expect((await callOutbound(order, 'payment', '/ok')).status).toBe(200);
  });

  test('a truncated upstream body (Content-Length not met) is not passed off as complete', async () => {
    await expect(callOutbound(order, 'payment', '/truncated')).rejects.toThrow();
    expect((await callOutbound(order, 'payment', '/ok')).status).toBe(200);
  });

  test('a malformed upstream response becomes a 503, and the sidecars keep serving', async () => {
    const r = await callOutbound(order, 'garbage', '/x');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^upstream reset before response/);
    expect((await callOutbound(order, 'payment', '/ok')).status).toBe(200);
  });

  test('a malformed request line gets a clean 400', async () => {
    const out = await rawExchange(order.ports.outbound, 'THIS IS NOT HTTP\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(out).toContain('connection: close');
  });

  test('CL+TE request smuggling: 400, the smuggled request never reaches the app, other connections unaffected', async () => {
    // Another keep-alive connection in use before and after the attempt.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (p: string): Promise<number> => new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: order.ports.outbound, path: p, headers: { host: 'payment' }, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject);
    });
    expect(await get('/before')).toBe(200);
    const before = server.app.requests.length;
    const attack = 'POST /first HTTP/1.1\r\nHost: payment\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: payment\r\n\r\n';
    const out = await rawExchange(order.ports.outbound, attack);
    expect(out).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(out.match(/HTTP\/1\.1/g)).toHaveLength(1);
    expect(await get('/after')).toBe(200);
    expect(server.app.requests.slice(before).map((r) => r.url)).toEqual(['/after']);
    agent.destroy();
  });

  test('a connection that never completes its first request head is closed (slowloris)', async () => {
    const t0 = Date.now();
    const out = await rawExchange(slowloris.ports.outbound, 'GET / HTTP/1.1\r\nHost: payment\r\nX-Slow: ', 5000);
    expect(out).toBe('');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3000);
  });

  test('request headers over 64 KiB get 431', async () => {
    const out = await rawExchange(order.ports.outbound, `GET / HTTP/1.1\r\nHost: payment\r\nx-big: ${'a'.repeat(65 * 1024)}\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  });

  test('a request whose client disappears mid-body does not disturb the sidecar', async () => {
    await new Promise<void>((resolve) => {
      const s = net.connect(order.ports.outbound, '127.0.0.1', () => {
        s.write('POST /upload HTTP/1.1\r\nHost: payment\r\nContent-Length: 100000\r\n\r\npartial');
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 100);
      });
    });
    const r = await request(`${order.url('outbound')}/ok`, { headers: { host: 'payment' } });
    expect(r.statusCode).toBe(200);
    await r.body.dump();
  });

  test('WebSocket upgrade passes through both sidecars (mTLS in between) and carries data both ways', async () => {
    const result = await new Promise<{ head: string; echoed: string }>((resolve, reject) => {
      const s = net.connect(order.ports.outbound, '127.0.0.1', () => {
        s.write('GET /ws/chat HTTP/1.1\r\nHost: payment\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
      });
      let buf = '';
      let head = '';
      s.on('data', (d) => {
        buf += d.toString();
        if (!head) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          s.write('hello through the mesh');
        }
        if (buf.length >= 'hello through the mesh'.length) {
          clearTimeout(timer);
          s.destroy();
          resolve({ head, echoed: buf });
        }
      });
      s.on('error', reject);
      const timer = setTimeout(() => reject(new Error(`timeout; got ${buf}`)), 5000);
    });
    expect(result.head).toMatch(/^HTTP\/1\.1 101 Switching Protocols/);
    expect(result.head).toContain('x-upgrade-path: /ws/chat');
    expect(result.head).toContain(`URI=spiffe://cluster.local/ns/shop/sa/order`);
    expect(result.echoed).toBe('HELLO THROUGH THE MESH');
  });
});
