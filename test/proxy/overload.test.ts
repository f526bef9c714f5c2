/**
 * Graceful overload, seen from outside: a listener with more requests in flight than
 * overload.maxActiveRequests answers the extra ones 503 at once, with x-typemesh-overloaded and
 * the flag OL in its metrics, while the admitted ones complete; a busy sidecar whose event loop
 * ran late (stopped with SIGSTOP while requests queued in its sockets) sheds what queued. The lag
 * detector itself is also driven with a fake clock.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { request } from 'undici';
import { ADAPTIVE_LIMIT_FLOOR, adaptiveLimit, EventLoopLagDetector } from '../../src/proxy-image/admission';
import { cleanup, freePort, ORDER_ID, PAYMENT_ID, paymentService, sidecarPorts, sleep, SidecarProcess, startSidecar, startUpstream, tempDir, TestPki, Upstream, workloadConfig } from './harness';

jest.setTimeout(90_000);
afterAll(cleanup);

/** An app that holds every request until release() (a slow upstream whose slowness the test controls). */
function heldApp(): { handler: (req: http.IncomingMessage, res: http.ServerResponse) => void; held: () => number; release: () => void } {
  const waiting: http.ServerResponse[] = [];
  let open = false;
  return {
    handler: (_req, res) => {
      if (open) res.end('ok');
      else waiting.push(res);
    },
    held: () => waiting.length,
    release: () => {
      open = true;
      for (const res of waiting.splice(0)) res.end('ok');
    },
  };
}

async function until(what: string, cond: () => boolean, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await sleep(25);
  }
  throw new Error(`never happened: ${what}`);
}

/** Rewrites a sidecar's overload section and waits until it logged one more reload. */
async function setOverload(p: SidecarProcess, overload: Record<string, number>): Promise<void> {
  const reloads = (): number => p.stderr.filter((l) => l.includes('config reloaded')).length;
  const before = reloads();
  p.writeConfig({ ...JSON.parse(readFileSync(p.configFile, 'utf8')), overload });
  await until('the sidecar reloaded its config', () => reloads() > before);
}

interface Answer { readonly status: number; readonly overloaded?: string; readonly reason?: string; readonly body: string }

/** One request through order's outbound listener on a connection of its own. */
async function call(order: SidecarProcess, path = '/'): Promise<Answer> {
  const r = await request(`${order.url('outbound')}${path}`, { method: 'POST', headers: { host: 'payment' }, body: 'x'.repeat(64), reset: true });
  const body = await r.body.text();
  return { status: r.statusCode, overloaded: r.headers['x-typemesh-overloaded'] as string | undefined, reason: r.headers['x-typemesh-overload-reason'] as string | undefined, body };
}

/** Sum of typemesh_requests_total series with the given labels, from the admin /metrics. */
async function requestsTotal(p: SidecarProcess, labels: Record<string, string>): Promise<number> {
  const r = await request(`${p.url('admin')}/metrics`);
  const text = await r.body.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('typemesh_requests_total{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

describe('graceful overload', () => {
  let dir: string;
  let pki: TestPki;
  let upstream: Upstream;
  let payment: SidecarProcess;
  let order: SidecarProcess;
  const ORDER_LIMIT = 3;
  const PAYMENT_LIMIT = 2;

  beforeAll(async () => {
    dir = tempDir();
    pki = await TestPki.create(dir);
    upstreamHandler = openApp();
    upstream = await startUpstream((req, res) => upstreamHandler.handler(req, res));
    const paymentPorts = await sidecarPorts();
    const paymentConfig = {
      ...workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: await pki.workload('payment', PAYMENT_ID), appPort: upstream.port }),
      // Above order's limit at first: the outbound test sees order shed, not payment.
      overload: { maxActiveRequests: 100, maxEventLoopLagMs: 0 },
    };
    const orderConfig = {
      ...workloadConfig({ name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls: await pki.workload('order', ORDER_ID), appPort: await freePort(), services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }])] }),
      telemetry: { metrics: { enabled: true }, accessLog: { enabled: false } },
      overload: { maxActiveRequests: ORDER_LIMIT, maxEventLoopLagMs: 0 },
    };
    payment = await startSidecar(dir, 'payment', paymentConfig);
    order = await startSidecar(dir, 'order', orderConfig);
  });

  test('outbound: requests beyond maxActiveRequests get 503 + x-typemesh-overloaded at once, admitted ones succeed, OL is counted', async () => {
    const before = await requestsTotal(order, { response_code: '503', response_flags: 'OL' });
    expect(before).toBe(0);
    expect((await call(order)).status).toBe(200);
    const appHeld = heldApp();
    upstreamHandler = appHeld;
    const admitted = Array.from({ length: ORDER_LIMIT }, () => call(order));
    await until(`${ORDER_LIMIT} requests held by the app`, () => appHeld.held() === ORDER_LIMIT);
    // The app still holds every admitted request: these are answered by the sidecar itself.
    const shed = await Promise.all(Array.from({ length: 5 }, () => call(order)));
    for (const s of shed) {
      expect(s).toMatchObject({ status: 503, overloaded: 'true', reason: 'active-requests' });
      expect(s.body).toMatch(/overloaded/);
    }
    expect(appHeld.held()).toBe(ORDER_LIMIT);
    appHeld.release();
    for (const a of await Promise.all(admitted)) expect(a).toMatchObject({ status: 200, body: 'ok' });
    // Slots are given back when responses end.
    expect((await call(order)).status).toBe(200);
    expect(await requestsTotal(order, { response_code: '503', response_flags: 'OL' }) - before).toBe(5);
    expect(await requestsTotal(order, { response_code: '200', response_flags: '-' })).toBeGreaterThanOrEqual(ORDER_LIMIT + 2);
  });

  test('inbound: the server-side sidecar sheds beyond its own limit; the flag reaches the caller', async () => {
    await setOverload(payment, { maxActiveRequests: PAYMENT_LIMIT, maxEventLoopLagMs: 0 });
    const appHeld = heldApp();
    upstreamHandler = appHeld;
    const admitted = Array.from({ length: PAYMENT_LIMIT }, () => call(order));
    await until(`${PAYMENT_LIMIT} requests held by the app`, () => appHeld.held() === PAYMENT_LIMIT);
    // Order admits it (its limit is higher); payment, already at its limit, sheds it.
    const shed = await call(order);
    expect(shed).toMatchObject({ status: 503, overloaded: 'true', reason: 'active-requests' });
    appHeld.release();
    for (const a of await Promise.all(admitted)) expect(a.status).toBe(200);
  });

  test('adaptive limit: with a queue delay no completion rate can cover, the listener admits the floor and sheds the next with reason queue-delay', async () => {
    await setOverload(order, { maxActiveRequests: 1000, maxEventLoopLagMs: 0, maxQueueDelayMs: 1 });
    await setOverload(payment, { maxActiveRequests: 1000, maxEventLoopLagMs: 0 });
    const appHeld = heldApp();
    upstreamHandler = appHeld;
    const admitted = Array.from({ length: ADAPTIVE_LIMIT_FLOOR }, () => call(order));
    await until(`${ADAPTIVE_LIMIT_FLOOR} requests held by the app`, () => appHeld.held() === ADAPTIVE_LIMIT_FLOOR);
    expect(await call(order)).toMatchObject({ status: 503, overloaded: 'true', reason: 'queue-delay' });
    appHeld.release();
    for (const a of await Promise.all(admitted)) expect(a.status).toBe(200);
    upstreamHandler = openApp();
    expect((await call(order)).status).toBe(200);
  });

  test('event-loop lag: with a request in flight, requests that queued while the sidecar could not run are shed, then service resumes', async () => {
    upstreamHandler = openApp();
    // The reload is asynchronous and logged: wait for it before stopping the process.
    await setOverload(order, { maxActiveRequests: 1000, maxEventLoopLagMs: 200 });
    // A lone request is never shed for lag; one held by the app keeps the listener busy.
    const appHeld = heldApp();
    upstreamHandler = appHeld;
    const inFlight = call(order);
    await until('one request held by the app', () => appHeld.held() === 1);
    // The sidecar cannot run for 1.5 s while requests arrive: its loop is 1.5 s late when it resumes.
    order.child.kill('SIGSTOP');
    let answers: Answer[];
    try {
      const pending = Array.from({ length: 4 }, () => call(order));
      await sleep(1500);
      order.child.kill('SIGCONT');
      answers = await Promise.all(pending);
    } finally {
      order.child.kill('SIGCONT');
    }
    const lagShed = answers.filter((a) => a.status === 503 && a.overloaded === 'true' && a.reason === 'event-loop-lag');
    expect(lagShed.length).toBeGreaterThanOrEqual(1);
    for (const a of answers) expect(a.status === 503 ? a.reason : 'not shed').toBe('event-loop-lag');
    appHeld.release();
    expect((await inFlight).status).toBe(200);
    // Once a tick runs on time again, requests are admitted.
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = (await call(order)).status === 200;
      if (!ok) await sleep(50);
    }
    expect(ok).toBe(true);
  });
});

describe('adaptive limit (overload.maxQueueDelayMs)', () => {
  test('a listener admits completions-per-ms x the delay, never fewer than the floor nor more than maxActiveRequests', () => {
    expect(adaptiveLimit(5, undefined, 1024)).toBeUndefined(); // off
    expect(adaptiveLimit(5, 0, 1024)).toBeUndefined();
    expect(adaptiveLimit(0, 100, 1024)).toBe(ADAPTIVE_LIMIT_FLOOR); // nothing measured yet: a burst up to the floor is served
    expect(adaptiveLimit(0.2, 100, 1024)).toBe(ADAPTIVE_LIMIT_FLOOR); // 200 rps x 100 ms = 20
    expect(adaptiveLimit(4, 100, 1024)).toBe(400); // 4,000 rps x 100 ms
    expect(adaptiveLimit(40, 100, 1024)).toBe(1024);
    expect(adaptiveLimit(40, 100, 0)).toBe(4000);
  });
});

/** The app behaviour of the current test (the upstream's handler delegates to it). */
let upstreamHandler: { handler: (req: http.IncomingMessage, res: http.ServerResponse) => void };

function openApp(): { handler: (req: http.IncomingMessage, res: http.ServerResponse) => void } {
  return { handler: (_req, res) => res.end('ok') };
}

describe('EventLoopLagDetector (fake clock)', () => {
  test('lag is how late the last tick ran, or how overdue the next one is now', () => {
    let t = 0;
    const d = new EventLoopLagDetector(50, () => t);
    d.stop(); // driven by hand
    expect(d.lagMs()).toBe(0);
    t = 50;
    d.tick();
    expect(d.lagMs()).toBe(0);
    // The loop is blocked: the tick due at 100 has not run at 400.
    t = 400;
    expect(d.lagMs()).toBe(300);
    // It runs now, 300 ms late; the lag stays until a tick runs on time.
    d.tick();
    expect(d.lagMs()).toBe(300);
    t = 450;
    d.tick();
    expect(d.lagMs()).toBe(0);
  });
});
