/**
 * The admin listener: readiness, app probes (kubelet probes are rewritten to this port), the
 * config in effect, cluster state, and metrics. The port is reachable from outside the pod
 * (kubelet and Prometheus need it), so what it serves to a remote client is fixed: readiness,
 * metrics and the app probes the config declares. The config dump and cluster state (names,
 * addresses, identities) are served only to clients on loopback, that is inside the pod.
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
    // Liveness: answered while the event loop serves, whatever the config or certificates say
    // (a proxy that is merely not ready must not be restarted by the kubelet).
    if (path === '/healthz/live') return text(res, 200, 'alive');
    if (path === '/healthz/ready') {
      const why = deps.notReadyReason();
      return why ? text(res, 503, `not ready: ${why}`) : text(res, 200, 'ready');
    }
    // The query is ignored: a probe GETs the path the config declares, nothing a client names.
    if (path.startsWith('/app-health/')) return void probeApp(deps.state(), path, res);
    if (path === '/config_dump' || path === '/clusters') {
      // The kernel drops packets from outside the pod addressed to loopback (martian source or
      // destination), so a loopback peer address is a process of this pod's network namespace.
      if (!isLoopbackPeer(req.socket.remoteAddress)) return text(res, 403, `forbidden: ${path} is served only on loopback (from inside the pod)`);
      if (path === '/clusters') return json(res, 200, clusters(deps.state()));
      const s = deps.state();
      return json(res, 200, { config: s.config, certificate: deps.certificate() });
    }
    if (path === '/metrics') {
      deps.observer.metrics().then((m) => {
        if (m === undefined) return text(res, 404, 'metrics are disabled (telemetry.metrics.enabled is false)');
        res.writeHead(200, { 'content-type': deps.observer.metricsContentType, 'content-length': Buffer.byteLength(m) });
        res.end(m);
      }, (e: Error) => text(res, 500, `metrics failed: ${e.message}`));
      return;
    }
    return text(res, 404, `not found: ${path} (admin endpoints: /healthz/live, /healthz/ready, /app-health/<port-name>/<livez|readyz>, /metrics; /config_dump and /clusters on loopback)`);
  };
}

/** True when a connection comes from a loopback address (IPv4 127/8, ::1, or IPv4-mapped 127/8). */
export function isLoopbackPeer(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === '::1';
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
 * /app-health/<port-name>/<livez|readyz>: GETs the path that inbound.probes declares for that
 * port and kind on the app; 200 iff the app answers 2xx or 3xx within 5 s. A probe the config
 * does not declare is 404: no client chooses the app path.
 */
function probeApp(state: ProxyState, path: string, res: http.ServerResponse): void {
  const m = /^\/app-health\/([^/]+)\/(livez|readyz)$/.exec(path);
  if (!m) return text(res, 404, 'not found: use /app-health/<port-name>/<livez|readyz>');
  const [, portName, kind] = m;
  const appPort = state.config.workload.appPorts.find((p) => p.name === portName);
  const probe = state.config.inbound.probes.find((p) => p.portName === portName && p.kind === kind);
  if (!appPort || !probe) {
    const declared = state.config.inbound.probes.map((p) => `${p.portName}/${p.kind}`).join(', ') || 'none';
    return text(res, 404, `no ${kind} probe is declared for app port "${portName}" (declared: ${declared})`);
  }
  const get = http.get({ host: state.config.inbound.app.address, port: appPort.port, path: probe.path, timeout: PROBE_TIMEOUT_MS, agent: false, headers: { 'user-agent': 'typemesh-proxy-probe' } }, (r) => {
    r.resume();
    const status = r.statusCode ?? 0;
    if (status >= 200 && status < 400) text(res, 200, `app ${kind}: ${status}`);
    else text(res, 503, `app ${kind} failed: the app answered ${status}`);
  });
  get.on('timeout', () => get.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
  get.on('error', (e) => {
    if (!res.headersSent) text(res, 503, `app ${kind} failed: ${e.message}`);
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
