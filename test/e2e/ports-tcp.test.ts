/**
 * Every port, and TCP, on the local mesh, from a chart written as a user would (STRICT mTLS,
 * the mesh's default): `echo` is a TCP echo server (a node net server) declared with
 * Protocol.TCP and allowing only `client`; `client`'s app reaches it through its own sidecar,
 * at the address the runner gives it in TYPEMESH_TCP_<NAMESPACE>_<SERVICE>_<PORT>; `rogue`
 * declares the call but is not allowed; `web` serves two HTTP ports, each app port answering
 * with its own number. Namespace `edge` has a `web` of its own: the runner tells the two apart.
 */
import * as os from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';
import { App, Chart } from 'cdk8s';
import { Mesh, MeshService, Protocol } from '../../src/constructs';
import { httpGetText, LocalMesh, tcpServiceEnvName, workloadsFromChart } from '../../src/local';
import { callThrough, metricSum } from './mesh-fixtures';

const NS = 'ports';
const id = (account: string): string => `spiffe://cluster.local/ns/${NS}/sa/${account}`;
/** Where the echo app counts the connections that reached it (straight to the app, outside the mesh). */
const ECHO_STATS_PORT = 7999;

function chart(): Chart {
  // Synthesized in memory only: the outdir is never written.
  const c = new Chart(new App({ outdir: path.join(os.tmpdir(), 'typemesh-tests-never-written') }), 'ports');
  const mesh = new Mesh(c, 'mesh', { namespace: NS, namespaces: ['edge'] });
  const echo = new MeshService(c, 'echo', { mesh, name: 'echo', ports: [{ port: 7000, targetPort: 7001, protocol: Protocol.TCP }], versions: [{ name: 'v1', image: 'example.com/echo:1' }] });
  const web = new MeshService(c, 'web', {
    mesh, name: 'web',
    ports: [{ port: 80, targetPort: 9081 }, { port: 8082, targetPort: 9082, name: 'second' }],
    versions: [{ name: 'v1', image: 'example.com/web:1' }],
  });
  const client = new MeshService(c, 'client', { mesh, name: 'client', versions: [{ name: 'v1', image: 'example.com/client:1' }] });
  const rogue = new MeshService(c, 'rogue', { mesh, name: 'rogue', versions: [{ name: 'v1', image: 'example.com/rogue:1' }] });
  echo.allowFrom(client);
  const edgeWeb = new MeshService(c, 'edge-web', { mesh, name: 'web', namespace: 'edge', versions: [{ name: 'v1', image: 'example.com/web:1' }] });
  client.callsTo(web, edgeWeb);
  // Declared, so rogue's sidecar has a listener for echo; echo's rules do not admit it.
  rogue.callsTo(echo);
  return c;
}

/** A TCP echo server on PORT, and how many connections reached it on ECHO_STATS_PORT. */
const ECHO_APP = `
const net = require('node:net'); const http = require('node:http');
let connections = 0;
net.createServer((s) => { connections++; s.on('error', () => {}); s.pipe(s); }).listen(Number(process.env.PORT), process.env.HOST);
http.createServer((q, r) => r.end(JSON.stringify({ connections }))).listen(Number(process.env.STATS_PORT), process.env.HOST);
`;

/** HTTP servers on the ports of WEB_PORTS, each answering with its port and namespace. */
const WEB_APP = `
const http = require('node:http');
for (const port of process.env.WEB_PORTS.split(',').map(Number)) http.createServer((q, r) => { r.setHeader('content-type', 'application/json'); r.end(JSON.stringify({ port, namespace: process.env.POD_NAMESPACE })); }).listen(port, process.env.HOST);
`;

/** An app that sends ?msg= to the TCP service named by ECHO_ENV, as a user's app would, and answers with what came back. */
const CLIENT_APP = `
const net = require('node:net'); const http = require('node:http');
http.createServer((q, r) => {
  const target = process.env[process.env.ECHO_ENV];
  if (!target) { r.statusCode = 500; return r.end('no ' + process.env.ECHO_ENV); }
  const [host, port] = target.split(':');
  const msg = new URL(q.url, 'http://x').searchParams.get('msg');
  const chunks = [];
  const s = net.connect(Number(port), host, () => s.end(msg));
  s.on('data', (c) => chunks.push(c));
  s.on('error', () => {});
  s.on('close', () => r.end(JSON.stringify({ target, echoed: Buffer.concat(chunks).toString() })));
}).listen(Number(process.env.PORT), process.env.HOST);
`;

const ECHO_ENV = tcpServiceEnvName({ name: 'echo', namespace: NS, port: 7000 });
let mesh: LocalMesh;

beforeAll(async () => {
  const workloads = workloadsFromChart(chart());
  mesh = await LocalMesh.start({
    workloads,
    processes: {
      'echo/v1': { command: process.execPath, args: ['-e', ECHO_APP], env: { STATS_PORT: String(ECHO_STATS_PORT) } },
      // Two namespaces have a web/v1: each gets its own process by its namespaced key.
      'ports/web/v1': { command: process.execPath, args: ['-e', WEB_APP], env: { WEB_PORTS: '9081,9082' } },
      'edge/web/v1': { command: process.execPath, args: ['-e', WEB_APP], env: { WEB_PORTS: '8080' } },
      'client/v1': { command: process.execPath, args: ['-e', CLIENT_APP], env: { ECHO_ENV } },
    },
  });
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
}, 60_000);

async function echoConnections(): Promise<number> {
  const [echo] = mesh.instancesOf('echo');
  return (JSON.parse((await httpGetText(`http://${echo.address}:${ECHO_STATS_PORT}/`, 3000)).body) as { connections: number }).connections;
}

/** Connects to a sidecar's TCP listener, writes data, half-closes, and collects what comes back until the close. */
function exchange(address: string, port: number, data: string): Promise<{ received: string; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const s = net.connect(port, address, () => s.end(data));
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e) => {
      error = (e as NodeJS.ErrnoException).code ?? e.message;
    });
    s.on('close', () => resolve({ received: Buffer.concat(chunks).toString(), error }));
  });
}

test('bytes echo through both sidecars over mTLS; the client app finds its listener in the env; both sides count the connections', async () => {
  const [client] = mesh.instancesOf('client');
  const [echo] = mesh.instancesOf('echo');
  const before = await echoConnections();
  const msg = 'hello over meshed tcp '.repeat(200);
  const res = await httpGetText(`http://${client.address}:${client.ports.app}/?msg=${encodeURIComponent(msg)}`, 10_000);
  expect(res.status).toBe(200);
  const body = JSON.parse(res.body) as { target: string; echoed: string };
  const listener = client.config.outbound.tcpServices.find((t) => t.name === 'echo')!.listenerPort;
  expect(body.target).toBe(`${client.address}:${listener}`);
  expect(body.echoed).toBe(msg);
  expect(await echoConnections()).toBe(before + 1);

  // The bytes went through the sidecars, over mTLS, each side naming the other's identity.
  expect(await metricSum(client, 'typemesh_tcp_connections_opened_total', {
    reporter: 'source', destination_service: 'echo', destination_principal: id('echo'), connection_security_policy: 'mutual_tls',
  })).toBeGreaterThanOrEqual(1);
  expect(await metricSum(echo, 'typemesh_tcp_connections_opened_total', {
    reporter: 'destination', source_principal: id('client'), connection_security_policy: 'mutual_tls',
  })).toBeGreaterThanOrEqual(1);
  expect(await metricSum(echo, 'typemesh_tcp_received_bytes_total', { reporter: 'destination', source_principal: id('client') })).toBeGreaterThanOrEqual(msg.length);
}, 60_000);

test('a caller whose principal is not allowed is closed, and the echo app sees no connection', async () => {
  const [rogue] = mesh.instancesOf('rogue');
  const [echo] = mesh.instancesOf('echo');
  const before = await echoConnections();
  const listener = rogue.config.outbound.tcpServices.find((t) => t.name === 'echo')!.listenerPort;
  for (let i = 0; i < 3; i++) expect((await exchange(rogue.address, listener, 'let me in')).received).toBe('');
  expect(await echoConnections()).toBe(before);
  expect(await metricSum(echo, 'typemesh_tcp_connections_opened_total', { reporter: 'destination', source_principal: id('rogue') })).toBe(0);
}, 60_000);

test('two HTTP ports of one service each reach their own app port through the mesh', async () => {
  const [client] = mesh.instancesOf('client');
  const [web] = mesh.instancesOf(`${NS}/web`);
  const calls: Array<[string, number]> = [];
  for (const [servicePort, appPort] of [[80, 9081], [8082, 9082]]) {
    for (const host of [`web:${servicePort}`, `web.${NS}:${servicePort}`, `web.${NS}.svc.cluster.local:${servicePort}`]) calls.push([host, appPort]);
  }
  // No port in the Host header is port 80: the first port, not whichever port came last.
  calls.push(['web', 9081], [`web.${NS}`, 9081]);
  for (const [host, appPort] of calls) {
    const reply = await callThrough(client, host, '/', 'GET');
    expect({ host, status: reply.status, body: reply.body }).toEqual({ host, status: 200, body: { port: appPort, namespace: NS } });
  }
  expect(await metricSum(web, 'typemesh_requests_total', { reporter: 'destination', source_principal: id('client'), connection_security_policy: 'mutual_tls' })).toBe(calls.length);
}, 60_000);

test('two namespaces with a service of the same name: separate instances, processes and endpoints', async () => {
  expect(mesh.instances.filter((i) => i.workload.name === 'web').map((i) => i.id).sort()).toEqual(['edge/web/v1#0', 'ports/web/v1#0']);
  const [client] = mesh.instancesOf('client');
  expect((await callThrough(client, 'web.edge', '/', 'GET')).body).toEqual({ port: 8080, namespace: 'edge' });
  expect((await callThrough(client, `web.${NS}:8082`, '/', 'GET')).body).toEqual({ port: 9082, namespace: NS });
}, 60_000);

test('a caller in a network namespace whose TCP service runs on loopback is refused at start (it could not reach it)', async () => {
  await expect(LocalMesh.start({ workloads: workloadsFromChart(chart()), netns: ['rogue/v1'] })).rejects.toThrow(/rogue\/v1 runs in a network namespace but calls echo\/v1 on loopback/);
}, 60_000);
