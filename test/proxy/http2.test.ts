/**
 * HTTP/2 and gRPC: h2c from the app to the outbound listener, h2 over mTLS between sidecars
 * (ALPN), h2c to an http2/grpc app, trailers (grpc-status) carried end to end, and retries
 * on gRPC status conditions.
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { cleanup, ORDER_ID, PAYMENT_ID, sidecarPorts, SidecarProcess, startClientSidecar, startSidecar, subset, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

/** A gRPC message frame: 0 (uncompressed), 4-byte length, payload. */
function grpcFrame(payload: string): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe('HTTP/2 and gRPC', () => {
  let order: SidecarProcess;
  let client: http2.ClientHttp2Session;
  const seen: Array<{ path: string; version: string; xfcc?: string; te?: string }> = [];
  const peerSeen: string[] = [];
  let flakyCalls = 0;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    // The payment app: a gRPC-style h2c server.
    const app = http2.createServer((req, res) => {
      seen.push({ path: req.url, version: req.httpVersion, xfcc: req.headers['x-forwarded-client-cert'] as string | undefined, te: req.headers.te as string | undefined });
      if (req.url === '/shop.Payment/Chat') {
        // Bidirectional streaming: answer each message as it arrives.
        res.writeHead(200, { 'content-type': 'application/grpc' });
        req.on('data', (c: Buffer) => res.write(grpcFrame(`chat:${c.subarray(5).toString()}`)));
        req.on('end', () => {
          res.addTrailers({ 'grpc-status': '0' });
          res.end();
        });
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/shop.Payment/Flaky' && ++flakyCalls <= 2) {
          // Trailers-only response: grpc-status in the headers.
          res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'try again' });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/grpc' });
        res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' });
        const payload = Buffer.concat(chunks).subarray(5).toString();
        res.end(grpcFrame(`echo:${payload}`));
      });
    });
    trackSessions(app);
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    onClose(() => closeServer(app));

    const paymentFiles = await pki.workload('payment', PAYMENT_ID);
    const paymentConfig = workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: paymentFiles, appPort, appProtocol: 'grpc' });
    const payment = await startSidecar(dir, 'payment', paymentConfig);

    // A fake peer speaking h2 over mTLS, to observe the protocol between sidecars.
    const peerCert = await pki.ca.issueWorkload({ spiffeId: PAYMENT_ID });
    const peer = http2.createSecureServer({ cert: peerCert.certPem, key: peerCert.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      peerSeen.push(req.httpVersion);
      res.writeHead(200, { 'content-type': 'application/grpc' });
      res.addTrailers({ 'grpc-status': '0' });
      res.end(grpcFrame('from-peer'));
    });
    trackSessions(peer);
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    onClose(() => closeServer(peer));

    const to = [{ subset: 'v1', weight: 100 }];
    order = (await startClientSidecar(dir, pki, [
      {
        name: 'payment', namespace: 'shop', hosts: ['payment'], port: 8080, protocol: 'grpc',
        subsets: [subset('v1', [payment.ports.inbound])],
        routes: [{ name: 'all', destinations: to, retries: { attempts: 3, retryOn: ['unavailable'], backoff: { baseIntervalMs: 5, maxIntervalMs: 10 } } }],
      },
      { name: 'peer', namespace: 'shop', hosts: ['peer'], port: 8080, protocol: 'grpc', subsets: [subset('v1', [(peer.address() as AddressInfo).port])], routes: [{ name: 'all', destinations: to }] },
    ] as never)).sidecar;
    // node:http2 as the app's client: undici 7's request() drops HTTP/2 trailers.
    client = http2.connect(order.url('outbound'));
    onClose(() => {
      client.destroy();
    });
  });

  const cleanups: Array<() => Promise<void> | void> = [];
  const sessions = new Set<http2.Http2Session>();
  /** http2 servers close only when their sessions do: destroy them at the end. */
  function trackSessions(server: http2.Http2Server | http2.Http2SecureServer): void {
    server.on('session', (s: http2.Http2Session) => {
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
    });
  }
  function closeServer(server: http2.Http2Server | http2.Http2SecureServer): Promise<void> {
    for (const s of sessions) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  }
  function onClose(fn: () => Promise<void> | void): void {
    cleanups.push(fn);
  }
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  function call(authority: string, path: string, payload: string): Promise<{ status: number; headers: Record<string, unknown>; trailers: Record<string, unknown>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const stream = client.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
      let headers: Record<string, unknown> = {};
      let trailers: Record<string, unknown> = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (headers = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status: Number(headers[':status']), headers, trailers, body: Buffer.concat(chunks) }));
      stream.on('error', reject);
      stream.end(grpcFrame(payload));
    });
  }

  test('a unary gRPC call: h2c in, h2 over mTLS, h2c to the app; body and trailers end to end', async () => {
    const r = await call('payment', '/shop.Payment/Charge', 'card-42');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/grpc');
    expect(r.body.subarray(5).toString()).toBe('echo:card-42');
    expect(r.trailers['grpc-status']).toBe('0');
    const last = seen[seen.length - 1];
    expect(last).toMatchObject({ path: '/shop.Payment/Charge', version: '2.0', te: 'trailers', xfcc: `By=${PAYMENT_ID};URI=${ORDER_ID}` });
  });

  test('sidecars speak HTTP/2 to each other (ALPN h2)', async () => {
    const r = await call('peer', '/shop.Payment/Charge', 'x');
    expect(r.body.subarray(5).toString()).toBe('from-peer');
    expect(peerSeen).toEqual(['2.0']);
  });

  test('grpc-status 14 (unavailable) is retried', async () => {
    const r = await call('payment', '/shop.Payment/Flaky', 'again');
    expect(r.trailers['grpc-status']).toBe('0');
    expect(r.body.subarray(5).toString()).toBe('echo:again');
    expect(flakyCalls).toBe(3);
  });

  test('many concurrent streams over one h2c connection', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => call('payment', '/shop.Payment/Charge', `n${i}`)));
    results.forEach((r, i) => expect(r.body.subarray(5).toString()).toBe(`echo:n${i}`));
  });

  test('bidirectional streaming works on a route with retries (the body is not held back)', async () => {
    const result = await new Promise<{ messages: string[]; trailers: Record<string, unknown> }>((resolve, reject) => {
      const stream = client.request({ ':method': 'POST', ':path': '/shop.Payment/Chat', ':authority': 'payment', 'content-type': 'application/grpc', te: 'trailers' });
      const messages: string[] = [];
      let trailers: Record<string, unknown> = {};
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (c: Buffer) => {
        messages.push(c.subarray(5).toString());
        // The second message is only sent once the first answer came back.
        if (messages.length === 1) stream.end(grpcFrame('second'));
      });
      stream.on('end', () => resolve({ messages, trailers }));
      stream.on('error', reject);
      stream.write(grpcFrame('first'));
      setTimeout(() => reject(new Error(`stalled; got ${messages.join(',')}`)), 5000).unref();
    });
    expect(result.messages).toEqual(['chat:first', 'chat:second']);
    expect(result.trailers['grpc-status']).toBe('0');
  });

});
