/**
 * A passthrough request must never come back to the sidecar that sent it: the target is
 * parsed as a socket would parse it (IPv4 shorthand, hex, IPv4-mapped IPv6) and compared with
 * the sidecar's own listeners, and a hop marker stops loops no address check can see (here, a
 * TCP forwarder on another port). Each attempt gets a clean 508 and the sidecar's own request
 * count shows that nothing looped.
 */
import * as net from 'node:net';
import { request } from 'undici';
import { cleanup, freePort, onCleanup, rawExchange, SidecarProcess, sidecarPorts, startSidecar, tempDir, TestPki, workloadConfig, ORDER_ID } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

/** Starts a TCP server on 127.0.0.1 that cleanup() closes, connections included. */
async function tcpServer(onConnection: (s: net.Socket) => void): Promise<net.Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return server;
}

/** Requests the sidecar recorded, summed over every label set of typemesh_requests_total. */
async function requestsHandled(p: SidecarProcess): Promise<number> {
  const r = await request(`${p.url('admin')}/metrics`);
  const text = await r.body.text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith('typemesh_requests_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Sends one request to the outbound listener with the given Host, as an app would. */
function viaOutbound(p: SidecarProcess, host: string, upgrade = false): Promise<string> {
  const extra = upgrade ? 'Connection: Upgrade\r\nUpgrade: websocket\r\n' : 'Connection: close\r\n';
  return rawExchange(p.ports.outbound, `GET /loop HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`);
}

describe('passthrough loop guard', () => {
  let sidecar: SidecarProcess;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    const tls = await pki.workload('order', ORDER_ID);
    const config = workloadConfig({ name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls, appPort: await freePort(), passthrough: true });
    config.telemetry = { metrics: { enabled: true }, accessLog: { enabled: false } };
    sidecar = await startSidecar(dir, 'order', config);
  });

  // The sidecar listens on 127.0.0.1: each of these is that address, written another way.
  test.each([
    ['decimal', '2130706433'],
    ['shorthand', '127.1'],
    ['hex', '0x7f.0.0x0.0x1'],
    ['IPv4-mapped IPv6', '[::ffff:127.0.0.1]'],
    ['unspecified', '0.0.0.0'],
    ['unspecified shorthand', '0'],
    ['octal', '0177.0.0.1'],
    ['one hex number', '0x7f000001'],
    ['trailing dot', '127.0.0.1.'],
    ['IPv4-mapped IPv6 in hex', '[::ffff:7f00:1]'],
    ['name', 'LOCALHOST'],
    ['plain', '127.0.0.1'],
  ])('%s form of its own address (%s): 508, no loop (HTTP and Upgrade)', async (_form, address) => {
    const port = sidecar.ports.outbound;
    const before = await requestsHandled(sidecar);
    const out = await viaOutbound(sidecar, `${address}:${port}`);
    expect(out).toMatch(/^HTTP\/1\.1 508/);
    expect(out).toContain('loop detected');
    const up = await viaOutbound(sidecar, `${address}:${port}`, true);
    expect(up).toMatch(/^HTTP\/1\.1 508/);
    // The two requests above, and not one more: nothing came back around.
    expect(await requestsHandled(sidecar) - before).toBe(2);
  });

  test('its own inbound and admin ports are refused as passthrough targets too', async () => {
    for (const port of [sidecar.ports.inbound, sidecar.ports.admin]) {
      const out = await viaOutbound(sidecar, `0x7f.1:${port}`);
      expect(out).toMatch(/^HTTP\/1\.1 508/);
    }
  });

  test('a road back no address check sees (a forwarder on another port) is stopped by the hop marker', async () => {
    let forwarded = 0;
    const forwarder = await tcpServer((client) => {
      forwarded++;
      const up = net.connect(sidecar.ports.outbound, '127.0.0.1');
      client.pipe(up).pipe(client);
      up.on('error', () => client.destroy());
      client.once('close', () => up.destroy());
    });
    const fport = (forwarder.address() as net.AddressInfo).port;
    const before = await requestsHandled(sidecar);
    const out = await viaOutbound(sidecar, `127.0.0.1:${fport}`);
    // The second visit is refused; its 508 travels back as the first visit's response.
    expect(out).toMatch(/^HTTP\/1\.1 508/);
    expect(out).toContain('loop detected: the request came back to the sidecar that passed it through');
    expect(forwarded).toBe(1);
    expect(await requestsHandled(sidecar) - before).toBe(2);
    const up = await viaOutbound(sidecar, `127.0.0.1:${fport}`, true);
    expect(up).toMatch(/^HTTP\/1\.1 508/);
    expect(forwarded).toBe(2);
  });

  test('the sidecar still passes other hosts through', async () => {
    const app = await tcpServer((s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n'));
    const out = await viaOutbound(sidecar, `127.0.0.1:${(app.address() as net.AddressInfo).port}`);
    expect(out).toMatch(/^HTTP\/1\.1 200/);
  });
});
