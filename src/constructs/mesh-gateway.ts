import { ApiObject, Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import * as YAML from 'yaml';
import { spiffeIdFor } from '../config/identity';
import {
  GATEWAY_HOST, SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, SidecarConfig, SidecarConfigInput,
} from '../config/schema';
import { parseSidecarConfig } from '../config/validate';
import { checkDnsLabel, checkInteger, fail, MeshValidationError } from './errors';
import { ContainerResources, Mesh } from './mesh';
import { MeshService } from './mesh-service';
import {
  k8sResources, POD_SECURITY_CONTEXT, PROXY_POD_ENV, proxyProbes, proxySecurityContext, SIDECAR_ADMIN_PORT_NAME,
  SIDECAR_CERTS_DIR, SIDECAR_CONFIG_DIR, SIDECAR_CONFIG_KEY, SIDECAR_CONTAINER, SidecarPorts,
} from './sidecar-injection';
import { Source } from './source';
import { AccessLogFormat, goDuration } from './values';

/** How the gateway's Kubernetes Service is exposed. */
export enum GatewayServiceType {
  /** A cloud load balancer in front of the gateway (the usual way in from the internet). */
  LOAD_BALANCER = 'LoadBalancer',
  /** A port on every node (clusters without a load balancer, or behind one you run yourself). */
  NODE_PORT = 'NodePort',
  /** Reachable only inside the cluster (behind another ingress, or with `kubectl port-forward`). */
  CLUSTER_IP = 'ClusterIP',
}

/** Where the HTTPS listener's server certificate comes from. */
export class GatewayTls {
  /**
   * A cert-manager Certificate for the gateway's host names, signed by an issuer you run
   * (e.g. a Let's Encrypt ClusterIssuer). Not the mesh CA: outside clients do not trust it.
   */
  public static fromIssuer(issuer: GatewayIssuer): GatewayTls {
    return new GatewayTls({ kind: 'issuer', issuer });
  }

  /** An existing `kubernetes.io/tls` Secret (keys `tls.crt` and `tls.key`) in the mesh's namespace. */
  public static fromSecret(secretName: string): GatewayTls {
    return new GatewayTls({ kind: 'secret', secretName });
  }

  private constructor(
    /** @internal */
    public readonly _spec: { kind: 'issuer'; issuer: GatewayIssuer } | { kind: 'secret'; secretName: string },
  ) {}
}

/** The issuer of the gateway's server certificate. */
export interface GatewayIssuer {
  /** The issuer's name. */
  readonly name: string;
  /**
   * `Issuer` (in the mesh's namespace) or `ClusterIssuer`.
   * @default 'ClusterIssuer'
   */
  readonly kind?: 'Issuer' | 'ClusterIssuer';
  /**
   * The DNS names of the certificate.
   * @default - the exact and `*.` host names of the gateway's routes
   */
  readonly dnsNames?: string[];
}

/** A route of a {@link MeshGateway}: requests for its hosts whose path starts with `pathPrefix` go to `service`. */
export interface GatewayRouteOptions {
  /** The mesh service that serves the route (called over mTLS with the gateway's identity). */
  readonly service: MeshService;
  /**
   * Host names matched against the Host header: `shop.example.com`, `*.example.com` or `*` (any).
   * @default ['*']
   */
  readonly hosts?: string[];
  /**
   * Path prefix, matched on whole segments (`/api` matches `/api` and `/api/x`, not `/apix`);
   * the longest matching prefix wins, after the most specific host.
   * @default '/'
   */
  readonly pathPrefix?: string;
  /**
   * The route's name (a DNS-1123 label, unique in the gateway).
   * @default '<service name>' (with '-2', '-3'... for a service routed more than once)
   */
  readonly name?: string;
}

/** Props of {@link MeshGateway}. */
export interface MeshGatewayProps {
  /** The mesh the gateway enters. */
  readonly mesh: Mesh;
  /**
   * The gateway's name (a DNS-1123 label): its Deployment, Service and `app` label.
   * @default 'typemesh-gateway'
   */
  readonly name?: string;
  /**
   * The ServiceAccount, whose name is the last segment of the gateway's SPIFFE identity.
   * @default - the gateway's name
   */
  readonly serviceAccountName?: string;
  /**
   * How the Service is exposed.
   * @default GatewayServiceType.LOAD_BALANCER
   */
  readonly serviceType?: GatewayServiceType;
  /**
   * The Service's plain HTTP port (the proxy listens on 8080 in the pod).
   * @default 80
   */
  readonly httpPort?: number;
  /**
   * The Service's HTTPS port (the proxy listens on 8443 in the pod); used only with `tls`.
   * @default 443
   */
  readonly httpsPort?: number;
  /**
   * The HTTPS listener's server certificate. Without it the gateway serves plain HTTP only.
   * @default - no HTTPS listener
   */
  readonly tls?: GatewayTls;
  /**
   * Routes; more can be added with {@link MeshGateway.addRoute}. A gateway needs at least one at synth.
   * @default []
   */
  readonly routes?: GatewayRouteOptions[];
  /**
   * Pod replicas.
   * @default 2
   */
  readonly replicas?: number;
  /**
   * Resources of the proxy container.
   * @default - the mesh's sidecarResources
   */
  readonly resources?: ContainerResources;
}

/** Ports the gateway's proxy listens on inside its pod (above 1024: the proxy does not run as root). */
export const GatewayPorts = {
  /** Plain HTTP from outside clients. */
  HTTP: 8080,
  /** HTTPS from outside clients. */
  HTTPS: 8443,
  /**
   * The inbound "app" port of a gateway's config. A gateway has no app: its inbound listener
   * denies every request, and nothing listens here either.
   */
  NO_APP: 15099,
} as const;

/** The version label and config version of every gateway (it has no versions). */
export const GATEWAY_VERSION = 'gateway';
/** Where the gateway's server certificate Secret is mounted. */
export const GATEWAY_SERVER_TLS_DIR = '/etc/typemesh/gateway-tls';

interface ResolvedRoute {
  readonly name: string;
  readonly hosts: string[];
  readonly pathPrefix: string;
  readonly service: MeshService;
}

/**
 * A way into the mesh from outside: the TypeMesh proxy as a standalone Deployment (no app
 * container) behind a Service, listening for plain HTTP and, with `tls`, HTTPS. Requests are
 * routed by host and path prefix to mesh services and sent to them over mTLS with the
 * gateway's own SPIFFE identity, so `service.allowFrom(gateway)` admits them under STRICT mTLS.
 *
 * Synthesizes a ServiceAccount, a cert-manager Certificate for the identity (from the mesh CA),
 * with `GatewayTls.fromIssuer` a second Certificate for the public host names, a ConfigMap
 * with the proxy config (a SidecarConfig with a `gateway` section), the Deployment, a
 * NetworkPolicy admitting only the gateway and admin ports, the Service and, with the mesh's
 * `metrics.podMonitor` on, a PodMonitor `<name>-proxy-metrics`.
 */
export class MeshGateway extends Construct {
  /** The mesh. */
  public readonly mesh: Mesh;
  /** The gateway's name. */
  public readonly gatewayName: string;
  /** The ServiceAccount's name. */
  public readonly serviceAccountName: string;
  /** The gateway's SPIFFE ID: the principal its calls present to mesh services. */
  public readonly identity: string;
  /** How the Service is exposed. */
  public readonly serviceType: GatewayServiceType;

  private readonly routes: ResolvedRoute[] = [];
  private readonly tls?: GatewayTls;
  private readonly httpPort: number;
  private readonly httpsPort: number;

  constructor(scope: Construct, id: string, props: MeshGatewayProps) {
    super(scope, id);
    this.mesh = props.mesh;
    this.gatewayName = props.name ?? 'typemesh-gateway';
    checkDnsLabel(this, 'name', this.gatewayName, 'shop-gateway');
    this.serviceAccountName = props.serviceAccountName ?? this.gatewayName;
    checkDnsLabel(this, 'serviceAccountName', this.serviceAccountName, this.gatewayName);
    if (this.mesh.services.some((s) => s.serviceName === this.gatewayName || s.serviceAccountName === this.serviceAccountName)) {
      fail({ construct: this, prop: 'name', value: this.gatewayName, problem: 'a MeshService of the mesh already uses this name or service account; the gateway would share its identity', fix: 'give the gateway its own name, e.g. "shop-gateway"' });
    }
    this.identity = spiffeIdFor(this.mesh.trustDomain, this.mesh.namespace, this.serviceAccountName);
    this.serviceType = props.serviceType ?? GatewayServiceType.LOAD_BALANCER;
    if (!Object.values(GatewayServiceType).includes(this.serviceType)) {
      fail({ construct: this, prop: 'serviceType', value: this.serviceType, problem: 'is not a Service type the gateway supports', fix: 'use GatewayServiceType.LOAD_BALANCER, NODE_PORT or CLUSTER_IP' });
    }
    this.httpPort = props.httpPort ?? 80;
    this.httpsPort = props.httpsPort ?? 443;
    checkInteger(this, 'httpPort', this.httpPort, 1, 65535, 'use a port from 1 to 65535, e.g. 80');
    checkInteger(this, 'httpsPort', this.httpsPort, 1, 65535, 'use a port from 1 to 65535, e.g. 443');
    if (props.tls && this.httpPort === this.httpsPort) {
      fail({ construct: this, prop: 'httpsPort', value: this.httpsPort, problem: 'is the same as httpPort', fix: 'use different ports, e.g. 80 and 443' });
    }
    if (props.tls !== undefined && !(props.tls instanceof GatewayTls)) {
      fail({ construct: this, prop: 'tls', value: props.tls, problem: 'is not a GatewayTls', fix: 'use GatewayTls.fromIssuer({ name: "letsencrypt" }) or GatewayTls.fromSecret("shop-tls")' });
    }
    this.tls = props.tls;
    if (this.tls?._spec.kind === 'secret') checkDnsLabel(this, 'tls.secretName', this.tls._spec.secretName, 'shop-tls');
    if (this.tls?._spec.kind === 'issuer') checkDnsLabel(this, 'tls.issuer.name', this.tls._spec.issuer.name, 'letsencrypt');
    const replicas = props.replicas ?? 2;
    checkInteger(this, 'replicas', replicas, 0, 10_000, 'use 0 or more replicas');
    (props.routes ?? []).forEach((r, i) => this.addRouteAt(r, `routes[${i}]`));

    this.synthesize(replicas, props.resources ?? this.mesh.sidecarResources);

    this.node.addValidation({
      validate: () => {
        if (this.routes.length === 0) {
          return [`${this.node.path}: routes = []: a gateway without routes answers 404 to every request. Fix: add a route, e.g. gateway.addRoute({ hosts: ['shop.example.com'], service: order })`];
        }
        const errors = this.unauthorizedRoutes();
        try {
          this.sidecarConfig();
        } catch (e) {
          errors.push(e instanceof Error ? e.message : String(e));
        }
        return errors;
      },
    });
  }

  /** Routes requests for `hosts` under `pathPrefix` to a mesh service. */
  public addRoute(route: GatewayRouteOptions): this {
    this.addRouteAt(route, 'addRoute');
    return this;
  }

  /** The gateway as a source of authorization rules (what `service.allowFrom(gateway)` uses). */
  public get source(): Source {
    return Source._principalNamed(this.identity, this.gatewayName);
  }

  /** The routes' names, in the order added. */
  public get routeNames(): string[] {
    return this.routes.map((r) => r.name);
  }

  /** The gateway's proxy config, validated against the contract (throws with the fields at fault). */
  public sidecarConfig(): SidecarConfig {
    const services: MeshService[] = [];
    for (const r of this.routes) if (!services.includes(r.service)) services.push(r.service);
    const t = this.mesh._telemetry;
    const input: SidecarConfigInput = {
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      workload: {
        name: this.gatewayName,
        namespace: this.mesh.namespace,
        version: GATEWAY_VERSION,
        serviceAccount: this.serviceAccountName,
        identity: this.identity,
        trustDomain: this.mesh.trustDomain,
        appPorts: [{ name: 'none', port: GatewayPorts.NO_APP, protocol: 'http' }],
      },
      listeners: { bindAddress: '0.0.0.0', outboundPort: SidecarPorts.OUTBOUND, inboundPort: SidecarPorts.INBOUND, adminPort: SidecarPorts.ADMIN },
      tls: { certFile: `${SIDECAR_CERTS_DIR}/tls.crt`, keyFile: `${SIDECAR_CERTS_DIR}/tls.key`, caFile: this.mesh._sidecarTrust.caFile },
      inbound: {
        // No mesh workload has any business calling into a gateway: everything is denied,
        // so the gateway can never lend its identity to a caller from inside the mesh.
        mtls: { mode: 'STRICT' },
        app: { address: '127.0.0.1', port: GatewayPorts.NO_APP },
        authorization: { rules: [{ name: 'gateway-accepts-no-mesh-traffic', action: 'DENY', principals: ['*'] }] },
      },
      outbound: { services: services.map((s) => s.outboundService(this.mesh.namespace)), passthrough: false },
      telemetry: {
        metrics: { enabled: t.metricsEnabled },
        tracing: t.tracing
          ? { enabled: true, sampleRate: t.tracing.sampleRate, collector: { protocol: t.tracing.collector.protocol, endpoint: t.tracing.collector.endpoint } }
          : { enabled: false, sampleRate: 1 },
        accessLog: t.accessLog === AccessLogFormat.OFF ? { enabled: false, format: 'json' } : { enabled: true, format: t.accessLog },
      },
      gateway: {
        bindAddress: '0.0.0.0',
        listeners: [
          { name: 'http', port: GatewayPorts.HTTP, protocol: 'http' },
          ...(this.tls ? [{ name: 'https', port: GatewayPorts.HTTPS, protocol: 'https' as const, tls: { certFile: `${GATEWAY_SERVER_TLS_DIR}/tls.crt`, keyFile: `${GATEWAY_SERVER_TLS_DIR}/tls.key` } }] : []),
        ],
        routes: this.routes.map((r) => ({ name: r.name, hosts: r.hosts, pathPrefix: r.pathPrefix, service: r.service.serviceName })),
      },
    };
    try {
      return parseSidecarConfig(input, `the proxy config of gateway ${this.gatewayName}`);
    } catch (e) {
      throw new MeshValidationError({
        construct: this, prop: 'sidecarConfig()', value: this.gatewayName,
        problem: (e as Error).message.replace(/\n/g, ' '),
        fix: 'correct the props that produce the fields named above (this is a TypeMesh bug if no prop can)',
      });
    }
  }

  private addRouteAt(r: GatewayRouteOptions, prop: string): void {
    if (!(r.service instanceof MeshService) || r.service.mesh !== this.mesh || !this.mesh.services.includes(r.service)) {
      const name = r.service instanceof MeshService ? r.service.serviceName : String(r.service);
      fail({ construct: this, prop: `${prop}.service`, value: name, problem: `is not a MeshService of the gateway's mesh (namespace ${this.mesh.namespace})`, fix: 'route to a MeshService created with the same Mesh' });
    }
    const hosts = r.hosts ?? ['*'];
    if (hosts.length === 0) fail({ construct: this, prop: `${prop}.hosts`, value: [], problem: 'a route needs at least one host', fix: 'omit hosts to match any host, or list e.g. ["shop.example.com"]' });
    hosts.forEach((h, i) => {
      if (typeof h !== 'string' || !GATEWAY_HOST.test(h) || h.length > 253) {
        fail({ construct: this, prop: `${prop}.hosts[${i}]`, value: h, problem: 'is not a lower-case host name, "*.<domain>" or "*" (no port, no scheme)', fix: 'use e.g. "shop.example.com" or "*.example.com"' });
      }
    });
    const pathPrefix = r.pathPrefix ?? '/';
    if (typeof pathPrefix !== 'string' || !pathPrefix.startsWith('/') || /[?#*\s]/.test(pathPrefix)) {
      fail({ construct: this, prop: `${prop}.pathPrefix`, value: pathPrefix, problem: 'must start with "/" and hold no "?", "#", "*" or spaces', fix: 'use e.g. "/" or "/api"' });
    }
    let name = r.name;
    if (name === undefined) {
      name = r.service.serviceName;
      for (let n = 2; this.routes.some((x) => x.name === name); n++) name = `${r.service.serviceName}-${n}`;
    }
    checkDnsLabel(this, `${prop}.name`, name, 'shop-api');
    if (this.routes.some((x) => x.name === name)) {
      fail({ construct: this, prop: `${prop}.name`, value: name, problem: 'the gateway already has a route of this name', fix: 'give every route a different name' });
    }
    const clash = this.routes.find((x) => x.pathPrefix === pathPrefix && x.hosts.some((h) => hosts.includes(h)));
    if (clash) {
      fail({ construct: this, prop: `${prop}.pathPrefix`, value: pathPrefix, problem: `route "${clash.name}" already matches the same host and path prefix, so this route would never be used`, fix: 'use another path prefix or host, or remove one of the routes' });
    }
    this.routes.push({ name, hosts: [...hosts], pathPrefix, service: r.service });
  }

  /**
   * A route to a service whose allow rules leave the gateway out would answer 403 to every
   * request: declared but unable to work, so synth says so.
   */
  private unauthorizedRoutes(): string[] {
    const errors: string[] = [];
    for (const r of this.routes) {
      const allows = r.service.authorizationRules.filter((x) => x.action === 'ALLOW');
      if (allows.length === 0) continue;
      const admitted = allows.some((x) => (x.principals === undefined && x.namespaces === undefined)
        || x.principals?.includes(this.identity) || x.principals?.includes('*') || x.namespaces?.includes(this.mesh.namespace));
      if (!admitted) {
        errors.push(`${this.node.path}: routes[${this.routes.indexOf(r)}].service = "${r.service.serviceName}": its allow rules do not admit the gateway (${this.identity}), so every request of route "${r.name}" would get 403. Fix: add ${r.service.serviceName}.allowFrom(gateway) (with methods/paths to narrow it)`);
      }
    }
    return errors;
  }

  private labels(): Record<string, string> {
    return { ...this.mesh.labels('gateway', this.gatewayName), app: this.gatewayName, version: GATEWAY_VERSION };
  }

  private synthesize(replicas: number, resources: ContainerResources): void {
    const ns = this.mesh.namespace;
    const labels = this.labels();
    const certSecretName = `${this.serviceAccountName}-mesh-tls`;
    const configMapName = `${this.gatewayName}-proxy`;
    new ApiObject(this, 'service-account', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: this.serviceAccountName, namespace: ns, labels },
      automountServiceAccountToken: false,
    });
    // The mesh identity, exactly as a MeshService gets it: the URI SAN is the SPIFFE ID.
    new ApiObject(this, 'certificate', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: this.serviceAccountName, namespace: ns, labels },
      spec: {
        secretName: certSecretName,
        uris: [this.identity],
        duration: goDuration(this.mesh.workloadCertificateDurationMs),
        renewBefore: goDuration(this.mesh.workloadCertificateRenewBeforeMs),
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
        // No key encipherment: an ECDSA key only signs.
        usages: ['digital signature', 'client auth', 'server auth'],
        issuerRef: { ...this.mesh.issuer },
      },
    });
    let serverSecret: string | undefined;
    const tls = this.tls?._spec;
    if (tls?.kind === 'secret') serverSecret = tls.secretName;
    if (tls?.kind === 'issuer') {
      serverSecret = `${this.gatewayName}-server-tls`;
      new ApiObject(this, 'server-certificate', {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: serverSecret, namespace: ns, labels },
        spec: {
          secretName: serverSecret,
          dnsNames: Lazy.any({ produce: () => this.serverDnsNames(tls.issuer) }),
          privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
          usages: ['digital signature', 'server auth'],
          issuerRef: { name: tls.issuer.name, kind: tls.issuer.kind ?? 'ClusterIssuer', group: 'cert-manager.io' },
        },
      });
    }
    new ApiObject(this, 'proxy-config', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: configMapName, namespace: ns, labels },
      data: { [SIDECAR_CONFIG_KEY]: Lazy.any({ produce: () => YAML.stringify(this.sidecarConfig(), { lineWidth: 0 }) }) },
    });
    const metrics = this.mesh._telemetry.metricsEnabled;
    new ApiObject(this, 'deployment', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: this.gatewayName, namespace: ns, labels },
      spec: {
        replicas,
        selector: { matchLabels: { app: this.gatewayName } },
        template: {
          metadata: {
            labels,
            ...(metrics ? { annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(SidecarPorts.ADMIN), 'prometheus.io/path': '/metrics' } } : {}),
          },
          spec: {
            serviceAccountName: this.serviceAccountName,
            automountServiceAccountToken: false,
            // Passes the restricted Pod Security level: RuntimeDefault seccomp, uid 1337, no capability.
            securityContext: POD_SECURITY_CONTEXT,
            // No app and no interception init container: the proxy is the whole pod.
            containers: [{
              name: SIDECAR_CONTAINER,
              image: this.mesh.sidecarImage,
              command: ['typemesh-proxy'],
              args: ['--config', `${SIDECAR_CONFIG_DIR}/${SIDECAR_CONFIG_KEY}`],
              ports: [
                { name: 'gateway-http', containerPort: GatewayPorts.HTTP, protocol: 'TCP' },
                ...(serverSecret ? [{ name: 'gateway-https', containerPort: GatewayPorts.HTTPS, protocol: 'TCP' }] : []),
                { name: SIDECAR_ADMIN_PORT_NAME, containerPort: SidecarPorts.ADMIN, protocol: 'TCP' },
              ],
              env: PROXY_POD_ENV,
              ...proxyProbes(),
              resources: k8sResources(resources),
              securityContext: proxySecurityContext(),
              volumeMounts: [
                { name: 'typemesh-config', mountPath: SIDECAR_CONFIG_DIR, readOnly: true },
                { name: 'typemesh-certs', mountPath: SIDECAR_CERTS_DIR, readOnly: true },
                ...this.mesh._sidecarTrust.volumeMounts,
                ...(serverSecret ? [{ name: 'gateway-server-tls', mountPath: GATEWAY_SERVER_TLS_DIR, readOnly: true }] : []),
                { name: 'typemesh-tmp', mountPath: '/tmp' },
              ],
            }],
            volumes: [
              { name: 'typemesh-config', configMap: { name: configMapName } },
              { name: 'typemesh-certs', secret: { secretName: certSecretName } },
              ...this.mesh._sidecarTrust.volumes,
              ...(serverSecret ? [{ name: 'gateway-server-tls', secret: { secretName: serverSecret } }] : []),
              { name: 'typemesh-tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
            ],
          },
        },
      },
    });
    // Only the listeners meant for outside clients and the admin port (probes, metrics): the
    // inbound listener denies everything anyway, and nothing else should reach the pod.
    new ApiObject(this, 'network-policy', {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: this.gatewayName, namespace: ns, labels },
      spec: {
        podSelector: { matchLabels: { app: this.gatewayName } },
        policyTypes: ['Ingress'],
        ingress: [{
          ports: [
            { port: GatewayPorts.HTTP, protocol: 'TCP' },
            ...(serverSecret ? [{ port: GatewayPorts.HTTPS, protocol: 'TCP' }] : []),
            { port: SidecarPorts.ADMIN, protocol: 'TCP' },
          ],
        }],
      },
    });
    if (this.mesh._telemetry.podMonitor) {
      // As a MeshService's: the Prometheus operator ignores the scrape annotations.
      new ApiObject(this, 'pod-monitor', {
        apiVersion: 'monitoring.coreos.com/v1',
        kind: 'PodMonitor',
        metadata: { name: `${this.gatewayName}-proxy-metrics`, namespace: ns, labels: { ...this.mesh._telemetry.podMonitorLabels, ...labels } },
        spec: {
          selector: { matchLabels: { app: this.gatewayName } },
          podMetricsEndpoints: [{ port: SIDECAR_ADMIN_PORT_NAME, path: '/metrics', scheme: 'http', interval: goDuration(this.mesh._telemetry.scrapeIntervalMs) }],
        },
      });
    }
    new ApiObject(this, 'service', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: this.gatewayName, namespace: ns, labels },
      spec: {
        type: this.serviceType,
        selector: { app: this.gatewayName },
        ports: [
          { name: 'http', port: this.httpPort, targetPort: GatewayPorts.HTTP, protocol: 'TCP', appProtocol: 'http' },
          ...(serverSecret ? [{ name: 'https', port: this.httpsPort, targetPort: GatewayPorts.HTTPS, protocol: 'TCP', appProtocol: 'https' }] : []),
        ],
      },
    });
  }

  private serverDnsNames(issuer: GatewayIssuer): string[] {
    const names = issuer.dnsNames ?? [...new Set(this.routes.flatMap((r) => r.hosts).filter((h) => h !== '*'))];
    if (names.length === 0) {
      fail({ construct: this, prop: 'tls.dnsNames', value: [], problem: 'the routes name no host (only "*"), so the server certificate would have no DNS name', fix: 'give the routes hosts, or GatewayTls.fromIssuer({ name, dnsNames: ["shop.example.com"] })' });
    }
    names.forEach((n, i) => {
      if (!GATEWAY_HOST.test(n) || n === '*') fail({ construct: this, prop: `tls.dnsNames[${i}]`, value: n, problem: 'is not a DNS name for a certificate', fix: 'use e.g. "shop.example.com" or "*.example.com"' });
    });
    return names;
  }
}
