/**
 * Identity and authorization on real TLS: STRICT refuses plaintext, PERMISSIVE accepts both,
 * client certificates from another CA or expired ones are refused at the handshake, the
 * outbound side refuses a server with the wrong SPIFFE ID or an expired certificate, and
 * inbound authorization works on the normalized path.
 */
import { execFile, spawn } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { callOutbound, cleanup, echoHandler, ORDER_ID, PAYMENT_ID, rawExchange, ServerInstance, SidecarProcess, startClientSidecar, startFakePeer, startServerInstance, subset, tempDir, TestPki } from './harness';

const run = promisify(execFile);
jest.setTimeout(40_000);
afterAll(cleanup);

const INTRUDER_ID = 'spiffe://cluster.local/ns/other/sa/intruder';

/** openssl s_client against a port, sending an HTTP request; returns its combined output. */
function sClient(port: number, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_3', '-quiet', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    // In TLS 1.3 the server judges the client certificate after the client's Finished, so
    // the refusal (an alert) is only seen once the client sends and reads.
    child.stdin.on('error', () => undefined);
    child.stdin.write(REQUEST);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/**
 * Node verifies a client certificate right after the TLS 1.3 handshake and closes the
 * connection (no alert is sent), so a refused client sees EOF and never an HTTP answer.
 */
function expectRefused(out: string): void {
  expect(out).not.toContain('HTTP/1.1');
  expect(out).toMatch(/unexpected eof|alert|errno/i);
}

const REQUEST = 'GET /api/ping HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n';

describe('mTLS and authorization', () => {
  let dir: string;
  let pki: TestPki;
  let strict: ServerInstance;
  let permissive: ServerInstance;
  let order: SidecarProcess;
  let intruder: SidecarProcess;

  beforeAll(async () => {
    dir = tempDir();
    pki = await TestPki.create(dir);
    const authorization = { rules: [{ name: 'order-api', action: 'ALLOW' as const, principals: [ORDER_ID], paths: ['/api/*'] }] };
    strict = await startServerInstance(dir, pki, 'payment-strict', echoHandler('strict'), { inbound: { authorization } });
    permissive = await startServerInstance(dir, pki, 'payment-permissive', echoHandler('permissive'), { inbound: { mtls: { mode: 'PERMISSIVE' } } });
    const wrongId = await startFakePeer(pki, 'spiffe://cluster.local/ns/shop/sa/impostor', (_q, s) => s.end('impostor'));
    const expired = await startFakePeer(pki, PAYMENT_ID, (_q, s) => s.end('expired'), { notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    const otherCa = await startFakePeer(pki, PAYMENT_ID, (_q, s) => s.end('other ca'), { ca: await LocalCertificateAuthority.create({ commonName: 'Rogue CA' }) });
    const to = [{ subset: 'v1', weight: 100 }];
    const svc = (name: string, endpoints: number[]): Record<string, unknown> => ({ name, namespace: 'shop', hosts: [name], port: 8080, subsets: [subset('v1', endpoints)], routes: [{ name: 'all', destinations: to }] });
    const services = [
      svc('payment', [strict.sidecar.ports.inbound]),
      svc('permissive', [permissive.sidecar.ports.inbound]),
      svc('impostor', [wrongId.port]),
      svc('expired', [expired.port]),
      svc('rogue', [otherCa.port]),
    ];
    order = (await startClientSidecar(dir, pki, services as never)).sidecar;
    intruder = (await startClientSidecar(dir, pki, [services[0]] as never, {}, 'intruder', INTRUDER_ID)).sidecar;
  });

  test('STRICT: a plaintext HTTP request gets no HTTP answer', async () => {
    const out = await rawExchange(strict.sidecar.ports.inbound, REQUEST);
    expect(out).not.toContain('HTTP/1.1');
    expect(strict.app.requests.length).toBe(0);
  });

  test('STRICT: openssl s_client without a client certificate is refused', async () => {
    const out = await sClient(strict.sidecar.ports.inbound, ['-CAfile', path.join(dir, 'order', 'ca.pem')]);
    expectRefused(out);
  });

  test('STRICT: openssl s_client with a mesh client certificate is served', async () => {
    const files = path.join(dir, 'order');
    const { stdout } = await run('sh', ['-c', `printf '${REQUEST.replace(/\r\n/g, '\\r\\n')}' | openssl s_client -connect 127.0.0.1:${strict.sidecar.ports.inbound} -tls1_3 -quiet -ign_eof -cert ${files}/cert.pem -key ${files}/key.pem -CAfile ${files}/ca.pem 2>/dev/null`], { timeout: 10_000 });
    expect(stdout).toContain('HTTP/1.1 200');
    expect(stdout).toContain(`"x-forwarded-client-cert":"By=${PAYMENT_ID};URI=${ORDER_ID}"`);
  });

  test('a client certificate from another CA is refused at the handshake', async () => {
    const before = strict.app.requests.length;
    const rogue = await LocalCertificateAuthority.create({ commonName: 'Rogue CA' });
    const files = await rogue.writeWorkloadFiles(path.join(dir, 'rogue-client'), { spiffeId: ORDER_ID });
    const out = await sClient(strict.sidecar.ports.inbound, ['-cert', files.certFile, '-key', files.keyFile, '-CAfile', path.join(dir, 'order', 'ca.pem')]);
    expectRefused(out);
    expect(strict.app.requests.length).toBe(before);
  });

  test('an expired client certificate is refused at the handshake', async () => {
    const files = await pki.ca.writeWorkloadFiles(path.join(dir, 'expired-client'), { spiffeId: ORDER_ID, notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    const out = await sClient(strict.sidecar.ports.inbound, ['-cert', files.certFile, '-key', files.keyFile, '-CAfile', files.caFile]);
    expectRefused(out);
  });

  test('PERMISSIVE: plaintext and mTLS are both served; only mTLS carries a principal', async () => {
    const plain = await rawExchange(permissive.sidecar.ports.inbound, REQUEST);
    expect(plain).toContain('HTTP/1.1 200');
    expect(plain).not.toContain('x-forwarded-client-cert');
    expect(plain).toContain('"x-forwarded-proto":"http"');
    const viaMesh = await callOutbound(order, 'permissive', '/p');
    expect(JSON.parse(viaMesh.body).headers['x-forwarded-client-cert']).toBe(`By=${PAYMENT_ID};URI=${ORDER_ID}`);
  });

  test('outbound refuses a server whose SPIFFE ID is not the subset identity: 503 naming the mismatch', async () => {
    const r = await callOutbound(order, 'impostor', '/x');
    expect(r.status).toBe(503);
    expect(r.body).toContain(`upstream identity mismatch: expected ${PAYMENT_ID}, peer presented spiffe://cluster.local/ns/shop/sa/impostor`);
  });

  test('outbound refuses a server with an expired certificate', async () => {
    const r = await callOutbound(order, 'expired', '/x');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/upstream connect error: .*certificate has expired/);
  });

  test('outbound refuses a server whose certificate is from another CA', async () => {
    const r = await callOutbound(order, 'rogue', '/x');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/upstream connect error: .*(unable to verify|self.signed|issuer)/i);
  });

  test('authorization: allowed principal and path pass; other paths get 403 "RBAC: access denied"', async () => {
    expect((await callOutbound(order, 'payment', '/api/ping')).status).toBe(200);
    const denied = await callOutbound(order, 'payment', '/admin');
    expect(denied.status).toBe(403);
    expect(denied.body).toMatch(/^RBAC: access denied/);
  });

  test('authorization: another principal is denied', async () => {
    const r = await callOutbound(intruder, 'payment', '/api/ping');
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/^RBAC: access denied/);
  });

  test('the path is normalized once: authorization and the app see the same path', async () => {
    const r = await callOutbound(order, 'payment', '/api/a/../b//c?q=%2F');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).url).toBe('/api/b/c?q=%2F');
    const escape = await callOutbound(order, 'payment', '/api/../admin');
    expect(escape.status).toBe(403);
    const encoded = await callOutbound(order, 'payment', '/api/%2e%2e/admin');
    expect(encoded.status).toBe(403);
  });

  test('an encoded slash is refused with 400 and an explicit body', async () => {
    const r = await callOutbound(order, 'payment', '/api/a%2Fb');
    expect(r.status).toBe(400);
    expect(r.body).toContain('bad request: invalid path: encoded-slash');
  });

  test('a reload switching STRICT to PERMISSIVE applies to new connections (plaintext then reaches authorization)', async () => {
    const cfg = JSON.parse(JSON.stringify(strict.config));
    cfg.inbound.mtls = { mode: 'PERMISSIVE' };
    strict.sidecar.writeConfig(cfg);
    await strict.sidecar.waitForLog('config reloaded');
    const out = await rawExchange(strict.sidecar.ports.inbound, REQUEST);
    // No principal on plaintext: the ALLOW rule for order's principal does not match.
    expect(out).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(out).toContain('RBAC: access denied');
  });
});
