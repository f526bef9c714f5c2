import { Construct } from 'constructs';
import { checkPolicyHasCallers } from './declared-policies';
import { DEFAULT_ROUTE, MeshService } from './mesh-service';
import { MirrorOptions } from './traffic-options';

/** Props of {@link TrafficMirror}. */
export interface TrafficMirrorProps extends MirrorOptions {
  /** The service. */
  readonly service: MeshService;
  /**
   * The route.
   * @default 'default' (the catch-all route)
   */
  readonly route?: string;
}

/** Copies a percentage of a route's requests to another version; the copies' responses are discarded. */
export class TrafficMirror extends Construct {
  constructor(scope: Construct, id: string, props: TrafficMirrorProps) {
    super(scope, id);
    props.service._setRouteMirror(this, props.route ?? DEFAULT_ROUTE, props, '');
    checkPolicyHasCallers(this, props.service, 'mirror');
  }
}
