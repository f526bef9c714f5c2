/**
 * Timeouts, retries (conditions, backoff, budget, any method or idempotentOnly, body size and
 * replay), gRPC-status retry conditions, failure responses and outlier ejection of a small
 * service, through real sidecars to controllable apps, observed as a caller and an operator
 * would: statuses, bodies the apps received, and the sidecar's admin /metrics and /clusters.
 */
import type * as http from 'node:http';
import { request } from 'undici';
import { parsePrometheusText } from '../../src/local/prometheus-text';
import { callOutbound, cleanup, freePort, ORDER_ID, REFUSING_ENDPOINT, ServerInstance, sidecarPorts, SidecarProcess, startServerInstance, startSidecar, subset, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

/** Hits per key, so "/flaky/<key>/<n>" fails the first n hits of each key. */
const hits = new Map<string, number>();

function controllableApp(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  const parts = (req.url ?? '/').split('?')[0].split('/').filter(Boolean);
  if (parts.length === 1 && parts[0] === 'process') {
    // The seed's POST /process: echo what arrived, so a test sees a replayed body whole.
    res.end(`processed ${body.toString()}`);
    return;
  }
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

/** Bodies the broken replica received, by path. */
const brokenBodies: Array<{ path: string; body: string }> = [];

/** A replica that answers every request with 503, as the seed's broken payment replica does. */
function brokenApp(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
  brokenBodies.push({ path: req.url ?? '', body: body.toString() });
  res.writeHead(503, { 'x-replica': 'broken' });
  res.end('broken replica');
}

/** Sums a metric of a sidecar's admin /metrics over the samples whose labels include `match`. */
async function metricSum(p: SidecarProcess, name: string, match: Record<string, string> = {}): Promise<number> {
  const r = await request(`${p.url('admin')}/metrics`);
  return parsePrometheusText(await r.body.text())
    .filter((m) => m.name === name && Object.entries(match).every(([k, v]) => m.labels[k] === v))
    .reduce((sum, m) => sum + m.value, 0);
}

interface ClusterEndpoint { address: string; ejected: boolean; timesEjected: number }

/** The endpoints of a service's only subset, from the sidecar's admin /clusters. */
async function endpointsOf(p: SidecarProcess, service: string): Promise<ClusterEndpoint[]> {
  const r = await request(`${p.url('admin')}/clusters`);
  const body = (await r.body.json()) as { services: Array<{ name: string; subsets: Array<{ endpoints: ClusterEndpoint[] }> }> };
  return body.services.find((s) => s.name === service)!.subsets[0].endpoints;
}

describe('resilience', () => {
  let server: ServerInstance;
  let broken: ServerInstance;
  let order: SidecarProcess;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    server = await startServerInstance(dir, pki, 'payment', controllableApp);
    broken = await startServerInstance(dir, pki, 'payment-broken', brokenApp);
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
        route('post', { retries: { attempts: 3, retryOn: ['5xx'], maxBufferedBodyBytes: 1024, backoff } }),
        route('idem', { retries: { attempts: 3, retryOn: ['5xx'], idempotentOnly: true, backoff } }),
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
    },
    // Two replicas, one answering 503 to everything: the seed's payment-service. Round robin
    // makes each first try deterministic; the seed's own retry policy (attempts 3, 5xx).
    twoReplicas('pair', { retries: { attempts: 3, retryOn: ['5xx', 'reset', 'connect-failure'], backoff } }),
    twoReplicas('pair-idem', { retries: { attempts: 3, retryOn: ['5xx'], idempotentOnly: true, backoff } }),
    twoReplicas('pair-small', { retries: { attempts: 3, retryOn: ['5xx'], maxBufferedBodyBytes: 1024, backoff } }),
    // No retries: the broken replica's 503s reach the caller until it is ejected.
    {
      ...twoReplicas('pair-eject'),
      outlierDetection: { consecutive5xxErrors: 5, intervalMs: 30_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 },
    }];
    // Metrics on (the harness turns telemetry off): the tests read retries, ejections and
    // response flags where an operator would, on the admin port.
    const files = await pki.workload('order', ORDER_ID);
    const config = workloadConfig({ name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls: files, appPort: await freePort(), services: services as never });
    order = await startSidecar(dir, 'order', { ...config, telemetry: { metrics: { enabled: true }, accessLog: { enabled: false } } });

    function twoReplicas(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
      return {
        name, namespace: 'shop', hosts: [name], port: 8080,
        loadBalancer: { policy: 'ROUND_ROBIN' },
        subsets: [subset('v1', [broken, server])],
        routes: [{ name: 'all', destinations: to, ...extra }],
      };
    }
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

  test('route timeout: 504 "upstream request timeout", not before the configured time', async () => {
    const t0 = Date.now();
    // The app answers after 2 s: a 504 instead of its "slow 2000" shows the 300 ms timeout cut it
    // (no upper bound on the elapsed time: the machine is shared).
    const r = await callOutbound(order, 'payment', '/t/slow/2000');
    expect(r.status).toBe(504);
    expect(r.body).toBe('upstream request timeout\n');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
  });

  test('per-try timeout: a slow first try is abandoned and retried', async () => {
    // The first try would answer "hit 1" after 2 s, within the 3 s route timeout: "hit 2" shows
    // the 250 ms per-try timeout abandoned it and the retry answered.
    const r = await callOutbound(order, 'payment', '/pt/slow-first/k1/2000');
    expect(r.status).toBe(200);
    expect(r.body).toBe('hit 2');
  });

  test('per-try timeouts exhausted: 504', async () => {
    const r = await callOutbound(order, 'payment', '/pt/slow/2000');
    expect(r.status).toBe(504);
    expect(r.body).toBe('upstream request timeout\n');
  });

  test('POST is retried by default, its body replayed on each try', async () => {
    const r = await callOutbound(order, 'payment', '/post/flaky/p2/2', { method: 'POST', body: 'replay-me' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok after 3 hits, body=replay-me');
  });

  test('idempotentOnly: a failed POST or PATCH is returned as is; GET and PUT are still retried', async () => {
    const post = await callOutbound(order, 'payment', '/idem/flaky/i1/1', { method: 'POST', body: 'once' });
    expect(post.status).toBe(503);
    expect(hits.get('idem/i1')).toBe(1);
    const patch = await callOutbound(order, 'payment', '/idem/flaky/i2/1', { method: 'PATCH', body: 'once' });
    expect(patch.status).toBe(503);
    expect(hits.get('idem/i2')).toBe(1);
    expect((await callOutbound(order, 'payment', '/idem/flaky/i3/1')).status).toBe(200);
    expect((await callOutbound(order, 'payment', '/idem/flaky/i4/1', { method: 'PUT', body: 'twice' })).body).toBe('ok after 2 hits, body=twice');
  });

  test('a body larger than maxBufferedBodyBytes is streamed and not retried, and the request says why (RBL)', async () => {
    const big = 'x'.repeat(4096);
    const flaggedBefore = await metricSum(order, 'typemesh_requests_total', { destination_service: 'payment', response_flags: 'RBL' });
    const r = await callOutbound(order, 'payment', '/post/flaky/p3/1', { method: 'POST', body: big });
    expect(r.status).toBe(503);
    expect(hits.get('post/p3')).toBe(1);
    expect(await metricSum(order, 'typemesh_requests_total', { destination_service: 'payment', response_flags: 'RBL' })).toBe(flaggedBefore + 1);
    const again = await callOutbound(order, 'payment', '/post/flaky/p3/1', { method: 'POST', body: big });
    expect(again.status).toBe(200);
    expect(again.body).toBe(`ok after 2 hits, body=${big}`);
  });

  test('seed: a 1 KiB JSON POST to two replicas, one answering 503, succeeds by retry; typemesh_retries_total counts it', async () => {
    const retriesBefore = await metricSum(order, 'typemesh_retries_total', { destination_service: 'pair' });
    const brokenBefore = brokenBodies.length;
    const sent: string[] = [];
    for (let i = 0; i < 6; i++) {
      const body = JSON.stringify({ order: i, items: 'i'.repeat(1024) });
      expect(Buffer.byteLength(body)).toBeGreaterThan(1024);
      sent.push(body);
      const r = await callOutbound(order, 'pair', `/process?i=${i}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(r.status).toBe(200);
      // The healthy replica got the whole body, replayed after the broken replica's 503.
      expect(r.body).toBe(`processed ${body}`);
    }
    const brokenSaw = brokenBodies.slice(brokenBefore);
    expect(brokenSaw.length).toBeGreaterThanOrEqual(1);
    for (const b of brokenSaw) expect(sent).toContain(b.body);
    // Each 503 from the broken replica was retried once, on the healthy one.
    expect(await metricSum(order, 'typemesh_retries_total', { destination_service: 'pair' })).toBe(retriesBefore + brokenSaw.length);
  });

  test('idempotentOnly: the same POST is not retried, the broken replica\'s 503 reaches the caller', async () => {
    const brokenBefore = brokenBodies.length;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await callOutbound(order, 'pair-idem', `/process?i=${i}`, { method: 'POST', body: '{"order":1}' })).status);
    }
    const brokenHits = brokenBodies.length - brokenBefore;
    expect(brokenHits).toBeGreaterThanOrEqual(1);
    expect(statuses.filter((s) => s === 503).length).toBe(brokenHits);
    expect(await metricSum(order, 'typemesh_retries_total', { destination_service: 'pair-idem' })).toBe(0);
    // A GET on the same route is retried around the broken replica.
    for (let i = 0; i < 4; i++) expect((await callOutbound(order, 'pair-idem', `/status?i=${i}`)).status).toBe(200);
  });

  test('a POST body over maxBufferedBodyBytes to the broken replica is not retried; flagged RBL', async () => {
    const big = JSON.stringify({ items: 'x'.repeat(4096) });
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) statuses.push((await callOutbound(order, 'pair-small', `/process?i=${i}`, { method: 'POST', body: big })).status);
    // Round robin: one of the two went to the broken replica first and could not be replayed.
    expect(statuses.sort()).toEqual([200, 503]);
    expect(await metricSum(order, 'typemesh_retries_total', { destination_service: 'pair-small' })).toBe(0);
    expect(await metricSum(order, 'typemesh_requests_total', { destination_service: 'pair-small', response_flags: 'RBL' })).toBe(1);
  });

  test('outlier detection, maxEjectionPercent 10: a 2-replica service ejects its failing replica after 5 consecutive 5xx', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await callOutbound(order, 'pair-eject', `/process?i=${i}`, { method: 'POST', body: '{}' })).status);
    // Round robin: the broken replica answers every other request until its 5th 503, then it is out.
    expect(statuses.filter((s) => s === 503).length).toBe(5);
    expect(statuses.slice(10).every((s) => s === 200)).toBe(true);
    const eps = await endpointsOf(order, 'pair-eject');
    expect(eps.find((e) => e.address.endsWith(`:${broken.sidecar.ports.inbound}`))).toMatchObject({ ejected: true, timesEjected: 1 });
    expect(eps.find((e) => e.address.endsWith(`:${server.sidecar.ports.inbound}`))).toMatchObject({ ejected: false });
    expect(await metricSum(order, 'typemesh_outlier_ejections_total', { destination_service: 'pair-eject' })).toBe(1);
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
