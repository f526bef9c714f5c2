/**
 * Getting in from outside, as a user would: a chart with a MeshGateway in front of a STRICT
 * mTLS service, run locally as real processes, called with curl over plain HTTP and over
 * HTTPS (the gateway's server certificate verified against the local CA). The service's own
 * sidecar sees the gateway's SPIFFE identity: its authorization admits the gateway on the
 * allowed path and refuses it elsewhere.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { App, Chart } from 'cdk8s';
import { GatewayTls, Mesh, MeshGateway, MeshService } from '../../src/constructs';
import { livingProcesses, LocalGatewayListener, LocalMesh, workloadsFromChart } from '../../src/local';
import { metricSum, paymentApp, prepareApps } from './mesh-fixtures';

const GATEWAY_ID = 'spiffe://cluster.local/ns/edge/sa/edge-gateway';

/** The few lines a user writes: a service that only the gateway may call, on one path. */
function edgeChart(): Chart {
  const chart = new Chart(new App(), 'edge');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'edge' });
  const payment = new MeshService(chart, 'payment', {
    mesh, name: 'payment-service', ports: [{ port: 80, targetPort: 8080 }],
    versions: [{ name: 'v1', image: 'example.com/payment:1', replicas: 1 }],
  });
  const gateway = new MeshGateway(chart, 'gateway', {
    mesh, name: 'edge-gateway', replicas: 1,
    tls: GatewayTls.fromIssuer({ name: 'letsencrypt' }),
    routes: [{ hosts: ['pay.example.com'], service: payment }],
  });
  payment.allowFrom(gateway, { methods: ['POST'], paths: ['/process'] });
  return chart;
}

interface CurlResult {
  readonly exitCode: number;
  readonly status: number;
  readonly body: string;
}

/** Runs curl; the status code is written after the body on its own last line. */
function curl(args: readonly string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '20', '-w', '\n%{http_code}', ...args], (error, stdout) => {
      const nl = stdout.lastIndexOf('\n');
      resolve({ exitCode: error ? Number((error as { code?: number }).code ?? 1) : 0, status: Number(stdout.slice(nl + 1)) || 0, body: stdout.slice(0, Math.max(0, nl)) });
    });
  });
}

let mesh: LocalMesh;
let http: LocalGatewayListener;
let https: LocalGatewayListener;
let caFile: string;

beforeAll(async () => {
  prepareApps();
  mesh = await LocalMesh.start({
    workloads: workloadsFromChart(edgeChart()),
    processes: { 'payment-service/v1': paymentApp() },
  });
  const listeners = mesh.gateway('edge-gateway');
  http = listeners.find((l) => l.protocol === 'http')!;
  https = listeners.find((l) => l.protocol === 'https')!;
  caFile = path.join(mesh.workDir, 'test-ca.pem');
  writeFileSync(caFile, mesh.ca.certPem);
}, 120_000);

afterAll(async () => {
  await mesh?.stop();
  expect(livingProcesses()).toEqual([]);
}, 60_000);

test('plain HTTP from outside reaches the STRICT mTLS service through the gateway', async () => {
  const r = await curl(['-X', 'POST', '-H', 'Host: pay.example.com', `${http.url}/process`]);
  expect(r.status).toBe(200);
  expect(JSON.parse(r.body)).toMatchObject({ service: 'payment-service', version: 'v1' });
});

test('HTTPS from outside: the server certificate is for the route hosts and chains to the CA', async () => {
  const resolve = (host: string): string[] => ['--resolve', `${host}:${https.port}:${https.address}`];
  const ok = await curl(['-X', 'POST', '--cacert', caFile, ...resolve('pay.example.com'), `https://pay.example.com:${https.port}/process`]);
  expect(ok.status).toBe(200);
  expect(JSON.parse(ok.body)).toMatchObject({ service: 'payment-service' });
  // Not a host of the certificate: curl refuses the name (exit 60), nothing is sent.
  const wrongName = await curl(['-X', 'POST', '--cacert', caFile, ...resolve('evil.example.org'), `https://evil.example.org:${https.port}/process`]);
  expect(wrongName.exitCode).toBe(60);
  // Without the CA, the certificate is not trusted.
  const untrusted = await curl(['-X', 'POST', ...resolve('pay.example.com'), `https://pay.example.com:${https.port}/process`]);
  expect(untrusted.exitCode).toBe(60);
});

test('the service authorizes the gateway by its SPIFFE identity: allowed path 200, other path 403', async () => {
  const payment = mesh.instancesOf('payment-service')[0];
  const before = await metricSum(payment, 'typemesh_requests_total', { reporter: 'destination', source_principal: GATEWAY_ID, response_code: '403' });
  const denied = await curl(['-H', 'Host: pay.example.com', `${http.url}/stats`]);
  expect(denied.status).toBe(403);
  const allowed = await curl(['-X', 'POST', '-H', 'Host: pay.example.com', `${http.url}/process`]);
  expect(allowed.status).toBe(200);
  // The payment sidecar counted both as coming from the gateway over mTLS.
  expect(await metricSum(payment, 'typemesh_requests_total', { reporter: 'destination', source_principal: GATEWAY_ID, response_code: '403', connection_security_policy: 'mutual_tls' })).toBe(before + 1);
  expect(await metricSum(payment, 'typemesh_requests_total', { reporter: 'destination', source_principal: GATEWAY_ID, response_code: '200', connection_security_policy: 'mutual_tls' })).toBeGreaterThan(0);
});

test('an unknown host gets 404 with a body that says so', async () => {
  const r = await curl(['-H', 'Host: nobody.example.com', `${http.url}/process`]);
  expect(r.status).toBe(404);
  expect(r.body).toBe('typemesh gateway: no route for host "nobody.example.com" and path "/process"\n');
});

test('without the gateway there is no way in: the service refuses plaintext and certificate-less TLS', async () => {
  const payment = mesh.instancesOf('payment-service')[0];
  const plain = await curl(['-H', 'Host: payment-service', `http://${payment.address}:${payment.ports.inbound}/process`]);
  expect(plain.status).toBe(0);
  const noCert = await curl(['-k', `https://${payment.address}:${payment.ports.inbound}/process`]);
  expect(noCert.status).toBe(0);
  expect(noCert.exitCode).not.toBe(0);
});

/** The SHA-256 fingerprint of the server certificate the gateway's HTTPS listener presents for a name. */
function serverFingerprint(listener: LocalGatewayListener, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: listener.address, port: listener.port, servername, ca: mesh.ca.certPem }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fp);
    });
    socket.once('error', reject);
  });
}

test('a renewed server certificate is served without a restart', async () => {
  const [gateway] = mesh.instancesOf('edge-gateway');
  const before = await serverFingerprint(https, 'pay.example.com');
  // What cert-manager does on renewal: new files in place (the local CA writes them atomically).
  await mesh.ca.writeWorkloadFiles(path.dirname(gateway.gatewayTls!.certFile), { spiffeId: gateway.workload.config.workload.identity, dnsNames: ['pay.example.com'] });
  let after = before;
  for (let i = 0; i < 100 && after === before; i++) {
    await new Promise((r) => setTimeout(r, 200));
    after = await serverFingerprint(https, 'pay.example.com');
  }
  expect(after).not.toBe(before);
  const ok = await curl(['-X', 'POST', '--cacert', caFile, '--resolve', `pay.example.com:${https.port}:${https.address}`, `https://pay.example.com:${https.port}/process`]);
  expect(ok.status).toBe(200);
  expect(gateway.sidecar.running).toBe(true);
}, 60_000);
