/**
 * Turns one synthesized Kubernetes object into a @pulumi/kubernetes resource: the typed class where
 * the SDK has one for the kinds a mesh chart holds (typed outputs such as `service.spec.clusterIP`,
 * and the SDK's await logic for that kind), `k8s.apiextensions.CustomResource` for everything else,
 * cert-manager's Issuer and Certificate included.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { ManifestObject, MeshChartInputError } from './manifest';

/** A @pulumi/kubernetes resource class; their args types differ, the object supplies matching fields. */
type KubernetesResourceClass = new (name: string, args: any, opts?: pulumi.CustomResourceOptions) => pulumi.CustomResource;

interface TypedKind {
  readonly resourceClass: KubernetesResourceClass;
  /**
   * The top-level fields the class's args carry to the provider. A typed class silently drops any
   * other field, so an object with one is rejected rather than deployed incompletely.
   */
  readonly fields: readonly string[];
}

const WITH_SPEC = ['metadata', 'spec'] as const;

/** Keyed by `<apiVersion>/<kind>`. */
const TYPED_KINDS: ReadonlyMap<string, TypedKind> = new Map<string, TypedKind>([
  ['v1/Namespace', { resourceClass: k8s.core.v1.Namespace, fields: WITH_SPEC }],
  ['v1/ServiceAccount', { resourceClass: k8s.core.v1.ServiceAccount, fields: ['metadata', 'automountServiceAccountToken', 'imagePullSecrets', 'secrets'] }],
  ['v1/ConfigMap', { resourceClass: k8s.core.v1.ConfigMap, fields: ['metadata', 'data', 'binaryData', 'immutable'] }],
  ['v1/Secret', { resourceClass: k8s.core.v1.Secret, fields: ['metadata', 'data', 'stringData', 'type', 'immutable'] }],
  ['v1/Service', { resourceClass: k8s.core.v1.Service, fields: WITH_SPEC }],
  ['apps/v1/Deployment', { resourceClass: k8s.apps.v1.Deployment, fields: WITH_SPEC }],
  ['apps/v1/StatefulSet', { resourceClass: k8s.apps.v1.StatefulSet, fields: WITH_SPEC }],
  ['apps/v1/DaemonSet', { resourceClass: k8s.apps.v1.DaemonSet, fields: WITH_SPEC }],
  ['networking.k8s.io/v1/NetworkPolicy', { resourceClass: k8s.networking.v1.NetworkPolicy, fields: WITH_SPEC }],
  ['policy/v1/PodDisruptionBudget', { resourceClass: k8s.policy.v1.PodDisruptionBudget, fields: WITH_SPEC }],
]);

/** Whether `object` is registered with a typed class (true) or as a CustomResource (false). */
export function hasTypedClass(object: Pick<ManifestObject, 'apiVersion' | 'kind'>): boolean {
  return TYPED_KINDS.has(`${object.apiVersion}/${object.kind}`);
}

/**
 * Registers `object` as a Pulumi resource named `resourceName`.
 *
 * @throws MeshChartInputError when a typed kind carries a top-level field its class would drop
 */
export function createKubernetesResource(
  resourceName: string,
  object: ManifestObject,
  opts: pulumi.CustomResourceOptions,
): pulumi.CustomResource {
  const typed = TYPED_KINDS.get(`${object.apiVersion}/${object.kind}`);
  if (typed === undefined) {
    return new k8s.apiextensions.CustomResource(resourceName, { ...object.body } as k8s.apiextensions.CustomResourceArgs, opts);
  }
  const args: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(object.body)) {
    if (field === 'apiVersion' || field === 'kind') continue; // the class sets both itself
    if (!typed.fields.includes(field)) {
      throw new MeshChartInputError(
        `${object.key} has a top-level field "${field}" that ${object.apiVersion} ${object.kind} does not take ` +
        `(it takes ${typed.fields.join(', ')}): remove it from the object.`);
    }
    args[field] = value;
  }
  return new typed.resourceClass(resourceName, args, opts);
}
