/**
 * The app behind every instance of the seed scenarios (test/e2e/seed-scenarios.test.ts): a
 * plain node:http server that knows nothing about the mesh, and whose faults the test turns
 * on and off at run time. It is bundled with esbuild and runs as a real process beside a real
 * sidecar; the test talks to its control endpoints on the app port directly (as a debugger
 * would, bypassing the mesh), and to everything else through the mesh.
 *
 * Every request that is not a control request is "served" and counted, so the test can
 * assert what reached the app. Faults (`FAULT` at start, then `POST /__fault?mode=`):
 *   ok     200 with who served it and what body arrived (its length and SHA-256)
 *   503    503 Service Unavailable
 *   reset  destroys the connection without an answer
 *   slow   answers 200 after SLOW_MS (default 3500) unless the request is closed first
 *   hold   answers 200 when the test calls POST /__release (the gate of the overflow scenario)
 *
 * ROLE=forwarder makes it an order-service that calls payment-service: `GET /checkout` sends
 * `POST http://payment-service/process` (through HTTP_PROXY, as any HTTP client would) and,
 * unless `?forward=0`, copies the incoming traceparent onto that call, as an app that joins
 * traces must.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';

type Fault = 'ok' | '503' | 'reset' | 'slow' | 'hold';
const FAULTS: readonly Fault[] = ['ok', '503', 'reset', 'slow', 'hold'];

const pod = process.env.POD_NAME ?? 'app';
const version = process.env.VERSION ?? 'v1';
const role = process.env.ROLE ?? 'server';
const slowMs = Number(process.env.SLOW_MS ?? 3500);
let fault: Fault = FAULTS.includes(process.env.FAULT as Fault) ? (process.env.FAULT as Fault) : 'ok';

/** What the app saw; GET /__stats returns it. */
const stats = {
  pod,
  version,
  /** Requests served (control requests excluded), by "METHOD path". */
  served: {} as Record<string, number>,
  /** Answers by status, and faults applied. */
  statuses: {} as Record<string, number>,
  resets: 0,
  /** Requests closed by the caller before the app answered (a cut try). */
  abandoned: 0,
  /** Requests waiting at the gate right now. */
  held: 0,
  /** traceparent headers received, in order (last 50). */
  traceparents: [] as string[],
};
const gate: Array<() => void> = [];

/** Answers; `counted` false for control requests, which are not the app's traffic. */
function send(res: http.ServerResponse, status: number, body: unknown, counted = true): void {
  const text = JSON.stringify(body);
  if (counted) stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function control(res: http.ServerResponse, url: URL): void {
  if (url.pathname === '/__stats') return send(res, 200, stats, false);
  if (url.pathname === '/__fault') {
    const mode = url.searchParams.get('mode') as Fault;
    if (!FAULTS.includes(mode)) return send(res, 400, { error: `mode must be one of ${FAULTS.join(', ')}` }, false);
    fault = mode;
    return send(res, 200, { fault }, false);
  }
  if (url.pathname === '/__release') {
    if (fault === 'hold') fault = 'ok';
    const n = gate.length;
    gate.splice(0).forEach((open) => open());
    return send(res, 200, { released: n }, false);
  }
  send(res, 404, { error: `no control endpoint ${url.pathname}` }, false);
}

/** The forwarder's outbound call: absolute-form to HTTP_PROXY, like curl or any proxy-aware client. */
function callPayment(traceparent: string | undefined): Promise<{ status: number; body: unknown }> {
  const proxy = new URL(process.env.HTTP_PROXY ?? 'http://127.0.0.1:15001');
  const payload = Buffer.from(JSON.stringify({ order: `${pod}-order`, amount: 42 }));
  const headers: http.OutgoingHttpHeaders = { 'host': 'payment-service', 'content-type': 'application/json', 'content-length': payload.length };
  if (traceparent) headers.traceparent = traceparent;
  return new Promise((resolve) => {
    const req = http.request({ host: proxy.hostname, port: Number(proxy.port), localAddress: process.env.POD_IP, method: 'POST', path: 'http://payment-service/process', headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let body: unknown = Buffer.concat(chunks).toString('utf8');
        try {
          body = JSON.parse(body as string);
        } catch {
          // kept as text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: { error: e.message } }));
    req.end(payload);
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://app');
  if (url.pathname.startsWith('/__')) return control(res, url);
  if (url.pathname === '/healthz') return send(res, 200, { ok: true }, false);
  const key = `${req.method} ${url.pathname}`;
  stats.served[key] = (stats.served[key] ?? 0) + 1;
  const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
  if (traceparent) stats.traceparents = [...stats.traceparents.slice(-49), traceparent];
  const hash = createHash('sha256');
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
  });
  req.on('end', () => {
    const answer = (): void => send(res, 200, { pod, version, method: req.method, path: url.pathname, bytes, sha256: hash.digest('hex') });
    if (role === 'forwarder' && url.pathname === '/checkout') {
      void callPayment(url.searchParams.get('forward') === '0' ? undefined : traceparent).then((payment) => send(res, payment.status === 200 ? 200 : 502, { pod, traceparent, payment }));
      return;
    }
    switch (fault) {
      case '503':
        return send(res, 503, { pod, error: 'injected 503' });
      case 'reset':
        stats.resets++;
        return void req.socket.destroy();
      case 'slow': {
        const timer = setTimeout(answer, slowMs);
        res.once('close', () => {
          if (!res.writableEnded) {
            clearTimeout(timer);
            stats.abandoned++;
          }
        });
        return;
      }
      case 'hold':
        stats.held++;
        gate.push(() => {
          stats.held--;
          if (!res.destroyed) answer();
        });
        res.once('close', () => {
          if (!res.writableEnded) stats.abandoned++;
        });
        return;
      default:
        return answer();
    }
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  process.stdout.write(`${role} app ${pod} listening, fault ${fault}\n`);
});
const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
