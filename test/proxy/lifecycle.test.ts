/**
 * Lifecycle: hot config reload (file change and SIGHUP; invalid configs refused while the
 * last good one serves), certificate rotation, both under steady load with zero failed
 * requests, SIGTERM drain, and the admin probe / metrics endpoints.
 */
import { X509Certificate } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Client, request } from 'undici';
import type { SidecarConfigInput } from '../../src/config';
import { FileWatcher } from '../../src/proxy-image/file-watch';
import {
  callOutbound, cleanup, echoHandler, MeshPair, onCleanup, ORDER_ID, PAYMENT_ID, SidecarProcess, sidecarPorts, sleep, spawnSidecar, startMeshPair,
  startUpstream, tempDir, TestPki, waitReady, workloadConfig,
} from './harness';

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
      // The probes the admin port serves (the constructs declare a pod's probes this way).
      paymentInbound: { probes: [{ portName: 'http', kind: 'readyz', path: '/healthz' }, { portName: 'http', kind: 'livez', path: '/unhealthy' }] },
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
    expect(await probe('/app-health/http/readyz')).toBe(200);
    expect(await probe('/app-health/http/livez')).toBe(503);
    // The query does not choose the app path: readyz GETs its declared /healthz.
    expect(await probe('/app-health/http/readyz?path=/unhealthy')).toBe(200);
    expect(await probe('/app-health/nope/livez')).toBe(404);
    const metrics = await request(`${mesh.payment.url('admin')}/metrics`);
    // Telemetry is off in these configs: the observer reports no metrics.
    expect([200, 404]).toContain(metrics.statusCode);
    await metrics.body.dump();
  });

  test('SIGTERM drains: the request in flight completes, the app (still connected) is still served, exit 0', async () => {
    // With legacy sidecars the app gets SIGTERM at the same time and may still call out: its
    // outbound listener stays open while it holds a connection (test/lifecycle has the pod view).
    const inflight = callOutbound(mesh.order, 'payment', '/slow');
    await sleep(200);
    const exited = mesh.order.stop('SIGTERM');
    await sleep(100);
    expect((await callOutbound(mesh.order, 'payment', '/x')).status).toBe(200);
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(r.body).toBe('slow done');
    expect(await exited).toBe(0);
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

/**
 * A Kubernetes-style ConfigMap volume in dir: `<name>` -> `..data/<name>`, `..data` -> `..<stamp>`.
 * swap() does what the kubelet does: a new timestamped directory, a `..data_tmp` symlink to it,
 * renamed over `..data` (one atomic step).
 */
function configMapVolume(dir: string, name: string, content: string): { file: string; swap: (stamp: string, next: string) => void } {
  const write = (stamp: string, text: string): void => {
    mkdirSync(path.join(dir, stamp));
    writeFileSync(path.join(dir, stamp, name), text);
  };
  write('..2026_11_29_01', content);
  symlinkSync('..2026_11_29_01', path.join(dir, '..data'));
  symlinkSync(path.join('..data', name), path.join(dir, name));
  return {
    file: path.join(dir, name),
    swap: (stamp, next) => {
      write(stamp, next);
      symlinkSync(stamp, path.join(dir, '..data_tmp'));
      renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    },
  };
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await sleep(20);
  return cond();
}

describe('config file watching', () => {
  // FileWatcher on the real file system with the stat poll pushed out of the way (60 s), so
  // only fs.watch events can cause checks within the test.
  test('FileWatcher: writes to an unrelated file in the directory cause no check; a change to the watched file does', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'sidecar.yaml');
    writeFileSync(file, 'a: 1\n');
    let changes = 0;
    const watcher = new FileWatcher([file], async () => { changes++; }, { pollIntervalMs: 60_000, debounceMs: 20 });
    onCleanup(async () => watcher.close());
    await watcher.prime();
    for (let i = 0; i < 30; i++) {
      appendFileSync(path.join(dir, 'sidecar.log'), `line ${i}\n`);
      await sleep(10);
    }
    await sleep(200);
    expect(watcher.checkCount).toBe(0);
    expect(changes).toBe(0);
    writeFileSync(file, 'a: 2\n');
    expect(await until(() => changes === 1, 3000)).toBe(true);
    expect(watcher.checkCount).toBeGreaterThanOrEqual(1);
    watcher.close();
  });

  test('FileWatcher: a ConfigMap-style ..data symlink swap is seen through fs.watch', async () => {
    const volume = configMapVolume(tempDir(), 'sidecar.yaml', 'a: 1\n');
    let changes = 0;
    const watcher = new FileWatcher([volume.file], async () => { changes++; }, { pollIntervalMs: 60_000, debounceMs: 20 });
    onCleanup(async () => watcher.close());
    await watcher.prime();
    volume.swap('..2026_11_29_02', 'a: 2\n');
    expect(await until(() => changes === 1, 3000)).toBe(true);
    expect(readFileSync(volume.file, 'utf8')).toBe('a: 2\n');
    watcher.close();
  });

  test('sidecar: an unrelated file written in the config directory reloads nothing; a ..data swap reloads the config', async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    const app = await startUpstream(echoHandler('order'));
    const ports = await sidecarPorts();
    const config = workloadConfig({ name: 'order', identity: ORDER_ID, ports, tls: await pki.workload('order', ORDER_ID), appPort: app.port, drainTimeoutMs: 3000 });
    const volumeDir = path.join(dir, 'config');
    mkdirSync(volumeDir);
    const volume = configMapVolume(volumeDir, 'sidecar.yaml', JSON.stringify(config));
    const sidecar = spawnSidecar(volume.file, ports);
    await waitReady(sidecar);
    const reloads = (): number => sidecar.stderr.filter((l) => l.includes('config reloaded')).length;
    // Past the 1 s stat poll too: a poll must not reload an unchanged config either.
    for (let i = 0; i < 50; i++) {
      appendFileSync(path.join(volumeDir, 'app.log'), `line ${i}\n`);
      await sleep(25);
    }
    expect(reloads()).toBe(0);
    volume.swap('..2026_11_29_02', JSON.stringify({ ...config, drainTimeoutMs: 4321 }));
    await sidecar.waitForLog('config reloaded');
    const dump = (await (await request(`${sidecar.url('admin')}/config_dump`)).body.json()) as { config: { drainTimeoutMs: number } };
    expect(dump.config.drainTimeoutMs).toBe(4321);
    expect(reloads()).toBe(1);
    expect(await sidecar.stop('SIGTERM')).toBe(0);
  });
});
