/**
 * How a MeshGateway picks a service, seen from outside with curl: by host (exact before
 * wildcard before any), then by the longest path prefix on whole segments, on the normalized
 * path; an absolute-form target routes by its own host. And its back door stays shut: a mesh
 * workload calling the gateway's inbound listener is refused, so nobody inside the mesh can
 * borrow the gateway's identity.
 */
import { execFile } from 'node:child_process';
import { App, Chart } from 'cdk8s';
import { Mesh, MeshGateway, MeshService } from '../../src/constructs';
import { LocalGatewayListener, LocalMesh, workloadsFromChart } from '../../src/local';
import { callInbound, metricSum, orderApp, paymentApp, prepareApps } from './mesh-fixtures';

function routingChart(): Chart {
  const chart = new Chart(new App(), 'routing');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'routing' });
  const image = 'example.com/shop:1';
  const order = new MeshService(chart, 'order', { mesh, name: 'order-service', versions: [{ name: 'v1', image }] });
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment-service', versions: [{ name: 'v1', image }] });
  const echo = new MeshService(chart, 'echo', { mesh, name: 'echo-service', versions: [{ name: 'v1', image }] });
  const gateway = new MeshGateway(chart, 'gateway', {
    mesh, name: 'routing-gateway', replicas: 1,
    routes: [
      { hosts: ['echo.example.com'], service: echo },
      { hosts: ['shop.example.com'], service: order },
      { hosts: ['shop.example.com'], pathPrefix: '/process', service: payment },
      // Any other example.com host goes to payment, whatever the path.
      { hosts: ['*.example.com'], service: payment },
    ],
  });
  order.allowFrom(gateway);
  payment.allowFrom(gateway);
  echo.allowFrom(gateway);
  payment.allowFrom(order); // order's app calls payment (and so does its sidecar's config)
  return chart;
}

/** curl's status code, or 0 when no response came; the body before it. */
function curl(args: readonly string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-s', '--max-time', '20', '-w', '\n%{http_code}', ...args], (_error, stdout) => {
      const nl = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(nl + 1)) || 0, body: stdout.slice(0, Math.max(0, nl)) });
    });
  });
}

/** The `service` field of a shop app's JSON reply, or its error. */
function servedBy(body: string): string {
  try {
    const json = JSON.parse(body) as { service?: string; error?: string };
    return json.service ?? `error: ${json.error}`;
  } catch {
    return `text: ${body.trim()}`;
  }
}

/** An app that answers with the request line and headers it received, as JSON. */
const ECHO_APP = `require('node:http').createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ service: 'echo-service', url: req.url, headers: req.headers }));
}).listen(Number(process.env.PORT), process.env.HOST);`;

let mesh: LocalMesh;
let http: LocalGatewayListener;

beforeAll(async () => {
  prepareApps();
  mesh = await LocalMesh.start({
    workloads: workloadsFromChart(routingChart()),
    processes: {
      'order-service/v1': orderApp({ VERSION: 'v1' }),
      'payment-service/v1': paymentApp(),
      'echo-service/v1': { command: process.execPath, args: ['-e', ECHO_APP] },
    },
  });
  http = mesh.gateway().find((l) => l.protocol === 'http')!;
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
}, 60_000);

test.each([
  ['exact host, longest prefix', 'shop.example.com', '/process', 'payment-service'],
  ['exact host, prefix "/" for the rest', 'shop.example.com', '/orders?item=book', 'order-service'],
  ['wildcard host', 'api.example.com', '/process', 'payment-service'],
  ['host with a port and upper case', 'SHOP.example.com:8080', '/process', 'payment-service'],
])('%s: %s%s goes to %s', async (_name, host, path, expected) => {
  const r = await curl(['-X', 'POST', '-H', `Host: ${host}`, `${http.url}${path}`]);
  expect(servedBy(r.body)).toBe(expected);
});

test('prefixes match whole segments: "/processing" is not under "/process"', async () => {
  // Both apps answer an unknown path alike, so ask their sidecars who received the request.
  const received = async (service: string): Promise<number> => metricSum(mesh.instancesOf(service)[0], 'typemesh_requests_total', { reporter: 'destination' });
  const [order, payment] = [await received('order-service'), await received('payment-service')];
  const r = await curl(['-X', 'POST', '-H', 'Host: shop.example.com', `${http.url}/processing`]);
  expect(r.status).toBe(404);
  expect(await received('order-service')).toBe(order + 1);
  expect(await received('payment-service')).toBe(payment);
});

test('the path is normalized before routing and forwarded as routed', async () => {
  // "/orders/../process" is "/process": payment's route, and payment receives "/process".
  const dots = await curl(['--path-as-is', '-X', 'POST', '-H', 'Host: shop.example.com', `${http.url}/orders/../process`]);
  expect(dots.status).toBe(200);
  expect(servedBy(dots.body)).toBe('payment-service');
  // An encoded slash has no single safe meaning: refused at the gateway.
  const encoded = await curl(['-X', 'POST', '-H', 'Host: shop.example.com', `${http.url}/process%2Fx`]);
  expect(encoded.status).toBe(400);
  expect(encoded.body).toMatch(/^typemesh gateway: bad request path \(encoded-slash/);
});

test('an absolute-form request (the gateway used as a proxy) routes by its own host', async () => {
  const r = await curl(['-X', 'POST', '--proxy', http.url, 'http://api.example.com/process']);
  expect(servedBy(r.body)).toBe('payment-service');
  const unknown = await curl(['--proxy', http.url, 'http://elsewhere.org/']);
  expect(unknown.status).toBe(404);
});

test('a mesh workload cannot call into the gateway and borrow its identity', async () => {
  const [gateway] = mesh.instancesOf('routing-gateway');
  const asOrder = await mesh.clientCredentials('spiffe://cluster.local/ns/routing/sa/order-service');
  const reply = await callInbound(gateway, asOrder, '/process');
  expect(reply.status).toBe(403);
});

test('the gateway is the edge: it replaces the forwarding headers a client sends, and its source header never passes', async () => {
  const r = await curl([
    '-H', 'Host: echo.example.com', '-H', 'X-Forwarded-For: 6.6.6.6', '-H', 'X-Forwarded-Host: admin.internal',
    '-H', 'x-typemesh-source: spiffe://cluster.local/ns/routing/sa/admin',
    '--interface', '127.0.0.1', `${http.url}/whoami?x=1`,
  ]);
  expect(r.status).toBe(200);
  const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
  expect(seen.url).toBe('/whoami?x=1');
  expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  expect(seen.headers['x-forwarded-host']).toBe('echo.example.com');
  // x-forwarded-proto is not checked: the callee's sidecar sets it to its own hop's scheme (https, mTLS).
  expect(seen.headers.host).toBe('echo-service');
  expect(seen.headers['x-typemesh-source']).toBeUndefined();
});
