/**
 * Reads the JSON a cdk8s chart synthesizes (`chart.toJson()`) into validated Kubernetes objects,
 * each with the stable key the Pulumi component names its child resource after. This module
 * knows nothing about Pulumi, so it is tested and reasoned about as plain data in, data out.
 */

/** The reason a chart cannot be deployed; the component turns it into a `pulumi.ResourceError`. */
export class MeshChartInputError extends Error {
  public constructor(message: string) {
    super(message);
    this.name = 'MeshChartInputError';
  }
}

/** One Kubernetes object of a synthesized chart. */
export interface ManifestObject {
  /** `<kind>/<namespace>/<name>` (or `<kind>/<name>` without a namespace), lower-case: stable and unique. */
  readonly key: string;
  /** e.g. `apps/v1`, `cert-manager.io/v1`. */
  readonly apiVersion: string;
  /** The API group, '' for the core group (`v1`). */
  readonly group: string;
  /** e.g. `Deployment`. */
  readonly kind: string;
  /** `metadata.name`. */
  readonly name: string;
  /** `metadata.namespace`, undefined when the object does not set it. */
  readonly namespace?: string;
  /** The whole object exactly as the chart synthesized it. */
  readonly body: Readonly<Record<string, unknown>>;
  /** Its position in `chart.toJson()`, used to keep the registration order stable. */
  readonly index: number;
}

/** The key an object is registered under: `<kind>/<namespace>/<name>` or `<kind>/<name>`, lower-case. */
export function objectKey(kind: string, name: string, namespace?: string): string {
  return (namespace === undefined ? `${kind}/${name}` : `${kind}/${namespace}/${name}`).toLowerCase();
}

/** The API group of an apiVersion: `apps/v1` -> `apps`, `v1` -> '' (core). */
export function apiGroup(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

function describeObject(index: number, raw: Record<string, unknown>): string {
  const kind = isNonEmptyString(raw.kind) ? raw.kind : '<no kind>';
  const metadata = isPlainObject(raw.metadata) ? raw.metadata : {};
  const name = isNonEmptyString(metadata.name) ? ` "${metadata.name}"` : '';
  return `object #${index} (${kind}${name})`;
}

/**
 * Validates the synthesized objects and gives each its key.
 *
 * @throws MeshChartInputError when an object lacks apiVersion, kind or metadata.name, or when two
 *   objects share a key (they would be the same object in the cluster, and the same Pulumi resource).
 */
export function readManifest(synthesized: readonly unknown[]): ManifestObject[] {
  const objects: ManifestObject[] = [];
  const byKey = new Map<string, ManifestObject>();
  synthesized.forEach((raw, index) => {
    if (!isPlainObject(raw)) {
      throw new MeshChartInputError(
        `object #${index} of the chart is ${raw === null ? 'null' : typeof raw}, not a Kubernetes object: ` +
        'every entry of chart.toJson() must be an object with apiVersion, kind and metadata.name.');
    }
    if (!isNonEmptyString(raw.apiVersion)) {
      throw new MeshChartInputError(
        `${describeObject(index, raw)} has apiVersion ${JSON.stringify(raw.apiVersion)}: set apiVersion, e.g. "v1" or "apps/v1".`);
    }
    if (!isNonEmptyString(raw.kind)) {
      throw new MeshChartInputError(
        `object #${index} (apiVersion ${raw.apiVersion}) has kind ${JSON.stringify(raw.kind)}: set kind, e.g. "Deployment".`);
    }
    const metadata = raw.metadata;
    if (!isPlainObject(metadata) || !isNonEmptyString(metadata.name)) {
      const got = isPlainObject(metadata) ? `metadata.name ${JSON.stringify(metadata.name)}` : 'no metadata';
      throw new MeshChartInputError(
        `${describeObject(index, raw)} has ${got}: every object needs an explicit metadata.name ` +
        '(Pulumi cannot deploy an unnamed object from a chart); set metadata.name on the ApiObject.');
    }
    if (metadata.namespace !== undefined && !isNonEmptyString(metadata.namespace)) {
      throw new MeshChartInputError(
        `${describeObject(index, raw)} has metadata.namespace ${JSON.stringify(metadata.namespace)}: ` +
        'set a namespace name or leave metadata.namespace out.');
    }
    const object: ManifestObject = {
      key: objectKey(raw.kind, metadata.name, metadata.namespace as string | undefined),
      apiVersion: raw.apiVersion,
      group: apiGroup(raw.apiVersion),
      kind: raw.kind,
      name: metadata.name,
      namespace: metadata.namespace as string | undefined,
      body: raw,
      index,
    };
    const clash = byKey.get(object.key);
    if (clash !== undefined) {
      throw new MeshChartInputError(
        `objects #${clash.index} and #${index} are both ${object.key} (kind/namespace/name): ` +
        'each object of a chart must be unique; rename one of them.');
    }
    byKey.set(object.key, object);
    objects.push(object);
  });
  return objects;
}
