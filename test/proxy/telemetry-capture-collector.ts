/**
 * A real HTTP server standing in for a trace collector in the telemetry tests: it accepts
 * OTLP/HTTP JSON (POST /v1/traces) and Zipkin v2 (POST /api/v2/spans) on 127.0.0.1 and keeps
 * what it received, so a test can assert on the spans a sidecar actually exported.
 */
import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST the collector received. */
export interface CapturedExport {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: unknown;
}

/** A span, flattened from either protocol. */
export interface CapturedSpan {
  readonly protocol: 'otlp' | 'zipkin';
  readonly serviceName: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  /** 'CLIENT' | 'SERVER' | ... */
  readonly kind: string;
  readonly attributes: Record<string, string | number | boolean>;
  /** OTLP status code (2 = ERROR), undefined for Zipkin. */
  readonly statusCode?: number;
}

const OTLP_KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

/** The capture collector. */
export class CaptureCollector {
  /** Starts one on an ephemeral port of 127.0.0.1. */
  public static async start(): Promise<CaptureCollector> {
    const collector = new CaptureCollector();
    await new Promise<void>((resolve) => collector.server.listen(0, '127.0.0.1', resolve));
    return collector;
  }

  public readonly exports: CapturedExport[] = [];
  private readonly server: Server;
  private waiters: Array<() => void> = [];

  private constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Kept as text: a test asserting on JSON will fail and show it.
        }
        this.exports.push({ path: req.url ?? '', headers: req.headers, body });
        // OTLP expects a JSON ExportTraceServiceResponse; Zipkin answers 202.
        if (req.url === '/api/v2/spans') {
          res.writeHead(202).end();
        } else {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        }
        const waiters = this.waiters;
        this.waiters = [];
        waiters.forEach((w) => w());
      });
    });
  }

  /** Base URL, e.g. http://127.0.0.1:41234 */
  public get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Every span received so far, from both protocols. */
  public spans(): CapturedSpan[] {
    const out: CapturedSpan[] = [];
    for (const e of this.exports) {
      if (e.path === '/v1/traces') out.push(...otlpSpans(e.body));
      else if (e.path === '/api/v2/spans') out.push(...zipkinSpans(e.body));
    }
    return out;
  }

  /** Waits until predicate(spans()) holds, or fails after timeoutMs. */
  public async waitForSpans(predicate: (spans: CapturedSpan[]) => boolean, timeoutMs = 10000): Promise<CapturedSpan[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.spans())) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`capture collector: condition not met within ${timeoutMs} ms; received ${JSON.stringify(this.spans(), null, 1)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.spans();
  }

  public async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface OtlpValue { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
interface OtlpKeyValue { key: string; value: OtlpValue }

function otlpValue(v: OtlpValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return JSON.stringify(v);
}

function otlpAttributes(kvs: OtlpKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of kvs ?? []) out[kv.key] = otlpValue(kv.value);
  return out;
}

function otlpSpans(body: unknown): CapturedSpan[] {
  const out: CapturedSpan[] = [];
  const resourceSpans = (body as { resourceSpans?: any[] }).resourceSpans ?? [];
  for (const rs of resourceSpans) {
    const resource = otlpAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          protocol: 'otlp',
          serviceName: String(resource['service.name']),
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId || undefined,
          name: s.name,
          kind: OTLP_KINDS[s.kind] ?? String(s.kind),
          attributes: { ...otlpAttributes(s.attributes), ...prefixed('resource.', resource) },
          statusCode: s.status?.code,
        });
      }
    }
  }
  return out;
}

function prefixed(prefix: string, attrs: Record<string, string | number | boolean>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(attrs)) out[prefix + k] = v;
  return out;
}

function zipkinSpans(body: unknown): CapturedSpan[] {
  return ((body as any[]) ?? []).map((s) => ({
    protocol: 'zipkin' as const,
    serviceName: s.localEndpoint?.serviceName,
    traceId: s.traceId,
    spanId: s.id,
    parentSpanId: s.parentId,
    name: s.name,
    kind: s.kind,
    attributes: s.tags ?? {},
  }));
}
