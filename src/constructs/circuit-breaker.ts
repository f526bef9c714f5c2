import { Construct } from 'constructs';
import { checkPolicyHasCallers } from './declared-policies';
import { MeshService } from './mesh-service';
import { ConnectionPoolOptions, OutlierDetectionOptions } from './traffic-options';

/** Props of {@link CircuitBreaker}. */
export interface CircuitBreakerProps extends ConnectionPoolOptions {
  /** The service protected. */
  readonly service: MeshService;
  /**
   * Eject endpoints that fail repeatedly.
   * @default - no outlier detection
   */
  readonly outlierDetection?: OutlierDetectionOptions;
}

/**
 * Limits what every caller's sidecar sends to a service (connections, pending requests,
 * requests per connection; overflow fails fast with 503) and ejects failing endpoints.
 */
export class CircuitBreaker extends Construct {
  constructor(scope: Construct, id: string, props: CircuitBreakerProps) {
    super(scope, id);
    props.service._setConnectionPool(this, props);
    if (props.outlierDetection) props.service._setOutlierDetection(this, props.outlierDetection);
    checkPolicyHasCallers(this, props.service, 'circuit breaker');
  }
}
