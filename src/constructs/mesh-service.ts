import { ApiObject, Duration, Lazy } from 'cdk8s';
import { Construct, IConstruct } from 'constructs';
import * as YAML from 'yaml';
import { spiffeIdFor } from '../config/identity';
import {
  AuthorizationRule, HeaderMatch as HeaderMatchConfig, OutboundService,
  SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, SidecarConfig, SidecarConfigInput,
} from '../config/schema';
import { interceptionArgsFor } from '../config/pod-contract';
import type { z } from 'zod';
import type { OutboundServiceSchema } from '../config/schema';
import { checkDnsLabel, checkInteger, checkPercentage, fail, warn } from './errors';
import { checkMethod, HeaderCondition, RequestMatch, routeMatchConfig } from './matches';
import { appEnv, appSecurityContext, appVolumes } from './app-container';
import { InjectedWorkload } from './injected-workload';
import { ContainerResources, Mesh } from './mesh';
import { DEFAULT_ROUTE, DEFAULT_TIMEOUT_MS, MeshRoute, RouteField, RouteSettings } from './route-table';
import {
  AppProbe, ContainerSecurityContext, podAnnotations, podSpec, SIDECAR_ADMIN_PORT_NAME,
  SIDECAR_CERTS_DIR, SIDECAR_CONFIG_KEY, SidecarPorts,
} from './sidecar-injection';
import type { MeshGateway } from './mesh-gateway';
import { Source } from './source';
import { MeshServiceTelemetry, ResolvedTelemetry, resolveServiceTelemetry } from './telemetry';
import {
  ConnectionPoolOptions, connectionPoolConfig, faultConfig, FaultOptions, LoadBalancerPolicy, MirrorOptions,
  OutlierDetectionOptions, outlierDetectionConfig, retryConfig, RetryOptions, WeightedVersion,
} from './traffic-options';
import { durationMs, goDuration, HttpMethod, MtlsMode, Protocol } from './values';
import { checkedSidecarConfig, telemetryConfig } from './workload-config';
import { OutboundEntries, outboundSection } from './outbound-ports';

/** A port of a service. */
export interface ServicePortOptions {
  /** The port callers use (the ClusterIP Service's port). */
  readonly port: number;
  /**
   * The port the app listens on.
   * @default - same as `port`
   */
  readonly targetPort?: number;
  /**
   * The port's name (an IANA service name: lower-case, at most 15 characters).
   * @default 'tcp-<port>' for a TCP port; else 'http' for the first port, 'http-<port>' for the others
   */
  readonly name?: string;
  /**
   * The application protocol. A `Protocol.TCP` port is meshed per connection (mTLS, identity,
   * authorization by principal and namespace, connection metrics); callers reach it through a
   * loopback listener of their sidecar, and no route policy or HTTP probe applies to it.
   * @default Protocol.HTTP
   */
  readonly protocol?: Protocol;
}

/** An HTTP probe of the app. The kubelet calls the sidecar, which calls the app on loopback. */
export interface HttpProbeOptions {
  /** The app's health path, e.g. `/healthz`. */
  readonly path: string;
  /**
   * The app port to probe.
   * @default - the first port's targetPort
   */
  readonly port?: number;
  /**
   * Delay before the first probe.
   * @default Duration.seconds(0)
   */
  readonly initialDelay?: Duration;
  /**
   * Interval between probes.
   * @default Duration.seconds(10)
   */
  readonly period?: Duration;
  /**
   * Timeout of one probe.
   * @default Duration.seconds(1)
   */
  readonly timeout?: Duration;
  /**
   * Consecutive failures before the probe fails.
   * @default 3
   */
  readonly failureThreshold?: number;
}

/**
 * A volume of the app container. Exactly one source: `configMap`, `secret`,
 * `persistentVolumeClaim` or `emptyDir` (all allowed by the restricted Pod Security level).
 */
export interface AppVolumeOptions {
  /** The volume's name (a DNS-1123 label, not starting with `typemesh-`, which the sidecar's volumes use). */
  readonly name: string;
  /** Where the app sees it (an absolute path). */
  readonly mountPath: string;
  /**
   * A ConfigMap of the mesh namespace.
   * @default - not a ConfigMap
   */
  readonly configMap?: string;
  /**
   * A Secret of the mesh namespace.
   * @default - not a Secret
   */
  readonly secret?: string;
  /**
   * A PersistentVolumeClaim of the mesh namespace.
   * @default - not a claim
   */
  readonly persistentVolumeClaim?: string;
  /**
   * A scratch directory that lives as long as the pod.
   * @default false
   */
  readonly emptyDir?: boolean;
  /**
   * Mount read-only.
   * @default - true for configMap and secret, false otherwise
   */
  readonly readOnly?: boolean;
}

/** A key of a Secret, for an environment variable. */
export interface SecretKeyReference {
  /** The Secret's name (in the mesh's namespace). */
  readonly secretName: string;
  /** The key in the Secret. */
  readonly key: string;
}

/** One version of a service: a Deployment with its own pods, subset and sidecar config. */
export interface VersionOptions {
  /** The version's name, e.g. `v1` (a DNS-1123 label; it is the `version` label and the subset name). */
  readonly name: string;
  /** The app's container image. */
  readonly image: string;
  /**
   * Pod replicas.
   * @default 1
   */
  readonly replicas?: number;
  /**
   * Environment of the app container, in this order.
   * @default - none
   */
  readonly env?: Record<string, string>;
  /**
   * Environment of the app container from the downward API: variable name to a pod field path
   * such as `metadata.name`, `metadata.namespace`, `status.podIP` or `spec.nodeName`.
   * @default - none
   */
  readonly fieldEnv?: Record<string, string>;
  /**
   * Environment of the app container from Secrets: variable name to a key of a Secret in the
   * mesh's namespace.
   * @default - none
   */
  readonly secretEnv?: Record<string, SecretKeyReference>;
  /**
   * The app container's security context. The default passes the `restricted` Pod Security
   * level (with the pod's RuntimeDefault seccomp profile); the image must then run as a
   * non-root numeric USER, or set `runAsUser`. In a mesh whose pods pass `restricted`
   * (InterceptionMode.CNI or EXPLICIT) a context that would not pass it is refused.
   * @default - runAsNonRoot true, allowPrivilegeEscalation false, capabilities drop ALL
   */
  readonly securityContext?: ContainerSecurityContext;
  /**
   * Volumes of the app container (the sidecar's own volumes are separate).
   * @default - none
   */
  readonly volumes?: AppVolumeOptions[];
  /**
   * A PodDisruptionBudget `<service>-<version>` allowing at most this many of the version's pods
   * to be evicted at once (node drains, cluster upgrades). Needs replicas above the number to
   * let a drain proceed.
   * @default - no PodDisruptionBudget
   */
  readonly maxUnavailable?: number;
  /**
   * Spread the version's pods across zones (`topology.kubernetes.io/zone`) and nodes
   * (`kubernetes.io/hostname`), max skew 1, best effort (`ScheduleAnyway`): a zone or node
   * failure takes as few replicas as the cluster allows.
   * @default false
   */
  readonly spreadAcrossZones?: boolean;
  /**
   * The app container's command (entrypoint).
   * @default - the image's entrypoint
   */
  readonly command?: string[];
  /**
   * The app container's arguments.
   * @default - the image's
   */
  readonly args?: string[];
  /**
   * The app container's resources.
   * @default - requests cpu 100m and memory 128Mi, limit memory 256Mi (no CPU limit, which would throttle latency)
   */
  readonly resources?: ContainerResources;
  /**
   * Liveness probe.
   * @default - none
   */
  readonly liveness?: HttpProbeOptions;
  /**
   * Readiness probe.
   * @default - none
   */
  readonly readiness?: HttpProbeOptions;
}

/** Props of {@link MeshService}. */
export interface MeshServiceProps {
  /** The mesh the service belongs to. */
  readonly mesh: Mesh;
  /** The service's name (a DNS-1123 label): the ClusterIP Service, the `app` label and the host callers use. */
  readonly name: string;
  /**
   * The service's ports. Callers reach every port: each HTTP port is an outbound service of
   * the callers' sidecars (routed by `host:port`, the same routes and policies), each TCP port
   * a TCP service; the sidecar forwards to the port's targetPort. The first port is the default
   * app port (for clients that name no port, such as plaintext PERMISSIVE clients).
   * @default [{ port: 80, targetPort: 8080 }]
   */
  readonly ports?: ServicePortOptions[];
  /** The versions, at least one. The first is the stable version: it gets all traffic unless a route splits it. */
  readonly versions: VersionOptions[];
  /**
   * The ServiceAccount, whose name is the identity's last segment.
   * @default - the service's name
   */
  readonly serviceAccountName?: string;
  /**
   * The namespace of the service's objects: one of the mesh's `namespaces`. Its identity is
   * `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccountName>`, its name
   * `<name>.<namespace>.svc.<clusterDomain>`.
   * @default - the mesh's home namespace
   */
  readonly namespace?: string;
  /**
   * How callers pick an endpoint.
   * @default LoadBalancerPolicy.LEAST_REQUEST
   */
  readonly loadBalancer?: LoadBalancerPolicy;
  /**
   * Telemetry of this service's sidecars (metrics and PodMonitor, tracing, access log). Every
   * field left out falls back to the mesh's `telemetry`.
   * @default - the mesh's telemetry
   */
  readonly telemetry?: MeshServiceTelemetry;
}

/** A route of a service: requests that match go to weighted versions with their own resilience policy. */
export interface RouteOptions {
  /** The route's name (a DNS-1123 label, unique within the service; `default` is the catch-all route). */
  readonly name: string;
  /** Conditions; a request matching any one of them takes this route. */
  readonly match: RequestMatch[];
  /**
   * Weighted versions.
   * @default - all traffic to the first version
   */
  readonly split?: WeightedVersion[];
  /**
   * Whole-request timeout, retries included (Duration.millis(0) disables it).
   * @default Duration.seconds(15)
   */
  readonly timeout?: Duration;
  /**
   * Retries.
   * @default - no retries
   */
  readonly retries?: RetryOptions;
  /**
   * Fault injection.
   * @default - none
   */
  readonly fault?: FaultOptions;
  /**
   * Mirroring.
   * @default - none
   */
  readonly mirror?: MirrorOptions;
}

/** Request conditions of an authorization rule; all given conditions must hold. */
export interface RequestConditions {
  /**
   * Methods (any of).
   * @default - any method
   */
  readonly methods?: HttpMethod[];
  /**
   * Paths (any of): exact, or a prefix ending in `*` such as `/api/*`.
   * @default - any path
   */
  readonly paths?: string[];
  /**
   * Header conditions (all of).
   * @default - none
   */
  readonly headers?: HeaderCondition[];
}

/** A destination service in the outbound config, as written (defaults may be omitted). */
export type OutboundServiceInput = z.input<typeof OutboundServiceSchema>;

export { DEFAULT_ROUTE };

/**
 * A service of the mesh with one or more versions.
 *
 * Synthesizes a ServiceAccount, a cert-manager Certificate for its SPIFFE identity, a
 * ClusterIP Service, a NetworkPolicy that admits only the sidecar's ports, and per version a
 * ConfigMap with the sidecar config, a headless Service for discovery and a Deployment with
 * the sidecar and the interception init container injected; with `metrics.podMonitor` on (its
 * own or the mesh's telemetry) also a Prometheus operator PodMonitor `<service>-sidecar-metrics`.
 */
export class MeshService extends Construct {
  /** The mesh. */
  public readonly mesh: Mesh;
  /** The service's name. */
  public readonly serviceName: string;
  /** The namespace of the service's objects (one of the mesh's). */
  public readonly namespace: string;
  /** The ServiceAccount's name. */
  public readonly serviceAccountName: string;
  /** The SPIFFE ID of every workload of the service. */
  public readonly identity: string;
  /** The versions' names, stable version first. */
  public readonly versionNames: string[];
  /** The service's telemetry: its `telemetry` overrides over the mesh's defaults. */
  public readonly telemetry: ResolvedTelemetry;

  private readonly ports: Array<{ name: string; port: number; targetPort: number; protocol: Protocol }>;
  private readonly loadBalancer: LoadBalancerPolicy;
  private readonly routes: MeshRoute[] = [];
  private readonly destinations: MeshService[] = [];
  private readonly injectedDestinations: InjectedWorkload[] = [];
  private readonly rules: AuthorizationRule[] = [];
  private connectionPool?: { config: OutboundService['connectionPool']; setBy: string };
  private outlierDetection?: { config: NonNullable<OutboundService['outlierDetection']>; setBy: string };
  private mtls?: { mode: MtlsMode; setBy: string };

  constructor(scope: Construct, id: string, props: MeshServiceProps) {
    super(scope, id);
    this.mesh = props.mesh;
    checkDnsLabel(this, 'name', props.name, 'payment-service');
    this.serviceName = props.name;
    this.namespace = props.namespace ?? this.mesh.namespace;
    this.mesh._checkNamespace(this, 'namespace', this.namespace);
    this.serviceAccountName = props.serviceAccountName ?? props.name;
    checkDnsLabel(this, 'serviceAccountName', this.serviceAccountName, props.name);
    this.identity = spiffeIdFor(this.mesh.trustDomain, this.namespace, this.serviceAccountName);
    this.loadBalancer = props.loadBalancer ?? LoadBalancerPolicy.LEAST_REQUEST;
    this.ports = this.validatePorts(props.ports ?? [{ port: 80, targetPort: 8080 }]);
    this.telemetry = resolveServiceTelemetry(this, this.mesh._telemetry, props.telemetry);

    if (props.versions.length === 0) {
      fail({ construct: this, prop: 'versions', value: [], problem: 'a service needs at least one version', fix: 'add a version, e.g. versions: [{ name: "v1", image: "..." }]' });
    }
    const seen = new Set<string>();
    props.versions.forEach((v, i) => {
      checkDnsLabel(this, `versions[${i}].name`, v.name, `v${i + 1}`);
      if (seen.has(v.name)) {
        fail({ construct: this, prop: `versions[${i}].name`, value: v.name, problem: 'two versions have this name', fix: 'give every version a different name (v1, v2, ...)' });
      }
      seen.add(v.name);
      const objectName = `${this.serviceName}-${v.name}`;
      if (objectName.length > 63) {
        fail({ construct: this, prop: `versions[${i}].name`, value: v.name, problem: `the workload name "${objectName}" is ${objectName.length} characters; Service names are at most 63`, fix: 'shorten the service or version name' });
      }
      if (!v.image || /\s/.test(v.image)) {
        fail({ construct: this, prop: `versions[${i}].image`, value: v.image, problem: 'must be a container image reference', fix: 'use e.g. "ghcr.io/acme/payment:1.2.3"' });
      }
      checkInteger(this, `versions[${i}].replicas`, v.replicas ?? 1, 0, 10_000, 'use 0 or more replicas');
    });
    this.versionNames = props.versions.map((v) => v.name);

    this.routes.push(new MeshRoute(DEFAULT_ROUTE, []));

    this.synthesizeServiceObjects();
    props.versions.forEach((v, i) => this.synthesizeVersion(v, i));
    // Registered last, so that a service whose props failed validation is not in the mesh.
    this.mesh._register(this);

    // Last line of defence: every sidecar config must validate against the contract.
    this.node.addValidation({
      validate: () => {
        const errors: string[] = [];
        for (const v of this.versionNames) {
          try {
            this.sidecarConfig(v);
          } catch (e) {
            errors.push(e instanceof Error ? e.message : String(e));
          }
        }
        return errors;
      },
    });
  }

  /** The ClusterIP Service's DNS name, e.g. `payment-service.shop.svc.cluster.local`. */
  public get fqdn(): string {
    return `${this.serviceName}.${this.namespace}.svc.${this.mesh.clusterDomain}`;
  }

  /** The mesh port: the first port callers use. */
  public get port(): number {
    return this.ports[0].port;
  }

  /** The mTLS mode of the service's inbound listener. */
  public get mtlsMode(): MtlsMode {
    return this.mtls?.mode ?? this.mesh.mtlsMode;
  }

  /**
   * Declares that this service calls `services`. Only declared destinations appear in this
   * service's outbound sidecar config (like Istio's Sidecar egress scoping); calls to other
   * hosts pass through unrouted and, inside the mesh, are refused by the callee's strict
   * mTLS and NetworkPolicy. An injected workload is callable once it has a `callerPort`
   * (see `Mesh.inject`).
   */
  public callsTo(...services: Array<MeshService | InjectedWorkload>): this {
    services.forEach((s, i) => {
      if (s instanceof InjectedWorkload) s._checkCallableBy(this, `callsTo(...)[${i}]`, this.mesh);
      else this.checkSameMesh(s, `callsTo(...)[${i}]`);
    });
    for (const s of services) {
      if (s instanceof InjectedWorkload) {
        if (!this.injectedDestinations.includes(s)) this.injectedDestinations.push(s);
      } else if (!this.destinations.includes(s)) this.destinations.push(s);
    }
    return this;
  }

  /** The services this one calls, in the order declared. */
  public get calls(): MeshService[] {
    return [...this.destinations];
  }

  /**
   * Allows `source` to call this service (optionally only some methods, paths and headers).
   * Once any allow rule exists, every request that no allow rule matches is denied. When the
   * source is a MeshService, it also declares `source.callsTo(this)`; a {@link MeshGateway}
   * is admitted by its own SPIFFE identity.
   */
  public allowFrom(source: MeshService | MeshGateway | InjectedWorkload | Source, conditions: RequestConditions = {}): this {
    if (source === this) {
      // Almost always a slip for another service; once any allow rule exists every other
      // caller is denied, so it would lock the service's real callers out.
      fail({ construct: this, prop: 'allowFrom', value: this.serviceName, problem: `${this.serviceName} would allow itself: that rule admits only its own replicas, and once a service has an allow rule every caller no rule admits is denied`, fix: `name the calling service, e.g. ${this.serviceName}.allowFrom(callerService); if replicas really call each other, use allowFrom(Source.service(${this.serviceName}))` });
    }
    if (source instanceof InjectedWorkload && source.mesh !== this.mesh) {
      fail({ construct: this, prop: 'allowFrom', value: source.workloadName, problem: `the injected workload belongs to the other mesh ${source.mesh.node.path} (namespaces ${source.mesh.namespaces.join(', ')})`, fix: 'allow workloads of the same Mesh, or Source.principal() for peers outside it' });
    }
    this._addRule(this, 'ALLOW', [toSource(source)], conditions);
    if (source instanceof MeshService) source.callsTo(this);
    if (source instanceof InjectedWorkload) source.calls(this);
    return this;
  }

  /** Denies `source` (optionally only some methods, paths and headers); deny rules win over allow rules. */
  public denyFrom(source: MeshService | MeshGateway | Source, conditions: RequestConditions = {}): this {
    this._addRule(this, 'DENY', [toSource(source)], conditions);
    return this;
  }

  /** Adds a route before the default (catch-all) route; routes are tried in the order they were added. */
  public addRoute(options: RouteOptions): this {
    this.checkRoutesApply(this, 'addRoute');
    checkDnsLabel(this, 'addRoute.name', options.name, 'checkout');
    if (this.routes.some((r) => r.name === options.name)) {
      fail({ construct: this, prop: 'addRoute.name', value: options.name, problem: 'a route of this name already exists (`default` is the catch-all route)', fix: 'give every route a different name' });
    }
    if (options.match.length === 0) {
      fail({ construct: this, prop: 'addRoute.match', value: [], problem: 'a route without conditions would shadow the default route', fix: 'add a match, or configure the default route with Canary/Timeout/RetryPolicy' });
    }
    const match = options.match.map((m, i) => routeMatchConfig(this, `addRoute.match[${i}]`, m));
    const route = new MeshRoute(options.name, match);
    this.routes.splice(this.routes.length - 1, 0, route);
    try {
      if (options.split) this._setRouteSplit(this, options.name, options.split, 'addRoute.split');
      if (options.timeout) this._configureRoute(this, options.name, 'timeout', durationMs(this, 'addRoute.timeout', options.timeout));
      if (options.retries) this._configureRoute(this, options.name, 'retries', retryConfig(this, 'addRoute.retries.', options.retries));
      if (options.fault) this._configureRoute(this, options.name, 'fault', faultConfig(this, 'addRoute.fault.', options.fault));
      if (options.mirror) this._setRouteMirror(this, options.name, options.mirror, 'addRoute.mirror');
    } catch (e) {
      // A route that failed validation must not stay half-configured.
      this.routes.splice(this.routes.indexOf(route), 1);
      throw e;
    }
    return this;
  }

  /** The route names, in match order (the default route last). */
  public get routeNames(): string[] {
    return this.routes.map((r) => r.name);
  }

  /** @internal Sets a route's weighted versions. */
  public _setRouteSplit(by: IConstruct, routeName: string, split: readonly WeightedVersion[], prop: string): void {
    if (split.length === 0) fail({ construct: by, prop, value: [], problem: 'a split needs at least one version', fix: `list versions of ${this.serviceName} with weights summing to 100` });
    const seen = new Set<string>();
    split.forEach((w, i) => {
      if (!this.versionNames.includes(w.version)) {
        fail({ construct: by, prop: `${prop}[${i}].version`, value: w.version, problem: `${this.serviceName} has no such version (known: ${this.versionNames.join(', ')})`, fix: `name one of ${this.versionNames.join(', ')}, or add the version to the service's versions` });
      }
      if (seen.has(w.version)) fail({ construct: by, prop: `${prop}[${i}].version`, value: w.version, problem: 'the version appears twice in the split', fix: 'list each version once' });
      seen.add(w.version);
      checkInteger(by, `${prop}[${i}].weight`, w.weight, 0, 100, 'use an integer weight from 0 to 100');
    });
    const total = split.reduce((s, w) => s + w.weight, 0);
    if (total !== 100) {
      fail({ construct: by, prop, value: split.map((w) => `${w.version}=${w.weight}`).join(','), problem: `weights sum to ${total}, not 100`, fix: 'make the weights of a route sum to 100' });
    }
    this._configureRoute(by, routeName, 'split', split.map((w) => ({ subset: w.version, weight: w.weight })));
  }

  /** @internal Sets a route's mirror. */
  public _setRouteMirror(by: IConstruct, routeName: string, mirror: MirrorOptions, prop: string): void {
    const prefix = prop ? `${prop}.` : '';
    if (!this.versionNames.includes(mirror.version)) {
      fail({ construct: by, prop: `${prefix}version`, value: mirror.version, problem: `${this.serviceName} has no such version (known: ${this.versionNames.join(', ')})`, fix: 'mirror to a version of the same service' });
    }
    const percentage = mirror.percentage ?? 100;
    checkPercentage(by, `${prefix}percentage`, percentage);
    this._configureRoute(by, routeName, 'mirror', { subset: mirror.version, percentage });
  }

  /** @internal Sets one field of a route, once; checks the route's cross-field rules. */
  public _configureRoute<F extends RouteField>(by: IConstruct, routeName: string, field: F, value: RouteSettings[F]): void {
    this.checkRoutesApply(by, field);
    const route = this.routes.find((r) => r.name === routeName);
    if (!route) {
      fail({ construct: by, prop: 'route', value: routeName, problem: `${this.serviceName} has no such route (known: ${this.routeNames.join(', ')})`, fix: 'call service.addRoute({ name, match }) first, or omit `route` for the default route' });
    }
    const previous = route.setterOf(field);
    if (previous) {
      fail({ construct: by, prop: field, value: routeName, problem: `the ${field} of route "${routeName}" of ${this.serviceName} is already set by ${previous}`, fix: `set the ${field} of a route once` });
    }
    // Check the route as it would be, and change it only when it passes: a failed call leaves no trace.
    this.checkRoute(by, route.with(field, value));
    route.set(field, value, by.node.path);
  }

  /** @internal Sets connection pool limits (CircuitBreaker). */
  public _setConnectionPool(by: IConstruct, options: ConnectionPoolOptions): void {
    this.checkRoutesApply(by, 'service', 'the sidecar applies no connection pool limits or outlier detection to TCP services yet');
    if (this.connectionPool) fail({ construct: by, prop: 'service', value: this.serviceName, problem: `connection pool limits of ${this.serviceName} are already set by ${this.connectionPool.setBy}`, fix: 'declare one CircuitBreaker per service' });
    this.connectionPool = { config: connectionPoolConfig(by, options), setBy: by.node.path };
  }

  /** @internal Sets outlier detection (CircuitBreaker). */
  public _setOutlierDetection(by: IConstruct, options: OutlierDetectionOptions): void {
    if (this.outlierDetection) fail({ construct: by, prop: 'outlierDetection', value: this.serviceName, problem: `outlier detection of ${this.serviceName} is already set by ${this.outlierDetection.setBy}`, fix: 'declare one CircuitBreaker per service' });
    this.outlierDetection = { config: outlierDetectionConfig(by, options), setBy: by.node.path };
  }

  /** @internal Sets this service's mTLS mode (StrictMtls). */
  public _setMtlsMode(by: IConstruct, mode: MtlsMode): void {
    if (this.mtls) fail({ construct: by, prop: 'mode', value: mode, problem: `the mTLS mode of ${this.serviceName} is already set by ${this.mtls.setBy}`, fix: 'declare one StrictMtls per service' });
    this.mtls = { mode, setBy: by.node.path };
  }

  /** @internal Adds an authorization rule to this service's inbound config. */
  public _addRule(by: IConstruct, action: 'ALLOW' | 'DENY', sources: readonly Source[], conditions: RequestConditions, name?: string): void {
    const principals: string[] = [];
    const namespaces: string[] = [];
    sources.forEach((src, i) => {
      const s = src._spec;
      const prop = `from[${i}]`;
      if (s.kind === 'service') {
        this.checkSameMesh(s.service, prop, by);
        principals.push(s.service.identity);
      } else if (s.kind === 'namespace') {
        checkDnsLabel(by, prop, s.namespace, 'shop');
        namespaces.push(s.namespace);
      } else if (s.kind === 'principal') {
        if (!Source._isPrincipal(s.principal)) fail({ construct: by, prop, value: s.principal, problem: 'is not a SPIFFE ID', fix: 'use e.g. "spiffe://cluster.local/ns/shop/sa/order-service"' });
        principals.push(s.principal);
      } else {
        principals.push('*');
      }
    });
    const rule: { -readonly [K in keyof AuthorizationRule]: AuthorizationRule[K] } = {
      name: name ?? this.ruleName(action, sources),
      action,
    };
    if (principals.length > 0) rule.principals = [...new Set(principals)];
    if (namespaces.length > 0) rule.namespaces = [...new Set(namespaces)];
    const tcpPorts = this.ports.filter((p) => p.protocol === Protocol.TCP);
    for (const field of ['methods', 'paths', 'headers'] as const) {
      const v = conditions[field];
      if (tcpPorts.length > 0 && v && v.length > 0) {
        // A byte stream has no method, path or header: such a rule would never match (ALLOW) or never fire (DENY).
        fail({
          construct: by, prop: field, value: field === 'headers' ? `${v.length} header condition(s)` : (v as string[]).join(','),
          problem: `${this.serviceName} serves the TCP port${tcpPorts.length > 1 ? 's' : ''} ${tcpPorts.map((p) => `"${p.name}" (${p.port})`).join(', ')}, where a connection is authorized by principal and namespace only`,
          fix: `drop ${field} (allow or deny the source as a whole), or serve the HTTP API from a MeshService of its own`,
        });
      }
    }
    if (conditions.methods && conditions.methods.length > 0) {
      conditions.methods.forEach((m, i) => checkMethod(by, `methods[${i}]`, m));
      rule.methods = [...conditions.methods];
    }
    if (conditions.paths && conditions.paths.length > 0) {
      conditions.paths.forEach((p, i) => {
        if (typeof p !== 'string' || !p.startsWith('/') || (p.includes('*') && !(p.endsWith('*') && p.indexOf('*') === p.length - 1))) {
          fail({ construct: by, prop: `paths[${i}]`, value: p, problem: 'must start with "/" and may only end in "*" (prefix)', fix: 'use "/process" or "/api/*"' });
        }
      });
      rule.paths = [...conditions.paths];
    }
    if (conditions.headers && conditions.headers.length > 0) {
      rule.headers = conditions.headers.map((h, i): HeaderMatchConfig => h._toConfig(by, `headers[${i}]`));
    }
    if (this.rules.some((r) => r.name === rule.name)) {
      fail({ construct: by, prop: 'name', value: rule.name, problem: `${this.serviceName} already has an authorization rule of this name`, fix: 'give each AuthorizationPolicy a different id' });
    }
    this.rules.push(rule);
  }

  /** The authorization rules of this service's inbound listener, in order. */
  public get authorizationRules(): AuthorizationRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /**
   * This service as a destination in a caller's outbound config: its hosts, subsets
   * (one per version, discovered through the version's headless Service), routes and
   * connection policy.
   */
  public outboundService(callerNamespace: string = this.namespace): OutboundServiceInput {
    const first = this.ports.find((p) => p.protocol !== Protocol.TCP);
    if (!first) {
      fail({ construct: this, prop: 'ports', value: this.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`).join(','), problem: `${this.serviceName} has TCP ports only, and this needs an HTTP service (a route, a gateway, an HTTP policy)`, fix: 'call the TCP service from a MeshService (callsTo), or give it an HTTP port' });
    }
    return this.outboundServiceFor(callerNamespace, first);
  }

  /**
   * @internal This service in a caller's outbound config, every port: one outbound service per
   * HTTP port and one TCP service per TCP port (listener ports are the caller's to assign). The
   * first port is named after the service, the others `<service>-<portName>`.
   */
  public _outboundEntries(callerNamespace: string): OutboundEntries {
    const services: OutboundEntries['services'] = [];
    const tcpServices: OutboundEntries['tcpServices'] = [];
    for (const p of this.ports) {
      if (p.protocol !== Protocol.TCP) {
        services.push(this.outboundServiceFor(callerNamespace, p));
        continue;
      }
      tcpServices.push({
        name: this.entryName(p),
        namespace: this.namespace,
        port: p.port,
        targetPort: p.targetPort,
        subsets: this.subsets(),
      });
    }
    return { services, tcpServices };
  }

  private entryName(p: { name: string }): string {
    return p === this.ports[0] ? this.serviceName : `${this.serviceName}-${p.name}`;
  }

  private subsets() {
    return this.versionNames.map((v) => ({
      name: v,
      labels: { version: v },
      identity: this.identity,
      discovery: { type: 'dns' as const, hostname: `${this.serviceName}-${v}.${this.namespace}.svc.${this.mesh.clusterDomain}`, port: SidecarPorts.INBOUND },
    }));
  }

  private outboundServiceFor(callerNamespace: string, p: { name: string; port: number; targetPort: number; protocol: Protocol }): OutboundServiceInput {
    const ns = this.namespace;
    // The bare name resolves in the caller's own namespace: a host only for callers of this one.
    const shortName = callerNamespace === ns ? [this.serviceName] : [];
    const first = this.versionNames[0];
    return {
      name: this.entryName(p),
      namespace: ns,
      hosts: [...shortName, `${this.serviceName}.${ns}`, `${this.serviceName}.${ns}.svc`, this.fqdn],
      port: p.port,
      // A single-port service keeps the peer's default app port; with several, each names its own.
      ...(this.ports.length > 1 ? { targetPort: p.targetPort } : {}),
      protocol: p.protocol as 'http' | 'http2' | 'grpc',
      subsets: this.subsets(),
      routes: this.routes.map((r) => r.toConfig(first)),
      loadBalancer: { policy: this.loadBalancer },
      ...(this.connectionPool ? { connectionPool: this.connectionPool.config } : {}),
      ...(this.outlierDetection ? { outlierDetection: this.outlierDetection.config } : {}),
    };
  }

  /** The sidecar config of one version, validated against the contract (throws with the fields at fault). */
  public sidecarConfig(version: string): SidecarConfig {
    if (!this.versionNames.includes(version)) {
      fail({ construct: this, prop: 'version', value: version, problem: `no such version (known: ${this.versionNames.join(', ')})`, fix: 'name a version of the service' });
    }
    const input: SidecarConfigInput = {
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      workload: {
        name: this.serviceName,
        namespace: this.namespace,
        version,
        serviceAccount: this.serviceAccountName,
        identity: this.identity,
        trustDomain: this.mesh.trustDomain,
        appPorts: this.ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
      },
      listeners: { bindAddress: '0.0.0.0', outboundPort: SidecarPorts.OUTBOUND, inboundPort: SidecarPorts.INBOUND, adminPort: SidecarPorts.ADMIN },
      tls: {
        certFile: `${SIDECAR_CERTS_DIR}/tls.crt`,
        keyFile: `${SIDECAR_CERTS_DIR}/tls.key`,
        caFile: this.mesh._sidecarTrust.caFile,
      },
      inbound: {
        mtls: { mode: this.mtlsMode },
        app: { address: '127.0.0.1', port: this.ports[0].targetPort },
        probes: (this.probesByVersion.get(version) ?? []).map((p) => ({ portName: p.portName, kind: p.kind, path: p.path })),
        authorization: { rules: this.rules },
      },
      outbound: { ...outboundSection(this, 'callsTo', this.namespace, [...this.destinations, ...this.injectedDestinations]), ...this.mesh._egressConfig() },
      telemetry: telemetryConfig(this.telemetry),
    };
    return checkedSidecarConfig(this, `sidecarConfig(${version})`, `${this.serviceName}-${version}`, input,
      'correct the props that produce the fields named above (this is a TypeMesh bug if no prop can)');
  }

  private ruleName(action: 'ALLOW' | 'DENY', sources: readonly Source[]): string {
    const base = `${action.toLowerCase()}-from-${sources.map((s) => s.description).join('-') || 'any'}`;
    let name = base;
    for (let n = 2; this.rules.some((r) => r.name === name); n++) name = `${base}-${n}`;
    return name;
  }

  private checkSameMesh(other: MeshService, prop: string, by: IConstruct = this): void {
    if (!(other instanceof MeshService) || other.mesh !== this.mesh || !this.mesh._isRegistered(other)) {
      const name = other instanceof MeshService ? other.serviceName : String(other);
      const owner = other instanceof MeshService && other.mesh !== this.mesh
        ? `: it belongs to the other mesh ${other.mesh.node.path} (namespaces ${other.mesh.namespaces.join(', ')})`
        : '';
      const problem = `the service is not part of the mesh of ${this.serviceName} (${this.mesh.node.path}, namespaces ${this.mesh.namespaces.join(', ')})${owner}`;
      fail({ construct: by, prop, value: name, problem, fix: 'reference a MeshService of the same Mesh (a Mesh spans several namespaces with `namespaces`), or Source.principal()/Source.namespace() for peers outside it' });
    }
  }

  /**
   * Route policies (routes, splits, timeouts, retries, faults, mirrors) act on HTTP requests:
   * refused for a service with TCP ports only, a warning where they reach its HTTP ports only.
   */
  private checkRoutesApply(by: IConstruct, prop: string, why = 'a connection carries no requests to route, split, time out or retry'): void {
    const tcp = this.ports.filter((p) => p.protocol === Protocol.TCP);
    if (tcp.length === 0) return;
    const ports = tcp.map((p) => `"${p.name}" (${p.port})`).join(', ');
    if (tcp.length === this.ports.length) {
      fail({ construct: by, prop, value: this.serviceName, problem: `${this.serviceName} has TCP ports only (${ports}); ${why}`, fix: 'remove this policy (TCP connections go to any version, in turn), or declare it on an HTTP service' });
    }
    warn({ construct: by, prop, value: this.serviceName, problem: `applies to the HTTP ports of ${this.serviceName} only, not to its TCP port${tcp.length > 1 ? 's' : ''} ${ports}`, fix: 'serve the TCP port from a MeshService of its own to make this explicit' });
  }

  private checkRoute(by: IConstruct, route: MeshRoute): void {
    const timeoutMs = route.get('timeout') ?? DEFAULT_TIMEOUT_MS;
    const retries = route.get('retries');
    if (retries && timeoutMs > 0 && retries.perTryTimeoutMs > timeoutMs) {
      fail({
        construct: by, prop: 'perTryTimeout', value: `${retries.perTryTimeoutMs}ms`,
        problem: `exceeds the timeout of route "${route.name}" of ${this.serviceName} (${timeoutMs}ms${route.get('timeout') === undefined ? ', the default' : ''}), so no retry could ever happen`,
        fix: 'make perTryTimeout shorter than the route timeout (e.g. timeout 5 s, perTryTimeout 2 s)',
      });
    }
    const mirror = route.get('mirror');
    if (mirror) {
      const split = route.get('split') ?? [{ subset: this.versionNames[0], weight: 100 }];
      if (split.some((d) => d.subset === mirror.subset && d.weight > 0)) {
        fail({
          construct: by, prop: 'mirror.version', value: mirror.subset,
          problem: `route "${route.name}" of ${this.serviceName} already sends traffic to this version; mirroring to it would duplicate requests to itself`,
          fix: 'mirror to a version that gets weight 0 on this route (e.g. a new version before its canary)',
        });
      }
    }
  }

  private validatePorts(ports: readonly ServicePortOptions[]) {
    if (ports.length === 0) fail({ construct: this, prop: 'ports', value: [], problem: 'a service needs at least one port', fix: 'omit ports for the default [{ port: 80, targetPort: 8080 }]' });
    const out = ports.map((p, i) => {
      const name = p.name ?? (p.protocol === Protocol.TCP ? `tcp-${p.port}` : i === 0 ? 'http' : `http-${p.port}`);
      const targetPort = p.targetPort ?? p.port;
      for (const [prop, value] of [[`ports[${i}].port`, p.port], [`ports[${i}].targetPort`, targetPort]] as const) {
        checkInteger(this, prop, value, 1, 65535, 'use a port from 1 to 65535');
        if (value >= SidecarPorts.RESERVED_MIN && value <= SidecarPorts.RESERVED_MAX) {
          fail({ construct: this, prop, value, problem: `collides with the ports ${SidecarPorts.RESERVED_MIN}-${SidecarPorts.RESERVED_MAX} reserved for the sidecar`, fix: 'use a port outside 15000-15090, e.g. 8080' });
        }
      }
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 15 || !/[a-z]/.test(name)) {
        fail({ construct: this, prop: `ports[${i}].name`, value: name, problem: 'must be an IANA service name (lower-case letters, digits and "-", at most 15 characters, at least one letter)', fix: 'use e.g. "http" or "grpc-api"' });
      }
      return { name, port: p.port, targetPort, protocol: p.protocol ?? Protocol.HTTP };
    });
    for (const key of ['name', 'port', 'targetPort'] as const) {
      out.forEach((p, i) => {
        const j = out.findIndex((q) => q[key] === p[key]);
        if (j !== i) fail({ construct: this, prop: `ports[${i}].${key}`, value: p[key], problem: `duplicates ports[${j}].${key}`, fix: `give every port a different ${key}` });
      });
    }
    return out;
  }

  private labels(component: string, version?: string): Record<string, string> {
    const instance = version ? `${this.serviceName}-${version}` : this.serviceName;
    return {
      ...this.mesh.labels(component, this.serviceName, instance, version),
      app: this.serviceName,
      ...(version ? { version } : {}),
    };
  }

  private synthesizeServiceObjects(): void {
    const ns = this.namespace;
    new ApiObject(this, 'service-account', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: this.serviceAccountName, namespace: ns, labels: this.labels('service') },
      automountServiceAccountToken: false,
    });
    new ApiObject(this, 'certificate', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: this.serviceAccountName, namespace: ns, labels: this.labels('service') },
      spec: {
        secretName: this.certSecretName,
        // The identity is the URI SAN; the DNS name only helps humans reading the certificate.
        uris: [this.identity],
        dnsNames: [this.fqdn],
        duration: goDuration(this.mesh.workloadCertificateDurationMs),
        renewBefore: goDuration(this.mesh.workloadCertificateRenewBeforeMs),
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
        // No key encipherment: an ECDSA key signs (TLS 1.3 and ECDHE); it never encrypts a key.
        usages: ['digital signature', 'server auth', 'client auth'],
        issuerRef: { ...this.mesh.issuer },
      },
    });
    new ApiObject(this, 'service', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: this.serviceName, namespace: ns, labels: this.labels('service') },
      spec: {
        type: 'ClusterIP',
        selector: { app: this.serviceName },
        ports: this.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: 'TCP', appProtocol: p.protocol })),
      },
    });
    new ApiObject(this, 'network-policy', {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: this.serviceName, namespace: ns, labels: this.labels('service') },
      spec: {
        podSelector: { matchLabels: { app: this.serviceName } },
        policyTypes: ['Ingress'],
        ingress: [{
          // Only the sidecar's ports: the app's own ports are reachable only through the
          // sidecar. PERMISSIVE also admits the app ports so that clients outside the mesh
          // can still connect (the interception rules hand them to the sidecar as plaintext).
          ports: Lazy.any({
            produce: () => [
              { port: SidecarPorts.INBOUND, protocol: 'TCP' },
              { port: SidecarPorts.ADMIN, protocol: 'TCP' },
              ...(this.mtlsMode === MtlsMode.PERMISSIVE ? this.ports.map((p) => ({ port: p.targetPort, protocol: 'TCP' })) : []),
            ],
          }),
        }],
      },
    });
    if (this.telemetry.podMonitor) this.synthesizePodMonitor();
  }

  /**
   * A Prometheus operator PodMonitor for the sidecars of every version: the operator's
   * Prometheus ignores the `prometheus.io/*` annotations, so clusters that run it need this.
   */
  private synthesizePodMonitor(): void {
    new ApiObject(this, 'pod-monitor', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: {
        name: `${this.serviceName}-sidecar-metrics`,
        namespace: this.namespace,
        labels: { ...this.telemetry.podMonitorLabels, ...this.labels('service') },
      },
      spec: {
        // The same selector as the ClusterIP Service: every version's pods. Without a
        // namespaceSelector the operator looks in the PodMonitor's own namespace, the mesh's.
        selector: { matchLabels: { app: this.serviceName } },
        podMetricsEndpoints: [{
          // By name, so the endpoint follows the sidecar's container port.
          port: SIDECAR_ADMIN_PORT_NAME,
          path: '/metrics',
          scheme: 'http',
          interval: goDuration(this.telemetry.scrapeIntervalMs),
        }],
      },
    });
  }

  /** Each version's app probes, which its sidecar config declares (the admin port serves only these). */
  private readonly probesByVersion = new Map<string, AppProbe[]>();

  private get certSecretName(): string {
    return `${this.serviceAccountName}-mesh-tls`;
  }

  private synthesizeVersion(v: VersionOptions, index: number): void {
    const ns = this.namespace;
    const name = `${this.serviceName}-${v.name}`;
    const configMapName = `${name}-sidecar`;
    const labels = this.labels('workload', v.name);
    const selector = { app: this.serviceName, version: v.name };

    if (v.maxUnavailable !== undefined) {
      checkInteger(this, `versions[${index}].maxUnavailable`, v.maxUnavailable, 1, 10_000, 'allow at least 1 (0 would block every node drain)');
      new ApiObject(this, `${v.name}-disruption-budget`, {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name, namespace: ns, labels },
        spec: { maxUnavailable: v.maxUnavailable, selector: { matchLabels: selector } },
      });
    }

    new ApiObject(this, `${v.name}-sidecar-config`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: configMapName, namespace: ns, labels },
      data: { [SIDECAR_CONFIG_KEY]: Lazy.any({ produce: () => YAML.stringify(this.sidecarConfig(v.name), { lineWidth: 0 }) }) },
    });
    new ApiObject(this, `${v.name}-discovery`, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns, labels },
      spec: {
        // Headless: the DNS name resolves to the pods, which callers' sidecars balance across.
        clusterIP: 'None',
        selector,
        ports: [{ name: 'mesh-inbound', port: SidecarPorts.INBOUND, targetPort: SidecarPorts.INBOUND, protocol: 'TCP' }],
      },
    });

    const primaryTarget = this.ports[0].targetPort;
    const probes: AppProbe[] = [];
    for (const [kind, probe] of [['livez', v.liveness], ['readyz', v.readiness]] as const) {
      if (!probe) continue;
      const prop = `versions[${index}].${kind === 'livez' ? 'liveness' : 'readiness'}`;
      if (!probe.path.startsWith('/')) fail({ construct: this, prop: `${prop}.path`, value: probe.path, problem: 'must start with "/"', fix: `use "/${probe.path}"` });
      const port = probe.port ?? primaryTarget;
      // The sidecar probes by app port name, so the probe must name one of the service's ports.
      const appPort = this.ports.find((p) => p.targetPort === port);
      if (!appPort) {
        fail({ construct: this, prop: `${prop}.port`, value: port, problem: `is not one of the app ports (${this.ports.map((p) => p.targetPort).join(', ')})`, fix: 'probe an app port (a targetPort of `ports`), or omit port for the first one' });
      }
      if (appPort.protocol === Protocol.TCP) {
        const http = this.ports.find((p) => p.protocol !== Protocol.TCP);
        fail({ construct: this, prop: `${prop}.port`, value: port, problem: `app port "${appPort.name}" is TCP: an HTTP probe (path ${probe.path}) cannot be answered there`, fix: http ? `probe an HTTP port, e.g. port: ${http.targetPort}` : 'serve the health path on an HTTP port of its own and declare it in `ports`' });
      }
      const failureThreshold = probe.failureThreshold ?? 3;
      checkInteger(this, `${prop}.failureThreshold`, failureThreshold, 1, 1000);
      probes.push({
        kind, path: probe.path, portName: appPort.name,
        initialDelaySeconds: seconds(this, `${prop}.initialDelay`, probe.initialDelay ?? Duration.seconds(0), 0),
        periodSeconds: seconds(this, `${prop}.period`, probe.period ?? Duration.seconds(10), 1),
        timeoutSeconds: seconds(this, `${prop}.timeout`, probe.timeout ?? Duration.seconds(1), 1),
        failureThreshold,
      });
    }
    this.probesByVersion.set(v.name, probes);

    const metrics = this.telemetry.metricsEnabled;
    // typemesh-init's flags: for the init container, or the CNI plugin's pod annotation.
    const initArgs = () => [
      ...interceptionArgsFor(this.sidecarConfig(v.name)),
      ...(this.mesh.excludeOutboundCidrs.length > 0 ? ['--exclude-outbound-cidrs', this.mesh.excludeOutboundCidrs.join(',')] : []),
    ];
    new ApiObject(this, `${v.name}-deployment`, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns, labels },
      spec: {
        replicas: v.replicas ?? 1,
        selector: { matchLabels: selector },
        template: {
          metadata: {
            labels,
            annotations: {
              ...podAnnotations(this.mesh.interception, initArgs),
              ...(metrics ? { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(SidecarPorts.ADMIN), 'prometheus.io/path': '/metrics' } : {}),
            },
          },
          spec: podSpec({
            serviceAccountName: this.serviceAccountName,
            image: v.image,
            command: v.command,
            args: v.args,
            env: appEnv(this, v, index),
            securityContext: appSecurityContext(this, this.mesh, v, index),
            spreadSelector: v.spreadAcrossZones ? selector : undefined,
            appVolumes: appVolumes(this, v, index),
            sidecarMode: this.mesh.sidecarMode,
            interception: this.mesh.interception,
            iptablesBackend: this.mesh.iptablesBackend,
            ports: this.ports.map((p) => ({ name: p.name, containerPort: p.targetPort })),
            resources: v.resources ?? { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
            probes,
            sidecarImage: this.mesh.sidecarImage,
            sidecarResources: this.mesh.sidecarResources,
            configMapName,
            certSecretName: this.certSecretName,
            trust: this.mesh._sidecarTrust,
          }, initArgs),
        },
      },
    });
  }
}

function toSource(source: MeshService | MeshGateway | InjectedWorkload | Source): Source {
  if (source instanceof MeshService) return Source.service(source);
  // A MeshGateway (imported as a type only: mesh-gateway.ts imports this file) or an injected workload.
  return source instanceof Source ? source : source.source;
}

function seconds(c: IConstruct, prop: string, d: Duration, min: number): number {
  const ms = durationMs(c, prop, d);
  if (ms % 1000 !== 0 || ms / 1000 < min) {
    fail({ construct: c, prop, value: `${ms}ms`, problem: `must be a whole number of seconds, at least ${min}`, fix: `use Duration.seconds(${Math.max(min, Math.round(ms / 1000))})` });
  }
  return ms / 1000;
}

