import { Construct } from 'constructs';
import { checkPolicyHasCallers } from './declared-policies';
import { checkDnsLabel, checkInteger, fail } from './errors';
import { DEFAULT_ROUTE, MeshService } from './mesh-service';
import { WeightedVersion } from './traffic-options';

/** Props of {@link TrafficSplit}. */
export interface TrafficSplitProps {
  /** The service whose traffic is split. */
  readonly service: MeshService;
  /** Versions and their weights; the weights sum to 100. */
  readonly weights: WeightedVersion[];
  /**
   * The route to split.
   * @default 'default' (the catch-all route)
   */
  readonly route?: string;
}

/** Splits a route of a service across its versions by weight (every caller's sidecar applies the split). */
export class TrafficSplit extends Construct {
  constructor(scope: Construct, id: string, props: TrafficSplitProps) {
    super(scope, id);
    props.service._setRouteSplit(this, props.route ?? DEFAULT_ROUTE, props.weights, 'weights');
    checkPolicyHasCallers(this, props.service, 'traffic split');
  }
}

/** Props of {@link Canary}. */
export interface CanaryProps {
  /** The service. */
  readonly service: MeshService;
  /** The stable version, which gets `100 - canaryWeight` percent. */
  readonly stable: string;
  /** The canary version. */
  readonly canary: string;
  /** Percentage of requests sent to the canary, an integer from 0 to 100. */
  readonly canaryWeight: number;
  /**
   * The route to split.
   * @default 'default' (the catch-all route)
   */
  readonly route?: string;
}

/** Sends `canaryWeight` percent of a service's requests to a canary version and the rest to the stable one. */
export class Canary extends Construct {
  constructor(scope: Construct, id: string, props: CanaryProps) {
    super(scope, id);
    checkDnsLabel(this, 'stable', props.stable, 'v1');
    checkDnsLabel(this, 'canary', props.canary, 'v2');
    checkInteger(this, 'canaryWeight', props.canaryWeight, 0, 100, 'use a percentage from 0 to 100, e.g. 10 for a 90/10 canary');
    if (props.stable === props.canary) {
      fail({ construct: this, prop: 'canary', value: props.canary, problem: 'the canary is the stable version', fix: 'name two different versions' });
    }
    for (const prop of ['stable', 'canary'] as const) {
      if (!props.service.versionNames.includes(props[prop])) {
        fail({ construct: this, prop, value: props[prop], problem: `${props.service.serviceName} has no such version (known: ${props.service.versionNames.join(', ')})`, fix: 'name a version of the service, or add it to the service\'s versions' });
      }
    }
    props.service._setRouteSplit(this, props.route ?? DEFAULT_ROUTE, [
      { version: props.stable, weight: 100 - props.canaryWeight },
      { version: props.canary, weight: props.canaryWeight },
    ], 'canaryWeight');
    checkPolicyHasCallers(this, props.service, 'canary split');
  }
}
