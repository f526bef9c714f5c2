/**
 * CA rotation while traffic flows, with two real sidecars (order calls payment) and one new
 * mTLS handshake per request between them (maxRequestsPerConnection 1), so every step below is
 * crossed by fresh handshakes, not only by connections opened before it.
 *
 * The sequence is the one docs/constructs.md prescribes for a CA key change:
 *   1. both sidecars' trust bundles (config.tls.caFile) get the new CA next to the old one;
 *   2. the callee's leaf is reissued by the new CA;
 *   3. the caller's leaf is reissued by the new CA;
 *   4. the old CA is dropped from the bundles.
 * With the bundle no request fails, and after step 4 a peer with an old-CA leaf is refused, even
 * when it resumes a TLS session it held from before. The negative control runs the same sequence the way the mesh
 * behaved before trust bundles (each sidecar trusting only the ca.crt written next to its own
 * leaf) and sees requests fail: the test can tell a split mesh from a rotation that works.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { request } from 'undici';
import { LocalCertificateAuthority, WorkloadCertificateFiles } from '../../src/local/certificate-authority';
import {
  callOutbound, cleanup, echoHandler, freePort, ORDER_ID, PAYMENT_ID, paymentService, sidecarPorts, SidecarProcess, startSidecar, startUpstream,
  tempDir, workloadConfig,
} from '../proxy/harness';

jest.setTimeout(120_000);
afterEach(cleanup);

/** Requests that must pass between two steps, so each step is crossed by fresh handshakes. */
const REQUESTS_PER_STEP = 25;
/** Requests the traffic loop keeps in flight. */
const IN_FLIGHT = 2;
/** Hard bound of the traffic loop, whatever happens. */
const MAX_REQUESTS = 4000;

interface Rotation {
  readonly dir: string;
  readonly oldCa: LocalCertificateAuthority;
  readonly newCa: LocalCertificateAuthority;
  readonly order: SidecarProcess;
  readonly payment: SidecarProcess;
  readonly orderFiles: WorkloadCertificateFiles;
  readonly paymentFiles: WorkloadCertificateFiles;
  /** Each sidecar's caFile: its own bundle file, or (without bundles) the ca.pem next to its leaf. */
  readonly caFiles: { readonly order: string; readonly payment: string };
}

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Two sidecars with leaves of oldCa; with bundles, caFile is a separate bundle file holding oldCa. */
async function start(withBundle: boolean): Promise<Rotation> {
  const dir = tempDir('typemesh-rotation-');
  const [oldCa, newCa] = await Promise.all([
    LocalCertificateAuthority.create({ commonName: 'TypeMesh Old CA' }),
    LocalCertificateAuthority.create({ commonName: 'TypeMesh New CA' }),
  ]);
  const app = await startUpstream(echoHandler('payment'));
  const [orderFiles, paymentFiles] = await Promise.all([
    oldCa.writeWorkloadFiles(path.join(dir, 'order'), { spiffeId: ORDER_ID, dnsNames: ['localhost'] }),
    oldCa.writeWorkloadFiles(path.join(dir, 'payment'), { spiffeId: PAYMENT_ID, dnsNames: ['localhost'] }),
  ]);
  const caFiles = withBundle
    ? { order: path.join(dir, 'trust-order', 'ca-bundle.pem'), payment: path.join(dir, 'trust-payment', 'ca-bundle.pem') }
    : { order: orderFiles.caFile, payment: paymentFiles.caFile };
  if (withBundle) {
    await LocalCertificateAuthority.writeTrustBundle(caFiles.order, [oldCa]);
    await LocalCertificateAuthority.writeTrustBundle(caFiles.payment, [oldCa]);
  }
  const paymentPorts = await sidecarPorts();
  const paymentConfig = workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: { ...paymentFiles, caFile: caFiles.payment }, appPort: app.port });
  const orderConfig = workloadConfig({
    name: 'order',
    identity: ORDER_ID,
    ports: await sidecarPorts(),
    tls: { ...orderFiles, caFile: caFiles.order },
    appPort: await freePort(),
    services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }], {
      // One request per upstream connection: a new handshake for every request.
      connectionPool: { maxRequestsPerConnection: 1 },
      // No ejection: a failure shows up as a failed request, not as a later "no healthy upstream".
      outlierDetection: { consecutive5xxErrors: 0, consecutiveGatewayErrors: 0 },
    })],
  });
  const [payment, order] = await Promise.all([startSidecar(dir, 'payment', paymentConfig), startSidecar(dir, 'order', orderConfig)]);
  return { dir, oldCa, newCa, order, payment, orderFiles, paymentFiles, caFiles };
}

/** A steady request loop through order's outbound listener, IN_FLIGHT at a time, until stopped (or MAX_REQUESTS). */
class Traffic {
  public ok = 0;
  public readonly failures: string[] = [];
  private stopped = false;
  private readonly loops: Array<Promise<void>>;

  constructor(private readonly order: SidecarProcess) {
    this.loops = Array.from({ length: IN_FLIGHT }, () => this.loop());
  }

  public get total(): number {
    return this.ok + this.failures.length;
  }

  /** Resolves once `n` more requests have completed (the loop is bounded, so this is too). */
  public async passes(n: number): Promise<void> {
    const target = this.total + n;
    while (this.total < target && !this.stopped) await new Promise((r) => setTimeout(r, 10));
    if (this.total < target) throw new Error(`traffic stopped after ${this.total} requests (bound ${MAX_REQUESTS})`);
  }

  public async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async loop(): Promise<void> {
    while (!this.stopped && this.total < MAX_REQUESTS) {
      try {
        // connection: close: the app side opens a new connection to its sidecar each time too.
        const r = await callOutbound(this.order, 'payment', '/pay', { headers: { connection: 'close' } });
        if (r.status === 200) this.ok++;
        else this.failures.push(`${r.status} ${r.body.slice(0, 200)}`);
      } catch (e) {
        this.failures.push((e as Error).message);
      }
    }
    if (this.total >= MAX_REQUESTS) this.stopped = true;
  }
}

/** Waits until the sidecar logs that it loaded the certificate with `leafFingerprint` and exactly these CAs. */
async function loaded(p: SidecarProcess, leafFingerprint: string, cas: readonly LocalCertificateAuthority[]): Promise<void> {
  const want = JSON.stringify(cas.map((c) => fingerprint(c.certPem)));
  // Bounded (30 s at most); the watcher sees a change within its 1 s poll, or at once by fs.watch.
  for (let i = 0; i < 1200; i++) {
    const hit = p.stderr.some((line) => {
      if (!line.includes('certificate loaded')) return false;
      try {
        const j = JSON.parse(line) as { fingerprint256?: string; trustedCas?: string[] };
        return j.fingerprint256 === leafFingerprint && JSON.stringify(j.trustedCas) === want;
      } catch {
        return false;
      }
    });
    if (hit) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`sidecar did not load leaf ${leafFingerprint} with CAs ${want}:\n${p.stderr.slice(-10).join('\n')}`);
}

/** The certificate fingerprint a sidecar reports on its admin /config_dump (loopback). */
async function servedFingerprint(p: SidecarProcess): Promise<string> {
  const r = await request(`${p.url('admin')}/config_dump`);
  const body = await r.body.json() as { certificate: { fingerprint256: string } };
  return body.certificate.fingerprint256;
}

/** What a {@link handshake} saw. */
interface Handshake {
  /** The certificate payment presented (none on a resumed session: no certificate is sent). */
  readonly peer?: X509Certificate;
  readonly resumed: boolean;
  /** A session ticket payment sent, for a later resumption. */
  readonly ticket?: Buffer;
}

/**
 * A TLS 1.3 handshake with payment's inbound listener, as a peer holding `client` and trusting
 * only `trust` (resuming `session` if given): resolves once payment answered a request, or
 * rejects when either side refuses (payment judges a client certificate after its Finished, so
 * a refused one shows up as an alert on the first read).
 */
function handshake(port: number, client: { certPem: string; keyPem: string }, trust: LocalCertificateAuthority, session?: Buffer): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, cert: client.certPem, key: client.keyPem, ca: trust.certPem, servername: 'localhost', checkServerIdentity: () => undefined, minVersion: 'TLSv1.3', session });
    let peer: X509Certificate | undefined;
    let ticket: Buffer | undefined;
    s.on('session', (t: Buffer) => {
      ticket = t;
    });
    let resumed = false;
    s.on('secureConnect', () => {
      peer = s.getPeerX509Certificate();
      resumed = s.isSessionReused();
      s.write('GET /healthz HTTP/1.1\r\nhost: payment\r\nconnection: close\r\n\r\n');
    });
    let answered = false;
    s.once('data', () => {
      answered = true;
      s.resume();
    });
    s.on('error', (e) => reject(e));
    // Resolved at the close, not at the first data: the tickets may follow the handshake later.
    s.on('close', () => {
      if (answered) resolve({ peer, resumed, ticket });
      else reject(new Error('closed before any response'));
    });
  });
}

function leafPem(files: WorkloadCertificateFiles): string {
  return readFileSync(files.certFile, 'utf8');
}

test('with a trust bundle holding old and new CA, rotating the CA and then the leaves loses no request', async () => {
  const r = await start(true);
  const oldClient = await r.oldCa.issueWorkload({ spiffeId: ORDER_ID });
  let ticket: Buffer | undefined;
  const traffic = new Traffic(r.order);
  try {
    await traffic.passes(REQUESTS_PER_STEP);

    // 1. Both bundles hold old and new CA (as trust-manager writes the ConfigMap, pod by pod).
    await LocalCertificateAuthority.writeTrustBundle(r.caFiles.payment, [r.oldCa, r.newCa]);
    await LocalCertificateAuthority.writeTrustBundle(r.caFiles.order, [r.oldCa, r.newCa]);
    await loaded(r.payment, fingerprint(leafPem(r.paymentFiles)), [r.oldCa, r.newCa]);
    await loaded(r.order, fingerprint(leafPem(r.orderFiles)), [r.oldCa, r.newCa]);
    await traffic.passes(REQUESTS_PER_STEP);

    // 2. The callee's leaf from the new CA (cert-manager reissues it after the CA changed).
    await r.newCa.writeWorkloadFiles(path.dirname(r.paymentFiles.certFile), { spiffeId: PAYMENT_ID, dnsNames: ['localhost'] });
    const paymentLeaf = fingerprint(leafPem(r.paymentFiles));
    await loaded(r.payment, paymentLeaf, [r.oldCa, r.newCa]);
    await traffic.passes(REQUESTS_PER_STEP);

    // 3. The caller's leaf from the new CA.
    await r.newCa.writeWorkloadFiles(path.dirname(r.orderFiles.certFile), { spiffeId: ORDER_ID, dnsNames: ['localhost'] });
    const orderLeaf = fingerprint(leafPem(r.orderFiles));
    await loaded(r.order, orderLeaf, [r.oldCa, r.newCa]);
    await traffic.passes(REQUESTS_PER_STEP);

    // A peer with an old-CA leaf, accepted now, keeps a session ticket for later.
    const beforeDrop = await handshake(r.payment.ports.inbound, oldClient, r.newCa);
    expect(beforeDrop.ticket).toBeDefined();
    expect((await handshake(r.payment.ports.inbound, oldClient, r.newCa, beforeDrop.ticket)).resumed).toBe(true);
    ticket = (await handshake(r.payment.ports.inbound, oldClient, r.newCa)).ticket;
    expect(ticket).toBeDefined();

    // 4. The old CA leaves the bundles.
    await LocalCertificateAuthority.writeTrustBundle(r.caFiles.payment, [r.newCa]);
    await LocalCertificateAuthority.writeTrustBundle(r.caFiles.order, [r.newCa]);
    await loaded(r.payment, paymentLeaf, [r.newCa]);
    await loaded(r.order, orderLeaf, [r.newCa]);
    await traffic.passes(REQUESTS_PER_STEP);

    // Both sidecars serve the new-CA leaves...
    expect(await servedFingerprint(r.payment)).toBe(paymentLeaf);
    expect(await servedFingerprint(r.order)).toBe(orderLeaf);
  } finally {
    await traffic.stop();
  }
  expect(traffic.failures).toEqual([]);
  expect(traffic.ok).toBeGreaterThanOrEqual(5 * REQUESTS_PER_STEP);

  // ...and the requests of step 4 could only pass with new-CA leaves on both sides, since both
  // trust only the new CA now. Seen from outside: payment presents a leaf signed by the new CA,
  // accepts a client of the new CA, and refuses a client whose leaf the old CA signed.
  const newClient = await r.newCa.issueWorkload({ spiffeId: ORDER_ID });
  const served = (await handshake(r.payment.ports.inbound, newClient, r.newCa)).peer!;
  expect(served.verify(new X509Certificate(r.newCa.certPem).publicKey)).toBe(true);
  expect(served.fingerprint256).toBe(fingerprint(leafPem(r.paymentFiles)));
  await expect(handshake(r.payment.ports.inbound, oldClient, r.newCa)).rejects.toThrow();
  // Nor can it come back by resuming the session of before: the reloaded context has new ticket
  // keys, so the resumption falls back to a full handshake, which refuses the old-CA leaf.
  await expect(handshake(r.payment.ports.inbound, oldClient, r.newCa, ticket)).rejects.toThrow();
});

test('negative control: without a bundle (each sidecar trusts only its own ca.crt) the same rotation fails requests', async () => {
  const r = await start(false);
  const traffic = new Traffic(r.order);
  try {
    await traffic.passes(REQUESTS_PER_STEP);
    expect(traffic.failures).toEqual([]);

    // 2. The callee's leaf from the new CA; its ca.pem now names only the new CA, as the
    // Secret's ca.crt does after cert-manager reissues it.
    await r.newCa.writeWorkloadFiles(path.dirname(r.paymentFiles.certFile), { spiffeId: PAYMENT_ID, dnsNames: ['localhost'] });
    await loaded(r.payment, fingerprint(leafPem(r.paymentFiles)), [r.newCa]);
    await traffic.passes(REQUESTS_PER_STEP);

    // 3. The caller's leaf from the new CA.
    await r.newCa.writeWorkloadFiles(path.dirname(r.orderFiles.certFile), { spiffeId: ORDER_ID, dnsNames: ['localhost'] });
    await loaded(r.order, fingerprint(leafPem(r.orderFiles)), [r.newCa]);
    await traffic.passes(REQUESTS_PER_STEP);
  } finally {
    await traffic.stop();
  }
  // Between steps 2 and 3 order trusts only the old CA and payment presents a new-CA leaf: every
  // request that started after payment's reload fails (only the IN_FLIGHT ones started before
  // it may have passed).
  expect(traffic.failures.length).toBeGreaterThanOrEqual(REQUESTS_PER_STEP - IN_FLIGHT);
});

test('a CA renewed with the same key (rotationPolicy: Never) keeps verifying the leaves it issued before', async () => {
  // What cert-manager does for the CA Certificate the constructs synthesize: a renewal writes a
  // new CA certificate over the kept key; leaves are not reissued at once. Sidecars whose
  // ca.crt is the renewed certificate must still accept peers with leaves of the old one.
  const dir = tempDir('typemesh-rotation-');
  const ca = await LocalCertificateAuthority.create({ commonName: 'TypeMesh Local CA' });
  const renewed = await ca.renew();
  expect(fingerprint(renewed.certPem)).not.toBe(fingerprint(ca.certPem));
  const app = await startUpstream(echoHandler('payment'));
  // payment keeps its leaf from before the renewal; order has a leaf of the renewed CA and both
  // trust only the renewed certificate.
  const paymentFiles = await ca.writeWorkloadFiles(path.join(dir, 'payment'), { spiffeId: PAYMENT_ID, dnsNames: ['localhost'] });
  const orderFiles = await renewed.writeWorkloadFiles(path.join(dir, 'order'), { spiffeId: ORDER_ID, dnsNames: ['localhost'] });
  const trust = path.join(dir, 'trust', 'ca.pem');
  await LocalCertificateAuthority.writeTrustBundle(trust, [renewed]);
  const paymentPorts = await sidecarPorts();
  await startSidecar(dir, 'payment', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: { ...paymentFiles, caFile: trust }, appPort: app.port }));
  const order = await startSidecar(dir, 'order', workloadConfig({
    name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls: { ...orderFiles, caFile: trust }, appPort: await freePort(),
    services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }])],
  }));
  const res = await callOutbound(order, 'payment', '/pay');
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body).app).toBe('payment');
  // Control: a CA with a new key (what rotationPolicy: Always makes) does not verify the old leaf.
  const rekeyed = await LocalCertificateAuthority.create({ commonName: 'TypeMesh Local CA' });
  const oldLeaf = new X509Certificate(leafPem(paymentFiles));
  expect(oldLeaf.verify(new X509Certificate(renewed.certPem).publicKey)).toBe(true);
  expect(oldLeaf.verify(new X509Certificate(rekeyed.certPem).publicKey)).toBe(false);
});

test('a trust bundle that is empty or holds a non-CA certificate is refused and the previous trust stays', async () => {
  const dir = tempDir('typemesh-rotation-');
  const ca = await LocalCertificateAuthority.create();
  const app = await startUpstream(echoHandler('payment'));
  const paymentFiles = await ca.writeWorkloadFiles(path.join(dir, 'payment'), { spiffeId: PAYMENT_ID, dnsNames: ['localhost'] });
  const orderFiles = await ca.writeWorkloadFiles(path.join(dir, 'order'), { spiffeId: ORDER_ID, dnsNames: ['localhost'] });
  const trust = path.join(dir, 'trust', 'ca-bundle.pem');
  await LocalCertificateAuthority.writeTrustBundle(trust, [ca]);
  const paymentPorts = await sidecarPorts();
  await startSidecar(dir, 'payment', workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: paymentPorts, tls: paymentFiles, appPort: app.port }));
  const order = await startSidecar(dir, 'order', workloadConfig({
    name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls: { ...orderFiles, caFile: trust }, appPort: await freePort(),
    services: [paymentService([{ name: 'v1', endpoints: [paymentPorts.inbound] }], { connectionPool: { maxRequestsPerConnection: 1 } })],
  }));
  expect((await callOutbound(order, 'payment', '/pay')).status).toBe(200);

  // An empty ConfigMap key (a trust-manager Bundle whose sources are all missing).
  const { writeFileSync, renameSync } = await import('node:fs');
  const replace = (content: string): void => {
    writeFileSync(`${trust}.tmp`, content);
    renameSync(`${trust}.tmp`, trust);
  };
  replace('');
  await order.waitForLog('holds no PEM certificate', 10_000);
  expect((await callOutbound(order, 'payment', '/pay')).status).toBe(200);

  // A leaf where a CA belongs.
  replace(ca.certPem + leafPem(paymentFiles));
  await order.waitForLog('is not a CA certificate', 10_000);
  expect((await callOutbound(order, 'payment', '/pay')).status).toBe(200);
});
