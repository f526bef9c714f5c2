/**
 * TCP and several ports under transparent interception, from the constructs' own output: every
 * instance runs in a network namespace with the rules typemesh-init would install from its
 * sidecar config (interceptionArgsFor: --outbound-ports and --tcp-redirects). The client app has
 * no proxy settings and no TYPEMESH_TCP_* address: it connects to the echo service's port on an
 * address where nothing listens, and to web:8082 by name; only the rules bring each connection
 * to its sidecar. Skipped only where `ip netns` is unavailable (not root, or no iproute2/iptables).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Chart } from 'cdk8s';
import { Mesh, MeshService, Protocol } from '../../src/constructs';
import { LocalMesh, netnsAvailable, workloadsFromChart } from '../../src/local';
import { PLACEHOLDER_CLUSTER_IP } from '../../src/local/netns-network';
import { callInbound, metricSum } from './mesh-fixtures';
import type { ClientCredentials } from '../../src/local';

const describeWithNetns = netnsAvailable() ? describe : describe.skip;
const NS = 'portsns';
const id = (account: string): string => `spiffe://cluster.local/ns/${NS}/sa/${account}`;

function chart(): Chart {
  const c = new Chart(new App({ outdir: path.join(os.tmpdir(), 'typemesh-tests-never-written') }), 'ports-netns');
  const mesh = new Mesh(c, 'mesh', { namespace: NS });
  const echo = new MeshService(c, 'echo', { mesh, name: 'echo', ports: [{ port: 7000, targetPort: 7001, protocol: Protocol.TCP }], versions: [{ name: 'v1', image: 'example.com/echo:1' }] });
  const web = new MeshService(c, 'web', { mesh, name: 'web', ports: [{ port: 80, targetPort: 9081 }, { port: 8082, targetPort: 9082, name: 'second' }], versions: [{ name: 'v1', image: 'example.com/web:1' }] });
  const client = new MeshService(c, 'client', { mesh, name: 'client', versions: [{ name: 'v1', image: 'example.com/client:1' }] });
  echo.allowFrom(client);
  client.callsTo(web);
  return c;
}

const ECHO_APP = `require('node:net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(Number(process.env.PORT), process.env.HOST);`;
const WEB_APP = `
const http = require('node:http');
for (const port of [9081, 9082]) http.createServer((q, r) => { r.setHeader('content-type', 'application/json'); r.end(JSON.stringify({ port })); }).listen(port, process.env.HOST);
`;
/** /tcp: sends "ping" to TCP_TARGET and answers with the echo; /web?port=P: GET http://web:P/ and answers with its body. */
const CLIENT_APP = `
const net = require('node:net'); const http = require('node:http');
http.createServer((q, r) => {
  const u = new URL(q.url, 'http://x');
  if (u.pathname === '/tcp') {
    const [host, port] = process.env.TCP_TARGET.split(':');
    const chunks = [];
    const s = net.connect(Number(port), host, () => s.end('ping through the rules'));
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => r.end(JSON.stringify({ echoed: Buffer.concat(chunks).toString() })));
    return;
  }
  http.get('http://web:' + u.searchParams.get('port') + '/', (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => r.end(JSON.stringify({ status: res.statusCode, web: JSON.parse(Buffer.concat(chunks).toString() || 'null') })));
  }).on('error', (e) => r.end(JSON.stringify({ error: e.message })));
}).listen(Number(process.env.PORT), process.env.HOST);
`;

describeWithNetns('every port and TCP under transparent interception', () => {
  let mesh: LocalMesh;
  let ingress: ClientCredentials;

  beforeAll(async () => {
    mesh = await LocalMesh.start({
      workloads: workloadsFromChart(chart()),
      processes: {
        'echo/v1': { command: process.execPath, args: ['-e', ECHO_APP] },
        'web/v1': { command: process.execPath, args: ['-e', WEB_APP] },
        // Nothing listens on the placeholder address: only the --tcp-redirects rule can answer.
        'client/v1': { command: process.execPath, args: ['-e', CLIENT_APP], env: { TCP_TARGET: `${PLACEHOLDER_CLUSTER_IP}:7000` } },
      },
      netns: 'all',
    });
    ingress = await mesh.clientCredentials(`spiffe://cluster.local/ns/${NS}/sa/typemesh-ingress`);
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
  }, 60_000);

  test('a plain TCP connection to the service port is redirected to the sidecar and echoed over mTLS', async () => {
    const [client] = mesh.instancesOf('client');
    const [echo] = mesh.instancesOf('echo');
    expect(client.netns).toBeDefined();
    const reply = await callInbound(client, ingress, '/tcp', 'GET');
    expect(reply).toEqual({ status: 200, body: { echoed: 'ping through the rules' } });
    expect(await metricSum(echo, 'typemesh_tcp_connections_opened_total', { reporter: 'destination', source_principal: id('client'), connection_security_policy: 'mutual_tls' })).toBe(1);
  }, 60_000);

  test('each HTTP port of web, called by name, reaches its own app port', async () => {
    const [client] = mesh.instancesOf('client');
    for (const [port, appPort] of [[80, 9081], [8082, 9082]]) {
      expect((await callInbound(client, ingress, `/web?port=${port}`, 'GET')).body).toEqual({ status: 200, web: { port: appPort } });
    }
  }, 60_000);
});
