/**
 * A plain HTTP/1.1 JSON client for the shop apps. It knows nothing about the mesh: like
 * curl, it honours the standard HTTP_PROXY / NO_PROXY variables by sending absolute-form
 * requests to the proxy, and otherwise connects to the URL's host itself (which is what
 * happens under transparent interception, where no proxy variable is set at all).
 */
import * as http from 'node:http';

/** One reply of an upstream call. */
export interface JsonReply {
  readonly status: number;
  readonly body: unknown;
}

// No cap of its own worth the name: the mesh's connection pool (CircuitBreaker) is what limits
// calls, and the demo's burst must reach it.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

function proxyFor(target: URL): URL | undefined {
  const proxy = process.env.HTTP_PROXY ?? process.env.http_proxy;
  if (!proxy) return undefined;
  const noProxy = (process.env.NO_PROXY ?? process.env.no_proxy ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (noProxy.some((h) => h === '*' || target.hostname === h || target.hostname.endsWith(h.startsWith('.') ? h : `.${h}`))) return undefined;
  return new URL(proxy);
}

/** Sends a request with an optional JSON body and parses the JSON reply (non-JSON replies become `{ text }`). */
export function requestJson(method: string, url: string, body?: unknown, timeoutMs = 10_000): Promise<JsonReply> {
  const target = new URL(url);
  const proxy = proxyFor(target);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: http.OutgoingHttpHeaders = { 'host': target.host, 'accept': 'application/json' };
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  return new Promise<JsonReply>((resolve, reject) => {
    const req = http.request({
      agent,
      method,
      host: proxy ? proxy.hostname : target.hostname,
      port: proxy ? Number(proxy.port || 80) : Number(target.port || 80),
      // Absolute-form when talking to a proxy (RFC 9112 section 3.2.2), origin-form otherwise.
      path: proxy ? target.href : `${target.pathname}${target.search}`,
      headers,
      timeout: timeoutMs,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text.length > 0 ? JSON.parse(text) : undefined;
        } catch {
          parsed = { text };
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms calling ${url}`)));
    req.on('error', reject);
    req.end(payload);
  });
}
