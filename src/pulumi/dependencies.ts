/**
 * Works out which objects of a chart must exist before which, and the order to register them in.
 * `kubectl apply` of a whole chart tolerates a wrong order by failing and retrying; Pulumi instead
 * creates resources in parallel unless told otherwise, so a Certificate sent before its Issuer (or
 * any object before its Namespace) fails. The edges come from references the objects make to each
 * other, plus any dependency declared on the cdk8s constructs (`node.addDependency`).
 */
import { ManifestObject, MeshChartInputError, objectKey } from './manifest';

const CERT_MANAGER_GROUP = 'cert-manager.io';
const CORE_GROUP = '';
const CRD_GROUP = 'apiextensions.k8s.io';

/** The dependency graph of a chart's objects. */
export interface DependencyPlan {
  /** Every object after all the objects it depends on; ties keep the chart's order. */
  readonly order: readonly ManifestObject[];
  /** For each object key, the keys of the objects it depends on, in chart order. */
  readonly dependsOn: ReadonlyMap<string, readonly string[]>;
}

type Json = Record<string, unknown>;

function asObject(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Json : {};
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** The pod spec of a workload, wherever its kind keeps it. */
function podSpecOf(object: ManifestObject): Json | undefined {
  const spec = asObject(object.body.spec);
  if (object.group === CORE_GROUP && object.kind === 'Pod') return spec;
  if (object.group === 'batch' && object.kind === 'CronJob') {
    return asObject(asObject(asObject(asObject(spec.jobTemplate).spec).template).spec);
  }
  const template = spec.template;
  if (template === undefined) return undefined;
  return asObject(asObject(template).spec);
}

/** What a pod spec reads from its namespace: the ServiceAccount, ConfigMaps and Secrets it names. */
function podReferences(podSpec: Json): { serviceAccount?: string; configMaps: Set<string>; secrets: Set<string> } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  const add = (set: Set<string>, name: unknown) => {
    const s = asString(name);
    if (s !== undefined) set.add(s);
  };
  for (const volume of asArray(podSpec.volumes).map(asObject)) {
    add(configMaps, asObject(volume.configMap).name);
    add(secrets, asObject(volume.secret).secretName);
    for (const source of asArray(asObject(volume.projected).sources).map(asObject)) {
      add(configMaps, asObject(source.configMap).name);
      add(secrets, asObject(source.secret).name);
    }
  }
  const containers = [...asArray(podSpec.initContainers), ...asArray(podSpec.containers)].map(asObject);
  for (const container of containers) {
    for (const envFrom of asArray(container.envFrom).map(asObject)) {
      add(configMaps, asObject(envFrom.configMapRef).name);
      add(secrets, asObject(envFrom.secretRef).name);
    }
    for (const env of asArray(container.env).map(asObject)) {
      const valueFrom = asObject(env.valueFrom);
      add(configMaps, asObject(valueFrom.configMapKeyRef).name);
      add(secrets, asObject(valueFrom.secretKeyRef).name);
    }
  }
  return { serviceAccount: asString(podSpec.serviceAccountName), configMaps, secrets };
}

/**
 * Builds the dependency graph and a registration order.
 *
 * @param objects the chart's objects, in chart order
 * @param declared dependencies declared on the cdk8s constructs: [dependent key, dependency key]
 * @throws MeshChartInputError when the dependencies form a cycle
 */
export function planDependencies(
  objects: readonly ManifestObject[],
  declared: ReadonlyArray<readonly [string, string]> = [],
): DependencyPlan {
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const edges = new Map<string, Set<string>>(objects.map((o) => [o.key, new Set<string>()]));
  const addEdge = (from: ManifestObject, toKey: string) => {
    if (toKey !== from.key && byKey.has(toKey)) edges.get(from.key)!.add(toKey);
  };

  // Certificates by the Secret they write, so a reader of that Secret waits for its Certificate.
  const certificatesBySecret = new Map<string, ManifestObject[]>();
  for (const o of objects) {
    if (o.group !== CERT_MANAGER_GROUP || o.kind !== 'Certificate') continue;
    const secretName = asString(asObject(o.body.spec).secretName);
    if (secretName === undefined) continue;
    const list = certificatesBySecret.get(secretName) ?? [];
    list.push(o);
    certificatesBySecret.set(secretName, list);
  }
  const secretProducers = (secretName: string, namespace: string | undefined): ManifestObject[] =>
    (certificatesBySecret.get(secretName) ?? []).filter((c) => namespace === undefined || c.namespace === namespace);

  // CRDs by the group and kind they define, so a custom object waits for its definition.
  const crds = new Map<string, ManifestObject>();
  for (const o of objects) {
    if (o.group !== CRD_GROUP || o.kind !== 'CustomResourceDefinition') continue;
    const spec = asObject(o.body.spec);
    crds.set(`${asString(spec.group)}/${asString(asObject(spec.names).kind)}`, o);
  }

  for (const o of objects) {
    if (o.namespace !== undefined) addEdge(o, objectKey('Namespace', o.namespace));
    const crd = crds.get(`${o.group}/${o.kind}`);
    if (crd !== undefined) addEdge(o, crd.key);

    const spec = asObject(o.body.spec);
    if (o.group === CERT_MANAGER_GROUP && o.kind === 'Certificate') {
      const issuerRef = asObject(spec.issuerRef);
      const issuerName = asString(issuerRef.name);
      const issuerGroup = asString(issuerRef.group) ?? CERT_MANAGER_GROUP;
      const issuerKind = asString(issuerRef.kind) ?? 'Issuer';
      if (issuerName !== undefined && issuerGroup === CERT_MANAGER_GROUP) {
        addEdge(o, issuerKind === 'ClusterIssuer'
          ? objectKey('ClusterIssuer', issuerName)
          : objectKey(issuerKind, issuerName, o.namespace));
      }
    }
    if (o.group === CERT_MANAGER_GROUP && (o.kind === 'Issuer' || o.kind === 'ClusterIssuer')) {
      // A CA issuer signs with the key pair in spec.ca.secretName, usually written by a CA Certificate.
      // A ClusterIssuer reads it from cert-manager's cluster resource namespace, which the chart
      // cannot know, so any Certificate writing that Secret counts.
      const caSecret = asString(asObject(spec.ca).secretName);
      if (caSecret !== undefined) {
        for (const c of secretProducers(caSecret, o.kind === 'Issuer' ? o.namespace : undefined)) addEdge(o, c.key);
      }
    }
    const podSpec = podSpecOf(o);
    if (podSpec !== undefined) {
      const refs = podReferences(podSpec);
      if (refs.serviceAccount !== undefined) addEdge(o, objectKey('ServiceAccount', refs.serviceAccount, o.namespace));
      for (const name of refs.configMaps) addEdge(o, objectKey('ConfigMap', name, o.namespace));
      for (const name of refs.secrets) {
        addEdge(o, objectKey('Secret', name, o.namespace));
        for (const c of secretProducers(name, o.namespace)) addEdge(o, c.key);
      }
    }
  }
  for (const [from, to] of declared) {
    const dependent = byKey.get(from);
    if (dependent !== undefined) addEdge(dependent, to);
  }

  const order = topologicalOrder(objects, edges);
  const dependsOn = new Map<string, string[]>();
  for (const o of objects) {
    dependsOn.set(o.key, [...edges.get(o.key)!].sort((a, b) => byKey.get(a)!.index - byKey.get(b)!.index));
  }
  return { order, dependsOn };
}

/** Kahn's algorithm; among the objects that are ready, the earliest in the chart goes first. */
function topologicalOrder(objects: readonly ManifestObject[], edges: ReadonlyMap<string, ReadonlySet<string>>): ManifestObject[] {
  const placed = new Set<string>();
  const order: ManifestObject[] = [];
  while (order.length < objects.length) {
    const next = objects.find((o) => !placed.has(o.key) && [...edges.get(o.key)!].every((d) => placed.has(d)));
    if (next === undefined) {
      const stuck = objects.filter((o) => !placed.has(o.key))
        .map((o) => `${o.key} -> ${[...edges.get(o.key)!].filter((d) => !placed.has(d)).join(', ')}`);
      throw new MeshChartInputError(
        `the chart's objects depend on each other in a cycle, so no creation order exists: ${stuck.join('; ')}. ` +
        'Remove one of these references or cdk8s dependencies.');
    }
    placed.add(next.key);
    order.push(next);
  }
  return order;
}
