/**
 * Label values of the sidecar's metrics. Every value that reaches a Prometheus label goes
 * through here, so the number of distinct series stays bounded: names must look like names,
 * principals like SPIFFE IDs, status codes like status codes, and anything else becomes
 * 'unknown'. Raw paths, hosts and header values never become labels.
 */
import { DNS_1123_LABEL, SPIFFE_ID } from '../../config/schema';

/** The value of a label the proxy cannot (or must not) know. */
export const UNKNOWN = 'unknown';

/**
 * The header an outbound sidecar adds so that the inbound sidecar can label its metrics with
 * the caller's workload: `<workload>;<namespace>;<version>`. The inbound side trusts it only
 * over mTLS, and only when its namespace matches the one in the peer's certificate.
 */
export const SOURCE_HEADER = 'x-typemesh-source';

// A SPIFFE ID longer than this is not something our CA issued; refusing it keeps labels short.
const MAX_PRINCIPAL_LENGTH = 256;

/**
 * Envoy response flags the proxy may report, plus TypeMesh's RBL (a retriable failure not
 * retried because the request body was over the retry buffer limit) and OL (shed on overload); anything else is dropped from the label.
 */
const KNOWN_RESPONSE_FLAGS = new Set([
  'UO', 'UT', 'URX', 'UF', 'UH', 'UC', 'UR', 'LR', 'DC', 'DI', 'FI', 'NR', 'RL', 'RLSE', 'UAEX', 'RBAC', 'DPE', 'UPE', 'SI', 'IH', 'OM', 'DF', 'DO',
  'RBL',
  // TypeMesh: shed by the listener's admission control (graceful overload, admission.ts).
  'OL',
]);

/** A workload, namespace or version label: a DNS-1123 label, or 'unknown'. */
export function nameLabel(value: string | undefined): string {
  return value !== undefined && DNS_1123_LABEL.test(value) ? value : UNKNOWN;
}

/** A principal label: a SPIFFE ID, or 'unknown'. */
export function principalLabel(value: string | undefined): string {
  return value !== undefined && value.length <= MAX_PRINCIPAL_LENGTH && SPIFFE_ID.test(value) ? value : UNKNOWN;
}

/** The namespace of a SPIFFE ID of the form spiffe://<td>/ns/<namespace>/sa/<account>. */
export function namespaceOfPrincipal(principal: string | undefined): string | undefined {
  if (principal === undefined) return undefined;
  const at = principal.indexOf('/ns/');
  if (at < 0) return undefined;
  const start = at + 4;
  const end = principal.indexOf('/', start);
  return principal.slice(start, end < 0 ? undefined : end);
}

/** response_code: the HTTP status, '0' when no response was sent, else 'unknown'. */
export function responseCodeLabel(status: number): string {
  if (status === 0) return '0';
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : UNKNOWN;
}

/** grpc_response_status: '' for plain HTTP (as Istio reports it), 0-16 for gRPC, else 'unknown'. */
export function grpcStatusLabel(status: number | undefined): string {
  if (status === undefined) return '';
  return Number.isInteger(status) && status >= 0 && status <= 16 ? String(status) : UNKNOWN;
}

/** response_flags: known Envoy flags, sorted and comma-joined, or '-' when there are none (Envoy's notation). */
export function responseFlagsLabel(flags: readonly string[]): string {
  if (flags.length === 0) return '-';
  const known = flags.filter((f) => KNOWN_RESPONSE_FLAGS.has(f));
  if (known.length === 0) return UNKNOWN;
  return known.length === 1 ? known[0] : [...new Set(known)].sort().join(',');
}

/** The caller's workload as read from {@link SOURCE_HEADER}. */
export interface SourceWorkload {
  readonly workload: string;
  readonly namespace: string;
  readonly version: string;
}

/** The value of {@link SOURCE_HEADER} for this workload. */
export function formatSourceHeader(workload: string, namespace: string, version: string): string {
  return `${workload};${namespace};${version}`;
}

/**
 * Reads {@link SOURCE_HEADER}. Returns undefined unless the request came over mTLS with a
 * principal, the header is well formed, and its namespace is the principal's namespace: a
 * caller can only claim a workload in its own namespace, and a plain-text caller can claim
 * nothing.
 */
export function parseSourceHeader(value: string | string[] | undefined, principal: string | undefined): SourceWorkload | undefined {
  if (principal === undefined || value === undefined) return undefined;
  const raw = typeof value === 'string' ? value : value[0];
  if (raw === undefined || raw.length > 200) return undefined;
  const parts = raw.split(';');
  if (parts.length !== 3) return undefined;
  const [workload, namespace, version] = parts;
  if (!DNS_1123_LABEL.test(workload) || !DNS_1123_LABEL.test(namespace) || !DNS_1123_LABEL.test(version)) return undefined;
  if (namespaceOfPrincipal(principal) !== namespace) return undefined;
  return { workload, namespace, version };
}
