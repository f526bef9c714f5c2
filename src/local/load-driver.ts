/**
 * The demo's and the tests' traffic: a closed-loop load driver that calls a MeshGateway's
 * HTTP listeners as a client outside the mesh, or a workload's inbound listeners over mTLS
 * with a certificate from the mesh CA, round-robin over the instances, and measures every
 * request itself.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import type { ClientCredentials } from './local-mesh';

/** One instance's inbound listener and the identity it must present (or a gateway's plain HTTP listener). */
export interface LoadTarget {
  readonly address: string;
  readonly port: number;
  /**
   * The SPIFFE ID expected in the listener's certificate.
   * @default none: only for plain HTTP (no credentials)
   */
  readonly identity?: string;
}

/** Options of {@link runLoad}. */
export interface LoadOptions {
  readonly targets: readonly LoadTarget[];
  /**
   * The client certificate for mTLS to inbound listeners.
   * @default none: plain HTTP, as a client outside the mesh calls a gateway
   */
  readonly credentials?: ClientCredentials;
  /** Path (and query) of every request. */
  readonly path: string;
  /**
   * @default 'GET'
   */
  readonly method?: string;
  /**
   * Host header, e.g. the entry service's name.
   * @default the target's address
   */
  readonly host?: string;
  /**
   * Requests in flight at once.
   * @default 8
   */
  readonly concurrency?: number;
  /**
   * Stop after this many requests.
   * @default unbounded (then durationMs must be set)
   */
  readonly requests?: number;
  /**
   * Stop after this long, in ms.
   * @default unbounded (then requests must be set)
   */
  readonly durationMs?: number;
  /**
   * Timeout of each request, in ms.
   * @default 10000
   */
  readonly timeoutMs?: number;
  /**
   * Reads the version that served a request from its JSON body.
   * @default none
   */
  readonly versionOf?: (body: unknown) => string | undefined;
  /** Called after every request. */
  readonly onResult?: (result: LoadResult) => void;
  /** Stops the run early. */
  readonly signal?: AbortSignal;
}

/** One request's outcome. */
export interface LoadResult {
  /** HTTP status, or 0 when the request failed without a response. */
  readonly status: number;
  readonly latencyMs: number;
  /** The version read by `versionOf`. */
  readonly version?: string;
  /** The JSON body (parsed when possible). */
  readonly body?: unknown;
  /** Why it failed without a response. */
  readonly error?: string;
  /** When it ended (ms since the run began). */
  readonly endedAtMs: number;
}

/** What a run measured. */
export interface LoadReport {
  readonly results: readonly LoadResult[];
  readonly elapsedMs: number;
  readonly total: number;
  /** Requests answered 2xx. */
  readonly ok: number;
  readonly successRate: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Count per status (0: no response). */
  readonly statuses: Readonly<Record<string, number>>;
  /** Count per version read from the bodies. */
  readonly versions: Readonly<Record<string, number>>;
}

/** The q-quantile (0..1) of numbers. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Summarizes results. */
export function summarizeLoad(results: readonly LoadResult[], elapsedMs: number): LoadReport {
  const statuses: Record<string, number> = {};
  const versions: Record<string, number> = {};
  let ok = 0;
  for (const r of results) {
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    if (r.status >= 200 && r.status < 300) ok++;
    if (r.version) versions[r.version] = (versions[r.version] ?? 0) + 1;
  }
  const latencies = results.map((r) => r.latencyMs);
  return {
    results, elapsedMs, total: results.length, ok,
    successRate: results.length > 0 ? ok / results.length : 0,
    requestsPerSecond: elapsedMs > 0 ? results.length / (elapsedMs / 1000) : 0,
    p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99),
    statuses, versions,
  };
}

/** Checks that the peer presented the expected SPIFFE ID (the mesh's certificates carry no DNS names). */
function checkSpiffe(expected: string) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const uris = (cert.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
    return uris.includes(expected) ? undefined : new Error(`peer presented ${uris.join(', ') || 'no SPIFFE ID'}, expected ${expected}`);
  };
}

/** Sends requests until the count or the duration is reached; resolves with the report. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  if (options.targets.length === 0) throw new Error('runLoad: no targets (is the entry workload running?)');
  if (options.requests === undefined && options.durationMs === undefined) throw new Error('runLoad: set requests, durationMs or both');
  const creds = options.credentials;
  const agents = options.targets.map((t) => (creds ? new https.Agent({
    keepAlive: true,
    maxSockets: options.concurrency ?? 8,
    cert: creds.cert,
    key: creds.key,
    ca: creds.ca,
    checkServerIdentity: checkSpiffe(t.identity ?? ''),
  }) : new http.Agent({ keepAlive: true, maxSockets: options.concurrency ?? 8 })));
  const request = creds ? https.request : http.request;
  const started = Date.now();
  const results: LoadResult[] = [];
  let issued = 0;
  let next = 0;
  const more = (): boolean => !options.signal?.aborted
    && (options.requests === undefined || issued < options.requests)
    && (options.durationMs === undefined || Date.now() - started < options.durationMs);

  const one = (target: LoadTarget, agent: http.Agent): Promise<LoadResult> => new Promise((resolve) => {
    const t0 = performance.now();
    const done = (r: Omit<LoadResult, 'latencyMs' | 'endedAtMs'>): void => resolve({ ...r, latencyMs: performance.now() - t0, endedAtMs: Date.now() - started });
    const req = request({
      host: target.address, port: target.port, method: options.method ?? 'GET', path: options.path, agent,
      headers: { host: options.host ?? target.address },
      timeout: options.timeoutMs ?? 10_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => done({ status: 0, error: e.message }));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        done({ status: res.statusCode ?? 0, body, version: options.versionOf?.(body) });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => done({ status: 0, error: e.message }));
    req.end();
  });

  const worker = async (): Promise<void> => {
    while (more()) {
      issued++;
      const i = next++ % options.targets.length;
      const result = await one(options.targets[i], agents[i]);
      results.push(result);
      options.onResult?.(result);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  agents.forEach((a) => a.destroy());
  return summarizeLoad(results, Date.now() - started);
}
