/**
 * Egress from outside: a real sidecar whose config declares external services (what an
 * ExternalService synthesizes), an HTTPS server on loopback standing in for the external host
 * with a certificate from a CA minted here, and the app's plain HTTP calls through the
 * outbound listener. Shows TLS origination verified against the host name and the given CA,
 * refusal of a certificate from another CA, retries declared on the external service, the
 * allow-list refusing an unknown host (status, flag, metric), and passthrough mode passing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { AddressInfo, connect } from 'node:net';
import * as path from 'node:path';
import { request } from 'undici';
import { parseSidecarConfig } from '../../src/config';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { callOutbound, cleanup, echoHandler, freePort, onCleanup, ORDER_ID, rawExchange, sidecarPorts, sleep, startSidecar, startUpstream, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(60_000);
afterAll(cleanup);

const EXTERNAL_HOST = 'api.payments.example';

/** An HTTPS server on 127.0.0.1 whose certificate names EXTERNAL_HOST, issued by ca. */
async function startExternalHttps(ca: LocalCertificateAuthority, dnsName: string): Promise<{ port: number; hits: () => number; flakyHits: () => number }> {
  const leaf = await ca.issueWorkload({ spiffeId: 'spiffe://external.test/not-a-mesh-peer', dnsNames: [dnsName] });
  let hits = 0;
  let flakyHits = 0;
  const server = https.createServer({ cert: leaf.certPem + ca.certPem, key: leaf.keyPem }, (req, res) => {
    hits++;
    if (req.url === '/flaky') flakyHits++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // What the external host saw: proves TLS (encrypted) and which headers left the mesh.
      // /flaky fails its first request only (a retry's second try succeeds).
      res.writeHead(req.url === '/flaky' && flakyHits === 1 ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ tls: (req.socket as { encrypted?: boolean }).encrypted === true, host: req.headers.host, url: req.url, headers: req.headers }));
    });
  });
  // An echo protocol behind Upgrade: what a WebSocket to the external host looks like on the wire.
  server.on('upgrade', (_req: unknown, socket: import('node:net').Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { port: (server.address() as AddressInfo).port, hits: () => hits, flakyHits: () => flakyHits };
}

async function metricsOf(adminPort: number): Promise<string> {
  const r = await request(`http://127.0.0.1:${adminPort}/metrics`);
  return r.body.text();
}

/** The value of the request counter series whose labels include all of `labels`. */
function requestCount(text: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('typemesh_requests_total{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('egress: external services and the allow-list', () => {
  let dir: string;
  let pki: TestPki;
  let externalCa: LocalCertificateAuthority;
  let external: Awaited<ReturnType<typeof startExternalHttps>>;
  let caFile: string;

  beforeAll(async () => {
    dir = tempDir();
    pki = await TestPki.create(dir);
    externalCa = await LocalCertificateAuthority.create({ commonName: 'External Test CA' });
    external = await startExternalHttps(externalCa, EXTERNAL_HOST);
    caFile = path.join(dir, 'external-ca.pem');
    writeFileSync(caFile, externalCa.certPem);
  });

  async function clientSidecar(name: string, outbound: Record<string, unknown>, telemetry = false): Promise<Awaited<ReturnType<typeof startSidecar>>> {
    const files = await pki.workload(name, ORDER_ID);
    const base = workloadConfig({ name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls: files, appPort: await freePort() });
    const config = {
      ...base,
      outbound: { services: [], ...outbound },
      ...(telemetry ? { telemetry: { metrics: { enabled: true }, accessLog: { enabled: true, format: 'json' as const } } } : {}),
    };
    return startSidecar(dir, name, config as never);
  }

  const externalService = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
    name: 'payments-api',
    hosts: [EXTERNAL_HOST],
    port: 80,
    protocol: 'https',
    tls: { caFile },
    // A cluster resolves the real host by DNS; here the loopback server stands in for it.
    discovery: { type: 'static', endpoints: [{ address: '127.0.0.1', port: external.port }] },
    ...overrides,
  });

  test('TLS origination: the app speaks plain HTTP, the sidecar verifies the host against the given CA and the host name', async () => {
    const order = await clientSidecar('tls-ok', { externalServices: [externalService()], passthrough: false }, true);
    const r = await callOutbound(order, EXTERNAL_HOST, '/charges?id=1', { headers: { 'x-typemesh-source': 'forged;shop;v1' } });
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body);
    expect(seen.tls).toBe(true);
    expect(seen.host).toBe(EXTERNAL_HOST);
    expect(seen.url).toBe('/charges?id=1');
    // Nothing about the workload leaves the mesh: no source header, forged or ours.
    expect(seen.headers['x-typemesh-source']).toBeUndefined();

    const metrics = await metricsOf(order.ports.admin);
    expect(requestCount(metrics, { reporter: 'source', destination_service: EXTERNAL_HOST, response_code: '200', connection_security_policy: 'none' })).toBe(1);
    // The access log is written asynchronously: wait (bounded) for its line.
    let log: string[] = [];
    for (let i = 0; i < 100 && log.length === 0; i++) {
      log = order.stdout.join('').split('\n').filter((l) => l.includes('/charges'));
      if (log.length === 0) await sleep(50);
    }
    expect(log).toHaveLength(1);
    expect(JSON.parse(log[0])).toMatchObject({ destination_service: EXTERNAL_HOST, status: 200, upstream_host: `127.0.0.1:${external.port}` });
  });

  test('a certificate from another CA is refused: 503, and the host never sees a request', async () => {
    const otherCa = await LocalCertificateAuthority.create({ commonName: 'Some Other CA' });
    const otherCaFile = path.join(dir, 'other-ca.pem');
    writeFileSync(otherCaFile, otherCa.certPem);
    const order = await clientSidecar('tls-wrong-ca', { externalServices: [externalService({ tls: { caFile: otherCaFile } })], passthrough: false });
    const before = external.hits();
    const r = await callOutbound(order, EXTERNAL_HOST, '/charges');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/certificate/i);
    expect(external.hits()).toBe(before);
  });

  test('without a CA file, the system CAs do not trust a private CA: 503', async () => {
    const order = await clientSidecar('tls-system-ca', { externalServices: [externalService({ tls: undefined })], passthrough: false });
    const before = external.hits();
    const r = await callOutbound(order, EXTERNAL_HOST, '/charges');
    expect(r.status).toBe(503);
    expect(external.hits()).toBe(before);
  });

  test('a certificate for another name is refused even from the right CA', async () => {
    const order = await clientSidecar('tls-wrong-name', { externalServices: [externalService({ tls: { caFile, serverName: 'other.example' } })], passthrough: false });
    const r = await callOutbound(order, EXTERNAL_HOST, '/charges');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/other\.example|altnames|Hostname/i);
  });

  test('retries declared on the external service apply', async () => {
    const order = await clientSidecar('retries', {
      externalServices: [externalService({ retries: { attempts: 2, retryOn: ['5xx'] } })],
      passthrough: false,
    });
    const r = await callOutbound(order, EXTERNAL_HOST, '/flaky');
    // The first try got 503, the retry 200.
    expect(r.status).toBe(200);
    expect(external.flakyHits()).toBe(2);
  });

  test('an Upgrade to the external host is spliced over the originated TLS connection', async () => {
    const order = await clientSidecar('upgrade', { externalServices: [externalService()], passthrough: false });
    const socket = connect(order.ports.outbound, '127.0.0.1');
    onCleanup(() => {
      socket.destroy();
    });
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      if (received.includes('\r\n\r\n') && !received.includes('ping')) socket.write('ping');
    });
    socket.write(`GET /stream HTTP/1.1\r\nhost: ${EXTERNAL_HOST}\r\nupgrade: echo\r\nconnection: Upgrade\r\n\r\n`);
    for (let i = 0; i < 200 && !received.endsWith('ping'); i++) await sleep(25);
    expect(received.startsWith('HTTP/1.1 101')).toBe(true);
    expect(received.endsWith('ping')).toBe(true);
  });

  test('allow-list: an unknown host is refused with 502 NR and counted; the declared one still passes', async () => {
    const decoy = await startUpstream(echoHandler('unknown-host'));
    const order = await clientSidecar('allow-list', { externalServices: [externalService()], passthrough: false }, true);
    const r = await callOutbound(order, `127.0.0.1:${decoy.port}`, '/exfiltrate');
    expect(r.status).toBe(502);
    expect(r.body).toContain(`no route to unknown host "127.0.0.1"`);
    expect(r.body).toContain('egress mode: allow-list');
    expect(r.body).toContain('declare an ExternalService');
    expect(decoy.requests).toHaveLength(0);
    const named = await callOutbound(order, 'evil.example', '/');
    expect(named.status).toBe(502);

    const metrics = await metricsOf(order.ports.admin);
    // Refused hosts are never labels (the app chooses them): they count under 'unknown'.
    expect(requestCount(metrics, { destination_service: 'unknown', response_code: '502', response_flags: 'NR' })).toBe(2);
    expect(metrics).not.toContain('evil.example');
    expect((await callOutbound(order, EXTERNAL_HOST, '/ok')).status).toBe(200);

    // A CONNECT tunnel (HTTPS_PROXY clients) to an unknown host is refused the same way.
    const tunnel = await rawExchange(order.ports.outbound, `CONNECT evil.example:443 HTTP/1.1\r\nhost: evil.example:443\r\n\r\n`);
    expect(tunnel.startsWith('HTTP/1.1 403')).toBe(true);
    expect(tunnel).toContain('no route to unknown host "evil.example"');
  });

  test('passthrough mode: the unknown host is reached at its own address', async () => {
    const decoy = await startUpstream(echoHandler('unknown-host'));
    const order = await clientSidecar('passthrough', { passthrough: true });
    const r = await callOutbound(order, `127.0.0.1:${decoy.port}`, '/anything');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).app).toBe('unknown-host');
    expect(decoy.requests).toHaveLength(1);
  });

  test('the config refuses an external host already claimed, and tls on plain http', async () => {
    const order = await clientSidecar('bad-config-base', { passthrough: false });
    const base = JSON.parse(readFileSync(order.configFile, 'utf8'));
    const bad = { ...base, outbound: { services: [], passthrough: false, externalServices: [externalService(), externalService({ name: 'dup' }), externalService({ name: 'plain', hosts: ['plain.example'], protocol: 'http' })] } };
    expect(() => parseSidecarConfig(bad)).toThrow(/already claimed[\s\S]*tls applies to protocol https only/);
    // Strict like the rest of the contract: a misspelt field is an error, not ignored.
    const typo = { ...base, outbound: { services: [], externalServices: [{ ...externalService(), tlsMode: 'SIMPLE' }] } };
    expect(() => parseSidecarConfig(typo)).toThrow(/tlsMode/);
    const wildcard = { ...base, outbound: { services: [], externalServices: [externalService({ hosts: ['*.example.com'] })] } };
    expect(() => parseSidecarConfig(wildcard)).toThrow(/must be a lower-case DNS name/);
  });
});
