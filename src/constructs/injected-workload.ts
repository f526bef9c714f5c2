/**
 * Injection into workloads TypeMesh did not write: a cdk8s-plus Deployment, StatefulSet,
 * DaemonSet, Job or CronJob, or any ApiObject with a pod template (written by hand, or pulled
 * in with cdk8s `Include` or `Helm`). The pod gets the same sidecar, init container, volumes
 * and annotations as a MeshService's (both go through `injectSidecar`), and the workload gets
 * its identity: a ServiceAccount, a cert-manager Certificate and the sidecar config ConfigMap.
 */
import { ApiObject, Lazy, resolve } from 'cdk8s';
import { Construct, IConstruct } from 'constructs';
import * as YAML from 'yaml';
import { spiffeIdFor } from '../config/identity';
import { interceptionArgsFor, RESERVED_PORT_MAX, RESERVED_PORT_MIN } from '../config/pod-contract';
import { AuthorizationRule, SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, SidecarConfig, SidecarConfigInput } from '../config/schema';
import { restrictedProblems } from './app-container';
import { checkDnsLabel, checkInteger, fail } from './errors';
import type { Mesh } from './mesh';
import type { MeshService, OutboundServiceInput } from './mesh-service';
import { DEFAULT_ROUTE, MeshRoute } from './route-table';
import {
  appProbesOf, ContainerSecurityContext, injectSidecar, PodTemplateJson, SIDECAR_CERTS_DIR, SIDECAR_CONFIG_KEY, SidecarInjection, SidecarMode,
  SidecarPorts,
} from './sidecar-injection';
import { Source } from './source';
import { LoadBalancerPolicy } from './traffic-options';
import { goDuration, MtlsMode, Protocol } from './values';
import { checkedSidecarConfig, telemetryConfig } from './workload-config';
import { outboundSection } from './outbound-ports';

/** An app port of an injected workload. */
export interface InjectedPortOptions {
  /** The port the app listens on (the container port). */
  readonly port: number;
  /**
   * The port's name (an IANA service name); app probes and the sidecar's metrics name it.
   * @default 'http' for the first port, 'http-<port>' for the others
   */
  readonly name?: string;
  /**
   * The protocol the app speaks on the port.
   * @default Protocol.HTTP
   */
  readonly protocol?: Protocol;
}

/** Options of {@link Mesh.inject}. */
export interface InjectOptions {
  /**
   * The workload's name in the mesh: its sidecar config, metrics labels and object names
   * (`<name>-<version>-sidecar`).
   * @default - the workload object's metadata.name
   */
  readonly name?: string;
  /**
   * The workload's version label in metrics and traces.
   * @default 'v1'
   */
  readonly version?: string;
  /**
   * The workload's namespace, one of the mesh's (for an object that sets none).
   * @default - the object's metadata.namespace, else the mesh's home namespace
   */
  readonly namespace?: string;
  /**
   * The ServiceAccount the pods run as; the workload's SPIFFE identity is
   * `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccountName>`. A pod template that names
   * another account is refused at synth.
   * @default - the pod template's serviceAccountName, else the workload's name
   */
  readonly serviceAccountName?: string;
  /**
   * Synthesize the ServiceAccount. Turn off when the workload's chart creates it.
   * @default true
   */
  readonly createServiceAccount?: boolean;
  /**
   * The container the sidecar serves (its HTTP probes on app ports move to the admin port).
   * @default - the pod's first container
   */
  readonly container?: string;
  /**
   * The app ports, reached through the sidecar's inbound listener.
   * @default - the container's TCP ports (`containerPort`), named as declared or 'http', 'http-<port>'
   */
  readonly ports?: InjectedPortOptions[];
  /**
   * The mTLS mode of the workload's inbound listener.
   * @default - the mesh's
   */
  readonly mtlsMode?: MtlsMode;
  /**
   * Makes the workload callable by the mesh's services (`service.callsTo(workload)`): the port
   * callers use, on `<name>.<namespace>`. A headless discovery Service `<name>-<version>` and,
   * unless `createService` is false, a ClusterIP Service `<name>` are synthesized, both
   * selecting the workload's `spec.selector.matchLabels` (Deployment, StatefulSet, DaemonSet,
   * ReplicaSet only).
   * @default - not callable
   */
  readonly callerPort?: number;
  /**
   * With `callerPort`: synthesize the ClusterIP Service `<name>` (callerPort -> the first app
   * port). Turn off when the workload's chart has one of that name.
   * @default true
   */
  readonly createService?: boolean;
}

/** The kinds whose pods a Service can select by the workload's own selector. */
const SELECTABLE_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'];

/** The ApiObject kinds with a pod template, and where the template is. */
const POD_TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/** Props of {@link InjectedWorkload}. */
export interface InjectedWorkloadProps extends InjectOptions {
  /** The mesh. */
  readonly mesh: Mesh;
  /** The workload: a cdk8s-plus workload, or an ApiObject of a kind with a pod template. */
  readonly workload: IConstruct;
}

/**
 * A workload TypeMesh did not write, joined to the mesh: usually made with `mesh.inject()`.
 *
 * Synthesizes the workload's ServiceAccount (unless `createServiceAccount: false`), a
 * cert-manager Certificate for its SPIFFE identity and a ConfigMap with its sidecar config,
 * and injects the sidecar into the workload's pod template when the workload is synthesized.
 */
export class InjectedWorkload extends Construct {
  /** The mesh. */
  public readonly mesh: Mesh;
  /** The workload's name in the mesh. */
  public readonly workloadName: string;
  /** The workload's version label. */
  public readonly version: string;
  /** The workload's namespace. */
  public readonly namespace: string;
  /** The ServiceAccount's name. */
  public readonly serviceAccountName: string;
  /** The SPIFFE ID of the workload's pods. */
  public readonly identity: string;
  /** The workload's ApiObject (the one whose pod template gets the sidecar). */
  public readonly apiObject: ApiObject;

  private readonly props: InjectedWorkloadProps;
  private readonly destinations: Array<MeshService | InjectedWorkload> = [];
  private readonly rules: AuthorizationRule[] = [];
  private readonly templatePath: readonly string[];
  private readonly unwrappedToJson: () => any;
  private originalCache?: Record<string, unknown>;

  constructor(scope: Construct, id: string, props: InjectedWorkloadProps) {
    super(scope, id);
    this.props = props;
    this.mesh = props.mesh;
    const obj = apiObjectOf(this, props.workload);
    this.apiObject = obj;
    const path = POD_TEMPLATE_PATHS[obj.kind];
    if (!path) {
      fail({ construct: this, prop: 'workload', value: `${obj.kind} ${obj.name}`, problem: 'has no pod template TypeMesh knows', fix: `inject into one of ${Object.keys(POD_TEMPLATE_PATHS).join(', ')}` });
    }
    this.templatePath = path;
    if (INJECTED.has(obj)) {
      fail({ construct: this, prop: 'workload', value: `${obj.kind} ${obj.name}`, problem: `is already injected by ${INJECTED.get(obj)}`, fix: 'inject a workload once' });
    }

    this.workloadName = props.name ?? obj.name;
    checkDnsLabel(this, 'name', this.workloadName, 'batch-worker');
    this.version = props.version ?? 'v1';
    checkDnsLabel(this, 'version', this.version, 'v1');
    const own = obj.metadata.namespace;
    if (own !== undefined && props.namespace !== undefined && own !== props.namespace) {
      fail({ construct: this, prop: 'namespace', value: props.namespace, problem: `differs from the namespace of ${obj.kind} ${obj.name} (${own})`, fix: 'omit `namespace` (the object\'s is used), or make them equal' });
    }
    this.namespace = own ?? props.namespace ?? this.mesh.namespace;
    this.mesh._checkNamespace(this, own !== undefined ? 'workload.metadata.namespace' : 'namespace', this.namespace);
    this.serviceAccountName = props.serviceAccountName ?? workloadServiceAccount(props.workload) ?? this.workloadName;
    checkDnsLabel(this, 'serviceAccountName', this.serviceAccountName, this.workloadName);
    this.identity = spiffeIdFor(this.mesh.trustDomain, this.namespace, this.serviceAccountName);
    if (this.mesh.sidecarMode === SidecarMode.LEGACY && (obj.kind === 'Job' || obj.kind === 'CronJob')) {
      fail({ construct: this, prop: 'workload', value: `${obj.kind} ${obj.name}`, problem: 'would never complete with SidecarMode.LEGACY: the proxy is a regular container that outlives the app', fix: 'use SidecarMode.NATIVE (Kubernetes 1.29+) for a mesh with Jobs' });
    }
    if (props.ports) this.checkPorts(props.ports);
    if (props.callerPort !== undefined) {
      checkInteger(this, 'callerPort', props.callerPort, 1, 65535, 'use a port from 1 to 65535, e.g. 80');
      if (!SELECTABLE_KINDS.includes(obj.kind)) {
        fail({ construct: this, prop: 'callerPort', value: props.callerPort, problem: `a ${obj.kind} has no stable selector for a Service`, fix: `make callable only a ${SELECTABLE_KINDS.join(', ')}` });
      }
    }

    this.synthesizeObjects();
    // The pod template is mutated on the final JSON: the workload's own props (cdk8s-plus
    // builds them at synth) are only complete then, and JSON patches cannot merge into arrays
    // (initContainers, volumes) that may or may not exist.
    this.unwrappedToJson = obj.toJson.bind(obj);
    obj.toJson = () => this.injectedJson();
    INJECTED.set(obj, this.node.path);

    this.node.addValidation({ validate: () => this.validate() });
  }

  /** Declares that this workload calls `services` (they appear in its outbound config). */
  public calls(...services: Array<MeshService | InjectedWorkload>): void {
    services.forEach((s, i) => {
      if (s instanceof InjectedWorkload) {
        s._checkCallableBy(this, `calls[${i}]`, this.mesh);
      } else if (s.mesh !== this.mesh) {
        fail({ construct: this, prop: 'calls', value: s.serviceName, problem: `the service belongs to another mesh (${s.mesh.node.path}) than ${this.workloadName} (${this.mesh.node.path})`, fix: 'call services of the same Mesh' });
      }
      if (!this.destinations.includes(s)) this.destinations.push(s);
    });
  }

  /**
   * Admits calls from `sources` to this workload's app ports (an ALLOW rule; with any rule the
   * workload refuses every peer no rule allows).
   */
  public allowFrom(...sources: Array<MeshService | Source>): void {
    const principals: string[] = [];
    const namespaces: string[] = [];
    sources.forEach((src, i) => {
      const s = (src instanceof Source ? src : Source.service(src))._spec;
      if (s.kind === 'service') {
        if (s.service.mesh !== this.mesh) {
          fail({ construct: this, prop: `allowFrom[${i}]`, value: s.service.serviceName, problem: `the service belongs to another mesh (${s.service.mesh.node.path})`, fix: 'allow services of the same Mesh, or Source.principal() for peers outside it' });
        }
        principals.push(s.service.identity);
      } else if (s.kind === 'namespace') {
        checkDnsLabel(this, `allowFrom[${i}]`, s.namespace, 'shop');
        namespaces.push(s.namespace);
      } else if (s.kind === 'principal') {
        if (!Source._isPrincipal(s.principal)) fail({ construct: this, prop: `allowFrom[${i}]`, value: s.principal, problem: 'is not a SPIFFE ID', fix: 'use e.g. "spiffe://cluster.local/ns/shop/sa/order-service"' });
        principals.push(s.principal);
      } else {
        principals.push('*');
      }
    });
    this.rules.push({
      name: `allow-${this.rules.length + 1}`,
      action: 'ALLOW',
      ...(principals.length > 0 ? { principals: [...new Set(principals)] } : {}),
      ...(namespaces.length > 0 ? { namespaces: [...new Set(namespaces)] } : {}),
    } as AuthorizationRule);
  }

  /** The mTLS mode of the workload's inbound listener. */
  public get mtlsMode(): MtlsMode {
    return this.props.mtlsMode ?? this.mesh.mtlsMode;
  }

  /** The workload as an authorization source (its SPIFFE identity), e.g. for `service.allowFrom()`. */
  public get source(): Source {
    return Source._principalNamed(this.identity, this.workloadName);
  }

  /** The workload's DNS name, e.g. `reports.shop.svc.cluster.local`. */
  public get fqdn(): string {
    return `${this.workloadName}.${this.namespace}.svc.${this.mesh.clusterDomain}`;
  }

  /** @internal Refuses a caller of another mesh, or a workload that is not callable. */
  public _checkCallableBy(by: IConstruct, prop: string, mesh: Mesh): void {
    if (mesh !== this.mesh) {
      fail({ construct: by, prop, value: this.workloadName, problem: `the injected workload belongs to the other mesh ${this.mesh.node.path} (namespaces ${this.mesh.namespaces.join(', ')})`, fix: 'call workloads of the same Mesh' });
    }
    if (this.props.callerPort === undefined) {
      fail({ construct: by, prop, value: this.workloadName, problem: 'the injected workload is not callable: it has no callerPort', fix: `inject it with { callerPort: 80 } (a Service and a discovery Service are synthesized)` });
    }
  }

  /** This workload as a destination in a caller's outbound config (needs `callerPort`). */
  public outboundService(callerNamespace: string = this.namespace): OutboundServiceInput {
    const ns = this.namespace;
    const name = this.workloadName;
    return {
      name,
      namespace: ns,
      // The bare name resolves in the caller's own namespace: a host only for callers of this one.
      hosts: [...(callerNamespace === ns ? [name] : []), `${name}.${ns}`, `${name}.${ns}.svc`, this.fqdn],
      port: this.props.callerPort ?? 80,
      // TCP ports of injected workloads are refused in checkPorts.
      protocol: (this.appPorts()[0]?.protocol ?? Protocol.HTTP) as 'http' | 'http2' | 'grpc',
      subsets: [{
        name: this.version,
        labels: { version: this.version },
        identity: this.identity,
        discovery: { type: 'dns' as const, hostname: `${this.discoveryName}.${ns}.svc.${this.mesh.clusterDomain}`, port: SidecarPorts.INBOUND },
      }],
      routes: [new MeshRoute(DEFAULT_ROUTE, []).toConfig(this.version)],
      loadBalancer: { policy: LoadBalancerPolicy.LEAST_REQUEST },
    };
  }

  private get discoveryName(): string {
    return `${this.workloadName}-${this.version}`;
  }

  /** The sidecar config, validated against the contract (throws with the fields at fault). */
  public sidecarConfig(): SidecarConfig {
    const ports = this.appPorts();
    const container = this.appContainer();
    const input: SidecarConfigInput = {
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      workload: {
        name: this.workloadName,
        namespace: this.namespace,
        version: this.version,
        serviceAccount: this.serviceAccountName,
        identity: this.identity,
        trustDomain: this.mesh.trustDomain,
        appPorts: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
      },
      listeners: { bindAddress: '0.0.0.0', outboundPort: SidecarPorts.OUTBOUND, inboundPort: SidecarPorts.INBOUND, adminPort: SidecarPorts.ADMIN },
      tls: { certFile: `${SIDECAR_CERTS_DIR}/tls.crt`, keyFile: `${SIDECAR_CERTS_DIR}/tls.key`, caFile: this.mesh._sidecarTrust.caFile },
      inbound: {
        mtls: { mode: this.mtlsMode },
        app: { address: '127.0.0.1', port: ports[0]?.port ?? 8080 },
        probes: (container ? appProbesOf(container, ports) : []).map((p) => ({ portName: p.portName, kind: p.kind, path: p.path })),
        authorization: { rules: this.rules },
      },
      outbound: { ...outboundSection(this, 'calls', this.namespace, this.destinations), ...this.mesh._egressConfig() },
      telemetry: telemetryConfig(this.mesh._telemetry),
    };
    return checkedSidecarConfig(this, 'sidecarConfig', `${this.workloadName}-${this.version}`, input, 'correct the inject() options that produce the fields named above');
  }

  private get configMapName(): string {
    return `${this.workloadName}-${this.version}-sidecar`;
  }

  private get certSecretName(): string {
    return `${this.serviceAccountName}-mesh-tls`;
  }

  private labels(component: string): Record<string, string> {
    return { ...this.mesh.labels(component, this.workloadName, `${this.workloadName}-${this.version}`, this.version) };
  }

  private synthesizeObjects(): void {
    const ns = this.namespace;
    if (this.props.createServiceAccount ?? true) {
      new ApiObject(this, 'service-account', {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: this.serviceAccountName, namespace: ns, labels: this.labels('workload') },
      });
    }
    new ApiObject(this, 'certificate', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: this.serviceAccountName, namespace: ns, labels: this.labels('workload') },
      spec: {
        secretName: this.certSecretName,
        uris: [this.identity],
        duration: goDuration(this.mesh.workloadCertificateDurationMs),
        renewBefore: goDuration(this.mesh.workloadCertificateRenewBeforeMs),
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
        usages: ['digital signature', 'server auth', 'client auth'],
        issuerRef: { ...this.mesh.issuer },
      },
    });
    if (this.props.callerPort !== undefined) {
      // The workload's own selector: its pods, and only them.
      const selector = Lazy.any({ produce: () => (this.original().spec as { selector?: { matchLabels?: Record<string, string> } } | undefined)?.selector?.matchLabels });
      if (this.props.createService ?? true) {
        new ApiObject(this, 'service', {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: this.workloadName, namespace: ns, labels: this.labels('workload') },
          spec: {
            type: 'ClusterIP',
            selector,
            ports: Lazy.any({ produce: () => [{ name: this.appPorts()[0]?.name ?? 'http', port: this.props.callerPort, targetPort: this.appPorts()[0]?.port ?? 8080, protocol: 'TCP' }] }),
          },
        });
      }
      new ApiObject(this, 'discovery', {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: this.discoveryName, namespace: ns, labels: this.labels('workload') },
        spec: {
          // Headless: the DNS name resolves to the pods, which callers' sidecars balance across.
          clusterIP: 'None',
          selector,
          ports: [{ name: 'mesh-inbound', port: SidecarPorts.INBOUND, targetPort: SidecarPorts.INBOUND, protocol: 'TCP' }],
        },
      });
    }
    new ApiObject(this, 'sidecar-config', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: this.configMapName, namespace: ns, labels: this.labels('workload') },
      data: { [SIDECAR_CONFIG_KEY]: Lazy.any({ produce: () => YAML.stringify(this.sidecarConfig(), { lineWidth: 0 }) }) },
    });
  }

  /** The workload's own JSON, before injection (computed once, at synth). */
  private original(): Record<string, unknown> {
    this.originalCache ??= this.unwrappedToJson();
    return this.originalCache!;
  }

  private template(json: Record<string, unknown> = this.original()): PodTemplateJson | undefined {
    let t: any = json;
    for (const k of this.templatePath) t = t?.[k];
    return t && typeof t === 'object' && t.spec ? t : undefined;
  }

  private appContainer(): Record<string, unknown> | undefined {
    const containers = (this.template()?.spec.containers as Array<Record<string, unknown>> | undefined) ?? [];
    return this.props.container ? containers.find((c) => c.name === this.props.container) : containers[0];
  }

  private appPorts(): Array<{ name: string; port: number; protocol: Protocol }> {
    if (this.props.ports) {
      return this.props.ports.map((p, i) => ({ name: p.name ?? (i === 0 ? 'http' : `http-${p.port}`), port: p.port, protocol: p.protocol ?? Protocol.HTTP }));
    }
    const declared = ((this.appContainer()?.ports as Array<{ name?: string; containerPort: number; protocol?: string }> | undefined) ?? [])
      .filter((p) => (p.protocol ?? 'TCP') === 'TCP');
    return declared.map((p, i) => ({ name: p.name ?? (i === 0 ? 'http' : `http-${p.containerPort}`), port: p.containerPort, protocol: Protocol.HTTP }));
  }

  private checkPorts(ports: readonly InjectedPortOptions[]): void {
    ports.forEach((p, i) => {
      checkInteger(this, `ports[${i}].port`, p.port, 1, 65535, 'use a port from 1 to 65535');
      if (p.port >= RESERVED_PORT_MIN && p.port <= RESERVED_PORT_MAX) {
        fail({ construct: this, prop: `ports[${i}].port`, value: p.port, problem: `collides with the ports ${RESERVED_PORT_MIN}-${RESERVED_PORT_MAX} reserved for the sidecar`, fix: 'use a port outside 15000-15090, e.g. 8080' });
      }
      if (p.protocol === Protocol.TCP) {
        fail({ construct: this, prop: `ports[${i}].protocol`, value: p.protocol, problem: 'TCP ports of injected workloads are not meshed yet (only a MeshService serves a TCP port)', fix: 'declare the TCP server as a MeshService with ports: [{ port, protocol: Protocol.TCP }], or leave the port undeclared' });
      }
    });
  }

  /** Problems only the synthesized workload shows (its pod template is complete only then). */
  private validate(): string[] {
    const problems: string[] = [];
    const where = `${this.node.path}: workload ${this.apiObject.kind} ${this.apiObject.name}`;
    const template = this.template();
    if (!template) return [`${where} has no pod template at ${this.templatePath.join('.')}; inject into a workload with one`];
    const containers = (template.spec.containers as Array<{ name: string }> | undefined) ?? [];
    if (!this.appContainer()) {
      problems.push(`${where}: container ${JSON.stringify(this.props.container)} not found (containers: ${containers.map((c) => c.name).join(', ')}); set \`container\` to one of them`);
    }
    const taken = [...containers, ...((template.spec.initContainers as Array<{ name: string }> | undefined) ?? [])].map((c) => c.name);
    for (const n of taken) {
      if (n.startsWith('typemesh-')) problems.push(`${where}: container ${n} is named like the sidecar's (typemesh-*); is the workload injected twice?`);
    }
    for (const v of (template.spec.volumes as Array<{ name: string }> | undefined) ?? []) {
      if (v.name.startsWith('typemesh-')) problems.push(`${where}: volume ${v.name} starts with "typemesh-", which names the sidecar's volumes; rename it`);
    }
    // Its ConfigMap, Certificate (and with callerPort its Services) would collide with a MeshService's.
    const twin = this.mesh.services.find((s) => s.serviceName === this.workloadName && s.namespace === this.namespace);
    if (twin) problems.push(`${where}: the mesh name ${this.workloadName} is taken in namespace ${this.namespace} by the MeshService ${twin.node.path}; set \`name\` in inject() to another name`);
    const sa = template.spec.serviceAccountName as string | undefined;
    if (sa !== undefined && sa !== this.serviceAccountName) {
      problems.push(`${where}: the pod runs as ServiceAccount ${sa} but the mesh identity is ${this.identity}; set serviceAccountName: "${sa}" in inject() or drop it from the pod`);
    }
    if (this.mesh.podSecurityLevel === 'restricted') {
      // The mesh's namespaces enforce restricted (CNI, EXPLICIT): say so now, not at admission.
      const podRunAsNonRoot = (template.spec.securityContext as { runAsNonRoot?: boolean } | undefined)?.runAsNonRoot;
      const all = [...((template.spec.initContainers as Array<Record<string, unknown>> | undefined) ?? []), ...((template.spec.containers as Array<Record<string, unknown>> | undefined) ?? [])];
      for (const c of all) {
        const found = restrictedProblems((c.securityContext ?? {}) as ContainerSecurityContext, podRunAsNonRoot);
        if (found.length > 0) {
          problems.push(`${where}: container ${c.name as string} would not pass the restricted Pod Security level that the mesh's namespaces enforce (interception ${this.mesh.interception}): ${found.join('; ')}; start from { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } }, or use InterceptionMode.INIT_CONTAINER (privileged namespaces)`);
        }
      }
    }
    if (this.appPorts().length === 0) {
      problems.push(`${where}: the app container declares no TCP port; set \`ports\` in inject(), e.g. [{ port: 8080 }]`);
    }
    try {
      this.sidecarConfig();
    } catch (e) {
      problems.push(e instanceof Error ? e.message : String(e));
    }
    return problems;
  }

  private injection(): SidecarInjection {
    return {
      sidecarMode: this.mesh.sidecarMode,
      interception: this.mesh.interception,
      iptablesBackend: this.mesh.iptablesBackend,
      sidecarImage: this.mesh.sidecarImage,
      sidecarResources: this.mesh.sidecarResources,
      configMapName: this.configMapName,
      certSecretName: this.certSecretName,
      trust: this.mesh._sidecarTrust,
      appContainer: (this.appContainer()?.name as string | undefined) ?? '',
      appPorts: this.appPorts(),
      metrics: this.mesh._telemetry.metricsEnabled,
    };
  }

  /** The workload's JSON with the sidecar injected into its pod template. */
  private injectedJson(): Record<string, unknown> {
    const json = structuredClone(this.original());
    json.metadata = { namespace: this.namespace, ...(json.metadata as object) };
    let parent: any = json;
    for (const k of this.templatePath.slice(0, -1)) parent = parent[k];
    const last = this.templatePath[this.templatePath.length - 1];
    const template = parent?.[last] as PodTemplateJson | undefined;
    if (!template?.spec) return json;
    const initArgs = () => [
      ...interceptionArgsFor(this.sidecarConfig()),
      ...(this.mesh.excludeOutboundCidrs.length > 0 ? ['--exclude-outbound-cidrs', this.mesh.excludeOutboundCidrs.join(',')] : []),
    ];
    const injected = injectSidecar({
      ...template,
      spec: { ...template.spec, serviceAccountName: this.serviceAccountName },
    }, this.injection(), initArgs);
    // injectSidecar leaves Lazy values (the init args) for MeshService's ApiObjects to resolve;
    // keys sorted as cdk8s sorts every object's, so the YAML reads like the rest of the chart.
    parent[last] = sortKeys(resolve([], injected, this.apiObject));
    return json;
  }
}

/** Workload ApiObjects already injected, and by which construct. */
const INJECTED = new WeakMap<ApiObject, string>();

/** The ServiceAccount a cdk8s-plus workload names, if any. */
function workloadServiceAccount(workload: IConstruct): string | undefined {
  const sa = (workload as { serviceAccount?: { name?: string } }).serviceAccount;
  return typeof sa?.name === 'string' ? sa.name : undefined;
}

/** The ApiObject of a workload construct (itself, or its default child). */
function apiObjectOf(by: IConstruct, workload: IConstruct): ApiObject {
  try {
    return ApiObject.of(workload);
  } catch {
    return fail({ construct: by, prop: 'workload', value: workload.node.path, problem: 'is neither an ApiObject nor a construct whose default child is one', fix: 'pass a cdk8s-plus workload (Deployment, StatefulSet, DaemonSet, Job, CronJob) or an ApiObject with a pod template' });
  }
}

/** A JSON value with every object's keys in sorted order (arrays keep theirs). */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) out[k] = sortKeys((value as Record<string, unknown>)[k]);
  return out;
}
