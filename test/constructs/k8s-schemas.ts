/**
 * Validates synthesized objects strictly against the official schemas, vendored in
 * test/schemas/ (see its README for provenance and license):
 *
 * - Kubernetes API definitions of **1.30 and 1.33** (the pruned `k8s-<version>-pruned.json`):
 *   every object must validate against both, the oldest supported release the pods target and
 *   a current one; native sidecars (init containers with `restartPolicy: Always`, which the
 *   pods use) need 1.29 or later;
 * - the cert-manager v1.21.1 Certificate and Issuer CRDs (ClusterIssuer has the Issuer's
 *   schema) and the prometheus-operator PodMonitor CRD.
 *
 * Strict: every object schema that lists `properties` gets `additionalProperties: false`
 * unless it is marked `x-kubernetes-preserve-unknown-fields`, so a misspelt or unknown field
 * fails (the API server drops unknown fields silently, or rejects them with
 * `kubectl apply --validate=strict`). Objects are validated by apiVersion and kind; a kind
 * with no schema here fails. CRD objects' `metadata` is checked against Kubernetes'
 * ObjectMeta, as the API server does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { ValidateFunction } from 'ajv';

/** The Kubernetes versions whose API definitions validate the output (each object against all). */
export const VALIDATING_KUBERNETES_VERSIONS = ['1.30', '1.33'];
/** The newest of them, whose ObjectMeta checks CRD objects' metadata. */
export const VALIDATING_KUBERNETES_VERSION = '1.33';

const SCHEMA_DIR = path.join(__dirname, '..', 'schemas');
const K8S_ID = 'k8s';

type Json = any;

/** Adds `additionalProperties: false` to every object schema with properties (recursively). */
export function strict(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    // A `properties` map's keys are field names, not keywords: recurse into each value only.
    if (k === 'properties' && v && typeof v === 'object') {
      out[k] = Object.fromEntries(Object.entries(v as object).map(([name, sub]) => [name, strict(sub)]));
    } else {
      out[k] = strict(v);
    }
  }
  if (out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return out;
}

function loadJson(file: string): Json {
  return JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), 'utf8'));
}

function newAjv(): Ajv {
  // strict: false because the schemas carry the x-kubernetes-* keywords; the formats are the
  // OpenAPI ones the schemas use (integers are range-checked, the others are strings).
  const ajv = new Ajv({ strict: false, allErrors: true });
  const INT32 = 2 ** 31;
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -INT32 && n < INT32 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  for (const f of ['byte', 'date-time', 'date', 'duration', 'email', 'uri', 'hostname', 'ipv4', 'ipv6', 'uuid', 'password']) ajv.addFormat(f, true);
  return ajv;
}

/** Per apiVersion/kind, the schemas an object must pass, each with the name of its source. */
const validators = new Map<string, Array<{ source: string; validate: ValidateFunction }>>();

function addValidator(key: string, source: string, validate: ValidateFunction): void {
  validators.set(key, [...(validators.get(key) ?? []), { source, validate }]);
}

function buildValidators(): void {
  const ajv = newAjv();
  for (const version of VALIDATING_KUBERNETES_VERSIONS) {
    const id = `${K8S_ID}-${version}`;
    const definitions = strict(loadJson(`k8s-${version}-pruned.json`).definitions);
    ajv.addSchema({ $id: id, definitions });
    for (const [name, def] of Object.entries<Json>(definitions)) {
      for (const gvk of def['x-kubernetes-group-version-kind'] ?? []) {
        const apiVersion = gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version;
        addValidator(`${apiVersion}/${gvk.kind}`, `Kubernetes ${version}`, ajv.compile({ $ref: `${id}#/definitions/${name}` }));
      }
    }
  }
  for (const crd of loadJson('crds.json').crds) {
    const schema = strict(crd.schema);
    schema.properties.metadata = { $ref: `${K8S_ID}-${VALIDATING_KUBERNETES_VERSION}#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta` };
    const validate = ajv.compile(schema);
    const source = `CRD ${crd.source}`;
    addValidator(`${crd.group}/${crd.version}/${crd.kind}`, source, validate);
    // cert-manager's ClusterIssuer is the cluster-scoped twin of Issuer, with the same spec schema.
    if (crd.group === 'cert-manager.io' && crd.kind === 'Issuer') addValidator(`${crd.group}/${crd.version}/ClusterIssuer`, source, validate);
  }
}

/** Hand checks layered on a kind's schema (rules the schema cannot say). */
const EXTRA_CHECKS: Record<string, (o: any) => void> = {
  'monitoring.coreos.com/v1/PodMonitor': (o) => validatePodMonitor(o),
};

/** Throws unless the object's kind is known and it validates strictly against its schema. */
export function validateObject(obj: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): void {
  if (validators.size === 0) buildValidators();
  const key = `${obj.apiVersion}/${obj.kind}`;
  const schemas = validators.get(key);
  if (!schemas) throw new Error(`no schema validator for ${key} (object ${obj.metadata?.name}): add its schema to test/schemas (see test/schemas/README.md)`);
  try {
    EXTRA_CHECKS[key]?.(obj);
  } catch (e) {
    throw new Error(`${key} ${obj.metadata?.name} does not validate: ${(e as Error).message}`);
  }
  const name = obj.metadata?.name;
  for (const { source, validate } of schemas) {
    if (validate(obj)) continue;
    const errors = (validate.errors ?? []).map((e) => {
      const extra = e.keyword === 'additionalProperties' ? ` (unknown field "${(e.params as { additionalProperty: string }).additionalProperty}")` : '';
      return `${e.instancePath || '/'} ${e.message}${extra}`;
    });
    throw new Error(`${key} ${name} does not validate against the ${source} schema: ${[...new Set(errors)].join('; ')}`);
  }
}

/*
 * PodMonitor (monitoring.coreos.com/v1): hand checks on top of the CRD schema, for what the
 * schema does not say but the operator needs: a namespace (PodMonitors are selected per
 * namespace), a non-empty selector (an empty one selects every pod), port names, paths and
 * Prometheus durations in their valid forms, and the known fields only, named in the message so
 * a misspelt field cannot pass unnoticed.
 */


const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label value: at most 63 characters, alphanumerics with "-", "_", "." inside. */
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
/** A label key: an optional DNS subdomain prefix and "/", then a name of at most 63 characters. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** The operator's `monitoringv1.Duration` pattern (its CRD's `interval` field). */
const PROMETHEUS_DURATION = /^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/;
/** A container port name (IANA service name), which the endpoint's `port` refers to. */
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const POD_MONITOR_KEYS = ['apiVersion', 'kind', 'metadata', 'spec'];
const METADATA_KEYS = ['name', 'namespace', 'labels', 'annotations'];
const SPEC_KEYS = ['selector', 'podMetricsEndpoints', 'namespaceSelector', 'jobLabel', 'podTargetLabels', 'sampleLimit'];
const ENDPOINT_KEYS = ['port', 'path', 'scheme', 'interval', 'scrapeTimeout', 'honorLabels', 'relabelings', 'metricRelabelings'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(where: string, v: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(v).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new Error(`${where}: unknown field(s) ${unknown.join(', ')}`);
}

function checkLabels(where: string, labels: unknown, nonEmpty: boolean): void {
  if (!isRecord(labels)) throw new Error(`${where}: must be an object of label keys to values`);
  if (nonEmpty && Object.keys(labels).length === 0) throw new Error(`${where}: must not be empty (an empty selector selects every pod)`);
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k) || k.split('/').pop()!.length > 63) throw new Error(`${where}: invalid label key ${JSON.stringify(k)}`);
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) throw new Error(`${where}.${k}: invalid label value ${JSON.stringify(v)}`);
  }
}

/** Throws, naming the field, unless `o` is a structurally valid PodMonitor. */
export function validatePodMonitor(o: any): void {
  if (!isRecord(o)) throw new Error('not an object');
  onlyKeys('PodMonitor', o, POD_MONITOR_KEYS);
  if (o.apiVersion !== 'monitoring.coreos.com/v1') throw new Error(`apiVersion: must be monitoring.coreos.com/v1, got ${JSON.stringify(o.apiVersion)}`);
  if (o.kind !== 'PodMonitor') throw new Error(`kind: must be PodMonitor, got ${JSON.stringify(o.kind)}`);

  const m = o.metadata;
  if (!isRecord(m)) throw new Error('metadata: required');
  onlyKeys('metadata', m, METADATA_KEYS);
  if (typeof m.name !== 'string' || m.name.length > 253 || !DNS_1123_SUBDOMAIN.test(m.name)) throw new Error(`metadata.name: must be a DNS-1123 subdomain, got ${JSON.stringify(m.name)}`);
  // The operator selects PodMonitors per namespace; a cluster-scoped one cannot exist.
  if (typeof m.namespace !== 'string' || m.namespace.length > 63 || !DNS_1123_LABEL.test(m.namespace)) throw new Error(`metadata.namespace: must be a DNS-1123 label, got ${JSON.stringify(m.namespace)}`);
  if (m.labels !== undefined) checkLabels('metadata.labels', m.labels, false);

  const spec = o.spec;
  if (!isRecord(spec)) throw new Error('spec: required');
  onlyKeys('spec', spec, SPEC_KEYS);
  if (!isRecord(spec.selector)) throw new Error('spec.selector: required');
  onlyKeys('spec.selector', spec.selector, ['matchLabels', 'matchExpressions']);
  checkLabels('spec.selector.matchLabels', spec.selector.matchLabels, true);

  const endpoints = spec.podMetricsEndpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw new Error('spec.podMetricsEndpoints: must be a non-empty list');
  endpoints.forEach((e: unknown, i: number) => {
    const where = `spec.podMetricsEndpoints[${i}]`;
    if (!isRecord(e)) throw new Error(`${where}: must be an object`);
    onlyKeys(where, e, ENDPOINT_KEYS);
    if (typeof e.port !== 'string' || e.port.length > 15 || !PORT_NAME.test(e.port)) throw new Error(`${where}.port: must be a container port name, got ${JSON.stringify(e.port)}`);
    if (typeof e.path !== 'string' || !e.path.startsWith('/')) throw new Error(`${where}.path: must be a path starting with "/", got ${JSON.stringify(e.path)}`);
    if (e.scheme !== undefined && e.scheme !== 'http' && e.scheme !== 'https') throw new Error(`${where}.scheme: must be http or https, got ${JSON.stringify(e.scheme)}`);
    for (const field of ['interval', 'scrapeTimeout'] as const) {
      if (e[field] !== undefined && (typeof e[field] !== 'string' || e[field] === '' || !PROMETHEUS_DURATION.test(e[field] as string))) {
        throw new Error(`${where}.${field}: must be a Prometheus duration such as "15s" or "1m30s", got ${JSON.stringify(e[field])}`);
      }
    }
  });
}
