/**
 * Client certificates an attacker could present to the inbound listener (STRICT), from the
 * peer pod's network position: each must fail the handshake or be refused, and nothing may
 * reach the app. The request sent is POST /process, which order's real certificate is
 * allowed to make (the control proves the same client gets 200 with it).
 */
import * as path from 'node:path';
import type { AgentTls } from './netns-agent';
import { describeSecurity, httpRequest, PEER_ID, PORTS, statuses, usePodFixture } from './pod-fixture';
import { LeafOptions, SecurityCa } from './pki';

const HOUR_MS = 60 * 60 * 1000;

describeSecurity('client certificates at the inbound listener (STRICT)', () => {
  const fx = usePodFixture();
  let otherCa: SecurityCa;
  beforeAll(async () => {
    otherCa = await SecurityCa.create('An attacker\'s own CA');
  }, 60_000);

  let n = 0;
  async function leaf(opts: LeafOptions, ca: SecurityCa = fx().ca): Promise<AgentTls> {
    const files = await ca.writeLeaf(path.join(fx().dir, `attacker-leaf-${++n}`), opts);
    // The client verifies the server against the real mesh CA whatever it presents itself.
    return { certFile: files.certFile, keyFile: files.keyFile, caFile: fx().peerTls.caFile };
  }

  async function attempt(tls: AgentTls): Promise<{ codes: number[]; closedBy: string; error?: string }> {
    const mark = fx().mark();
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'payment', connection: 'close' }, '{}'), { tls, timeoutMs: 5000 });
    await fx().expectAppsUntouched(mark);
    return { codes: statuses(r.data), closedBy: r.closedBy, error: r.error };
  }

  function expectRefused(r: { codes: number[]; closedBy: string }): void {
    expect(r.codes.filter((c) => c < 400)).toEqual([]);
    expect(r.closedBy).not.toBe('timeout');
  }

  test('control: order\'s real certificate is served', async () => {
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'payment', connection: 'close' }, '{}'), { tls: fx().peerIdentity() });
    expect(statuses(r.data)).toEqual([200]);
  });

  test('control: a fresh leaf from the mesh CA for order is served (the issuer here is sound)', async () => {
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'payment', connection: 'close' }, '{}'), { tls: await leaf({ uris: [PEER_ID] }) });
    expect(statuses(r.data)).toEqual([200]);
  });

  test('no client certificate: refused', async () => {
    expectRefused(await attempt({ caFile: fx().peerTls.caFile }));
  });

  test('order\'s SPIFFE ID from another CA: refused', async () => {
    expectRefused(await attempt(await leaf({ uris: [PEER_ID] }, otherCa)));
  });

  test('expired: refused', async () => {
    const now = Date.now();
    expectRefused(await attempt(await leaf({ uris: [PEER_ID], notBefore: new Date(now - 48 * HOUR_MS), notAfter: new Date(now - 24 * HOUR_MS) })));
  });

  test('not yet valid: refused', async () => {
    const now = Date.now();
    expectRefused(await attempt(await leaf({ uris: [PEER_ID], notBefore: new Date(now + 24 * HOUR_MS), notAfter: new Date(now + 48 * HOUR_MS) })));
  });

  test('without a SPIFFE URI (DNS name only): refused', async () => {
    expectRefused(await attempt(await leaf({ uris: [] })));
  });

  test('with order\'s path in another trust domain: refused', async () => {
    expectRefused(await attempt(await leaf({ uris: ['spiffe://evil.example/ns/shop/sa/order'] })));
  });

  test('with a URI that is not SPIFFE: refused', async () => {
    expectRefused(await attempt(await leaf({ uris: ['https://cluster.local/ns/shop/sa/order'] })));
  });

  test('with the wrong workload\'s SPIFFE ID from the mesh CA: refused by policy (403)', async () => {
    const r = await attempt(await leaf({ uris: ['spiffe://cluster.local/ns/shop/sa/intruder'] }));
    expect(r.codes).toEqual([403]);
  });

  test('with two SPIFFE URIs (order\'s and another): refused', async () => {
    expectRefused(await attempt(await leaf({ uris: ['spiffe://cluster.local/ns/shop/sa/intruder', PEER_ID] })));
  });

  test('a CA:TRUE leaf with order\'s SPIFFE ID: refused', async () => {
    expectRefused(await attempt(await leaf({ uris: [PEER_ID], isCa: true })));
  });

  test('an RSA-1024 key with order\'s SPIFFE ID: refused', async () => {
    expectRefused(await attempt(await leaf({ uris: [PEER_ID], key: 'rsa-1024' })));
  });

  test('control: an RSA-2048 key with order\'s SPIFFE ID is served (RSA itself is fine)', async () => {
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'payment', connection: 'close' }, '{}'), { tls: await leaf({ uris: [PEER_ID], key: 'rsa-2048' }) });
    expect(statuses(r.data)).toEqual([200]);
  });
});
