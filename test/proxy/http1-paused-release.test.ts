/**
 * A connection of the lean HTTP/1.1 client goes back to its pool readable: when the last body
 * chunk fills the consumer's buffer in the same read that completes the response, the socket
 * paused for backpressure must not stay paused, or the next request on that connection never
 * reads its response. Real loopback sockets; once at the pool (deterministic: a consumer that
 * is always full) and once through a sidecar with a 16 MiB body read slowly.
 */
import * as http from 'node:http';
import type * as net from 'node:net';
import { Agent, request } from 'undici';
import { plainConnector } from '../../src/proxy-image/http1/connectors';
import { Http1Pool } from '../../src/proxy-image/http1/pool';
import { upstreamRequest } from '../../src/proxy-image/upstream-request';
import { cleanup, onCleanup, PAYMENT_ID, sidecarPorts, startSidecar, startUpstream, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(60_000);
afterAll(cleanup);

/** Bounds a promise so that a hang fails the test with a message. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms);
  })]).finally(() => clearTimeout(timer));
}

test('pool: a response completed while the consumer was full leaves a connection that serves the next request', async () => {
  let connections = 0;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-length': '5' });
    res.end(req.url === '/first' ? 'first' : 'again');
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const pool = new Http1Pool({ hostname: '127.0.0.1', port: (server.address() as net.AddressInfo).port, connect: plainConnector(2000), connections: 1 });
  onCleanup(() => pool.destroy());
  // A consumer that says "full" on every chunk: the socket is paused for it.
  await new Promise<void>((resolve, reject) => {
    pool.dispatch({ method: 'GET', path: '/first', headers: { host: 'x' } }, {
      onData: () => false,
      onComplete: () => resolve(),
      onError: reject,
    });
  });
  const second = await within(upstreamRequest(pool, { method: 'GET', path: '/second', headers: { host: 'x' }, body: null }), 5000, 'the second request');
  const chunks: Buffer[] = [];
  for await (const c of second.body) chunks.push(c as Buffer);
  expect(Buffer.concat(chunks).toString()).toBe('again');
  expect(connections).toBe(1); // it was the same connection
});

test('sidecar: a 16 MiB body read slowly, then a second request on the same client connection, is answered', async () => {
  const big = Buffer.alloc(16 * 1024 * 1024 + 1234, 'b');
  const app = await startUpstream((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': String(big.length) });
      res.end(big);
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('small');
    }
  });
  const dir = tempDir();
  const pki = await TestPki.create(dir);
  const sidecar = await startSidecar(dir, 'payment', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: await pki.workload('payment', PAYMENT_ID), appPort: app.port, inbound: { mtls: { mode: 'PERMISSIVE' } } }));
  // One client connection, so the second request follows the first on it (and on the sidecar's
  // most recently used app connection).
  const client = new Agent({ connections: 1, headersTimeout: 20_000, bodyTimeout: 20_000 });
  onCleanup(() => client.close());
  const url = `http://127.0.0.1:${sidecar.ports.inbound}`;
  for (let round = 0; round < 3; round++) {
    const r = await request(`${url}/big`, { dispatcher: client, headers: { host: 'payment' } });
    expect(r.statusCode).toBe(200);
    let n = 0;
    let chunks = 0;
    for await (const c of r.body) {
      n += (c as Buffer).length;
      // Read slowly: the sidecar's buffers fill and its app connection is paused again and again.
      if (++chunks % 64 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(n).toBe(big.length);
    const small = await within(request(`${url}/small`, { dispatcher: client, headers: { host: 'payment' } }), 20_000, 'the request after the big body');
    expect(small.statusCode).toBe(200);
    expect(await small.body.text()).toBe('small');
  }
  expect(sidecar.exitCode).toBeNull();
});
