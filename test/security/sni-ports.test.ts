/**
 * The SNI names the app port: a calling sidecar sends `outbound_.<port>_._.<service>.<ns>` so
 * the inbound sidecar knows which of the workload's ports the call was for (target-port.ts).
 * An authenticated peer controls its SNI: naming a port the workload does not declare (its
 * undeclared 9999, or the sidecar's own loopback listeners: outbound 15001 would be an open
 * proxy with payment's identity, admin 15020 serves the config dump to loopback, inbound
 * 15006 would loop) must reach none of them. Sent over mTLS with order's valid identity.
 */
import type { AgentTls } from './netns-agent';
import { describeSecurity, httpRequest, PORTS, statuses, usePodFixture } from './pod-fixture';

describeSecurity('ports named in the SNI by an authenticated peer', () => {
  const fx = usePodFixture();

  function naming(port: number): AgentTls {
    return { ...fx().peerIdentity(), servername: `outbound_.${port}_._.payment.shop` };
  }

  test('control: the declared app port named in the SNI is served', async () => {
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'payment', connection: 'close' }, '{}'), { tls: naming(PORTS.app) });
    expect(statuses(r.data)).toEqual([200]);
  });

  // In these, what the default app port would allow is allowed (order may GET /public): only
  // reaching the named port itself would be the bypass.
  test('the undeclared app port 9999 named in the SNI is not reached', async () => {
    const mark = fx().target.events.length;
    await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', { host: 'payment', connection: 'close' }), { tls: naming(PORTS.undeclared) });
    await fx().normalCall();
    expect(fx().target.events.slice(mark).filter((e) => e.port === PORTS.undeclared)).toEqual([]);
  });

  test('the outbound listener named in the SNI is no proxy to the peer with payment\'s identity', async () => {
    const mark = fx().mark();
    await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'order', connection: 'close' }, '{}'), { tls: naming(PORTS.outbound) });
    await fx().normalCall();
    expect(fx().peer.foreignEventsSince(mark.peer)).toEqual([]);
  });

  test('the admin listener named in the SNI does not serve the loopback-only config dump', async () => {
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/config_dump', { host: 'localhost', connection: 'close' }), { tls: naming(PORTS.admin) });
    expect(r.data).not.toContain('order-may-process');
    expect(r.data).not.toContain('keyFile');
  });

  test('the inbound listener named in the SNI does not loop', async () => {
    const before = await fx().targetCounter('typemesh_requests_total');
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('GET', '/public', { host: 'payment', connection: 'close' }), { tls: naming(PORTS.inbound), timeoutMs: 4000 });
    expect(r.closedBy).not.toBe('timeout');
    expect((await fx().targetCounter('typemesh_requests_total')) - before).toBeLessThanOrEqual(3);
    await fx().expectSidecarAlive();
    await fx().normalCall();
  });
});
