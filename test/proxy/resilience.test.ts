/**
 * Timeouts, retries (conditions, backoff, budget, idempotency, body size), gRPC-status
 * retry conditions and failure responses, through real sidecars to a controllable app.
 */
import type * as http from 'node:http';
import { callOutbound, cleanup, REFUSING_ENDPOINT, ServerInstance, SidecarProcess, startClientSidecar, startServerInstance, subset, tempDir, TestPki } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

/** Hits per key, so "/flaky/<key>/<n>" fails the first n hits of each key. */
const hits = new Map<string, number>();

function controllableApp(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  const parts = (req.url ?? '/').split('?')[0].split('/').filter(Boolean);
  // parts[0] is the route prefix used by the client sidecar (r5, nr, t, ...); parts[1] the behaviour.
  const [, kind, a, b] = parts;
  const key = `${parts[0]}/${a}`;
  const n = (hits.get(key) ?? 0) + 1;
  hits.set(key, n);
  switch (kind) {
    case 'status':
      res.writeHead(Number(a), { 'x-hits': String(n) });
      res.end(`status ${a}`);
      return;
    case 'flaky':
      if (n <= Number(b)) {
        res.writeHead(Number(req.headers['x-fail-status'] ?? 503));
        res.end(`failure ${n}`);
      } else {
        res.writeHead(200, { 'x-hits': String(n) });
        res.end(`ok after ${n} hits, body=${body.toString()}`);
      }
      return;
    case 'slow':
      setTimeout(() => {
        if (!res.destroyed) res.end(`slow ${a}`);
      }, Number(a));
      return;
    case 'slow-first':
      // The first hit of each key is slow, later ones fast: a per-try timeout plus a retry wins.
      setTimeout(() => {
        if (!res.destroyed) res.end(`hit ${n}`);
      }, n === 1 ? Number(b) : 0);
      return;
    case 'grpc':
      res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': n <= Number(b) ? a : '0' });
      res.end();
      return;
    case 'reset':
      req.socket.destroy();
      return;
    default:
      res.end('ok');
  }
}

describe('resilience', () => {
  let server: ServerInstance;
  let order: SidecarProcess;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    server = await startServerInstance(dir, pki, 'payment', controllableApp);
    const backoff = { baseIntervalMs: 5, maxIntervalMs: 20 };
    const to = [{ subset: 'v1', weight: 100 }];
    const route = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name, match: [{ path: { prefix: `/${name}/` } }], destinations: to, ...extra });
    const services = [{
      name: 'payment',
      namespace: 'shop',
      hosts: ['payment'],
      port: 8080,
      subsets: [subset('v1', [server])],
      routes: [
        route('r5', { retries: { attempts: 3, retryOn: ['5xx'], backoff } }),
        route('gw', { retries: { attempts: 3, retryOn: ['gateway-error'], backoff } }),
        route('nr'),
        route('t', { timeoutMs: 300 }),
        route('pt', { timeoutMs: 3000, retries: { attempts: 2, perTryTimeoutMs: 250, retryOn: ['5xx'], backoff } }),
        route('post', { retries: { attempts: 3, retryOn: ['5xx'], retryNonIdempotent: true, maxBufferedBodyBytes: 1024, backoff } }),
        route('grpc', { retries: { attempts: 3, retryOn: ['unavailable'], backoff } }),
        route('codes', { retries: { attempts: 2, retryOn: ['retriable-status-codes'], retriableStatusCodes: [418], backoff } }),
        route('budget', { retries: { attempts: 5, retryOn: ['5xx'], backoff, budget: { percent: 0, minRetriesPerSecond: 2 } } }),
        route('reset', { retries: { attempts: 2, retryOn: ['reset'], backoff } }),
        route('default'),
      ],
    }, {
      name: 'dead',
      namespace: 'shop',
      hosts: ['dead'],
      port: 8080,
      subsets: [subset('v1', [REFUSING_ENDPOINT])],
      routes: [{ name: 'all', destinations: to, retries: { attempts: 2, retryOn: ['connect-failure'], backoff } }],
    }, {
      name: 'half-dead',
      namespace: 'shop',
      hosts: ['half-dead'],
      port: 8080,
      loadBalancer: { policy: 'ROUND_ROBIN' },
      subsets: [subset('v1', [REFUSING_ENDPOINT, server])],
      routes: [{ name: 'all', destinations: to, retries: { attempts: 2, retryOn: ['connect-failure'], backoff } }],
    }, {
      name: 'by-dns',
      namespace: 'shop',
      hosts: ['by-dns'],
      port: 8080,
      subsets: [{ name: 'v1', identity: 'spiffe://cluster.local/ns/shop/sa/payment', discovery: { type: 'dns', hostname: 'localhost', port: server.sidecar.ports.inbound, refreshIntervalMs: 1000 } }],
      routes: [{ name: 'all', destinations: to }],
    }];
    order = (await startClientSidecar(dir, pki, services as never)).sidecar;
  });

  test('5xx is retried until success; the client sees only the success', async () => {
    const r = await callOutbound(order, 'payment', '/r5/flaky/a/2');
    expect(r.status).toBe(200);
    expect(r.headers['x-hits']).toBe('3');
  });

  test('retries exhausted: the last upstream response is returned', async () => {
    const r = await callOutbound(order, 'payment', '/r5/status/500');
    expect(r.status).toBe(500);
    expect(r.headers['x-hits']).toBe('4');
  });

  test('gateway-error retries 502/503/504 but not 500', async () => {
    expect((await callOutbound(order, 'payment', '/gw/flaky/b/2', { headers: { 'x-fail-status': '502' } })).status).toBe(200);
    const r = await callOutbound(order, 'payment', '/gw/status/500');
    expect(r.status).toBe(500);
    expect(r.headers['x-hits']).toBe('1');
  });

  test('without a retry policy a failure is returned at once', async () => {
    const r = await callOutbound(order, 'payment', '/nr/flaky/c/1');
    expect(r.status).toBe(503);
    expect(r.body).toBe('failure 1');
  });

  test('route timeout: 504 "upstream request timeout" at the configured time', async () => {
    const t0 = Date.now();
    const r = await callOutbound(order, 'payment', '/t/slow/2000');
    const took = Date.now() - t0;
    expect(r.status).toBe(504);
    expect(r.body).toBe('upstream request timeout\n');
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(1500);
  });

  test('per-try timeout: a slow first try is abandoned and retried', async () => {
    const t0 = Date.now();
    const r = await callOutbound(order, 'payment', '/pt/slow-first/k1/2000');
    expect(r.status).toBe(200);
    expect(r.body).toBe('hit 2');
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  test('per-try timeouts exhausted: 504', async () => {
    const r = await callOutbound(order, 'payment', '/pt/slow/2000');
    expect(r.status).toBe(504);
    expect(r.body).toBe('upstream request timeout\n');
  });

  test('POST is not retried by default, but is with retryNonIdempotent (body replayed)', async () => {
    const noRetry = await callOutbound(order, 'payment', '/r5/flaky/p1/1', { method: 'POST', body: 'x' });
    expect(noRetry.status).toBe(503);
    const retried = await callOutbound(order, 'payment', '/post/flaky/p2/2', { method: 'POST', body: 'replay-me' });
    expect(retried.status).toBe(200);
    expect(retried.body).toBe('ok after 3 hits, body=replay-me');
  });

  test('a body larger than maxBufferedBodyBytes is streamed and not retried', async () => {
    const big = 'x'.repeat(4096);
    const r = await callOutbound(order, 'payment', '/post/flaky/p3/1', { method: 'POST', body: big });
    expect(r.status).toBe(503);
    expect(hits.get('post/p3')).toBe(1);
    const again = await callOutbound(order, 'payment', '/post/flaky/p3/1', { method: 'POST', body: big });
    expect(again.status).toBe(200);
    expect(again.body).toBe(`ok after 2 hits, body=${big}`);
  });

  test('gRPC: grpc-status 14 (unavailable) is retried; 5 (not found) is not', async () => {
    const r = await callOutbound(order, 'payment', '/grpc/grpc/14/2');
    expect(r.status).toBe(200);
    expect(r.headers['grpc-status']).toBe('0');
    const nf = await callOutbound(order, 'payment', '/grpc/grpc/5/1');
    expect(nf.headers['grpc-status']).toBe('5');
    expect(hits.get('grpc/5')).toBe(1);
  });

  test('retriable-status-codes retries only the listed codes', async () => {
    expect((await callOutbound(order, 'payment', '/codes/status/418')).headers['x-hits']).toBe('3');
    expect((await callOutbound(order, 'payment', '/codes/status/500')).headers['x-hits']).toBe('1');
  });

  test('an app reset becomes a 503 at the inbound sidecar (which "reset" alone does not retry)', async () => {
    const r = await callOutbound(order, 'payment', '/reset/reset/x');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^upstream reset before response/);
    expect(hits.get('reset/x')).toBe(1);
  });

  test('retry budget: with 0% and 2 retries per second, a burst gets at most a few retries', async () => {
    for (let i = 0; i < 5; i++) await callOutbound(order, 'payment', `/budget/status/503?i=${i}`);
    // 5 requests with 5 retries each would be 30 hits; the budget allows about 2 retries in the window.
    const total = hits.get('budget/503')!;
    expect(total).toBeGreaterThanOrEqual(5);
    expect(total).toBeLessThanOrEqual(5 + 4);
  });

  test('connection refused: 503 "upstream connect error" after retrying', async () => {
    const r = await callOutbound(order, 'dead', '/x');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^upstream connect error/);
    expect(r.body).toContain('ECONNREFUSED');
  });

  test('a connect failure on one endpoint is retried on another', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await callOutbound(order, 'half-dead', `/default/ok/${i}`);
      expect(r.status).toBe(200);
    }
  });

  test('DNS discovery resolves the subset hostname', async () => {
    const r = await callOutbound(order, 'by-dns', '/default/ok');
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
  });
});
