/**
 * Identity spoofing by headers: the app learns who called from x-forwarded-client-cert,
 * which only the sidecar may write, and x-typemesh-source is mesh-internal. The attacked pod
 * runs PERMISSIVE here, so plaintext from the pod network reaches the sidecar (as during a
 * migration to mTLS): a forged header must neither pass authorization nor reach the app.
 */
import { describeSecurity, expectRefused, httpRequest, PEER_ID, PORTS, statuses, TARGET_ID, usePodFixture } from './pod-fixture';

const FORGED_ID = 'spiffe://cluster.local/ns/shop/sa/admin-console';
const FORGED_XFCC = `By=${TARGET_ID};URI=${PEER_ID}`;

describeSecurity('identity spoofing by headers (PERMISSIVE)', () => {
  const fx = usePodFixture({ mode: 'PERMISSIVE' });

  /** Every identity header the app saw since mark, on requests that are not the normal client's. */
  function identityHeadersSince(mark: number): string[] {
    return fx().target.foreignEventsSince(mark).filter((e) => e.type === 'request')
      .flatMap((e) => [e.headers?.['x-forwarded-client-cert'], e.headers?.['x-typemesh-source']].flat())
      .filter((v): v is string => typeof v === 'string');
  }

  test('plaintext POST /process with a forged x-forwarded-client-cert naming order is refused', async () => {
    const mark = fx().mark();
    const r = await fx().attacker.send(fx().target.ip, PORTS.app, httpRequest('POST', '/process', { 'host': 'payment', 'x-forwarded-client-cert': FORGED_XFCC, 'connection': 'close' }, '{}'));
    expectRefused(r);
    expect(statuses(r.data)).toEqual([403]);
    await fx().expectAppsUntouched(mark);
  });

  test('plaintext POST /process with a forged x-typemesh-source naming order is refused', async () => {
    const mark = fx().mark();
    const r = await fx().attacker.send(fx().target.ip, PORTS.app, httpRequest('POST', '/process', { 'host': 'payment', 'x-typemesh-source': PEER_ID, 'connection': 'close' }, '{}'));
    expectRefused(r);
    await fx().expectAppsUntouched(mark);
  });

  test('plaintext to a path anyone may read: the forged identity headers never reach the app', async () => {
    const mark = fx().mark();
    const r = await fx().attacker.send(fx().target.ip, PORTS.app, httpRequest('GET', '/public', {
      'host': 'payment', 'x-forwarded-client-cert': FORGED_XFCC, 'x-typemesh-source': PEER_ID, 'connection': 'close',
    }));
    expect(statuses(r.data)).toEqual([200]);
    await fx().normalCall();
    expect(fx().target.requestsSince(mark.target).some((e) => e.url === '/public')).toBe(true);
    expect(identityHeadersSince(mark.target)).toEqual([]);
  });

  test('the same over an Upgrade request: the forged identity headers never reach the app', async () => {
    const mark = fx().mark();
    await fx().attacker.send(fx().target.ip, PORTS.app, httpRequest('GET', '/public', {
      'host': 'payment', 'connection': 'Upgrade', 'upgrade': 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'x-forwarded-client-cert': FORGED_XFCC, 'x-typemesh-source': PEER_ID,
    }), { timeoutMs: 2000 });
    await fx().normalCall();
    // It was allowed and forwarded (or this test would prove nothing)...
    expect(fx().target.requestsSince(mark.target).some((e) => e.url === '/public' && e.headers?.upgrade === 'websocket')).toBe(true);
    // ...without the forged headers.
    expect(identityHeadersSince(mark.target)).toEqual([]);
  });

  test('underscore spellings (x_forwarded_client_cert, read as X-Forwarded-Client-Cert by CGI/WSGI apps) never reach the app', async () => {
    const mark = fx().target.events.length;
    const r = await fx().attacker.send(fx().target.ip, PORTS.app, httpRequest('GET', '/public', {
      'host': 'payment', 'x_forwarded_client_cert': `URI=${PEER_ID}`, 'x_typemesh_source': PEER_ID, 'connection': 'close',
    }));
    // Refused, or forwarded without them.
    expect(statuses(r.data)).toHaveLength(1);
    await fx().normalCall();
    const names = fx().target.requestsSince(mark).flatMap((e) => Object.keys(e.headers ?? {}));
    expect(names.filter((h) => h.includes('_'))).toEqual([]);
  });

  test('over mTLS as order, a forged x-forwarded-client-cert cannot add or replace the caller', async () => {
    const mark = fx().mark();
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', {
      'host': 'payment', 'x-forwarded-client-cert': `By=${TARGET_ID};URI=${FORGED_ID}`, 'x-typemesh-source': FORGED_ID, 'connection': 'close',
    }), { tls: fx().peerIdentity() });
    expect(statuses(r.data)).toEqual([200]);
    await fx().normalCall();
    const seen = fx().target.requestsSince(mark.target).filter((e) => e.url === '/public');
    expect(seen).toHaveLength(1);
    // Exactly the sidecar's own statement of the verified peer, nothing the client wrote.
    expect(seen[0].headers?.['x-forwarded-client-cert']).toBe(`By=${TARGET_ID};URI=${PEER_ID}`);
    expect(seen[0].headers?.['x-typemesh-source']).toBeUndefined();
  });

  test('through the peer\'s outbound port, the peer app cannot claim another identity', async () => {
    const mark = fx().mark();
    // order's app calls payment through its own sidecar (captured), with forged headers.
    const r = await fx().peerApp.send(fx().target.ip, PORTS.app, httpRequest('GET', '/public', {
      'host': 'payment', 'x-forwarded-client-cert': `URI=${FORGED_ID}`, 'x-typemesh-source': FORGED_ID, 'connection': 'close',
    }), { timeoutMs: 10_000 });
    expect(statuses(r.data)).toEqual([200]);
    await fx().normalCall();
    const seen = fx().target.requestsSince(mark.target).filter((e) => e.url === '/public');
    expect(seen).toHaveLength(1);
    expect(seen[0].headers?.['x-forwarded-client-cert']).toBe(`By=${TARGET_ID};URI=${PEER_ID}`);
    expect(seen[0].headers?.['x-typemesh-source']).toBeUndefined();
  });

  test('through the peer\'s outbound port, a forged identity does not pass authorization for a denied caller', async () => {
    const mark = fx().mark();
    // order may not DELETE; claiming to be someone else in headers must not change that.
    const r = await fx().peerApp.send(fx().target.ip, PORTS.app, httpRequest('DELETE', '/process', {
      'host': 'payment', 'x-forwarded-client-cert': `URI=${FORGED_ID}`, 'x-typemesh-source': FORGED_ID, 'connection': 'close',
    }), { timeoutMs: 10_000 });
    expect(statuses(r.data)).toEqual([403]);
    await fx().expectAppsUntouched(mark);
  });
});
