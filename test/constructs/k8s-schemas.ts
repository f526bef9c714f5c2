/**
 * Validates synthesized objects against the Kubernetes and cert-manager schemas
 * (kubernetes-models). `.validate()` accepts unknown fields and kinds, so every object's
 * apiVersion/kind must also be one this table knows: an object we cannot validate fails.
 */
import { Certificate, ClusterIssuer, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';

type Validator = (obj: any) => { validate(): void };

const VALIDATORS: Record<string, Validator> = {
  'v1/Namespace': (o) => new Namespace(o),
  'v1/ServiceAccount': (o) => new ServiceAccount(o),
  'v1/Service': (o) => new Service(o),
  'v1/ConfigMap': (o) => new ConfigMap(o),
  'apps/v1/Deployment': (o) => new Deployment(o),
  'networking.k8s.io/v1/NetworkPolicy': (o) => new NetworkPolicy(o),
  'cert-manager.io/v1/Certificate': (o) => new Certificate(o),
  'cert-manager.io/v1/Issuer': (o) => new Issuer(o),
  'cert-manager.io/v1/ClusterIssuer': (o) => new ClusterIssuer(o),
};

/** Throws unless the object's kind is known and it validates against its schema. */
export function validateObject(obj: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const make = VALIDATORS[key];
  if (!make) throw new Error(`no schema validator for ${key} (object ${obj.metadata?.name}): add one to test/constructs/k8s-schemas.ts`);
  try {
    make(obj).validate();
  } catch (e) {
    throw new Error(`${key} ${obj.metadata?.name} does not validate: ${(e as Error).message}`);
  }
}
