/**
 * A certificate that chains to a trusted CA is a workload identity only when it is shaped as an
 * X.509-SVID: not a CA certificate (CA:TRUE), and exactly one URI SAN, a spiffe:// one. OpenSSL
 * judges the chain, not this shape, so both sidecar ends check it: the inbound listener closes
 * the connection of such a client, the outbound side refuses such a server (503). Certificates
 * are made with the openssl CLI from a CA the sidecars trust besides the mesh CA.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { callOutbound, cleanup, echoHandler, freePort, onCleanup, ORDER_ID, PAYMENT_ID, SidecarProcess, sidecarPorts, startSidecar, startUpstream, tempDir, TestPki, Upstream, workloadConfig } from './harness';

jest.setTimeout(60_000);
afterAll(cleanup);

const INTRUDER_ID = 'spiffe://cluster.local/ns/shop/sa/intruder';

/** Leaves of the openssl CA: name -> [subjectAltName, basicConstraints]. */
const LEAVES: Record<string, [string, string]> = {
  'order-good': [`URI:${ORDER_ID}`, 'CA:FALSE'],
  'order-ca-true': [`URI:${ORDER_ID}`, 'critical,CA:TRUE'],
  'order-two-uris': [`URI:${ORDER_ID},URI:${INTRUDER_ID}`, 'CA:FALSE'],
  'order-no-uri': ['DNS:order.shop.svc', 'CA:FALSE'],
  'payment-good': [`URI:${PAYMENT_ID}`, 'CA:FALSE'],
  'payment-ca-true': [`URI:${PAYMENT_ID}`, 'critical,CA:TRUE'],
  'payment-two-uris': [`URI:${PAYMENT_ID},URI:${INTRUDER_ID}`, 'CA:FALSE'],
};

describe('peer certificates must be shaped as workload identities', () => {
  let dir: string;
  let ossl: string;
  let app: Upstream;
  let payment: SidecarProcess;
  let order: SidecarProcess;

  beforeAll(async () => {
    dir = tempDir();
    const pki = await TestPki.create(dir);
    ossl = path.join(dir, 'openssl');
    execFileSync('sh', ['-c', [
      `mkdir -p ${ossl} && cd ${ossl}`,
      'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -subj /CN=other-ca -days 1',
      ...Object.entries(LEAVES).map(([name, [san, bc]]) => [
        `printf 'subjectAltName=${san}\\nbasicConstraints=${bc}\\nkeyUsage=digitalSignature${bc.includes('TRUE') ? ',keyCertSign' : ''}\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ${name}.cnf`,
        `openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ${name}.key -out ${name}.csr -subj /CN=${name}`,
        `openssl x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${name}.pem -days 1 -extfile ${name}.cnf`,
      ].join(' && ')),
    ].join(' && ')], { stdio: 'ignore' });
    const trustBoth = (files: { caFile: string }, name: string): string => {
      const bundle = path.join(dir, `${name}-bundle.pem`);
      writeFileSync(bundle, readFileSync(files.caFile, 'utf8') + readFileSync(path.join(ossl, 'ca.pem'), 'utf8'));
      return bundle;
    };
    app = await startUpstream(echoHandler('payment'));
    const paymentFiles = await pki.workload('payment', PAYMENT_ID);
    payment = await startSidecar(dir, 'payment', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: { ...paymentFiles, caFile: trustBoth(paymentFiles, 'payment') }, appPort: app.port }));

    // Fake peers presenting the openssl server certificates.
    const peer = async (name: string): Promise<number> => {
      const server = https.createServer({ cert: readFileSync(path.join(ossl, `${name}.pem`)), key: readFileSync(path.join(ossl, `${name}.key`)) }, (_q, s) => s.end(`served by ${name}`));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      onCleanup(() => new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }));
      return (server.address() as net.AddressInfo).port;
    };
    const svc = async (name: string): Promise<Record<string, unknown>> => ({
      name, namespace: 'shop', hosts: [name], port: 8080,
      subsets: [{ name: 'v1', identity: PAYMENT_ID, discovery: { type: 'static', endpoints: [{ address: '127.0.0.1', port: await peer(name) }] } }],
      routes: [{ name: 'all', destinations: [{ subset: 'v1', weight: 100 }] }],
    });
    const orderFiles = await pki.workload('order', ORDER_ID);
    order = await startSidecar(dir, 'order', workloadConfig({
      name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls: { ...orderFiles, caFile: trustBoth(orderFiles, 'order') }, appPort: await freePort(),
      services: [await svc('payment-good'), await svc('payment-ca-true'), await svc('payment-two-uris')] as never,
    }));
  });

  /** One request over mTLS to payment's inbound listener with an openssl client certificate. */
  function asClient(name: string): Promise<string> {
    return new Promise((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: payment.ports.inbound, cert: readFileSync(path.join(ossl, `${name}.pem`)), key: readFileSync(path.join(ossl, `${name}.key`)), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
        s.write('GET /whoami HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n');
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
  }

  test('inbound control: a well-formed leaf of the trusted CA is served with its identity', async () => {
    const out = await asClient('order-good');
    expect(out).toMatch(/^HTTP\/1\.1 200/);
    expect(out).toContain(`URI=${ORDER_ID}`);
  });

  test.each(['order-ca-true', 'order-two-uris', 'order-no-uri'])('inbound: a client presenting %s gets no HTTP answer and reaches no app', async (name) => {
    const before = app.requests.length;
    const out = await asClient(name);
    expect(out).not.toContain('HTTP/1.1');
    expect(app.requests.length).toBe(before);
  });

  test('outbound control: a well-formed server leaf is used', async () => {
    const r = await callOutbound(order, 'payment-good', '/x');
    expect(r.status).toBe(200);
    expect(r.body).toBe('served by payment-good');
  });

  test.each(['payment-ca-true', 'payment-two-uris'])('outbound: a server presenting %s (with the expected SPIFFE ID) is refused: 503', async (name) => {
    const r = await callOutbound(order, name, '/x');
    expect(r.status).toBe(503);
    expect(r.body).toContain('upstream identity refused');
  });
});
