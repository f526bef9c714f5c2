import { Duration } from 'cdk8s';
import { Construct } from 'constructs';
import { checkPolicyHasCallers } from './declared-policies';
import { DEFAULT_ROUTE, MeshService } from './mesh-service';
import { durationMs } from './values';

/** Props of {@link Timeout}. */
export interface TimeoutProps {
  /** The service. */
  readonly service: MeshService;
  /** Whole-request timeout, retries included (Duration.millis(0) disables it). */
  readonly timeout: Duration;
  /**
   * The route.
   * @default 'default' (the catch-all route)
   */
  readonly route?: string;
}

/** Bounds the time a caller waits for a service's response, retries included (504 after it). */
export class Timeout extends Construct {
  constructor(scope: Construct, id: string, props: TimeoutProps) {
    super(scope, id);
    props.service._configureRoute(this, props.route ?? DEFAULT_ROUTE, 'timeout', durationMs(this, 'timeout', props.timeout));
    checkPolicyHasCallers(this, props.service, 'timeout');
  }
}
