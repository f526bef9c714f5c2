/**
 * The passthrough loop guard: a request to the outbound listener whose Host is the sidecar's
 * own outbound address, in any spelling, must not make the sidecar call itself. A loop
 * outlives the client (each hop is a new request) until the sidecar dies. The requests come
 * from the app (inside the pod: only the app can reach the outbound listener), once straight
 * to 127.0.0.1:15001 and once through the interception rules. Bounded: each form is sent
 * once, and the sidecar's request counter must stay small.
 */
import { describeSecurity, httpRequest, PORTS, sleep, statuses, usePodFixture } from './pod-fixture';

/** a.b.c.d as one 32-bit number. */
function asInteger(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

describeSecurity('the passthrough loop guard', () => {
  const fx = usePodFixture();

  function ownAddressForms(): string[] {
    const [a, b, c, d] = fx().target.ip.split('.').map(Number);
    const p = PORTS.outbound;
    return [
      `127.0.0.1:${p}`, `localhost:${p}`, `LOCALHOST:${p}`, `127.0.0.1.:${p}`,
      `2130706433:${p}`, `127.1:${p}`, `127.0.1:${p}`, `0x7f.0.0.1:${p}`, `0x7f000001:${p}`, `0177.0.0.1:${p}`, `017700000001:${p}`, `127.0.0.01:${p}`,
      `[::ffff:127.0.0.1]:${p}`, `[::ffff:7f00:1]:${p}`, `[0:0:0:0:0:ffff:127.0.0.1]:${p}`, `[::1]:${p}`, `[0::1]:${p}`,
      `0.0.0.0:${p}`, `0:${p}`, `[::]:${p}`, `127.0.22529:${p}`, `127.88.0.1:${p}`,
      `${fx().target.ip}:${p}`, `${asInteger(fx().target.ip)}:${p}`, `${a}.${b}.${c * 256 + d}:${p}`, `${a}.${(b << 16) + (c << 8) + d}:${p}`,
      `[::ffff:${fx().target.ip}]:${p}`, `[${fx().target.ip6}]:${p}`,
    ];
  }

  async function requestsTotal(): Promise<number> {
    return fx().targetCounter('typemesh_requests_total');
  }

  test('control: the counter counts the app\'s passthrough requests', async () => {
    const before = await requestsTotal();
    const r = await fx().podApp.send('127.0.0.1', PORTS.outbound, httpRequest('GET', '/', { host: `${fx().peer.ip}:${PORTS.admin}`, connection: 'close' }));
    expect(statuses(r.data)).toHaveLength(1);
    expect(await requestsTotal()).toBeGreaterThan(before);
  });

  test('every spelling of the sidecar\'s own outbound address: no loop, a clean answer, the sidecar unharmed', async () => {
    const forms = ownAddressForms();
    const before = await requestsTotal();
    const answers: Record<string, string> = {};
    // All at once, so a sidecar that loops fails this test in seconds, not forms x timeout.
    await Promise.all(forms.map(async (host) => {
      const r = await fx().podApp.send('127.0.0.1', PORTS.outbound, httpRequest('GET', '/loop', { host, connection: 'close' }), { timeoutMs: 4000 });
      answers[host] = r.closedBy === 'timeout' ? 'no answer' : String(statuses(r.data)[0] ?? 'closed');
    }));
    // Let a loop, if one started, run up its count.
    await sleep(1000);
    const grown = (await requestsTotal()) - before;
    // Every form was answered (an error status or a close), none hung...
    expect(Object.entries(answers).filter(([, v]) => v === 'no answer')).toEqual([]);
    // ...none was served as if it were a real upstream...
    expect(Object.entries(answers).filter(([, v]) => v.startsWith('2'))).toEqual([]);
    // ...and the sidecar handled about one request per form, not a loop's thousands.
    expect(grown).toBeLessThanOrEqual(3 * forms.length);
    await fx().expectSidecarAlive();
    await fx().normalCall();
  });

  test('the same in absolute form (GET http://<own address>/)', async () => {
    const before = await requestsTotal();
    for (const host of ['2130706433', '127.1', '[::ffff:127.0.0.1]', '0x7f.0.0.1']) {
      const r = await fx().podApp.send('127.0.0.1', PORTS.outbound, httpRequest('GET', `http://${host}:${PORTS.outbound}/loop`, { host: `${host}:${PORTS.outbound}`, connection: 'close' }), { timeoutMs: 4000 });
      expect(r.closedBy).not.toBe('timeout');
      expect(statuses(r.data).filter((c) => c < 400)).toEqual([]);
    }
    await sleep(1000);
    expect((await requestsTotal()) - before).toBeLessThanOrEqual(12);
    await fx().expectSidecarAlive();
  });

  test('the same through the interception rules (the app calls a captured address)', async () => {
    const before = await requestsTotal();
    // Port 8080 is a mesh service port for payment, so its outbound TCP to it is captured.
    for (const host of ['2130706433', '127.1', '[::ffff:127.0.0.1]']) {
      const r = await fx().podApp.send('10.96.0.10', PORTS.app, httpRequest('GET', '/loop', { host: `${host}:${PORTS.outbound}`, connection: 'close' }), { timeoutMs: 4000 });
      expect(r.closedBy).not.toBe('timeout');
      expect(statuses(r.data).filter((c) => c < 400)).toEqual([]);
    }
    await sleep(1000);
    expect((await requestsTotal()) - before).toBeLessThanOrEqual(9);
    await fx().expectSidecarAlive();
    await fx().normalCall();
  });
});
