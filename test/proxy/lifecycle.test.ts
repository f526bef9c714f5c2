/**
 * Lifecycle: hot config reload (file change and SIGHUP; invalid configs refused while the
 * last good one serves), certificate rotation, both under steady load with zero failed
 * requests, SIGTERM drain, and the admin probe / metrics endpoints.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Client, request } from 'undici';
import type { SidecarConfigInput } from '../../src/config';
import { callOutbound, cleanup, echoHandler, MeshPair, ORDER_ID, PAYMENT_ID, SidecarProcess, sleep, startMeshPair } from './harness';

jest.setTimeout(60_000);
afterAll(cleanup);

interface LoadResult {
  readonly ok: number;
  readonly failures: string[];
}

/** Sends requests with `concurrency` workers until stop() (at most maxRequests in all). */
function steadyLoad(p: SidecarProcess, host: string, concurrency = 4, maxRequests = 3000): { stop: () => Promise<LoadResult> } {
  let running = true;
  let sent = 0;
  let ok = 0;
  const failures: string[] = [];
  const workers = Array.from({ length: concurrency }, async () => {
    while (running && sent < maxRequests) {
      sent++;
      try {
        const r = await callOutbound(p, host, `/load/${sent}`);
        if (r.status === 200) ok++;
        else failures.push(`${r.status} ${r.body}`);
      } catch (e) {
        failures.push(`error ${(e as Error).message}`);
      }
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return { ok, failures };
    },
  };
}

function withResponseHeader(config: SidecarConfigInput, value: string, idleTimeoutMs?: number): SidecarConfigInput {
  const copy = JSON.parse(JSON.stringify(config)) as SidecarConfigInput;
  const svc = copy.outbound!.services![0] as { routes: Array<Record<string, unknown>>; connectionPool?: Record<string, unknown> };
  svc.routes[0].headers = { response: { set: { 'x-config-generation': value } } };
  if (idleTimeoutMs) svc.connectionPool = { idleTimeoutMs };
  return copy;
}

async function peerFingerprint(port: number, files: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      cert: readFileSync(path.join(files, 'cert.pem')),
      key: readFileSync(path.join(files, 'key.pem')),
      ca: readFileSync(path.join(files, 'ca.pem')),
      checkServerIdentity: () => undefined,
    }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('lifecycle', () => {
  let mesh: MeshPair;
  beforeAll(async () => {
    mesh = await startMeshPair({
      app: (req, res, body) => {
        if (req.url === '/slow') setTimeout(() => res.end('slow done'), 800);
        else if (req.url?.startsWith('/very-slow')) {
          const timer = setTimeout(() => res.end('very slow done'), 10_000);
          res.on('close', () => clearTimeout(timer));
        }
        else if (req.url === '/healthz') res.end('healthy');
        else if (req.url === '/unhealthy') {
          res.writeHead(500);
          res.end('sick');
        } else echoHandler('payment')(req, res, body);
      },
    });
  });

  test('a valid config file change is applied without restart', async () => {
    mesh.order.writeConfig(withResponseHeader(mesh.orderConfig, 'gen-1'));
    await mesh.order.waitForLog('config reloaded');
    const r = await callOutbound(mesh.order, 'payment', '/x');
    expect(r.headers['x-config-generation']).toBe('gen-1');
  });

  test('an invalid config is refused with a JSON log line naming the field; the last good one keeps serving', async () => {
    const bad = withResponseHeader(mesh.orderConfig, 'gen-bad') as { outbound: { services: Array<{ routes: Array<{ destinations: Array<{ weight: number }> }> }> } };
    bad.outbound.services[0].routes[0].destinations[0].weight = 90;
    mesh.order.writeConfig(bad);
    const line = await mesh.order.waitForLog('config reload refused');
    const parsed = JSON.parse(line);
    expect(parsed.level).toBe('error');
    expect(parsed.error).toContain('outbound.services[0].routes[0].destinations');
    const r = await callOutbound(mesh.order, 'payment', '/x');
    expect(r.status).toBe(200);
    expect(r.headers['x-config-generation']).toBe('gen-1');
    const dump = (await (await request(`${mesh.order.url('admin')}/config_dump`)).body.json()) as { config: { outbound: { services: Array<{ routes: Array<{ destinations: Array<{ weight: number }> }> }> } } };
    expect(dump.config.outbound.services[0].routes[0].destinations[0].weight).toBe(100);
  });

  test('SIGHUP reloads the config', async () => {
    mesh.order.writeConfig(withResponseHeader(mesh.orderConfig, 'gen-2'));
    mesh.order.child.kill('SIGHUP');
    await mesh.order.waitForLog('config reloaded');
    await sleep(200);
    expect((await callOutbound(mesh.order, 'payment', '/x')).headers['x-config-generation']).toBe('gen-2');
    const hup = mesh.order.stderr.filter((l) => l.includes('config reloaded'));
    expect(hup.length).toBeGreaterThanOrEqual(2);
  });

  test('config reloads under steady load: zero failed requests', async () => {
    const load = steadyLoad(mesh.order, 'payment');
    for (let i = 0; i < 6; i++) {
      await sleep(250);
      // Every other generation also changes the cluster definition, so pools are replaced under load.
      mesh.order.writeConfig(withResponseHeader(mesh.orderConfig, `load-${i}`, i % 2 ? 30_000 + i : undefined));
    }
    await sleep(300);
    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(50);
    expect((await callOutbound(mesh.order, 'payment', '/x')).headers['x-config-generation']).toBe('load-5');
  });

  test('certificate rotation under steady load: zero failed requests, new connections use the new certificate', async () => {
    const paymentFiles = path.join(mesh.dir, 'payment');
    const orderFiles = path.join(mesh.dir, 'order');
    const before = await peerFingerprint(mesh.payment.ports.inbound, orderFiles);
    const load = steadyLoad(mesh.order, 'payment');
    await sleep(300);
    await mesh.pki.workload('payment', PAYMENT_ID);
    await sleep(300);
    await mesh.pki.workload('order', ORDER_ID);
    await sleep(1500);
    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(50);
    const expected = new X509Certificate(readFileSync(path.join(paymentFiles, 'cert.pem'))).fingerprint256;
    const after = await peerFingerprint(mesh.payment.ports.inbound, orderFiles);
    expect(after).not.toBe(before);
    expect(after).toBe(expected);
    const dump = (await (await request(`${mesh.order.url('admin')}/config_dump`)).body.json()) as { certificate: { fingerprint256: string } };
    expect(dump.certificate.fingerprint256).toBe(new X509Certificate(readFileSync(path.join(orderFiles, 'cert.pem'))).fingerprint256);
  });

  test('admin /app-health probes the app port; /metrics answers', async () => {
    const probe = async (p: string): Promise<number> => {
      const r = await request(`${mesh.payment.url('admin')}${p}`);
      await r.body.dump();
      return r.statusCode;
    };
    expect(await probe('/app-health/http/readyz?path=/healthz')).toBe(200);
    expect(await probe('/app-health/http/livez')).toBe(200);
    expect(await probe('/app-health/http/readyz?path=/unhealthy')).toBe(503);
    expect(await probe('/app-health/nope/livez')).toBe(404);
    const metrics = await request(`${mesh.payment.url('admin')}/metrics`);
    // Telemetry is off in these configs: the observer reports no metrics.
    expect([200, 404]).toContain(metrics.statusCode);
    await metrics.body.dump();
  });

  test('SIGTERM drains: the request in flight completes, new connections are refused, exit 0', async () => {
    const inflight = callOutbound(mesh.order, 'payment', '/slow');
    await sleep(200);
    const t0 = Date.now();
    const exited = mesh.order.stop('SIGTERM');
    await sleep(100);
    await expect(callOutbound(mesh.order, 'payment', '/x')).rejects.toThrow();
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(r.body).toBe('slow done');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  test('SIGTERM with a request longer than drainTimeoutMs: exit 0 after the drain timeout', async () => {
    // payment's sidecar (drainTimeoutMs 3000 from the harness) holds a 10 s request, sent
    // straight to its inbound listener with order's certificate.
    const files = path.join(mesh.dir, 'order');
    const client = new Client(`https://127.0.0.1:${mesh.payment.ports.inbound}`, {
      connect: { cert: readFileSync(path.join(files, 'cert.pem')), key: readFileSync(path.join(files, 'key.pem')), ca: readFileSync(path.join(files, 'ca.pem')), checkServerIdentity: () => undefined },
    });
    const inflight = client.request({ method: 'GET', path: '/very-slow', headers: { host: 'payment' } }).then((r) => r.statusCode, (e: Error) => e.message);
    await sleep(200);
    const t0 = Date.now();
    expect(await mesh.payment.stop('SIGTERM')).toBe(0);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(2800);
    expect(took).toBeLessThan(5000);
    // The abandoned request was cut, not answered.
    expect(typeof (await inflight)).toBe('string');
    await client.destroy();
  });
});
