/**
 * The telemetry seam: the sidecar calls every ProxyObserver hook on its real request path.
 * The client-side sidecar runs in this process (Sidecar.start) with a recording observer;
 * everything else is real (sockets, TLS, a payment sidecar process, the app).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { request } from 'undici';
import { parseSidecarConfig } from '../../src/config';
import type { ProxyObserver, RequestInfo, RequestObservation, RequestOutcome } from '../../src/proxy-image/observer';
import { Sidecar } from '../../src/proxy-image/sidecar';
import { callOutbound, cleanup, freePort, ORDER_ID, sidecarPorts, sleep, startServerInstance, subset, tempDir, TestPki, workloadConfig } from './harness';

jest.setTimeout(30_000);
afterAll(cleanup);

class RecordingObserver implements ProxyObserver {
  public readonly metricsContentType = 'text/plain';
  public readonly started: RequestInfo[] = [];
  public readonly ended: RequestOutcome[] = [];
  public readonly calls: string[] = [];
  private n = 0;
  public requestStarted(info: RequestInfo): RequestObservation {
    this.started.push(info);
    const id = `rid-${++this.n}`;
    return {
      requestId: id,
      propagationHeaders: { 'x-request-id': id, 'traceparent': `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` },
      end: (o) => this.ended.push(o),
    };
  }
  public retried(service: string, subsetName: string): void {
    this.calls.push(`retried ${service} ${subsetName}`);
  }
  public retryBudgetExhausted(service: string): void {
    this.calls.push(`budget ${service}`);
  }
  public endpointEjected(service: string, subsetName: string): void {
    this.calls.push(`ejected ${service} ${subsetName}`);
  }
  public poolOverflow(service: string): void {
    this.calls.push(`overflow ${service}`);
  }
  public configReload(accepted: boolean): void {
    this.calls.push(`reload ${accepted}`);
  }
  public certificateLoaded(notAfter: Date): void {
    this.calls.push(`cert ${notAfter.getTime() > Date.now()}`);
  }
  public tcpConnectionOpened(direction: string, security: string): void {
    this.calls.push(`open ${direction} ${security}`);
  }
  public tcpConnectionClosed(direction: string, security: string): void {
    this.calls.push(`close ${direction} ${security}`);
  }
  public async metrics(): Promise<string> {
    return 'recorded_requests_total 1\n';
  }
  public async shutdown(): Promise<void> {
    this.calls.push('shutdown');
  }
}

describe('observer hooks', () => {
  const observer = new RecordingObserver();
  let sidecar: Sidecar;
  let configFile: string;
  let outbound: string;
  let rawConfig: ReturnType<typeof workloadConfig>;
  let appHeaders: Array<Record<string, unknown>>;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    appHeaders = [];
    let hits = 0;
    const server = await startServerInstance(dir, pki, 'payment', (req, res) => {
      appHeaders.push(req.headers);
      if ((req.url === '/fail' && ++hits <= 1) || req.url === '/always-fail') res.writeHead(503);
      setTimeout(() => res.end('ok'), req.url === '/slow' ? 300 : 0);
    });
    const files = await pki.workload('order', ORDER_ID);
    const ports = await sidecarPorts();
    const to = [{ subset: 'v1', weight: 100 }];
    rawConfig = workloadConfig({
      name: 'order', identity: ORDER_ID, ports, tls: files, appPort: await freePort(),
      services: [{
        name: 'payment', namespace: 'shop', hosts: ['payment'], port: 8080,
        subsets: [subset('v1', [server])],
        connectionPool: { maxConnections: 1, maxPendingRequests: 0 },
        outlierDetection: { consecutive5xxErrors: 2, maxEjectionPercent: 100, baseEjectionTimeMs: 400 },
        routes: [{ name: 'all', destinations: to, retries: { attempts: 2, retryOn: ['5xx'], backoff: { baseIntervalMs: 60, maxIntervalMs: 60 } } }],
      }] as never,
    });
    configFile = path.join(dir, 'order-inprocess.json');
    writeFileSync(configFile, JSON.stringify(rawConfig));
    sidecar = await Sidecar.start({ configFile, config: parseSidecarConfig(JSON.parse(readFileSync(configFile, 'utf8'))), observer });
    outbound = `http://127.0.0.1:${ports.outbound}`;
  });

  afterAll(async () => {
    await sidecar.drain();
  });

  const call = (p: string): ReturnType<typeof callOutbound> => callOutbound({ url: () => outbound } as never, 'payment', p);

  test('requestStarted/end with the outcome; propagation headers reach the upstream', async () => {
    const r = await call('/ok');
    expect(r.status).toBe(200);
    const info = observer.started[observer.started.length - 1];
    expect(info).toMatchObject({ direction: 'outbound', method: 'GET', authority: 'payment', path: '/ok', destinationService: 'payment', connectionSecurity: 'mutual_tls' });
    await sleep(20);
    expect(observer.ended[observer.ended.length - 1]).toMatchObject({ status: 200, destinationSubset: 'v1', retries: 0, flags: [] });
    const seen = appHeaders[appHeaders.length - 1];
    expect(seen['traceparent']).toBe(`00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`);
    expect(seen['x-request-id']).toMatch(/^rid-/);
    expect(observer.calls).toContain('cert true');
    expect(observer.calls).toContain('open outbound none');
    expect(observer.calls).toContain('open outbound mutual_tls');
  });

  test('retried', async () => {
    const r = await call('/fail');
    expect(r.status).toBe(200);
    expect(observer.calls).toContain('retried payment v1');
    await sleep(20);
    expect(observer.ended[observer.ended.length - 1]).toMatchObject({ status: 200, retries: 1 });
  });

  test('endpointEjected (then no healthy upstream, flag UH)', async () => {
    const r = await call('/always-fail');
    expect(r.status).toBe(503);
    expect(r.body).toBe('no healthy upstream\n');
    expect(observer.calls).toContain('ejected payment v1');
    expect(observer.ended[observer.ended.length - 1].flags).toContain('UH');
  });

  test('poolOverflow with the UO flag', async () => {
    await sleep(450); // let the ejection expire
    const results = await Promise.all([call('/slow'), call('/slow')]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 503]);
    expect(observer.calls).toContain('overflow payment');
    expect(observer.ended.some((o) => o.status === 503 && o.flags.includes('UO'))).toBe(true);
  });

  test('admin /metrics serves observer.metrics() with its content type', async () => {
    const r = await request(`http://127.0.0.1:${rawConfig.listeners!.adminPort}/metrics`);
    expect(r.headers['content-type']).toBe('text/plain');
    expect(await r.body.text()).toBe('recorded_requests_total 1\n');
  });

  test('configReload(true) and configReload(false)', async () => {
    await sidecar.reloadConfig('test');
    const valid = JSON.parse(JSON.stringify(rawConfig));
    valid.drainTimeoutMs = 1234;
    writeFileSync(configFile, JSON.stringify(valid));
    await sidecar.reloadConfig('test');
    writeFileSync(configFile, JSON.stringify({ ...valid, kind: 'Nope' }));
    await sidecar.reloadConfig('test');
    expect(observer.calls.filter((c) => c.startsWith('reload'))).toEqual(['reload true', 'reload false']);
  });
});
