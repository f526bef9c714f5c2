import { SPIFFE_ID } from '../config/schema';
import type { MeshService } from './mesh-service';

/** Who an authorization rule is about: a mesh service, a namespace, a SPIFFE principal or any authenticated peer. */
export class Source {
  /** The workloads of a service of the same mesh (their SPIFFE identity). */
  public static service(service: MeshService): Source {
    return new Source({ kind: 'service', service });
  }

  /** Any workload whose identity is in this namespace (`spiffe://<td>/ns/<namespace>/...`). */
  public static namespace(namespace: string): Source {
    return new Source({ kind: 'namespace', namespace });
  }

  /** A SPIFFE ID, for peers the mesh does not define (e.g. another cluster's gateway). */
  public static principal(spiffeId: string): Source {
    return new Source({ kind: 'principal', principal: spiffeId });
  }

  /** @internal A principal with a readable name for rule names (a MeshGateway). */
  public static _principalNamed(spiffeId: string, name: string): Source {
    return new Source({ kind: 'principal', principal: spiffeId, name });
  }

  /** Any peer that presented a mesh certificate. */
  public static anyAuthenticated(): Source {
    return new Source({ kind: 'any' });
  }

  /** @internal */
  public static _isPrincipal(id: string): boolean {
    return SPIFFE_ID.test(id);
  }

  private constructor(
    /** @internal */
    public readonly _spec:
    | { kind: 'service'; service: MeshService }
    | { kind: 'namespace'; namespace: string }
    | { kind: 'principal'; principal: string; name?: string }
    | { kind: 'any' },
  ) {}

  /** A short readable description, used in rule names. */
  public get description(): string {
    const s = this._spec;
    switch (s.kind) {
      case 'service': return s.service.serviceName;
      case 'namespace': return `ns-${s.namespace}`;
      case 'principal': return s.name ?? 'principal';
      case 'any': return 'any';
    }
  }
}
