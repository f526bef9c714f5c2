/**
 * Retry decisions: which try outcomes the route's retryOn conditions cover, whether the
 * method may be replayed, and the backoff (exponential with full jitter, as in Envoy).
 * retryOn applies whatever the method, as in Envoy and Istio; a policy with idempotentOnly
 * keeps POST, PATCH and CONNECT from being retried.
 */
import { IDEMPOTENT_METHODS, type RetryPolicyConfig } from '../config/schema';

/** How one try ended. */
export type TryOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly grpcStatus?: number }
  | { readonly kind: 'connect-failure' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'timeout' };

const IDEMPOTENT = new Set(IDEMPOTENT_METHODS);

/** True when the method may be retried under the policy: any method, unless the policy is idempotentOnly. */
export function methodRetriable(method: string, policy: RetryPolicyConfig): boolean {
  return !policy.idempotentOnly || IDEMPOTENT.has(method);
}

const GRPC_CONDITIONS: Record<string, number> = {
  'cancelled': 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  'internal': 13,
  'unavailable': 14,
};

/** A retry policy compiled into a predicate over try outcomes. */
export interface CompiledRetryOn {
  (outcome: TryOutcome): boolean;
}

/** Compiles retryOn into a predicate. */
export function compileRetryOn(policy: RetryPolicyConfig): CompiledRetryOn {
  const on = new Set(policy.retryOn);
  const codes = new Set(policy.retriableStatusCodes);
  const grpc = new Set<number>();
  for (const [cond, code] of Object.entries(GRPC_CONDITIONS)) if (on.has(cond as never)) grpc.add(code);
  const any5xx = on.has('5xx');
  const gateway = on.has('gateway-error');
  return (o) => {
    switch (o.kind) {
      case 'connect-failure':
        return any5xx || gateway || on.has('connect-failure');
      case 'reset':
        return any5xx || gateway || on.has('reset');
      case 'timeout':
        // A per-try timeout is retried like Envoy does: under 5xx, gateway-error and reset.
        return any5xx || gateway || on.has('reset');
      case 'response': {
        const s = o.status;
        if (s >= 500 && any5xx) return true;
        if ((s === 502 || s === 503 || s === 504) && gateway) return true;
        if (s === 409 && on.has('retriable-4xx')) return true;
        if (codes.has(s) && on.has('retriable-status-codes')) return true;
        if (o.grpcStatus !== undefined && grpc.has(o.grpcStatus)) return true;
        return false;
      }
    }
  };
}

/** Backoff before retry number `retry` (1-based): uniform in [0, min(max, base * 2^(retry-1))]. */
export function backoffMs(policy: RetryPolicyConfig, retry: number): number {
  const ceiling = Math.min(policy.backoff.maxIntervalMs, policy.backoff.baseIntervalMs * 2 ** (retry - 1));
  return Math.random() * ceiling;
}
