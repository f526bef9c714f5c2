import { Construct } from 'constructs';
import { checkDnsLabel, fail } from './errors';
import { MeshService, RequestConditions } from './mesh-service';
import { Source } from './source';

/** What an authorization rule does with the requests it matches. */
export enum AuthorizationAction {
  /** Allow; once any allow rule exists for a service, unmatched requests are denied. */
  ALLOW = 'ALLOW',
  /** Deny; deny rules are checked before allow rules. */
  DENY = 'DENY',
}

/** Props of {@link AuthorizationPolicy}. */
export interface AuthorizationPolicyProps extends RequestConditions {
  /** The service whose inbound requests are checked. */
  readonly service: MeshService;
  /**
   * Allow or deny.
   * @default AuthorizationAction.ALLOW
   */
  readonly action?: AuthorizationAction;
  /** Who the rule is about (any of them). */
  readonly from: Source[];
}

/**
 * An authorization rule in a service's sidecar: requests from the given sources (with the
 * given methods, paths and headers) are allowed or denied. The rule's name is the construct id.
 * `service.allowFrom(caller, {...})` is the short form.
 */
export class AuthorizationPolicy extends Construct {
  constructor(scope: Construct, id: string, props: AuthorizationPolicyProps) {
    super(scope, id);
    checkDnsLabel(this, 'id', id, 'allow-order');
    if (props.from.length === 0) {
      fail({ construct: this, prop: 'from', value: [], problem: 'a rule needs at least one source', fix: 'use Source.service(caller), Source.namespace(ns) or Source.anyAuthenticated()' });
    }
    const action = props.action ?? AuthorizationAction.ALLOW;
    props.service._addRule(this, action, props.from, props, id);
    if (action === AuthorizationAction.ALLOW) {
      for (const s of props.from) if (s._spec.kind === 'service') s._spec.service.callsTo(props.service);
    }
  }
}
