/**
 * The TypeMesh cdk8s constructs: a Mesh, its MeshServices, and the traffic and security
 * policies that every sidecar enforces. See docs/constructs.md.
 */
export { MESH_WARNING_METADATA, MeshValidationError, meshWarnings } from './errors';
export type { MeshValidationProblem } from './errors';
export { AccessLogFormat, HTTP_METHODS, MtlsMode, Protocol, RetryOn, TracingCollector } from './values';
export type { HttpMethod } from './values';
export * from './certificate-authority';
export * from './mesh';
export type {
  MeshServiceTelemetry, MetricsOptions, ResolvedTelemetry, ServiceTracingOptions, TelemetryOptions, TracingOptions,
} from './telemetry';
export { HeaderCondition, PathMatch } from './matches';
export type { RequestMatch } from './matches';
export { LoadBalancerPolicy } from './traffic-options';
export type {
  AbortFault, ConnectionPoolOptions, DelayFault, FaultOptions, MirrorOptions, OutlierDetectionOptions, RetryOptions, WeightedVersion,
} from './traffic-options';
export * from './source';
export * from './mesh-service';
export * from './injected-workload';
export * from './mesh-gateway';
export * from './cni-installer';
export * from './external-service';
export * from './traffic-split';
export * from './timeout';
export * from './retry-policy';
export * from './circuit-breaker';
export * from './fault-injection';
export * from './traffic-mirror';
export * from './strict-mtls';
export * from './authorization-policy';
export {
  DEFAULT_APP_SECURITY_CONTEXT, InterceptionMode, IptablesBackend, SIDECAR_CERTS_DIR, SIDECAR_CONFIG_DIR, SIDECAR_CONFIG_KEY, SIDECAR_UID,
  SidecarMode, SidecarPorts,
} from './sidecar-injection';
export type { Capabilities, ContainerSecurityContext, PodSecurityLevel } from './sidecar-injection';
export { DEFAULT_SIDECAR_IMAGE, PACKAGE_VERSION } from './package-version';
