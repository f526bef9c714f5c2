import { Duration } from 'cdk8s';
import { IConstruct } from 'constructs';
import type { OutboundService, RetryPolicyConfig, Route } from '../config/schema';
import { checkInteger, checkPercentage, fail } from './errors';
import { durationMs, RetryOn } from './values';

/** A share of a route's traffic sent to one version. */
export interface WeightedVersion {
  /** The version's name (one of the service's `versions`). */
  readonly version: string;
  /** Percentage of requests, an integer from 0 to 100; the weights of a route sum to 100. */
  readonly weight: number;
}

/** Retries of a route. */
export interface RetryOptions {
  /** Retries after the first try, 0 to 10 (0 disables retries). */
  readonly attempts: number;
  /**
   * Timeout of each try; must not exceed the route's timeout.
   * @default - only the route timeout applies
   */
  readonly perTryTimeout?: Duration;
  /**
   * When to retry.
   * @default [RetryOn.GATEWAY_ERROR, RetryOn.RESET, RetryOn.CONNECT_FAILURE]
   */
  readonly retryOn?: RetryOn[];
  /**
   * Status codes that are retried (adds RetryOn.RETRIABLE_STATUS_CODES for you).
   * @default - none
   */
  readonly retriableStatusCodes?: number[];
  /**
   * First backoff interval; each retry waits a random (jittered) time up to base * 2^n, capped by `backoffMaxInterval`.
   * @default Duration.millis(25)
   */
  readonly backoffBaseInterval?: Duration;
  /**
   * Longest backoff interval.
   * @default Duration.millis(250)
   */
  readonly backoffMaxInterval?: Duration;
  /**
   * Retry budget: retries may add at most this percentage of the requests in flight.
   * @default 20
   */
  readonly budgetPercent?: number;
  /**
   * Retry budget floor: this many retries per second are always allowed.
   * @default 10
   */
  readonly minRetriesPerSecond?: number;
  /**
   * Retry only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), never POST, PATCH
   * or CONNECT. By default `retryOn` applies to the route's requests whatever the method, as
   * in Envoy and Istio: a request body up to 64 KiB is buffered and replayed on each retry (a
   * larger body is streamed and not retried; the access log shows flag RBL). Set this when a
   * retried POST could do its work twice, e.g. a payment API without idempotency keys.
   * @default false - every method is retried
   */
  readonly idempotentOnly?: boolean;
}

/** A delay fault. */
export interface DelayFault {
  /** How long to delay. */
  readonly fixedDelay: Duration;
  /** Percentage of requests delayed. */
  readonly percentage: number;
}

/** An abort fault. */
export interface AbortFault {
  /** Status code returned instead of calling the upstream (200-599). */
  readonly httpStatus: number;
  /** Percentage of requests aborted. */
  readonly percentage: number;
}

/** Fault injection of a route (for resilience tests). */
export interface FaultOptions {
  /**
   * Delay some requests.
   * @default - no delay
   */
  readonly delay?: DelayFault;
  /**
   * Fail some requests.
   * @default - no abort
   */
  readonly abort?: AbortFault;
}

/** Mirroring (shadowing) of a route's requests to another version; mirrored responses are discarded. */
export interface MirrorOptions {
  /** The version that receives the copies; it must not be one that serves the route. */
  readonly version: string;
  /**
   * Percentage of requests copied.
   * @default 100
   */
  readonly percentage?: number;
}

/** The load-balancing policy across a version's endpoints. */
export enum LoadBalancerPolicy {
  /** Each endpoint in turn. */
  ROUND_ROBIN = 'ROUND_ROBIN',
  /** The less loaded of two random endpoints. */
  LEAST_REQUEST = 'LEAST_REQUEST',
}

/** Connection pool limits towards a service (per calling sidecar). */
export interface ConnectionPoolOptions {
  /**
   * Most connections open to the service.
   * @default 1024
   */
  readonly maxConnections?: number;
  /**
   * Most requests waiting for a connection; more are refused with 503 (flag UO).
   * @default 1024
   */
  readonly maxPendingRequests?: number;
  /**
   * Requests per connection before it is closed; 0 is unlimited.
   * @default 0
   */
  readonly maxRequestsPerConnection?: number;
  /**
   * Connect timeout.
   * @default Duration.seconds(10)
   */
  readonly connectTimeout?: Duration;
  /**
   * Idle connections are closed after this long.
   * @default Duration.seconds(60)
   */
  readonly idleTimeout?: Duration;
}

/** Outlier detection: endpoints that fail repeatedly are ejected for a while. */
export interface OutlierDetectionOptions {
  /**
   * Consecutive 5xx responses that eject an endpoint (0 disables the check).
   * @default 5
   */
  readonly consecutive5xxErrors?: number;
  /**
   * Consecutive 502/503/504 responses that eject an endpoint (0 disables the check).
   * @default 0
   */
  readonly consecutiveGatewayErrors?: number;
  /**
   * How often ejections are evaluated.
   * @default Duration.seconds(10)
   */
  readonly interval?: Duration;
  /**
   * An ejected endpoint stays out this long times the number of its ejections.
   * @default Duration.seconds(30)
   */
  readonly baseEjectionTime?: Duration;
  /**
   * Cap on the endpoints of a version ejected at once, in percent, applied as in Envoy: an
   * endpoint is ejected only while fewer than this percentage are ejected, so one endpoint can
   * always be ejected (a 2-replica version at 10 % ejects its failing replica) and the cap
   * applies beyond it. 0 is refused (no endpoint could ever be ejected): omit
   * `outlierDetection` instead.
   * @default 10
   */
  readonly maxEjectionPercent?: number;
}

/** Largest request body buffered for replay by a retry (Envoy's per_request_buffer_limit is of this size). */
const RETRY_BUFFER_LIMIT_BYTES = 65536;

/** @internal */
export function retryConfig(c: IConstruct, prefix: string, o: RetryOptions): RetryPolicyConfig {
  checkInteger(c, `${prefix}attempts`, o.attempts, 0, 10, 'use 0 to 10 retries (0 disables retries)');
  const retryOn = [...(o.retryOn ?? [RetryOn.GATEWAY_ERROR, RetryOn.RESET, RetryOn.CONNECT_FAILURE])];
  const known = Object.values(RetryOn) as string[];
  retryOn.forEach((r, i) => {
    if (!known.includes(r)) fail({ construct: c, prop: `${prefix}retryOn[${i}]`, value: r, problem: `is not a retry condition (${known.join(', ')})`, fix: 'use a RetryOn value such as RetryOn.FIVE_XX' });
  });
  if (retryOn.length === 0) fail({ construct: c, prop: `${prefix}retryOn`, value: [], problem: 'no condition would ever retry', fix: 'list at least one RetryOn condition, or set attempts: 0' });
  const codes = o.retriableStatusCodes ?? [];
  codes.forEach((code, i) => checkInteger(c, `${prefix}retriableStatusCodes[${i}]`, code, 100, 599, 'list HTTP status codes from 100 to 599'));
  if (codes.length > 0 && !retryOn.includes(RetryOn.RETRIABLE_STATUS_CODES)) retryOn.push(RetryOn.RETRIABLE_STATUS_CODES);
  if (codes.length === 0 && retryOn.includes(RetryOn.RETRIABLE_STATUS_CODES)) {
    fail({ construct: c, prop: `${prefix}retriableStatusCodes`, value: [], problem: 'RetryOn.RETRIABLE_STATUS_CODES is given but no status codes are listed', fix: 'list the codes in retriableStatusCodes, e.g. [503]' });
  }
  const base = durationMs(c, `${prefix}backoffBaseInterval`, o.backoffBaseInterval ?? Duration.millis(25), 1);
  const max = durationMs(c, `${prefix}backoffMaxInterval`, o.backoffMaxInterval ?? Duration.millis(250), 1);
  if (base > max) fail({ construct: c, prop: `${prefix}backoffBaseInterval`, value: `${base}ms`, problem: `exceeds backoffMaxInterval (${max}ms)`, fix: 'make backoffBaseInterval at most backoffMaxInterval' });
  const percent = o.budgetPercent ?? 20;
  checkPercentage(c, `${prefix}budgetPercent`, percent);
  const minPerSecond = o.minRetriesPerSecond ?? 10;
  checkInteger(c, `${prefix}minRetriesPerSecond`, minPerSecond, 0, 1_000_000);
  if (o.attempts > 0 && percent === 0 && minPerSecond === 0) {
    fail({ construct: c, prop: `${prefix}budgetPercent`, value: 0, problem: 'with minRetriesPerSecond 0 too, the retry budget allows no retry, so the policy never retries', fix: 'allow some retries (e.g. budgetPercent: 20), or set attempts: 0 to turn retries off' });
  }
  return {
    attempts: o.attempts,
    perTryTimeoutMs: o.perTryTimeout ? durationMs(c, `${prefix}perTryTimeout`, o.perTryTimeout, 1) : 0,
    retryOn: retryOn as RetryPolicyConfig['retryOn'],
    retriableStatusCodes: [...codes],
    backoff: { baseIntervalMs: base, maxIntervalMs: max },
    budget: { percent, minRetriesPerSecond: minPerSecond },
    idempotentOnly: o.idempotentOnly ?? false,
    maxBufferedBodyBytes: RETRY_BUFFER_LIMIT_BYTES,
  };
}

/** @internal */
export function faultConfig(c: IConstruct, prefix: string, o: FaultOptions): NonNullable<Route['fault']> {
  if (!o.delay && !o.abort) fail({ construct: c, prop: `${prefix}delay`, value: undefined, problem: 'a fault needs a delay, an abort or both', fix: 'set delay: { fixedDelay, percentage } or abort: { httpStatus, percentage }' });
  const out: NonNullable<Route['fault']> = {};
  if (o.delay) {
    checkPercentage(c, `${prefix}delay.percentage`, o.delay.percentage);
    out.delay = { fixedDelayMs: durationMs(c, `${prefix}delay.fixedDelay`, o.delay.fixedDelay, 1), percentage: o.delay.percentage };
  }
  if (o.abort) {
    checkInteger(c, `${prefix}abort.httpStatus`, o.abort.httpStatus, 200, 599, 'use an HTTP status from 200 to 599, e.g. 503');
    checkPercentage(c, `${prefix}abort.percentage`, o.abort.percentage);
    out.abort = { httpStatus: o.abort.httpStatus, percentage: o.abort.percentage };
  }
  return out;
}

/** @internal */
export function connectionPoolConfig(c: IConstruct, o: ConnectionPoolOptions): OutboundService['connectionPool'] {
  const maxConnections = o.maxConnections ?? 1024;
  const maxPendingRequests = o.maxPendingRequests ?? 1024;
  const maxRequestsPerConnection = o.maxRequestsPerConnection ?? 0;
  checkInteger(c, 'maxConnections', maxConnections, 1, 1_000_000);
  checkInteger(c, 'maxPendingRequests', maxPendingRequests, 0, 1_000_000);
  checkInteger(c, 'maxRequestsPerConnection', maxRequestsPerConnection, 0, 1_000_000, 'use 0 (unlimited) or a positive integer');
  return {
    maxConnections,
    maxPendingRequests,
    maxRequestsPerConnection,
    connectTimeoutMs: durationMs(c, 'connectTimeout', o.connectTimeout ?? Duration.seconds(10), 1),
    idleTimeoutMs: durationMs(c, 'idleTimeout', o.idleTimeout ?? Duration.seconds(60), 1),
  };
}

/** @internal */
export function outlierDetectionConfig(c: IConstruct, o: OutlierDetectionOptions): NonNullable<OutboundService['outlierDetection']> {
  const consecutive5xxErrors = o.consecutive5xxErrors ?? 5;
  const consecutiveGatewayErrors = o.consecutiveGatewayErrors ?? 0;
  const maxEjectionPercent = o.maxEjectionPercent ?? 10;
  checkInteger(c, 'outlierDetection.consecutive5xxErrors', consecutive5xxErrors, 0, 1_000_000);
  checkInteger(c, 'outlierDetection.consecutiveGatewayErrors', consecutiveGatewayErrors, 0, 1_000_000);
  checkPercentage(c, 'outlierDetection.maxEjectionPercent', maxEjectionPercent);
  // Declared outlier detection that can never eject is refused rather than synthesized as a no-op.
  if (consecutive5xxErrors === 0 && consecutiveGatewayErrors === 0) {
    fail({ construct: c, prop: 'outlierDetection.consecutive5xxErrors', value: 0, problem: 'with consecutiveGatewayErrors 0 too, no error count ever ejects an endpoint', fix: 'set consecutive5xxErrors (e.g. 5) or consecutiveGatewayErrors, or omit outlierDetection' });
  }
  if (maxEjectionPercent === 0) {
    fail({ construct: c, prop: 'outlierDetection.maxEjectionPercent', value: 0, problem: 'no endpoint may ever be ejected, so outlier detection does nothing', fix: 'omit maxEjectionPercent for the default 10 (one endpoint can always be ejected), or omit outlierDetection' });
  }
  return {
    consecutive5xxErrors,
    consecutiveGatewayErrors,
    intervalMs: durationMs(c, 'outlierDetection.interval', o.interval ?? Duration.seconds(10), 1),
    baseEjectionTimeMs: durationMs(c, 'outlierDetection.baseEjectionTime', o.baseEjectionTime ?? Duration.seconds(30), 1),
    maxEjectionPercent,
  };
}
