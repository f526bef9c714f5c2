/**
 * Authorization path tricks, sent byte for byte over mTLS with order's identity (a pod that
 * holds a valid certificate). payment's policy: DENY /admin and /admin/* for everyone;
 * ALLOW order to POST /process; ALLOW order to GET anything else. So:
 *
 * - a GET that an app would read as /admin must be refused, and the app must see nothing;
 * - a POST must reach the app only as exactly /process (the path the proxy judged is the
 *   path the app gets), or not at all.
 *
 * Targets that an app folds into /admin (case, `;params`, a trailing dot, encoded
 * whitespace: Tomcat, Spring, IIS and others do) are included: the issue asks that such
 * folding be available for deny rules, and an ALLOW on exact paths must not be widened by
 * them either.
 */
import { AppEvent, describeSecurity, httpRequest, PORTS, statuses, usePodFixture } from './pod-fixture';

/** GET targets that mean /admin (or something under it) to some app. */
const ADMIN_IN_DISGUISE = [
  '/admin', '/admin/', '/admin/users', '//admin', '///admin/users', '/./admin', '/x/../admin', '/x/./../admin/users',
  '/%2e%2e/admin', '/%2e/admin', '/.%2e/admin', '/%2E%2E/admin', '/%61dmin', '/%61%64%6d%69%6e/users',
  '/%2Fadmin', '/x%2F..%2Fadmin', '/x/..%2Fadmin', '/admin%2Fusers', '/admin%00', '/admin%00.json', '/x/%2e%2e/admin',
  '/admin;jsessionid=1', '/admin;/users', '/x/..;/admin', '/admin/..;/admin', '/;x/admin',
  '/ADMIN', '/Admin/users', '/aDmIn',
  '/admin.', '/admin./users', '/admin%20', '/admin%09', '/admin%2e',
  'http://payment/admin', 'http://payment:8080/admin/users', 'https://payment/admin',
  '/admin#', '/admin#x', '/x#/../admin', '/admin?x=1', '/admin/?', '/admin?/../public',
  '/x\\..\\admin', '/admin\\users', '/%5cadmin',
];

/** POST targets that try to pass the ALLOW on exactly /process while meaning something else. */
const PROCESS_IN_DISGUISE = [
  '/process/../admin', '/process/..;/admin', '/process/%2e%2e/admin', '/process%2F..%2Fadmin', '/process/..%2fadmin',
  '/process/./../admin', '//process/../admin', '/process#/../admin', '/process/x/../../admin',
  '/PROCESS', '/Process', '/process/', '/process;x', '/process;/../admin', '/process.', '/process%20', '/process%00',
  'http://payment/process/../admin', 'http://payment/PROCESS', '/process\\..\\admin', '/process/%2e%2e%2fadmin',
];

/** POST targets that are /process written differently: allowed or refused, but only ever /process at the app. */
// A query is the app's business: `/process?/../admin` is /process with a query.
const PROCESS_SPELLED_OTHERWISE = ['//process', '/./process', '/x/../process', '/%70rocess', '/process?x=1', '/process?/../admin', 'http://payment/process'];

function pathOf(url: string | undefined): string {
  const u = url ?? '';
  const q = u.indexOf('?');
  return q >= 0 ? u.slice(0, q) : u;
}

describeSecurity('authorization path tricks over mTLS from the allowed peer', () => {
  const fx = usePodFixture();

  async function sendAsPeer(method: string, target: string): Promise<{ codes: number[]; seen: AppEvent[] }> {
    const mark = fx().target.events.length;
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest(method, target, { host: 'payment', connection: 'close' }, method === 'POST' ? '{}' : ''), { tls: fx().peerIdentity() });
    // The answer came back (or the connection closed): anything forwarded has reached the app by now.
    expect(r.closedBy).toBe('peer');
    return { codes: statuses(r.data), seen: fx().target.requestsSince(mark).filter((e) => e.headers?.['x-suite-normal-client'] === undefined) };
  }

  test('controls: order may GET /public and POST /process, and may not GET /admin', async () => {
    expect((await sendAsPeer('GET', '/public')).codes).toEqual([200]);
    expect((await sendAsPeer('POST', '/process')).codes).toEqual([200]);
    const denied = await sendAsPeer('GET', '/admin');
    expect(denied.codes).toEqual([403]);
    expect(denied.seen).toEqual([]);
  });

  describe('DENY /admin holds for every spelling of /admin', () => {
    test.each(ADMIN_IN_DISGUISE)('GET %s is refused and reaches no app', async (target) => {
      const { codes, seen } = await sendAsPeer('GET', target);
      expect(seen.map((e) => e.url)).toEqual([]);
      expect(codes).toHaveLength(1);
      expect(codes[0]).toBeGreaterThanOrEqual(400);
      expect(codes[0]).toBeLessThan(500);
    });
  });

  describe('ALLOW POST /process is not widened', () => {
    test.each(PROCESS_IN_DISGUISE)('POST %s is refused and reaches no app', async (target) => {
      const { codes, seen } = await sendAsPeer('POST', target);
      expect(seen.map((e) => e.url)).toEqual([]);
      expect(codes).toHaveLength(1);
      expect(codes[0]).toBeGreaterThanOrEqual(400);
      expect(codes[0]).toBeLessThan(500);
    });

    test.each(PROCESS_SPELLED_OTHERWISE)('POST %s reaches the app as /process or not at all', async (target) => {
      const { codes, seen } = await sendAsPeer('POST', target);
      expect(codes).toHaveLength(1);
      expect(seen.map((e) => pathOf(e.url)).filter((p) => p !== '/process')).toEqual([]);
      // Answered 200 exactly when the app got it.
      expect(seen.length).toBe(codes[0] === 200 ? 1 : 0);
    });
  });

  test('after all the tricks the normal client is still served', async () => {
    await fx().normalCall();
    await fx().expectSidecarAlive();
  });
});

describeSecurity('authorization method tricks over mTLS from the allowed peer', () => {
  const fx = usePodFixture();

  /** No DELETE, in any spelling, reached the app since mark. */
  function deletesSince(mark: number): AppEvent[] {
    return fx().target.requestsSince(mark).filter((e) => e.method?.toUpperCase() === 'DELETE');
  }

  test('controls: order may PUT on /orders/1 (HTTP/1.1 and HTTP/2), and DELETE is denied (403)', async () => {
    const put = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('PUT', '/orders/1', { host: 'payment', connection: 'close' }, '{}'), { tls: fx().peerIdentity() });
    expect(statuses(put.data)).toEqual([200]);
    const put2 = await fx().peerRogue.h2({ host: fx().target.ip, port: PORTS.inbound, tls: fx().peerIdentity(), headers: { ':method': 'PUT', ':path': '/orders/1', ':authority': 'payment', ':scheme': 'https' }, timeoutMs: 5000 });
    expect(put2.status).toBe(200);
    const mark = fx().target.events.length;
    const del = await fx().peerRogue.h2({ host: fx().target.ip, port: PORTS.inbound, tls: fx().peerIdentity(), headers: { ':method': 'DELETE', ':path': '/orders/1', ':authority': 'payment', ':scheme': 'https' }, timeoutMs: 5000 });
    expect(del.status).toBe(403);
    expect(deletesSince(mark)).toEqual([]);
  });

  test.each(['delete', 'Delete', 'DELETE ', ' DELETE', 'DEL\tETE'])('HTTP/2 :method %j is refused and no DELETE reaches the app', async (method) => {
    const mark = fx().target.events.length;
    const r = await fx().peerRogue.h2({ host: fx().target.ip, port: PORTS.inbound, tls: fx().peerIdentity(), headers: { ':method': method, ':path': '/orders/1', ':authority': 'payment', ':scheme': 'https' }, timeoutMs: 5000 });
    // Refused with a status, or the stream/session reset: never served.
    if (r.status !== undefined) expect(r.status).toBeGreaterThanOrEqual(400);
    else expect(r.error).toBeDefined();
    await fx().normalCall();
    expect(deletesSince(mark)).toEqual([]);
  });

  test.each(['delete', 'Delete'])('HTTP/1.1 method %s is refused and no DELETE reaches the app', async (method) => {
    const mark = fx().target.events.length;
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest(method, '/orders/1', { host: 'payment', connection: 'close' }), { tls: fx().peerIdentity() });
    expect(statuses(r.data).filter((c) => c < 400)).toEqual([]);
    await fx().normalCall();
    expect(deletesSince(mark)).toEqual([]);
  });
});
