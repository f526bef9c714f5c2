/**
 * Oversized request heads and header floods against each listener: the sidecar must answer
 * 431 (or 400/414) and close, forward nothing, and keep serving everyone else. Heads larger
 * than the sidecar's limit (MAX_HEADER_BYTES, 60 KiB, as Envoy's default) come over mTLS
 * from the allowed peer (so only the size can be the reason), in plaintext to the admin port
 * from the attacker, and from the app to its own outbound listener.
 */
import { MAX_HEADER_BYTES } from '../../src/proxy-image/sidecar';
import { describeSecurity, httpRequest, PORTS, statuses, usePodFixture } from './pod-fixture';

const BIG = 'a'.repeat(MAX_HEADER_BYTES + 10 * 1024);

/** n small headers. */
function flood(n: number): Array<[string, string]> {
  return Array.from({ length: n }, (_, i) => [`x-flood-${i}`, 'v'] as [string, string]);
}

describeSecurity('oversized heads and header floods', () => {
  const fx = usePodFixture();

  function expectTooLarge(codes: number[], closedBy: string): void {
    expect(codes).toHaveLength(1);
    expect([400, 413, 414, 431]).toContain(codes[0]);
    expect(closedBy).toBe('peer');
  }

  test('inbound (mTLS): a header value beyond the limit is answered 431 and reaches no app', async () => {
    const mark = fx().mark();
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', { 'host': 'payment', 'x-big': BIG, 'connection': 'close' }), { tls: fx().peerIdentity() });
    expect(statuses(r.data)).toEqual([431]);
    expect(r.closedBy).toBe('peer');
    await fx().expectAppsUntouched(mark);
  });

  test('inbound (mTLS): a request-target beyond the limit is refused and reaches no app', async () => {
    const mark = fx().mark();
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', `/public?${BIG}`, { host: 'payment', connection: 'close' }), { tls: fx().peerIdentity() });
    expectTooLarge(statuses(r.data), r.closedBy);
    await fx().expectAppsUntouched(mark);
  });

  test('inbound (mTLS): thousands of small headers beyond the limit are refused and reach no app', async () => {
    const mark = fx().mark();
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', [['host', 'payment'], ...flood(8000), ['connection', 'close']]), { tls: fx().peerIdentity() });
    expectTooLarge(statuses(r.data), r.closedBy);
    await fx().expectAppsUntouched(mark);
  });

  test('inbound (mTLS): a flood of headers within the size limit is served whole or refused, never truncated', async () => {
    const mark = fx().target.events.length;
    // 2500 headers: more than Node's default maxHeadersCount (2000), well under 60 KiB.
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', [['host', 'payment'], ...flood(2500), ['x-last', 'seen'], ['connection', 'close']]), { tls: fx().peerIdentity() });
    const codes = statuses(r.data);
    expect(codes).toHaveLength(1);
    const seen = fx().target.requestsSince(mark).filter((e) => e.url === '/public');
    if (codes[0] === 200) {
      // Forwarded: then every header, the last one included (a dropped header could be the one a DENY rule matches).
      expect(seen).toHaveLength(1);
      expect(seen[0].headers?.['x-last']).toBe('seen');
    } else {
      expect(codes[0]).toBeGreaterThanOrEqual(400);
      expect(seen).toEqual([]);
    }
    await fx().normalCall();
  });

  test('inbound (mTLS): 20 oversized heads at once leave the normal client served', async () => {
    const mark = fx().mark();
    const attacks = Array.from({ length: 20 }, () => fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', { 'host': 'payment', 'x-big': BIG }), { tls: fx().peerIdentity() }));
    await fx().normalCall();
    const results = await Promise.all(attacks);
    for (const r of results) expect(statuses(r.data).filter((c) => c < 400)).toEqual([]);
    await fx().expectAppsUntouched(mark);
  });

  test('admin (plaintext from the pod network): an oversized head is answered 431', async () => {
    const r = await fx().attacker.send(fx().target.ip, PORTS.admin, httpRequest('GET', '/healthz/ready', { 'host': fx().target.ip, 'x-big': BIG, 'connection': 'close' }));
    expectTooLarge(statuses(r.data), r.closedBy);
    await fx().expectSidecarAlive();
  });

  test('outbound (from the app): an oversized head is answered 431 and reaches no peer', async () => {
    const mark = fx().mark();
    const r = await fx().podApp.send('127.0.0.1', PORTS.outbound, httpRequest('POST', '/process', { 'host': 'order', 'x-big': BIG, 'connection': 'close' }, '{}'));
    expect(statuses(r.data)).toEqual([431]);
    expect(r.closedBy).toBe('peer');
    await fx().expectAppsUntouched(mark);
  });
});
