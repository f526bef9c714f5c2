/**
 * Bypasses: ways around the sidecar's inbound checks from another namespace on the pod
 * network (an attacker with no certificate): the outbound listener used as a proxy, the
 * admin port, IPv6, and app ports that were not declared. Each attack must be refused
 * (an error status, a closed connection, or nothing to connect to), must reach neither
 * app, and must leave the normal client served.
 */
import { describeSecurity, expectRefused, httpRequest, PORTS, statuses, usePodFixture } from './pod-fixture';

describeSecurity('bypassing the sidecar from the pod network', () => {
  const fx = usePodFixture();

  describe('the outbound listener (POD_IP:15001) is no proxy for outsiders', () => {
    test('POST /process with Host: order does not reach the peer with payment\'s identity', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip, PORTS.outbound, httpRequest('POST', '/process', { host: 'order', connection: 'close' }, '{"amount":1000}'));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });

    test('POST /process in absolute form (http://order/process) does not reach the peer either', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip, PORTS.outbound, httpRequest('POST', 'http://order/process', { host: 'order', connection: 'close' }, '{}'));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });

    test('CONNECT to the pod\'s own app on loopback opens no tunnel', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip, PORTS.outbound, [
        { data: `CONNECT 127.0.0.1:${PORTS.app} HTTP/1.1\r\nhost: 127.0.0.1:${PORTS.app}\r\n\r\n` },
        { data: httpRequest('GET', '/admin/secrets', { host: 'localhost', connection: 'close' }), delayMs: 300 },
      ]);
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });

    test('CONNECT to an arbitrary host opens no tunnel', async () => {
      // The peer's admin port: a host that exists and accepts, so an open proxy would say 200.
      const hostPort = `${fx().peer.ip}:${PORTS.admin}`;
      const r = await fx().attacker.send(fx().target.ip, PORTS.outbound, `CONNECT ${hostPort} HTTP/1.1\r\nhost: ${hostPort}\r\n\r\n`);
      expectRefused(r);
      await fx().normalCall();
    });

    test('over IPv6, the outbound listener is no proxy either', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip6, PORTS.outbound, httpRequest('POST', '/process', { host: 'order', connection: 'close' }, '{}'));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });
  });

  describe('the admin port serves probes and readiness, not the config or the app', () => {
    test('control: the pod network gets readiness and metrics (what kubelet and Prometheus need)', async () => {
      for (const target of ['/healthz/ready', '/metrics']) {
        const r = await fx().attacker.send(fx().target.ip, PORTS.admin, httpRequest('GET', target, { host: fx().target.ip, connection: 'close' }));
        expect(statuses(r.data)).toEqual([200]);
      }
    });

    test('control: inside the pod, over loopback, /config_dump is served (the pod is not protected from itself)', async () => {
      const r = await fx().podApp.send('127.0.0.1', PORTS.admin, httpRequest('GET', '/config_dump', { host: 'localhost', connection: 'close' }));
      expect(statuses(r.data)).toEqual([200]);
      expect(r.data).toContain('order-may-process');
    });

    test('/config_dump is not served to the pod network', async () => {
      const r = await fx().attacker.send(fx().target.ip, PORTS.admin, httpRequest('GET', '/config_dump', { host: fx().target.ip, connection: 'close' }));
      expectRefused(r);
      // Whatever the refusal, it must not leak the config (the policy, the services, the key path).
      expect(r.data).not.toContain('order-may-process');
      expect(r.data).not.toContain('keyFile');
    });

    test('/clusters is not served to the pod network', async () => {
      const r = await fx().attacker.send(fx().target.ip, PORTS.admin, httpRequest('GET', '/clusters', { host: fx().target.ip, connection: 'close' }));
      expectRefused(r);
      expect(r.data).not.toContain(fx().peer.ip);
    });

    test('/app-health/<port>/readyz?path= does not GET an arbitrary app path', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip, PORTS.admin, httpRequest('GET', '/app-health/http/readyz?path=/admin/delete-everything%3Fconfirm=yes', { host: fx().target.ip, connection: 'close' }));
      // A refusal, or the answer of a declared probe: either way, never the attacker's path.
      expect(r.closedBy === 'peer' || statuses(r.data).length > 0).toBe(true);
      await fx().normalCall();
      expect(fx().target.requestsSince(mark.target).filter((e) => e.url!.includes('admin'))).toEqual([]);
    });

    test('/app-health with another port name or a relative path reaches nothing new', async () => {
      const mark = fx().mark();
      for (const target of ['/app-health/http/livez?path=admin/delete-everything', '/app-health/http/readyz?path=//admin/x', `/app-health/${PORTS.undeclared}/readyz`]) {
        const r = await fx().attacker.send(fx().target.ip, PORTS.admin, httpRequest('GET', target, { host: fx().target.ip, connection: 'close' }));
        expect(r.closedBy === 'peer' || statuses(r.data).length > 0).toBe(true);
      }
      await fx().normalCall();
      expect(fx().target.requestsSince(mark.target).filter((e) => e.url!.includes('admin') || e.port === PORTS.undeclared)).toEqual([]);
    });
  });

  describe('every inbound port and family goes through the sidecar', () => {
    test('IPv6 to the app port does not reach the app', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip6, PORTS.app, httpRequest('GET', '/admin/secrets', { host: 'payment', connection: 'close' }));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });

    test('the undeclared port 9999 (IPv4) does not reach the app', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip, PORTS.undeclared, httpRequest('GET', '/admin/secrets', { host: 'payment', connection: 'close' }));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });

    test('the undeclared port 9999 over IPv6 does not reach the app', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip6, PORTS.undeclared, httpRequest('GET', '/admin/secrets', { host: 'payment', connection: 'close' }));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });

    test('plaintext to the app port (IPv4) is captured and refused under STRICT', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip, PORTS.app, httpRequest('GET', '/admin/secrets', { host: 'payment', connection: 'close' }));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });

    test('plaintext to the inbound listener itself is refused under STRICT', async () => {
      const mark = fx().mark();
      const r = await fx().attacker.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'payment', connection: 'close' }, '{}'));
      expectRefused(r);
      await fx().expectAppsUntouched(mark);
    });
  });
});
