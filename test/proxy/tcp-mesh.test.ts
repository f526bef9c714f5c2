/**
 * Meshed TCP with real processes: a TCP echo app behind its sidecar (app port declared 'tcp',
 * ALLOW only order's principal), reached by clients through their own sidecars' TCP service
 * listeners (explicit mode: the client connects to listenerPort, as the init step's per-port
 * redirect would send it). Bytes echo over mTLS; a caller whose principal is not allowed is
 * closed before anything reaches the app; both sidecars count the stream and its bytes.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { request } from 'undici';
import { SidecarConfigInput, SidecarConfigSchema } from '../../src/config';
import { find, parseExposition } from './telemetry-fixtures';
import { cleanup, freePort, onCleanup, ORDER_ID, sidecarPorts, SidecarProcess, startSidecar, subset, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(60_000);

const DB_ID = 'spiffe://cluster.local/ns/shop/sa/db';
const ROGUE_ID = 'spiffe://cluster.local/ns/shop/sa/rogue';

/** A TCP echo server that remembers how many connections and bytes reached it. */
async function startEcho(): Promise<{ port: number; connections: () => number; bytes: () => number }> {
  let connections = 0;
  let bytes = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.on('data', (c) => {
      bytes += c.length;
      s.write(c);
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections, bytes: () => bytes };
}

/**
 * Connects to port, writes data, half-closes, and collects what comes back until the peer
 * closes. Resolves with the bytes and whether the connection ended in an error (a reset).
 */
function exchange(port: number, data: string): Promise<{ received: string; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const s = net.connect(port, '127.0.0.1', () => s.end(data));
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e) => {
      error = (e as NodeJS.ErrnoException).code ?? e.message;
    });
    s.on('close', () => resolve({ received: Buffer.concat(chunks).toString(), error }));
  });
}

async function metrics(p: SidecarProcess): Promise<ReturnType<typeof parseExposition>> {
  const r = await request(`${p.url('admin')}/metrics`);
  return parseExposition(await r.body.text());
}

const withMetrics = (c: SidecarConfigInput): SidecarConfigInput => ({ ...c, telemetry: { metrics: { enabled: true }, accessLog: { enabled: true, format: 'json' } } });

/** The JSON access log lines for TCP streams a sidecar wrote to stdout. */
function tcpAccessLog(p: SidecarProcess): Array<Record<string, unknown>> {
  return p.stdout.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((e) => e.method === 'TCP');
}

describe('meshed TCP', () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let db: SidecarProcess;
  let order: SidecarProcess;
  let orderListener: number;
  let rogueListener: number;
  let client: (name: string, identity: string, drainTimeoutMs?: number) => Promise<{ sidecar: SidecarProcess; listener: number }>;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    echo = await startEcho();
    const dbConfig = workloadConfig({ name: 'db', identity: DB_ID, ports: await sidecarPorts(), tls: await pki.workload('db', DB_ID), appPort: echo.port });
    db = await startSidecar(dir, 'db', withMetrics({
      ...dbConfig,
      workload: { ...dbConfig.workload, appPorts: [{ name: 'redis', port: echo.port, protocol: 'tcp' }] },
      inbound: { app: { address: '127.0.0.1', port: echo.port }, authorization: { rules: [{ name: 'order-only', action: 'ALLOW', principals: [ORDER_ID] }] } },
    }));
    client = async (name, identity, drainTimeoutMs) => {
      const listener = await freePort();
      const config = workloadConfig({ name, identity, ports: await sidecarPorts(), tls: await pki.workload(name, identity), appPort: await freePort(), drainTimeoutMs });
      const tcpServices = [{ name: 'db', namespace: 'shop', port: 6379, targetPort: echo.port, listenerPort: listener, subsets: [subset('v1', [{ sidecar: db }], DB_ID)] }];
      return { sidecar: await startSidecar(dir, name, withMetrics({ ...config, outbound: { ...config.outbound, tcpServices } })), listener };
    };
    ({ sidecar: order, listener: orderListener } = await client('order', ORDER_ID));
    ({ listener: rogueListener } = await client('rogue', ROGUE_ID));
  });

  afterAll(cleanup);

  test('bytes echo through both sidecars over mTLS', async () => {
    const before = echo.connections();
    const r = await exchange(orderListener, 'PING hello over the mesh\r\n');
    expect(r.received).toBe('PING hello over the mesh\r\n');
    expect(echo.connections()).toBe(before + 1);
  });

  test('a caller whose principal is not allowed is closed and nothing reaches the app', async () => {
    const connections = echo.connections();
    const bytes = echo.bytes();
    const r = await exchange(rogueListener, 'FLUSHALL\r\n');
    expect(r.received).toBe('');
    expect(echo.connections()).toBe(connections);
    expect(echo.bytes()).toBe(bytes);
    await db.waitForLog('inbound TCP connection refused by authorization');
  });

  test('a peer naming an undeclared port in its SNI is closed (no other loopback port is reachable)', async () => {
    // order's own certificate: a valid mesh peer, asking for a port db does not declare.
    const files = JSON.parse(readFileSync(order.configFile, 'utf8')).tls;
    const connections = echo.connections();
    const received = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      const s = tls.connect({ host: '127.0.0.1', port: db.ports.inbound, servername: `outbound_.${db.ports.admin}_._.db.shop`, cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), ca: readFileSync(files.caFile), rejectUnauthorized: false }, () => s.write('GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n'));
      s.on('data', (c) => chunks.push(c));
      s.on('error', () => undefined);
      s.on('close', () => resolve(Buffer.concat(chunks).toString()));
    });
    expect(received).toBe('');
    expect(echo.connections()).toBe(connections);
  });

  test('draining: an open stream keeps working after SIGTERM, and the sidecar exits 0 once it closes', async () => {
    const { sidecar, listener } = await client('order-drain', ORDER_ID, 60_000);
    const socket = net.connect(listener, '127.0.0.1');
    socket.on('error', () => undefined);
    const roundTrip = (text: string): Promise<string> => new Promise((resolve) => {
      let got = '';
      const onData = (c: Buffer): void => {
        got += c.toString();
        if (got.length >= text.length) {
          socket.removeListener('data', onData);
          resolve(got);
        }
      };
      socket.on('data', onData);
      socket.once('close', () => resolve(got));
      socket.write(text);
    });
    expect(await roundTrip('before the drain\n')).toBe('before the drain\n');
    const exited = sidecar.stop('SIGTERM', 90_000);
    await sidecar.waitForLog('drain window over');
    expect(await roundTrip('during the drain\n')).toBe('during the drain\n');
    socket.end();
    expect(await exited).toBe(0);
  });

  test('a reload that moves a TCP service\'s listener is refused and the running listener keeps serving', async () => {
    const { sidecar, listener } = await client('order-reload', ORDER_ID);
    const config = JSON.parse(readFileSync(sidecar.configFile, 'utf8'));
    config.outbound.tcpServices[0].listenerPort = await freePort();
    sidecar.writeConfig(config);
    await sidecar.waitForLog('TCP services cannot be added, removed or moved');
    expect((await exchange(listener, 'still here\r\n')).received).toBe('still here\r\n');
  });

  test('both sidecars count the streams and their bytes, labelled with both ends', async () => {
    const payload = 'x'.repeat(1000);
    const r = await exchange(orderListener, payload);
    expect(r.received).toBe(payload);
    // The closed counters follow the close by a moment: poll (bounded) for them.
    let out: ReturnType<typeof parseExposition> = [];
    let inb: ReturnType<typeof parseExposition> = [];
    for (let i = 0; i < 50; i++) {
      out = await metrics(order);
      inb = await metrics(db);
      const closedOut = find(out, 'typemesh_tcp_connections_closed_total', { destination_service: 'db' });
      const closedIn = find(inb, 'typemesh_tcp_connections_closed_total', { source_principal: ORDER_ID });
      if (closedOut.length && closedOut[0].value >= 2 && closedIn.length && closedIn[0].value >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const outLabels = { reporter: 'source', source_principal: ORDER_ID, destination_service: 'db', destination_principal: DB_ID, connection_security_policy: 'mutual_tls' };
    expect(find(out, 'typemesh_tcp_connections_opened_total', outLabels)[0]?.value).toBeGreaterThanOrEqual(2);
    expect(find(out, 'typemesh_tcp_connections_closed_total', outLabels)[0]?.value).toBeGreaterThanOrEqual(2);
    expect(find(out, 'typemesh_tcp_received_bytes_total', outLabels)[0]?.value).toBeGreaterThanOrEqual(1000);
    expect(find(out, 'typemesh_tcp_sent_bytes_total', outLabels)[0]?.value).toBeGreaterThanOrEqual(1000);
    const inLabels = { reporter: 'destination', source_principal: ORDER_ID, destination_principal: DB_ID, destination_workload: 'db', connection_security_policy: 'mutual_tls' };
    expect(find(inb, 'typemesh_tcp_connections_opened_total', inLabels)[0]?.value).toBeGreaterThanOrEqual(2);
    expect(find(inb, 'typemesh_tcp_received_bytes_total', inLabels)[0]?.value).toBeGreaterThanOrEqual(1000);
    expect(find(inb, 'typemesh_tcp_sent_bytes_total', inLabels)[0]?.value).toBeGreaterThanOrEqual(1000);
    // The refused caller opened no stream at db.
    expect(find(inb, 'typemesh_tcp_connections_opened_total', { source_principal: ROGUE_ID })).toEqual([]);
    // One access log line per stream on each side, with its bytes and the peer's identity.
    const line = { method: 'TCP', request_bytes: 1000, response_bytes: 1000 };
    for (let i = 0; i < 50 && !(tcpAccessLog(order).some((e) => e.request_bytes === 1000) && tcpAccessLog(db).some((e) => e.request_bytes === 1000)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(tcpAccessLog(order)).toContainEqual(expect.objectContaining({ ...line, direction: 'outbound', destination_service: 'db', principal: DB_ID, upstream_host: `127.0.0.1:${db.ports.inbound}` }));
    expect(tcpAccessLog(db)).toContainEqual(expect.objectContaining({ ...line, direction: 'inbound', destination_service: 'db', principal: ORDER_ID, upstream_host: `127.0.0.1:${echo.port}` }));
  });
});

describe('TCP in the contract', () => {
  const base = {
    apiVersion: 'typemesh.io/v1alpha1', kind: 'SidecarConfig',
    workload: { name: 'db', namespace: 'shop', version: 'v1', serviceAccount: 'db', identity: DB_ID, trustDomain: 'cluster.local', appPorts: [{ name: 'redis', port: 6379, protocol: 'tcp' }] },
    tls: { certFile: '/c', keyFile: '/k', caFile: '/ca' },
  };

  test('a rule with HTTP fields on a workload with a TCP port is refused, naming the rule and the port', () => {
    const r = SidecarConfigSchema.safeParse({ ...base, inbound: { app: { port: 6379 }, authorization: { rules: [{ name: 'read-only', action: 'ALLOW', principals: [ORDER_ID], methods: ['GET'] }] } } });
    expect(r.success).toBe(false);
    const issue = r.error!.issues.find((i) => i.path.join('.') === 'inbound.authorization.rules.0.methods');
    expect(issue?.message).toMatch(/rule "read-only" has methods, but app port "redis" is TCP/);
  });

  test('a TCP service on a port the sidecar already uses is refused', () => {
    const r = SidecarConfigSchema.safeParse({
      ...base,
      inbound: { app: { port: 6379 } },
      outbound: { tcpServices: [{ name: 'cache', namespace: 'shop', port: 6379, listenerPort: 15001, subsets: [{ name: 'v1', identity: DB_ID, discovery: { type: 'static', endpoints: [{ address: '127.0.0.1', port: 15006 }] } }] }] },
    });
    expect(r.success).toBe(false);
    expect(r.error!.issues.find((i) => i.path.join('.') === 'outbound.tcpServices.0.listenerPort')?.message).toMatch(/already listeners.outboundPort/);
  });
});
