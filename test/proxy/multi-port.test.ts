/**
 * Two HTTP ports of one service reach their own app ports: payment's pod runs two HTTP servers
 * (each answers with its own port), declared as two app ports; order's config has one
 * outbound service per service port, both with the hosts of payment, each naming its
 * targetPort. order's app calls payment:9090 and payment:9091 through its sidecar; each port's
 * requests reach that port's server, over the mTLS connection whose SNI names the app port.
 */
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { SidecarConfigInput } from '../../src/config';
import { serviceForAuthority, targetPortOf, targetPortServerName } from '../../src/proxy-image/target-port';
import * as net from 'node:net';
import { callOutbound, cleanup, onCleanup, rawExchange, ORDER_ID, PAYMENT_ID, sidecarPorts, SidecarProcess, startClientSidecar, startSidecar, startUpstream, subset, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(60_000);

const answerPort = (port: () => number) => (_req: http.IncomingMessage, res: http.ServerResponse): void => {
  res.end(`port ${port()}`);
};

describe('two HTTP ports of one service', () => {
  let order: SidecarProcess;
  let portA: number;
  let portB: number;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    const a = await startUpstream(answerPort(() => portA));
    const b = await startUpstream(answerPort(() => portB));
    portA = a.port;
    portB = b.port;
    // Each app also accepts an Upgrade (a WebSocket-like switch) and names its port after the 101.
    for (const [server, port] of [[a.server, () => portA], [b.server, () => portB]] as const) {
      server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
        socket.end(`HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\nupgraded on port ${port()}`);
      });
    }
    const base = workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: await pki.workload('payment', PAYMENT_ID), appPort: portA });
    const payment = await startSidecar(dir, 'payment', {
      ...base,
      // The default app port is A: a peer that names no port (no SNI) gets A.
      workload: { ...base.workload, appPorts: [{ name: 'http-api', port: portA, protocol: 'http' }, { name: 'http-admin', port: portB, protocol: 'http' }] },
    } as SidecarConfigInput);
    const service = (name: string, port: number, targetPort: number): NonNullable<NonNullable<SidecarConfigInput['outbound']>['services']>[number] => ({
      name, namespace: 'shop', hosts: ['payment', 'payment.shop.svc.cluster.local'], port, targetPort,
      subsets: [subset('v1', [{ sidecar: payment }])],
      routes: [{ name: 'default', destinations: [{ subset: 'v1', weight: 100 }] }],
    });
    ({ sidecar: order } = await startClientSidecar(dir, pki, [service('payment-api', 9090, portA), service('payment-admin', 9091, portB)], {}, 'order', ORDER_ID));
  });

  afterAll(cleanup);

  test('each service port reaches its own app port', async () => {
    for (let i = 0; i < 3; i++) {
      const api = await callOutbound(order, 'payment:9090', '/');
      const admin = await callOutbound(order, 'payment.shop.svc.cluster.local:9091', '/');
      expect([api.status, api.body]).toEqual([200, `port ${portA}`]);
      expect([admin.status, admin.body]).toEqual([200, `port ${portB}`]);
    }
  });

  test('a Host without a declared port goes by host alone (the service last declared for it)', async () => {
    const r = await callOutbound(order, 'payment', '/');
    expect(r.status).toBe(200);
    expect(r.body).toBe(`port ${portB}`);
  });

  test('an Upgrade on each port reaches its own app port too', async () => {
    for (const [authority, port] of [['payment:9090', () => portA], ['payment:9091', () => portB]] as const) {
      const out = await rawExchange(order.ports.outbound, `GET /ws HTTP/1.1\r\nhost: ${authority}\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n`);
      expect(out).toMatch(/^HTTP\/1\.1 101 /);
      expect(out).toContain(`upgraded on port ${port()}`);
    }
  });
});

describe('two HTTP/2 (h2c) ports of one service', () => {
  let order: SidecarProcess;
  const ports: number[] = [];

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    for (let i = 0; i < 2; i++) {
      const sessions = new Set<http2.Http2Session>();
      const app = http2.createServer((_req, res) => res.end(`h2 port ${ports[i]}`));
      app.on('session', (s: http2.Http2Session) => {
        sessions.add(s);
        s.on('close', () => sessions.delete(s));
      });
      await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
      ports.push((app.address() as { port: number }).port);
      onCleanup(() => new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        app.close(() => resolve());
      }));
    }
    const base = workloadConfig({ name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: await pki.workload('payment', PAYMENT_ID), appPort: ports[0], appProtocol: 'http2' });
    const payment = await startSidecar(dir, 'payment', {
      ...base,
      workload: { ...base.workload, appPorts: [{ name: 'h2-a', port: ports[0], protocol: 'http2' }, { name: 'h2-b', port: ports[1], protocol: 'http2' }] },
    } as SidecarConfigInput);
    const service = (name: string, port: number, targetPort: number): NonNullable<NonNullable<SidecarConfigInput['outbound']>['services']>[number] => ({
      name, namespace: 'shop', hosts: ['payment'], port, targetPort, protocol: 'http2',
      subsets: [subset('v1', [{ sidecar: payment }])],
      routes: [{ name: 'default', destinations: [{ subset: 'v1', weight: 100 }] }],
    });
    ({ sidecar: order } = await startClientSidecar(dir, pki, [service('payment-a', 9090, ports[0]), service('payment-b', 9091, ports[1])], {}, 'order', ORDER_ID));
  });

  afterAll(cleanup);

  test('each port reaches its own h2c app over an h2 mTLS connection', async () => {
    const client = http2.connect(order.url('outbound'));
    client.on('error', () => undefined);
    try {
      const get = (authority: string): Promise<string> => new Promise((resolve, reject) => {
        const req = client.request({ ':method': 'GET', ':path': '/', ':authority': authority });
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => resolve(body));
        req.on('error', reject);
        req.end();
      });
      expect(await get('payment:9090')).toBe(`h2 port ${ports[0]}`);
      expect(await get('payment:9091')).toBe(`h2 port ${ports[1]}`);
    } finally {
      client.close();
    }
  });
});

describe('the port in the SNI and in the Host', () => {
  test('the SNI a caller sends names the port; anything else names none', () => {
    expect(targetPortOf(targetPortServerName(9090, 'payment', 'shop'))).toBe(9090);
    for (const other of [undefined, false, '', 'payment.shop.svc', 'outbound_.0_._.x.y', 'outbound_.70000_._.x.y', 'xoutbound_.9090_._.x.y'] as Array<string | false | undefined>) expect(targetPortOf(other)).toBeUndefined();
  });

  test('a Host with a port selects that port\'s service; without one, or with an unknown one, the host\'s', () => {
    const entry = (name: string): never => ({ name }) as never;
    const hosts = new Map([['payment', entry('last')], ['payment:9090', entry('api')], ['[::1]', entry('v6')], ['[::1]:9091', entry('v6-admin')]]);
    const name = (authority: string): string | undefined => (serviceForAuthority(hosts, authority) as unknown as { name: string } | undefined)?.name;
    expect(name('payment:9090')).toBe('api');
    expect(name('PAYMENT:9090')).toBe('api');
    expect(name('payment')).toBe('last');
    expect(name('payment:1234')).toBe('last');
    expect(name('[::1]:9091')).toBe('v6-admin');
    expect(name('[::1]')).toBe('v6');
    expect(name('other:9090')).toBeUndefined();
  });
});
