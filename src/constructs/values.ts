import { Duration } from 'cdk8s';
import { IConstruct } from 'constructs';
import { fail } from './errors';

/** How a workload's inbound listener treats plaintext. */
export enum MtlsMode {
  /** Only mutual TLS is accepted; plaintext connections are refused. */
  STRICT = 'STRICT',
  /** Mutual TLS and plaintext are both accepted (for migrating clients outside the mesh). */
  PERMISSIVE = 'PERMISSIVE',
}

/** The conditions on which a request is retried (the names are Envoy's). */
export enum RetryOn {
  /** Any 5xx response, and connect failures and resets. */
  FIVE_XX = '5xx',
  /** 502, 503 and 504 responses. */
  GATEWAY_ERROR = 'gateway-error',
  /** The upstream reset the connection before a response. */
  RESET = 'reset',
  /** The connection to the upstream could not be opened. */
  CONNECT_FAILURE = 'connect-failure',
  /** 409 responses. */
  RETRIABLE_4XX = 'retriable-4xx',
  /** The status codes listed in `retriableStatusCodes` (added for you when you list codes). */
  RETRIABLE_STATUS_CODES = 'retriable-status-codes',
  /** gRPC status CANCELLED. */
  CANCELLED = 'cancelled',
  /** gRPC status DEADLINE_EXCEEDED. */
  DEADLINE_EXCEEDED = 'deadline-exceeded',
  /** gRPC status INTERNAL. */
  INTERNAL = 'internal',
  /** gRPC status RESOURCE_EXHAUSTED. */
  RESOURCE_EXHAUSTED = 'resource-exhausted',
  /** gRPC status UNAVAILABLE. */
  UNAVAILABLE = 'unavailable',
}

/** The sidecar's access log. */
export enum AccessLogFormat {
  /** One JSON object per request. */
  JSON = 'json',
  /** One human-readable line per request. */
  TEXT = 'text',
  /** No access log. */
  OFF = 'off',
}

/** The application protocol of a port. */
export enum Protocol {
  /** HTTP/1.1. */
  HTTP = 'http',
  /** HTTP/2 (prior knowledge). */
  HTTP2 = 'http2',
  /** gRPC over HTTP/2. */
  GRPC = 'grpc',
  /**
   * Plain TCP (databases, Redis, Kafka): meshed with mTLS and authorized by principal and
   * namespace per connection; no routes, retries, timeouts, splits or HTTP probes apply.
   */
  TCP = 'tcp',
}

/** An HTTP method, as matched by routes and authorization rules. */
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS' | 'CONNECT' | 'TRACE';

/** The HTTP methods the sidecar knows. */
export const HTTP_METHODS: readonly HttpMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];

/** Where the sidecars send trace spans. */
export class TracingCollector {
  /** An OpenTelemetry collector's OTLP/HTTP traces endpoint, e.g. `http://otel-collector.observability:4318/v1/traces`. */
  public static otlpHttp(endpoint: string): TracingCollector {
    return new TracingCollector('otlp-http', endpoint);
  }

  /** A Zipkin collector's spans endpoint, e.g. `http://zipkin.observability:9411/api/v2/spans`. */
  public static zipkin(endpoint: string): TracingCollector {
    return new TracingCollector('zipkin', endpoint);
  }

  private constructor(
    /** The export protocol. */
    public readonly protocol: 'otlp-http' | 'zipkin',
    /** The collector's URL. */
    public readonly endpoint: string,
  ) {}
}

/**
 * Converts a Duration to integer milliseconds, failing with the construct path and the prop's
 * name when it is not a Duration, negative, not whole or too small. cdk8s's own Duration
 * factories refuse a negative amount where the Duration is made (before any construct sees
 * it); a Duration from another copy of cdk8s, a hand-made one or a plain number (from
 * JavaScript) reaches this check instead of failing deep inside a construct without its path.
 */
export function durationMs(construct: IConstruct, prop: string, d: Duration, minMs = 0): number {
  const example = `Duration.millis(${Math.max(minMs, 1000)})`;
  if (typeof (d as Partial<Duration> | undefined)?.toMilliseconds !== 'function') {
    fail({ construct, prop, value: d, problem: 'is not a Duration', fix: `use a cdk8s Duration, e.g. ${example}` });
  }
  let ms: number;
  try {
    ms = d.toMilliseconds({ integral: false });
  } catch (e) {
    fail({ construct, prop, value: String(d), problem: `is not a valid Duration (${e instanceof Error ? e.message : String(e)})`, fix: `use e.g. ${example}` });
  }
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    fail({ construct, prop, value: String(ms), problem: 'is not a finite number of milliseconds', fix: `use e.g. ${example}` });
  }
  if (ms < 0) {
    fail({ construct, prop, value: `${ms}ms`, problem: 'must not be negative', fix: `use a Duration of at least ${minMs} ms, e.g. ${example}` });
  }
  if (!Number.isInteger(ms) || ms < minMs) {
    fail({
      construct, prop, value: `${ms}ms`,
      problem: minMs > 0 ? `must be a whole number of milliseconds of at least ${minMs} ms` : 'must be a whole number of milliseconds',
      fix: `use e.g. Duration.millis(${Math.max(minMs, Math.round(ms))})`,
    });
  }
  return ms;
}

/** Formats milliseconds as a Go duration (cert-manager's format), e.g. `24h`, `90m`, `30s`. */
export function goDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
