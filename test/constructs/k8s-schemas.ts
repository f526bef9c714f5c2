/**
 * Validates synthesized objects against the Kubernetes and cert-manager schemas
 * (kubernetes-models). `.validate()` accepts unknown fields and kinds, so every object's
 * apiVersion/kind must also be one this table knows: an object we cannot validate fails.
 * The Prometheus operator's PodMonitor has no installed schema package, so it gets the
 * explicit structural check `validatePodMonitor` below instead.
 *
 * Schema version: kubernetes-models 4.5.1 carries the Kubernetes 1.27.1 OpenAPI schemas; the
 * 1.28-and-later releases (kubernetes-models 5) require Node.js 22 and this project runs on
 * Node.js 20. Every kind synthesized here (v1 Namespace, ServiceAccount, Service, ConfigMap,
 * apps/v1 Deployment, networking.k8s.io/v1 NetworkPolicy) is a stable API whose fields we use
 * are unchanged between 1.27 and 1.28.
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
  'monitoring.coreos.com/v1/PodMonitor': (o) => ({ validate: () => validatePodMonitor(o) }),
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

/*
 * PodMonitor (monitoring.coreos.com/v1), checked by hand: kubernetes-models ships no
 * prometheus-operator models and no schema package for it is installed (the project adds no
 * dependency for one kind). The check covers what TypeMesh writes, following the operator's
 * CRD: the identity, the metadata, `spec.selector.matchLabels` and each
 * `spec.podMetricsEndpoints[]`'s port/path/scheme/interval. Unknown fields fail, as a strict
 * apply of the CRD would reject them, so a misspelt field cannot pass unnoticed.
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
