import { Construct } from 'constructs';
import { checkPolicyHasCallers, checkRetriesTakeEffect } from './declared-policies';
import { DEFAULT_ROUTE, MeshService } from './mesh-service';
import { retryConfig, RetryOptions } from './traffic-options';

/** Props of {@link RetryPolicy}. */
export interface RetryPolicyProps extends RetryOptions {
  /** The service whose callers retry. */
  readonly service: MeshService;
  /**
   * The route.
   * @default 'default' (the catch-all route)
   */
  readonly route?: string;
}

/**
 * Retries failed requests to a service: attempts, per-try timeout, the conditions that
 * retry (whatever the method, unless `idempotentOnly`), jittered exponential backoff and a
 * retry budget that stops retry storms. Synth warns when the policy cannot take effect (no
 * caller, only non-idempotent methods under idempotentOnly, gRPC conditions on plain HTTP).
 */
export class RetryPolicy extends Construct {
  constructor(scope: Construct, id: string, props: RetryPolicyProps) {
    super(scope, id);
    const route = props.route ?? DEFAULT_ROUTE;
    props.service._configureRoute(this, route, 'retries', retryConfig(this, '', props));
    checkPolicyHasCallers(this, props.service, 'retry policy');
    checkRetriesTakeEffect(this, props.service, route);
  }
}
