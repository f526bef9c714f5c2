/**
 * The admin listener: readiness, app probe passthrough (kubelet probes are rewritten to this
 * port), the config in effect, cluster state, and metrics.
 */
import * as http from 'node:http';
import type { ProxyObserver } from './observer';
import type { ProxyState } from './state';

/** What the admin endpoints read. */
export interface AdminDeps {
  readonly state: () => ProxyState;
  readonly observer: ProxyObserver;
  /** Undefined when ready, else why not. */
  readonly notReadyReason: () => string | undefined;
  /** Facts about the loaded certificate (no key material). */
  readonly certificate: () => { spiffeId?: string; notAfter: string; fingerprint256: string };
}

const PROBE_TIMEOUT_MS = 5000;

/** Creates the admin request handler. */
export function adminHandler(deps: AdminDeps): http.RequestListener {
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed: the admin port serves GET only');
    if (path === '/healthz/ready') {
      const why = deps.notReadyReason();
      return why ? text(res, 503, `not ready: ${why}`) : text(res, 200, 'ready');
    }
    if (path.startsWith('/app-health/')) return void probeApp(deps.state(), path, new URLSearchParams(q >= 0 ? url.slice(q + 1) : ''), res);
    if (path === '/config_dump') {
      const s = deps.state();
      return json(res, 200, { config: s.config, certificate: deps.certificate() });
    }
    if (path === '/clusters') return json(res, 200, clusters(deps.state()));
    if (path === '/metrics') {
      deps.observer.metrics().then((m) => {
        if (m === undefined) return text(res, 404, 'metrics are disabled (telemetry.metrics.enabled is false)');
        res.writeHead(200, { 'content-type': deps.observer.metricsContentType, 'content-length': Buffer.byteLength(m) });
        res.end(m);
      }, (e: Error) => text(res, 500, `metrics failed: ${e.message}`));
      return;
    }
    return text(res, 404, `not found: ${path} (admin endpoints: /healthz/ready, /app-health/<port-name>/<livez|readyz>, /config_dump, /clusters, /metrics)`);
  };
}

function clusters(state: ProxyState): unknown {
  const now = Date.now();
  return {
    services: [...state.clusters.values()].map((c) => ({
      name: c.name,
      namespace: c.config.namespace,
      loadBalancer: c.config.loadBalancer.policy,
      activeRequests: c.active,
      pendingRequests: c.pending,
      subsets: [...c.subsets.values()].map((s) => ({
        name: s.name,
        identity: s.subset.identity,
        discovery: s.subset.discovery.type,
        endpoints: s.endpoints.map((e) => ({
          address: e.key,
          activeRequests: e.active,
          ejected: e.isEjected(now),
          ejectedUntil: e.isEjected(now) ? new Date(e.ejectedUntil).toISOString() : undefined,
          timesEjected: e.timesEjected,
          consecutive5xx: e.consecutive5xx,
          consecutiveGatewayErrors: e.consecutiveGatewayErrors,
        })),
      })),
    })),
  };
}

/**
 * /app-health/<port-name>/<livez|readyz>: GET on the app port named <port-name>; 200 iff the
 * app answers 2xx or 3xx within 5 s. The app path is `?path=` when given, else `/`.
 */
function probeApp(state: ProxyState, path: string, query: URLSearchParams, res: http.ServerResponse): void {
  const m = /^\/app-health\/([^/]+)\/(livez|readyz)$/.exec(path);
  if (!m) return text(res, 404, 'not found: use /app-health/<port-name>/<livez|readyz>');
  const appPort = state.config.workload.appPorts.find((p) => p.name === m[1]);
  if (!appPort) return text(res, 404, `unknown app port "${m[1]}" (known: ${state.config.workload.appPorts.map((p) => p.name).join(', ')})`);
  const appPath = query.get('path') ?? '/';
  const probe = http.get({ host: state.config.inbound.app.address, port: appPort.port, path: appPath.startsWith('/') ? appPath : '/' + appPath, timeout: PROBE_TIMEOUT_MS, agent: false, headers: { 'user-agent': 'typemesh-proxy-probe' } }, (r) => {
    r.resume();
    const status = r.statusCode ?? 0;
    if (status >= 200 && status < 400) text(res, 200, `app ${m[2]}: ${status}`);
    else text(res, 503, `app ${m[2]} failed: the app answered ${status}`);
  });
  probe.on('timeout', () => probe.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
  probe.on('error', (e) => {
    if (!res.headersSent) text(res, 503, `app ${m[2]} failed: ${e.message}`);
  });
}

function text(res: http.ServerResponse, status: number, body: string): void {
  const buf = Buffer.from(body + '\n');
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': buf.length });
  res.end(buf);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  const buf = Buffer.from(JSON.stringify(value, null, 2) + '\n');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.length });
  res.end(buf);
}
