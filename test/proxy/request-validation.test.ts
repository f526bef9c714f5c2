/**
 * What the listeners refuse before authorization could be fooled: an HTTP/2 method that is not
 * an upper-case token (a `delete` escaped a DENY on DELETE and reached the app verbatim), header
 * names with underscores (dropped: `x_debug` slipped past a rule on `x-debug`, and CGI/WSGI apps
 * read both as HTTP_X_DEBUG), and client certificates with keys weaker than RSA 2048 / EC 224
 * (OpenSSL security level 2, refused at the handshake).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { cleanup, echoHandler, ORDER_ID, PAYMENT_ID, rawExchange, SidecarProcess, sidecarPorts, startClientSidecar, startSidecar, startUpstream, subset, tempDir, TestPki, Upstream, workloadConfig } from './harness';
import type { WorkloadCertificateFiles } from '../../src/local/certificate-authority';

jest.setTimeout(60_000);
afterAll(cleanup);

/** One HTTP/2 request; resolves with the status and body. */
function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: true });
    let status = 0;
    let body = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (d: Buffer) => (body += d.toString()));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
}

/** The echo app's JSON from a raw HTTP/1.1 response (chunked or not: the JSON is one chunk). */
function jsonBody(raw: string): { headers: Record<string, string> } {
  return JSON.parse(raw.slice(raw.indexOf('{'), raw.lastIndexOf('}') + 1));
}

describe('request validation', () => {
  let dir: string;
  let pki: TestPki;
  let app: Upstream;
  let payment: SidecarProcess;
  let paymentFiles: WorkloadCertificateFiles;
  let orderFiles: WorkloadCertificateFiles;
  let order: SidecarProcess;
  /** An openssl CA that payment also trusts, for RSA client certificates of chosen sizes. */
  let rsaDir: string;

  beforeAll(async () => {
    dir = tempDir();
    pki = await TestPki.create(dir);
    app = await startUpstream(echoHandler('payment'));
    paymentFiles = await pki.workload('payment', PAYMENT_ID);
    orderFiles = await pki.workload('order', ORDER_ID);
    rsaDir = path.join(dir, 'rsa');
    execFileSync('sh', ['-c', [
      `mkdir -p ${rsaDir} && cd ${rsaDir}`,
      'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -subj /CN=rsa-ca -days 1',
      `printf 'subjectAltName=URI:${ORDER_ID}\\nextendedKeyUsage=clientAuth\\nbasicConstraints=CA:FALSE\\n' > ext.cnf`,
      ...[1024, 2048].map((bits) => `openssl req -newkey rsa:${bits} -nodes -keyout c${bits}.key -out c${bits}.csr -subj /CN=order${bits} && openssl x509 -req -in c${bits}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out c${bits}.pem -days 1 -extfile ext.cnf`),
    ].join(' && ')], { stdio: 'ignore' });
    // Payment trusts the mesh CA and the RSA CA.
    const bundle = path.join(dir, 'payment', 'bundle.pem');
    writeFileSync(bundle, readFileSync(paymentFiles.caFile, 'utf8') + readFileSync(path.join(rsaDir, 'ca.pem'), 'utf8'));
    const authorization = { rules: [
      { name: 'no-delete', action: 'DENY' as const, methods: ['DELETE' as const] },
      { name: 'no-debug', action: 'DENY' as const, headers: [{ name: 'x-debug', present: true }] },
    ] };
    payment = await startSidecar(dir, 'payment', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: { ...paymentFiles, caFile: bundle }, appPort: app.port, inbound: { mtls: { mode: 'PERMISSIVE' }, authorization } }));
    const svc = { name: 'payment', namespace: 'shop', hosts: ['payment'], port: 8080, subsets: [subset('v1', [{ sidecar: payment }])], routes: [{ name: 'all', destinations: [{ subset: 'v1', weight: 100 }] }] };
    order = (await startClientSidecar(dir, pki, [svc] as never)).sidecar;
  });

  /** An HTTP/2 session over mTLS to payment's inbound listener with the given client certificate. */
  function inboundH2(cert: string, key: string): http2.ClientHttp2Session {
    const session = http2.connect(`https://127.0.0.1:${payment.ports.inbound}`, {
      cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(orderFiles.caFile), checkServerIdentity: () => undefined,
    });
    session.on('error', () => undefined);
    return session;
  }

  test('HTTP/2 inbound: a lower-case method gets 400 and never reaches the app; DELETE is denied', async () => {
    const session = inboundH2(orderFiles.certFile, orderFiles.keyFile);
    try {
      const before = app.requests.length;
      const lower = await h2Request(session, { ':method': 'delete', ':path': '/orders/1', ':authority': 'payment' });
      expect(lower.status).toBe(400);
      expect(lower.body).toContain('invalid method "delete"');
      const upper = await h2Request(session, { ':method': 'DELETE', ':path': '/orders/1', ':authority': 'payment' });
      expect(upper.status).toBe(403);
      expect(app.requests.length).toBe(before);
      expect((await h2Request(session, { ':method': 'GET', ':path': '/orders/1', ':authority': 'payment' })).status).toBe(200);
    } finally {
      session.close();
    }
  });

  test('HTTP/2 outbound (h2c from the app): a lower-case method gets 400', async () => {
    const session = http2.connect(`http://127.0.0.1:${order.ports.outbound}`);
    session.on('error', () => undefined);
    try {
      const before = app.requests.length;
      const r = await h2Request(session, { ':method': 'delete', ':path': '/orders/1', ':authority': 'payment' });
      expect(r.status).toBe(400);
      expect(app.requests.length).toBe(before);
    } finally {
      session.close();
    }
  });

  test('a header name with an underscore is dropped: x_debug never reaches the app, x-debug is denied', async () => {
    const denied = await rawExchange(payment.ports.inbound, 'GET /a HTTP/1.1\r\nHost: payment\r\nx-debug: 1\r\nConnection: close\r\n\r\n');
    expect(denied).toMatch(/^HTTP\/1\.1 403/);
    const underscored = await rawExchange(payment.ports.inbound, 'GET /a HTTP/1.1\r\nHost: payment\r\nx_debug: 1\r\nx-kept: 1\r\nConnection: close\r\n\r\n');
    expect(underscored).toMatch(/^HTTP\/1\.1 200/);
    const seen = jsonBody(underscored).headers;
    expect(seen).not.toHaveProperty('x_debug');
    expect(seen['x-kept']).toBe('1');
    // The same through order's outbound listener and the mTLS hop.
    const viaMesh = await rawExchange(order.ports.outbound, 'GET /a HTTP/1.1\r\nHost: payment\r\nx_debug: 1\r\nConnection: close\r\n\r\n');
    expect(viaMesh).toMatch(/^HTTP\/1\.1 200/);
    expect(jsonBody(viaMesh).headers).not.toHaveProperty('x_debug');
  });

  test.each(['inbound', 'outbound'] as const)('%s: a request with too many header fields is refused (431), never truncated; 100 pass whole', async (listener) => {
    const port = listener === 'inbound' ? payment.ports.inbound : order.ports.outbound;
    const limit = listener === 'inbound' ? 120 : 100; // inbound leaves room for what a peer sidecar adds
    const fields = (n: number): string => Array.from({ length: n }, (_, i) => `x-flood-${i}: v\r\n`).join('');
    const before = app.requests.length;
    const flood = await rawExchange(port, `GET /flood HTTP/1.1\r\nHost: payment\r\n${fields(2500)}x-last: seen\r\nConnection: close\r\n\r\n`);
    expect(flood).toMatch(/^HTTP\/1\.1 431/);
    expect(flood).toContain(`more than ${limit} header fields`);
    const upgrade = await rawExchange(port, `GET /flood HTTP/1.1\r\nHost: payment\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${fields(limit + 1)}\r\n`);
    expect(upgrade).toMatch(/^HTTP\/1\.1 431/);
    expect(app.requests.length).toBe(before);
    // host + 97 + x-last + connection = 100 fields: served whole through both sidecars.
    const whole = await rawExchange(port, `GET /whole HTTP/1.1\r\nHost: payment\r\n${fields(97)}x-last: seen\r\nConnection: close\r\n\r\n`);
    expect(whole).toMatch(/^HTTP\/1\.1 200/);
    expect(jsonBody(whole).headers['x-last']).toBe('seen');
  });

  test('a client certificate with an RSA-1024 key is refused at the handshake; RSA-2048 from the same CA is served', async () => {
    const attempt = (bits: number): Promise<string> => new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: payment.ports.inbound, cert: readFileSync(path.join(rsaDir, `c${bits}.pem`)), key: readFileSync(path.join(rsaDir, `c${bits}.key`)), ca: readFileSync(orderFiles.caFile), checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] }, () => {
        s.write('GET /rsa HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n');
      });
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('error', () => undefined);
      const timer = setTimeout(() => s.destroy(), 5000);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(out);
      });
    });
    const before = app.requests.length;
    expect(await attempt(1024)).not.toContain('HTTP/1.1');
    expect(app.requests.length).toBe(before);
    const ok = await attempt(2048);
    expect(ok).toMatch(/^HTTP\/1\.1 200/);
    expect(ok).toContain(`URI=${ORDER_ID}`);
  });
});
