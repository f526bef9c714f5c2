/**
 * Connection-level limits and answers of the listeners, seen from raw sockets: a TLS handshake
 * that never finishes is closed under STRICT; the request head timeout applies to every request
 * of a keep-alive connection, not only its first; a malformed request pipelined behind a valid
 * one is answered after it, in order; HTTP/0.9 is refused; an oversized head over mTLS gets its
 * 431; a response head followed by an invalid chunk in the same read becomes a 502.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { cleanup, echoHandler, onCleanup, ORDER_ID, PAYMENT_ID, rawExchange, SidecarProcess, sidecarPorts, startSidecar, startUpstream, tempDir, TestPki, Upstream, workloadConfig } from './harness';
import type { WorkloadCertificateFiles } from '../../src/local/certificate-authority';

jest.setTimeout(60_000);
afterAll(cleanup);

/** Short limits so that the tests see them act; what is asserted is that they act, not when. */
const HANDSHAKE_TIMEOUT_MS = 500;
const HEAD_TIMEOUT_MS = 1000;
const ENV = { TYPEMESH_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS), TYPEMESH_REQUEST_HEAD_TIMEOUT_MS: String(HEAD_TIMEOUT_MS) };

/** Resolves with what the peer sent and whether it closed before `giveUpMs` (a generous multiple of the limit). */
function watchClose(socket: net.Socket | tls.TLSSocket, giveUpMs: number): Promise<{ closed: boolean; data: string }> {
  return new Promise((resolve) => {
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, data });
    }, giveUpMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, data });
    });
  });
}

describe('connection limits', () => {
  let dir: string;
  let pki: TestPki;
  let orderTls: WorkloadCertificateFiles;
  let strictApp: Upstream;
  let strict: SidecarProcess;
  let permissiveApp: Upstream;
  let permissive: SidecarProcess;

  beforeAll(async () => {
    dir = tempDir();
    pki = await TestPki.create(dir);
    orderTls = await pki.workload('order', ORDER_ID);
    strictApp = await startUpstream(echoHandler('strict'));
    strict = await startSidecar(dir, 'strict', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: await pki.workload('strict', PAYMENT_ID), appPort: strictApp.port }), ENV);
    permissiveApp = await startUpstream(echoHandler('permissive'));
    permissive = await startSidecar(dir, 'permissive', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: await pki.workload('permissive', PAYMENT_ID), appPort: permissiveApp.port, inbound: { mtls: { mode: 'PERMISSIVE' } } }), ENV);
  });

  /** An mTLS connection to the STRICT sidecar with order's certificate. */
  function mtls(): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: strict.ports.inbound, cert: readFileSync(orderTls.certFile), key: readFileSync(orderTls.keyFile), ca: readFileSync(orderTls.caFile), checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] }, () => resolve(s));
      s.once('error', reject);
    });
  }

  test('STRICT: a TCP connection that never starts its TLS handshake is closed', async () => {
    const socket = net.connect(strict.ports.inbound, '127.0.0.1');
    const r = await watchClose(socket, 20 * HANDSHAKE_TIMEOUT_MS);
    expect(r).toEqual({ closed: true, data: '' });
  });

  test('STRICT: a partial ClientHello is closed', async () => {
    const socket = net.connect(strict.ports.inbound, '127.0.0.1', () => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])));
    const r = await watchClose(socket, 20 * HANDSHAKE_TIMEOUT_MS);
    expect(r.closed).toBe(true);
    // A complete handshake is still served.
    const s = await mtls();
    s.write('GET /after HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n');
    expect((await watchClose(s, 5000)).data).toMatch(/^HTTP\/1\.1 200/);
  });

  test('PERMISSIVE: a TLS handshake that stops after its first bytes is closed', async () => {
    const socket = net.connect(permissive.ports.inbound, '127.0.0.1', () => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])));
    const r = await watchClose(socket, 20 * HANDSHAKE_TIMEOUT_MS);
    expect(r).toEqual({ closed: true, data: '' });
  });

  test.each(['inbound', 'outbound'] as const)('%s: a second request head trickled on a keep-alive connection is closed (408), and other clients are served meanwhile', async (listener) => {
    const port = listener === 'inbound' ? permissive.ports.inbound : permissive.ports.outbound;
    const host = listener === 'inbound' ? 'payment' : `127.0.0.1:${permissiveApp.port}`;
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const watched = watchClose(socket, 30 * HEAD_TIMEOUT_MS);
    socket.write(`GET /first HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    // Trickle the second head, one byte per 100 ms, for up to 20x the head timeout.
    const second = Buffer.from(`GET /second HTTP/1.1\r\nHost: ${host}\r\n${'x-slow: '.padEnd(200, 'a')}\r\n\r\n`);
    let sent = 0;
    const trickle = setInterval(() => {
      if (socket.destroyed || sent >= second.length - 2) {
        clearInterval(trickle);
        return;
      }
      socket.write(second.subarray(sent, ++sent));
    }, 100);
    onCleanup(() => clearInterval(trickle));
    // A normal client on another connection keeps being served while the trickle goes on.
    const normal = await rawExchange(port, `GET /normal HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    expect(normal).toMatch(/^HTTP\/1\.1 200/);
    const r = await watched;
    clearInterval(trickle);
    expect(r.closed).toBe(true);
    expect(sent).toBeLessThan(second.length - 2); // closed before the head could complete
    expect(r.data).toMatch(/^HTTP\/1\.1 200/);
    expect(r.data).toContain('HTTP/1.1 408 Request Timeout');
  });

  test.each(['inbound', 'outbound'] as const)('%s: a malformed request pipelined behind a valid one is answered after it: 200, then 400, then close', async (listener) => {
    const port = listener === 'inbound' ? permissive.ports.inbound : permissive.ports.outbound;
    const host = listener === 'inbound' ? 'payment' : `127.0.0.1:${permissiveApp.port}`;
    const before = permissiveApp.requests.length;
    const out = await rawExchange(port, `GET /valid HTTP/1.1\r\nHost: ${host}\r\n\r\nGET /bad HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx`);
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(out).toContain('"url":"/valid"');
    expect(out.indexOf('HTTP/1.1 400 Bad Request')).toBeGreaterThan(out.indexOf('"url":"/valid"'));
    expect(permissiveApp.requests.slice(before).map((r) => r.url)).toEqual(['/valid']);
  });

  test('HTTP/0.9 is refused on inbound and on outbound (absolute form)', async () => {
    const before = permissiveApp.requests.length;
    const inbound = await rawExchange(permissive.ports.inbound, 'GET /nine\r\n\r\n');
    expect(inbound).toMatch(/^HTTP\/1\.1 400/);
    const outbound = await rawExchange(permissive.ports.outbound, `GET http://127.0.0.1:${permissiveApp.port}/nine\r\n\r\n`);
    expect(outbound).toMatch(/^HTTP\/1\.1 400/);
    expect(permissiveApp.requests.length).toBe(before);
  });

  test('mTLS: an oversized request head gets 431, not a silent close', async () => {
    const s = await mtls();
    const watched = watchClose(s, 10_000);
    s.write(`GET /big HTTP/1.1\r\nHost: payment\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
    const r = await watched;
    expect(r.data).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large/);
  });

  test('a response head and an invalid chunk in one write: 502 for the client, and the sidecar keeps serving', async () => {
    const raw = net.createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', () => s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'));
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => raw.close(() => resolve())));
    const rawPort = (raw.address() as net.AddressInfo).port;
    const sidecar = await startSidecar(dir, 'raw-app', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: await pki.workload('raw-app', PAYMENT_ID), appPort: rawPort, inbound: { mtls: { mode: 'PERMISSIVE' } } }), ENV);
    for (let i = 0; i < 3; i++) {
      const out = await rawExchange(sidecar.ports.inbound, 'GET /x HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n', 5000);
      expect(out).toMatch(/^HTTP\/1\.1 502/);
      expect(out).toContain('upstream sent an invalid response');
    }
    // Through the outbound listener's passthrough (undici's client there, which may report the
    // bad chunk only after the head was committed): never a fake success.
    const viaOutbound = await rawExchange(sidecar.ports.outbound, `GET /x HTTP/1.1\r\nHost: 127.0.0.1:${rawPort}\r\nConnection: close\r\n\r\n`, 5000);
    expect(viaOutbound).not.toMatch(/HTTP\/1\.1 200/);
    const ready = await request(`${sidecar.url('admin')}/healthz/ready`);
    await ready.body.text();
    expect(ready.statusCode).toBe(200);
    expect(sidecar.exitCode).toBeNull();
    expect(sidecar.stderr.join('\n')).not.toContain('uncaught exception');
  });

});
