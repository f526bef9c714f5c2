/**
 * The Upgrade splice: an allowed request that carries `Upgrade: websocket` to an app that
 * does not speak WebSocket (most apps: Node answers it as plain HTTP when it has no upgrade
 * handler). If the sidecar splices the connection to the app once it has admitted that
 * request, every later request on the connection reaches the app unchecked. Sent over mTLS
 * with order's identity, so the first request is allowed.
 */
import { describeSecurity, httpRequest, PORTS, statuses, TARGET_ID, usePodFixture } from './pod-fixture';

const UPGRADE = { 'host': 'payment', 'connection': 'Upgrade', 'upgrade': 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };

describeSecurity('the Upgrade splice', () => {
  const fx = usePodFixture();

  async function upgradeThen(second: string): Promise<{ codes: number[]; urls: string[]; xfcc: unknown[] }> {
    const mark = fx().target.events.length;
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, [
      { data: httpRequest('GET', '/public', UPGRADE) },
      // After the app's answer to the first request is back.
      { data: second, delayMs: 400 },
    ], { tls: fx().peerIdentity(), timeoutMs: 3000 });
    await fx().normalCall();
    const seen = fx().target.requestsSince(mark).filter((e) => e.headers?.['x-suite-normal-client'] === undefined);
    return { codes: statuses(r.data), urls: seen.map((e) => e.url!), xfcc: seen.map((e) => e.headers?.['x-forwarded-client-cert']) };
  }

  test('a denied path after the upgrade request does not reach the app', async () => {
    const { urls } = await upgradeThen(httpRequest('GET', '/admin/spliced', { host: 'payment', connection: 'close' }));
    expect(urls.filter((u) => u.startsWith('/admin'))).toEqual([]);
  });

  test('a denied method after the upgrade request does not reach the app', async () => {
    const mark = fx().target.events.length;
    const { urls } = await upgradeThen(httpRequest('DELETE', '/process', { host: 'payment', connection: 'close' }));
    expect(urls.filter((u) => u === '/process')).toEqual([]);
    expect(fx().target.requestsSince(mark).filter((e) => e.method === 'DELETE')).toEqual([]);
  });

  test('a forged x-forwarded-client-cert after the upgrade request does not reach the app', async () => {
    const { xfcc } = await upgradeThen(httpRequest('GET', '/public', { 'host': 'payment', 'x-forwarded-client-cert': `By=${TARGET_ID};URI=spiffe://cluster.local/ns/shop/sa/admin-console`, 'connection': 'close' }));
    expect(xfcc.filter((v) => String(v).includes('admin-console'))).toEqual([]);
  });

  test('the upgrade request itself is still allowed and answered (the control)', async () => {
    const mark = fx().target.events.length;
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', UPGRADE), { tls: fx().peerIdentity(), timeoutMs: 2000 });
    // The app did not switch protocols; whatever the sidecar answers, it is not a 101.
    expect(statuses(r.data)).not.toContain(101);
    expect(fx().target.requestsSince(mark).some((e) => e.url === '/public')).toBe(true);
  });

  test('outbound: an Upgrade to a host outside the mesh carries no proxy, hop-by-hop or mesh-internal header', async () => {
    // The app's own undeclared port stands in for a host outside the mesh (passthrough).
    const mark = fx().target.events.length;
    await fx().podApp.send('127.0.0.1', PORTS.outbound, httpRequest('GET', '/ws', {
      'host': `127.0.0.1:${PORTS.undeclared}`, 'connection': 'Upgrade, keep-alive, te, x-hop', 'upgrade': 'websocket',
      'proxy-authorization': 'Basic dXNlcjpzZWNyZXQ=', 'x-typemesh-source': 'spiffe://cluster.local/ns/shop/sa/admin-console',
      'keep-alive': 'timeout=5', 'te': 'trailers', 'x-hop': 'named in Connection', 'x_debug': '1',
    }), { timeoutMs: 3000 });
    const seen = fx().target.requestsSince(mark).filter((e) => e.port === PORTS.undeclared);
    // It went through (or this test would prove nothing)...
    expect(seen).toHaveLength(1);
    // ...without the headers meant for the proxy, for one hop, or for the mesh only.
    const names = Object.keys(seen[0].headers ?? {});
    expect(names.filter((h) => ['proxy-authorization', 'x-typemesh-source', 'keep-alive', 'te', 'x-hop', 'x_debug'].includes(h))).toEqual([]);
  });

  test('a denied upgrade request is refused with 403 and never reaches the app', async () => {
    const mark = fx().mark();
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/admin/ws', UPGRADE), { tls: fx().peerIdentity(), timeoutMs: 2000 });
    expect(statuses(r.data)).toEqual([403]);
    await fx().expectAppsUntouched(mark);
  });
});
