import { Construct } from 'constructs';
import { checkPolicyHasCallers } from './declared-policies';
import { DEFAULT_ROUTE, MeshService } from './mesh-service';
import { faultConfig, FaultOptions } from './traffic-options';

/** Props of {@link FaultInjection}. */
export interface FaultInjectionProps extends FaultOptions {
  /** The service whose callers see the faults. */
  readonly service: MeshService;
  /**
   * The route.
   * @default 'default' (the catch-all route)
   */
  readonly route?: string;
}

/** Delays or fails a percentage of the requests to a service, in the callers' sidecars. */
export class FaultInjection extends Construct {
  constructor(scope: Construct, id: string, props: FaultInjectionProps) {
    super(scope, id);
    props.service._configureRoute(this, props.route ?? DEFAULT_ROUTE, 'fault', faultConfig(this, '', props));
    checkPolicyHasCallers(this, props.service, 'fault injection');
  }
}
