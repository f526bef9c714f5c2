import { Construct } from 'constructs';
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
 * retry, jittered exponential backoff and a retry budget that stops retry storms.
 */
export class RetryPolicy extends Construct {
  constructor(scope: Construct, id: string, props: RetryPolicyProps) {
    super(scope, id);
    props.service._configureRoute(this, props.route ?? DEFAULT_ROUTE, 'retries', retryConfig(this, '', props));
  }
}
