/**
 * Distributed tracing of the sidecar: one span per hop (CLIENT at the caller's sidecar,
 * SERVER at the callee's), trace context read and written as W3C traceparent and B3 (single
 * `b3` header and multi `x-b3-*` headers), spans exported in batches over OTLP/HTTP (JSON) or
 * to Zipkin.
 *
 * The tracer provider is used directly and never registered globally: no global context
 * manager (so no async hooks on the hot path) and no auto-instrumentation. Parent contexts are
 * passed explicitly.
 */
import { Attributes, Context, defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, Span, SpanKind, trace, Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, SpanExporter, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { IncomingHttpHeaders } from 'node:http';

/** Where spans go. */
export interface TraceCollector {
  /** 'otlp-http' (OTLP/HTTP with JSON bodies) or 'zipkin' (Zipkin v2 JSON). */
  readonly protocol: 'otlp-http' | 'zipkin';
  /**
   * The collector's URL. A URL without a path gets the protocol's standard one appended
   * (/v1/traces for OTLP, /api/v2/spans for Zipkin); a URL with a path is used as is.
   */
  readonly endpoint: string;
}

/** Options of {@link MeshTracing}. */
export interface MeshTracingOptions {
  readonly collector: TraceCollector;
  /** Percentage (0-100) of new traces sampled; requests with a parent follow the parent's decision. */
  readonly sampleRatePercent: number;
  /** The workload, written as the spans' resource (service.name, service.namespace, service.version). */
  readonly workload: { readonly name: string; readonly namespace: string; readonly version: string };
  /**
   * Longest time a finished span waits before it is exported.
   * @default 1000
   */
  readonly scheduledDelayMillis?: number;
  /**
   * Most finished spans queued for export; more are dropped (bounded memory when the collector is down).
   * @default 2048
   */
  readonly maxQueueSize?: number;
}

/** A started span and the headers that carry its context to the next hop. */
export interface StartedSpan {
  readonly span: Span;
  /** traceparent (and tracestate), b3, x-b3-traceid, x-b3-spanid, x-b3-sampled. */
  readonly headers: Record<string, string>;
}

/** The standard path of a protocol's endpoint, appended to a collector URL that has none. */
const DEFAULT_PATHS: Record<TraceCollector['protocol'], string> = { 'otlp-http': '/v1/traces', 'zipkin': '/api/v2/spans' };

/** The collector URL actually posted to. */
export function collectorUrl(collector: TraceCollector): string {
  const url = new URL(collector.endpoint);
  if (url.pathname === '' || url.pathname === '/') url.pathname = DEFAULT_PATHS[collector.protocol];
  return url.toString();
}

/**
 * Reads W3C and B3 (single and multi) trace context, writes all three. On extraction W3C
 * wins when a request carries both, because the composite runs in order and the last
 * propagator that finds a context replaces the earlier ones.
 */
export function createMeshPropagator(): CompositePropagator {
  return new CompositePropagator({
    propagators: [
      new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }),
      new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }),
      new W3CTraceContextPropagator(),
    ],
  });
}

/** The sidecar's tracer: spans per hop, propagation, batched export. */
export class MeshTracing {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly propagator = createMeshPropagator();

  public constructor(options: MeshTracingOptions) {
    const exporter = createExporter(options.collector);
    const ratio = Math.min(Math.max(options.sampleRatePercent, 0), 100) / 100;
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        [ATTR_SERVICE_NAME]: options.workload.name,
        // service.namespace is not stable in the semantic conventions yet; the string is.
        'service.namespace': options.workload.namespace,
        [ATTR_SERVICE_VERSION]: options.workload.version,
      }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
      spanProcessors: [new BatchSpanProcessor(exporter, {
        scheduledDelayMillis: options.scheduledDelayMillis ?? 1000,
        maxQueueSize: options.maxQueueSize ?? 2048,
        maxExportBatchSize: 512,
      })],
    });
    this.tracer = this.provider.getTracer('typemesh-proxy');
  }

  /**
   * Starts the span of one hop as a child of the context in the incoming headers (if any) and
   * returns the headers that make the next hop a child of this span.
   */
  public startSpan(kind: SpanKind.CLIENT | SpanKind.SERVER, name: string, incoming: IncomingHttpHeaders, attributes: Attributes, startTime: number): StartedSpan {
    const parent: Context = this.propagator.extract(ROOT_CONTEXT, incoming, defaultTextMapGetter);
    const span = this.tracer.startSpan(name, { kind, attributes, startTime }, parent);
    const headers: Record<string, string> = {};
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, defaultTextMapSetter);
    return { span, headers };
  }

  /**
   * Exports the spans still queued and stops the exporter, waiting at most timeoutMs: the OTLP
   * exporter retries an unreachable collector with backoff for about 9 s, and a sidecar that
   * is draining must not wait for that.
   */
  public async shutdown(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([this.provider.shutdown().catch(() => undefined), timeout]);
    clearTimeout(timer);
  }

  /** Exports the spans still queued. */
  public async flush(): Promise<void> {
    await this.provider.forceFlush();
  }
}

function createExporter(collector: TraceCollector): SpanExporter {
  const url = collectorUrl(collector);
  switch (collector.protocol) {
    case 'zipkin':
      return new ZipkinExporter({ url });
    case 'otlp-http':
      return new OTLPTraceExporter({ url });
  }
}
