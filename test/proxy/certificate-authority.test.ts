/**
 * LocalCertificateAuthority: certificates checked by OpenSSL and used in a real mutual TLS 1.3
 * handshake between Node sockets.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { cleanup, ORDER_ID, PAYMENT_ID, tempDir } from './harness';

const run = promisify(execFile);
jest.setTimeout(20_000);
afterAll(cleanup);

describe('LocalCertificateAuthority', () => {
  let ca: LocalCertificateAuthority;
  beforeAll(async () => {
    ca = await LocalCertificateAuthority.create({ commonName: 'Test Mesh CA' });
  });

  test('the CA certificate is a CA (basicConstraints) and self-signed', () => {
    const x = new X509Certificate(ca.certPem);
    expect(x.ca).toBe(true);
    expect(x.subject).toContain('CN=Test Mesh CA');
    expect(x.verify(x.publicKey)).toBe(true);
  });

  test('workload files verify with openssl for both TLS server and client use, with the SPIFFE URI SAN', async () => {
    const dir = tempDir();
    const files = await ca.writeWorkloadFiles(dir, { spiffeId: PAYMENT_ID, dnsNames: ['payment.shop.svc'] });
    for (const purpose of ['sslserver', 'sslclient']) {
      const { stdout } = await run('openssl', ['verify', '-CAfile', files.caFile, '-purpose', purpose, files.certFile]);
      expect(stdout.trim()).toBe(`${files.certFile}: OK`);
    }
    const x = new X509Certificate(readFileSync(files.certFile));
    expect(x.subjectAltName).toBe(`URI:${PAYMENT_ID}, DNS:payment.shop.svc`);
    expect(x.ca).toBe(false);
    const { stdout: text } = await run('openssl', ['x509', '-in', files.certFile, '-noout', '-text']);
    expect(text).toContain('TLS Web Server Authentication, TLS Web Client Authentication');
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(readFileSync(files.keyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  test('an expired workload certificate fails verification', async () => {
    const dir = tempDir();
    const files = await ca.writeWorkloadFiles(dir, { spiffeId: ORDER_ID, notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    await expect(run('openssl', ['verify', '-CAfile', files.caFile, files.certFile])).rejects.toThrow(/certificate has expired/);
  });

  test('two workloads complete a mutual TLS 1.3 handshake and see each other\'s SPIFFE IDs', async () => {
    const server = await ca.issueWorkload({ spiffeId: PAYMENT_ID });
    const client = await ca.issueWorkload({ spiffeId: ORDER_ID });
    let serverSawPeer: string | undefined;
    const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => {
      serverSawPeer = s.getPeerCertificate().subjectaltname;
      s.end('hi');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as AddressInfo).port;
      const result = await new Promise<{ protocol: string | null; san?: string; data: string }>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port, cert: client.certPem, key: client.keyPem, ca: ca.certPem, checkServerIdentity: () => undefined }, () => {
          let data = '';
          c.on('data', (d) => (data += d));
          c.on('end', () => resolve({ protocol: c.getProtocol(), san: c.getPeerCertificate().subjectaltname, data }));
        });
        c.on('error', reject);
      });
      expect(result).toEqual({ protocol: 'TLSv1.3', san: `URI:${PAYMENT_ID}`, data: 'hi' });
      expect(serverSawPeer).toBe(`URI:${ORDER_ID}`);
    } finally {
      srv.close();
    }
  });

  test('a certificate from another CA is refused', async () => {
    const other = await LocalCertificateAuthority.create({ commonName: 'Other CA' });
    const server = await ca.issueWorkload({ spiffeId: PAYMENT_ID });
    const stranger = await other.issueWorkload({ spiffeId: ORDER_ID });
    let accepted = 0;
    const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
      accepted++;
      s.end('should not happen');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as AddressInfo).port;
      const outcome = await new Promise<string>((resolve) => {
        const c = tls.connect({ host: '127.0.0.1', port, cert: stranger.certPem, key: stranger.keyPem, ca: ca.certPem, checkServerIdentity: () => undefined });
        c.on('data', () => resolve('data received'));
        c.on('error', (e) => resolve(`error: ${e.message}`));
        c.on('close', () => resolve('closed'));
      });
      // TLS 1.3: the client finishes its side before the server judges the client certificate,
      // so the refusal shows up as an alert (error) or a close, never as application data.
      expect(outcome).toMatch(/^(error: .*(unknown ca|certificate|alert)|closed)/i);
      expect(accepted).toBe(0);
    } finally {
      srv.close();
    }
  });
});
