/**
 * The sidecar's ordered SIGTERM drain, seen by its clients over loopback (no root needed; the
 * pod view is pod-lifecycle.test.ts): the app's connections are left alone and the outbound
 * listener follows the app; peers are served through the drain window, told to move away
 * (`Connection: close` on HTTP/1.1, GOAWAY on HTTP/2), and refused only once it is over.
 * Windows are set through a config reload, which also shows drainDurationMs is reloadable.
 */
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { cleanup, MeshPair, startMeshPair } from '../proxy/harness';

jest.setTimeout(90_000);
afterAll(cleanup);

interface Answer {
  readonly status?: number;
  readonly connection?: string;
  readonly error?: string;
  readonly time: number;
}

function get(url: string, opts: http.RequestOptions | https.RequestOptions): Promise<Answer> {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve) => {
    const req = mod.get(url, opts, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection, time: Date.now() }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, time: Date.now() }));
  });
}

/** One HTTP/2 request on a session: its status. */
function h2Get(session: http2.ClientHttp2Session, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': p, ':authority': 'payment' });
    req.on('response', (h) => {
      req.resume();
      req.on('end', () => resolve(Number(h[':status'])));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The time of the first stderr line of a sidecar whose msg is `msg`. */
function logTime(lines: readonly string[], msg: string): number | undefined {
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; time?: string };
    if (entry.msg === msg) return Date.parse(entry.time!);
  }
  return undefined;
}

describe('SIGTERM drain, from the clients\' side', () => {
  let mesh: MeshPair;
  let tlsFiles: { cert: Buffer; key: Buffer; ca: Buffer };
  beforeAll(async () => {
    mesh = await startMeshPair();
    const files = path.join(mesh.dir, 'order');
    tlsFiles = { cert: readFileSync(path.join(files, 'cert.pem')), key: readFileSync(path.join(files, 'key.pem')), ca: readFileSync(path.join(files, 'ca.pem')) };
  });

  test('outbound: the app\'s kept-alive connection is not told to close; after the window the listener stays open while the app holds a connection, and closes once it is gone', async () => {
    // drainTimeoutMs bounds how long the listener waits for the app: generous, the app's leaving ends it.
    mesh.order.writeConfig({ ...mesh.orderConfig, drainDurationMs: 500, drainTimeoutMs: 20_000 });
    await mesh.order.waitForLog('config reloaded');
    const app = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const url = `${mesh.order.url('outbound')}/x`;
    const call = (agent: http.Agent | false): Promise<Answer> => get(url, { agent, headers: { host: 'payment' } });
    expect((await call(app)).status).toBe(200);

    const exited = mesh.order.stop('SIGTERM', 20_000);
    await mesh.order.waitForLog('draining');
    const during = await call(app);
    expect(during).toMatchObject({ status: 200 });
    expect(during.connection).not.toBe('close');

    await mesh.order.waitForLog('drain window over');
    // The app still holds its connection: a new one is accepted too (the app may be calling out).
    expect((await call(false)).status).toBe(200);
    expect((await call(app)).status).toBe(200);
    app.destroy();
    await mesh.order.waitForLog('outbound listener closed');
    expect((await call(false)).error).toBe('ECONNREFUSED');
    expect(await exited).toBe(0);
  });

  test('inbound: through the window HTTP/1.1 is answered with Connection: close and new connections are accepted, HTTP/2 gets GOAWAY (a new session has its first stream served first); refused only after the window; exit 0', async () => {
    mesh.payment.writeConfig({ ...mesh.paymentConfig, drainDurationMs: 5000 });
    await mesh.payment.waitForLog('config reloaded');
    const inbound = `https://127.0.0.1:${mesh.payment.ports.inbound}`;
    const peer = new https.Agent({ keepAlive: true, maxSockets: 1, ...tlsFiles, checkServerIdentity: () => undefined });
    const call = (agent: https.Agent): Promise<Answer> => get(`${inbound}/peer`, { agent, headers: { host: 'payment' } });
    const connectH2 = (): http2.ClientHttp2Session => http2.connect(inbound, { ...tlsFiles, checkServerIdentity: () => undefined });

    const before = await call(peer);
    expect(before).toMatchObject({ status: 200 });
    expect(before.connection).not.toBe('close');
    const session = connectH2();
    const goaway = new Promise<boolean>((resolve) => {
      session.once('goaway', () => resolve(true));
      session.once('close', () => resolve(false));
    });
    expect(await h2Get(session, '/h2-before')).toBe(200);

    const exited = mesh.payment.stop('SIGTERM', 30_000);
    await mesh.payment.waitForLog('draining');
    expect(await goaway).toBe(true);
    const answers: Answer[] = [];
    for (let i = 0; i < 5; i++) answers.push(await call(peer)); // each on a new connection after the previous close
    expect(answers.map((a) => [a.status, a.connection])).toEqual(Array(5).fill([200, 'close']));
    // A session opened during the window: its first stream is served, then GOAWAY.
    const late = connectH2();
    const lateGoaway = new Promise<void>((resolve) => late.once('goaway', () => resolve()));
    const lateStatus = await h2Get(late, '/h2-during');
    const lateAt = Date.now();
    expect(lateStatus).toBe(200);
    await lateGoaway;

    await mesh.payment.waitForLog('drain window over', 20_000);
    const windowOver = logTime(mesh.payment.stderr, 'drain window over: inbound listener closed')!;
    // Everything above happened inside the window (ordering, not a time bound).
    for (const a of answers) expect(a.time).toBeLessThan(windowOver);
    expect(lateAt).toBeLessThan(windowOver);
    expect((await call(new https.Agent({ ...tlsFiles, checkServerIdentity: () => undefined }))).error).toBe('ECONNREFUSED');
    expect(await exited).toBe(0);
    session.destroy();
    late.destroy();
    peer.destroy();
  });
});
