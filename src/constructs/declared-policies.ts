/**
 * Synth-time checks that a declared traffic policy can take effect. A policy whose props are
 * valid on their own may still do nothing in the app as a whole: no sidecar calls the service,
 * the only methods it admits are ones idempotentOnly never retries, its retry conditions read a
 * header its protocol never sends. These checks run as construct validations (they see the
 * finished app) and report with {@link warn}: the same one-line message as an error, in the
 * synth output, never silence.
 */
import { IConstruct } from 'constructs';
import { IDEMPOTENT_METHODS, RetryPolicyConfig } from '../config/schema';
import { warn } from './errors';
import { MeshGateway } from './mesh-gateway';
import type { MeshService } from './mesh-service';
import { RetryOn } from './values';

/** The retry conditions read from a gRPC status, which only gRPC responses carry. */
const GRPC_CONDITIONS: readonly string[] = [RetryOn.CANCELLED, RetryOn.DEADLINE_EXCEEDED, RetryOn.INTERNAL, RetryOn.RESOURCE_EXHAUSTED, RetryOn.UNAVAILABLE];

/**
 * The sidecars that carry `service` in their outbound config: the mesh's services that call it
 * (callsTo, or allowFrom which implies it) and the gateways that route to it.
 */
export function callersOf(service: MeshService): IConstruct[] {
  const callers: IConstruct[] = service.mesh.services.filter((s) => s.calls.includes(service));
  for (const c of service.node.root.node.findAll()) {
    if (!(c instanceof MeshGateway) || c.mesh !== service.mesh) continue;
    try {
      if (c.sidecarConfig().outbound.services.some((s) => s.name === service.serviceName)) callers.push(c);
    } catch {
      // An invalid gateway fails its own validation; count it as a caller so it is not reported twice.
      callers.push(c);
    }
  }
  return callers;
}

/** Warns at synth when no sidecar calls `service`, so the policy declared by `by` is in no config. */
export function checkPolicyHasCallers(by: IConstruct, service: MeshService, policy: string): void {
  by.node.addValidation({
    validate: () => {
      if (callersOf(service).length === 0) {
        warn({
          construct: by, prop: 'service', value: service.serviceName,
          problem: `no MeshService or MeshGateway calls ${service.serviceName}, so no sidecar carries this ${policy} (policies live in the callers' sidecars)`,
          fix: `declare the callers: caller.callsTo(${service.serviceName}) or ${service.serviceName}.allowFrom(caller)`,
        });
      }
      return [];
    },
  });
}

/** Warns at synth about a route's retry policy that can never, or only partly, retry. */
export function checkRetriesTakeEffect(by: IConstruct, service: MeshService, routeName: string): void {
  by.node.addValidation({
    validate: () => {
      const out = service.outboundService();
      const route = out.routes.find((r) => r.name === routeName);
      const retries = route?.retries as RetryPolicyConfig | undefined;
      if (!route || !retries || retries.attempts === 0) return [];
      if (retries.idempotentOnly) checkIdempotentOnly(by, service, routeName, route.match ?? []);
      const grpc = retries.retryOn.filter((c) => GRPC_CONDITIONS.includes(c));
      const protocol = out.protocol ?? 'http';
      if (grpc.length > 0 && protocol === 'http') {
        warn({
          construct: by, prop: 'retryOn', value: grpc,
          problem: `${service.serviceName} speaks plain HTTP (its first port), whose responses carry no grpc-status, so these gRPC conditions never retry anything`,
          fix: 'give the service a Protocol.GRPC port first, or retry on HTTP conditions such as RetryOn.FIVE_XX',
        });
      }
      const timeoutMs = route.timeoutMs ?? 0;
      if (retries.perTryTimeoutMs > 0 && timeoutMs > 0 && retries.perTryTimeoutMs === timeoutMs) {
        warn({
          construct: by, prop: 'perTryTimeout', value: `${retries.perTryTimeoutMs}ms`,
          problem: `equals the timeout of route "${routeName}" of ${service.serviceName}, so a try cut by it ends the whole request and a slow try is never retried`,
          fix: 'make perTryTimeout shorter than the route timeout (e.g. timeout 5 s, perTryTimeout 2 s)',
        });
      }
      return [];
    },
  });
}

/** idempotentOnly leaves nothing to retry when every request the route or the service admits uses a non-idempotent method. */
function checkIdempotentOnly(by: IConstruct, service: MeshService, routeName: string, match: ReadonlyArray<{ method?: string }>): void {
  const idempotent = (m: string): boolean => IDEMPOTENT_METHODS.includes(m);
  const routeMethods = match.length > 0 && match.every((m) => m.method !== undefined) ? match.map((m) => m.method!) : undefined;
  if (routeMethods && !routeMethods.some(idempotent)) {
    warn({
      construct: by, prop: 'idempotentOnly', value: true,
      problem: `route "${routeName}" of ${service.serviceName} matches only ${[...new Set(routeMethods)].join(', ')}, which idempotentOnly never retries, so no request of the route is ever retried`,
      fix: 'drop idempotentOnly (retryOn then applies to every method, as in Envoy and Istio) once a retried request cannot do its work twice, or remove the RetryPolicy',
    });
    return;
  }
  const allows = service.authorizationRules.filter((r) => r.action === 'ALLOW');
  if (allows.length === 0 || allows.some((r) => r.methods === undefined || r.methods.length === 0)) return;
  const admitted = [...new Set(allows.flatMap((r) => r.methods!))];
  if (!admitted.some(idempotent)) {
    warn({
      construct: by, prop: 'idempotentOnly', value: true,
      problem: `${service.serviceName} admits only ${admitted.join(', ')} (its allowFrom rules), which idempotentOnly never retries, so no request is ever retried`,
      fix: 'drop idempotentOnly (retryOn then applies to every method, as in Envoy and Istio) once a retried request cannot do its work twice, or remove the RetryPolicy',
    });
  }
}
