import { ApiObject, Duration } from 'cdk8s';
import { Construct, IConstruct } from 'constructs';
import { CertificateAuthority, MESH_CA_SECRET, resolveSidecarTrust, SidecarTrust, TrustBundle } from './certificate-authority';
import type { MeshService } from './mesh-service';
import { EgressMode, type ExternalService } from './external-service';
import { checkDnsLabel, fail } from './errors';
import { recommendedLabels } from './labels';
import { InjectedWorkload, InjectOptions } from './injected-workload';
import { DEFAULT_SIDECAR_IMAGE } from './package-version';
import { DEFAULT_SIDECAR_RESOURCES, InterceptionMode, IptablesBackend, PodSecurityLevel, podSecurityLevelOf, SIDECAR_CERTS_DIR, SidecarMode } from './sidecar-injection';
import { resolveInterceptionOptions } from '../config/interception-options';
import { DEFAULT_DRAIN_DURATION_MS, DEFAULT_DRAIN_TIMEOUT_MS } from '../config/schema';
import { ResolvedTelemetry, resolveMeshTelemetry, TelemetryOptions } from './telemetry';
import { durationMs, goDuration, MtlsMode } from './values';

/** CPU and memory amounts, as Kubernetes quantities. */
export interface ResourceQuantities {
  /**
   * CPU, e.g. `100m` (a tenth of a core).
   * @default - none
   */
  readonly cpu?: string;
  /**
   * Memory, e.g. `128Mi`.
   * @default - none
   */
  readonly memory?: string;
}

/** CPU and memory of a container. */
export interface ContainerResources {
  /**
   * What the scheduler reserves.
   * @default - none
   */
  readonly requests?: ResourceQuantities;
  /**
   * The most the container may use.
   * @default - none
   */
  readonly limits?: ResourceQuantities;
}

/** Props of {@link Mesh}. */
export interface MeshProps {
  /**
   * The mesh's home namespace (a DNS-1123 label): its certificate authority lives here, and
   * services and injected workloads go here unless they name another of `namespaces`.
   */
  readonly namespace: string;
  /**
   * More namespaces the mesh spans, under the same trust root: their workloads get SPIFFE IDs
   * `spiffe://<trustDomain>/ns/<namespace>/sa/<account>`, call and authorize the home
   * namespace's (and each other's) with mTLS. With the self-signed CA the mesh then signs
   * through a ClusterIssuer (docs/constructs.md "A mesh across namespaces").
   * @default []
   */
  readonly namespaces?: string[];
  /**
   * cert-manager's cluster resource namespace (its `--cluster-resource-namespace`): a
   * ClusterIssuer reads its CA Secret there, so a mesh spanning several namespaces with the
   * self-signed CA puts its root CA Certificate there.
   * @default 'cert-manager'
   */
  readonly clusterResourceNamespace?: string;
  /**
   * Synthesize the Namespace object too. Turn off when the namespace is managed elsewhere.
   * @default true
   */
  readonly createNamespace?: boolean;
  /**
   * The SPIFFE trust domain: identities are `spiffe://<trustDomain>/ns/<namespace>/sa/<account>`.
   * @default 'cluster.local'
   */
  readonly trustDomain?: string;
  /**
   * The cluster's DNS domain, used in the discovery names `<service>-<version>.<namespace>.svc.<clusterDomain>`.
   * @default 'cluster.local'
   */
  readonly clusterDomain?: string;
  /**
   * The `app.kubernetes.io/part-of` label of every object.
   * @default - the namespace
   */
  readonly partOf?: string;
  /**
   * The sidecar (and interception init container) image.
   * @default 'ghcr.io/typemesh/proxy:<typemesh package version>'
   */
  readonly sidecarImage?: string;
  /**
   * Resources of the sidecar container. The memory request matches the proxy's measured idle
   * RSS (about 75 MB without source maps; docs/constructs.md "The pod").
   * @default - requests cpu 50m and memory 96Mi, limit memory 256Mi
   */
  readonly sidecarResources?: ContainerResources;
  /**
   * How the sidecar is placed in the pod: a native sidecar (an init container with
   * `restartPolicy: Always`, Kubernetes 1.29+), or for older clusters a first regular container
   * whose postStart hook holds the app until the proxy is ready.
   * @default SidecarMode.NATIVE
   */
  readonly sidecarMode?: SidecarMode;
  /**
   * SIGTERM: how long each sidecar keeps serving while Kubernetes removes the pod's endpoints
   * (Istio's terminationDrainDuration): both listeners keep accepting, inbound answers carry
   * `Connection: close` and HTTP/2 sessions get GOAWAY, so peers move to other pods. The
   * sidecar config's `drainDurationMs`. With `sidecarDrainTimeout` it must stay below the pods'
   * terminationGracePeriodSeconds (30 s: the constructs set none, Kubernetes' default applies).
   * @default Duration.seconds(5) (the sidecar's default; not written into the config)
   */
  readonly sidecarDrainDuration?: Duration;
  /**
   * SIGTERM, after the drain window: how long each sidecar waits for the app's connections and
   * the requests in flight once its listeners are closed (the sidecar config's `drainTimeoutMs`).
   * @default Duration.seconds(5) (the sidecar's default; not written into the config)
   */
  readonly sidecarDrainTimeout?: Duration;
  /**
   * How the pods' traffic reaches the sidecars: the typemesh-init init container (needs the
   * `privileged` Pod Security level), the typemesh-cni node plugin, or none (explicit). The
   * Namespace's pod-security labels follow: `privileged`, else `restricted`.
   * @default InterceptionMode.INIT_CONTAINER
   */
  readonly interception?: InterceptionMode;
  /**
   * Which iptables the typemesh-init container runs (INIT_CONTAINER interception only): NFT, the
   * image's iptables-nft, with NET_ADMIN; or LEGACY, iptables-legacy for nodes whose kernel has
   * no nf_tables, which also needs NET_RAW (the init container gets it; docs/interception.md).
   * @default IptablesBackend.NFT
   */
  readonly iptablesBackend?: IptablesBackend;
  /**
   * Outbound destinations (IPv4 or IPv6 CIDRs, e.g. the cloud metadata endpoint
   * `169.254.169.254/32`) the interception rules never redirect to the sidecar
   * (typemesh-init's `--exclude-outbound-cidrs`).
   * @default - none
   */
  readonly excludeOutboundCidrs?: string[];
  /**
   * The mTLS mode of every workload unless a {@link StrictMtls} says otherwise.
   * @default MtlsMode.STRICT
   */
  readonly mtlsMode?: MtlsMode;
  /**
   * Telemetry defaults of every sidecar; a {@link MeshService} may override each field.
   * @default - metrics on (scrape annotations, no PodMonitor), tracing off, JSON access log
   */
  readonly telemetry?: TelemetryOptions;
  /**
   * What the sidecars do with a request for a host that is neither a mesh service nor an
   * {@link ExternalService}: refuse it (502, flag NR) or pass it through to its own address.
   * Allow-list by default, as mTLS is strict by default: a workload reaches only what the chart
   * declares. Choose PASSTHROUGH (Istio's default, ALLOW_ANY) while adopting the mesh for apps
   * whose outside calls are not declared yet.
   * @default EgressMode.ALLOW_LIST
   */
  readonly egress?: EgressMode;
  /**
   * Who signs the workload certificates.
   * @default CertificateAuthority.selfSigned()
   */
  readonly certificateAuthority?: CertificateAuthority;
  /**
   * The CAs every sidecar trusts, from one ConfigMap mounted by every sidecar and reloaded when
   * it changes: what lets a CA key change without splitting the mesh (old and new CA in the
   * bundle while leaves are reissued; see docs/constructs.md, "CA rotation").
   * @default - none: each sidecar trusts only the ca.crt of its own certificate Secret
   */
  readonly trustBundle?: TrustBundle;
  /**
   * Lifetime of each workload certificate.
   * @default Duration.hours(24)
   */
  readonly workloadCertificateDuration?: Duration;
  /**
   * How long before expiry cert-manager renews a workload certificate (the sidecar reloads it).
   * @default Duration.hours(8)
   */
  readonly workloadCertificateRenewBefore?: Duration;
}

/** A cert-manager issuer reference. */
export interface IssuerReference {
  /** Issuer name. */
  readonly name: string;
  /** `Issuer` or `ClusterIssuer`. */
  readonly kind: string;
  /** API group. */
  readonly group: string;
}

/** The mesh-level registration interface a {@link MeshService} uses. */
interface RegisteredService extends IConstruct {
  readonly serviceName: string;
  /** The service's namespace (default: the mesh's home namespace). */
  readonly namespace?: string;
}

/** Kubernetes' default terminationGracePeriodSeconds, which the constructs' pods keep. */
const DEFAULT_TERMINATION_GRACE_PERIOD_MS = 30_000;

/** Meshes whose constructor finished: one that failed validation stays in the tree but does not count. */
const BUILT_MESHES = new WeakSet<Mesh>();

/**
 * A service mesh in one namespace: trust domain, sidecar image, default mTLS mode,
 * telemetry defaults and the certificate authority.
 *
 * Synthesizes the Namespace (unless `createNamespace: false`) and, with the default
 * self-signed CA, the cert-manager chain `typemesh-selfsigned` (Issuer) ->
 * `typemesh-ca` (Certificate, isCA) -> `typemesh-ca` (Issuer backed by the CA Secret).
 * Workloads are added with {@link MeshService}.
 */
export class Mesh extends Construct {
  /** The home namespace: the certificate authority's, and every workload's unless it names another. */
  public readonly namespace: string;
  /** Every namespace of the mesh, the home namespace first. */
  public readonly namespaces: string[];
  /** cert-manager's cluster resource namespace (where a multi-namespace mesh's root CA lives). */
  public readonly clusterResourceNamespace: string;
  /** The SPIFFE trust domain. */
  public readonly trustDomain: string;
  /** The cluster DNS domain. */
  public readonly clusterDomain: string;
  /** The `app.kubernetes.io/part-of` label value. */
  public readonly partOf: string;
  /** The sidecar image. */
  public readonly sidecarImage: string;
  /** The sidecar container's resources. */
  public readonly sidecarResources: ContainerResources;
  /** How the sidecar is placed in the pod. */
  public readonly sidecarMode: SidecarMode;
  /** How traffic reaches the sidecar. */
  public readonly interception: InterceptionMode;
  /** Which iptables typemesh-init runs. */
  public readonly iptablesBackend: IptablesBackend;
  /** The sidecars' drain window after SIGTERM, in milliseconds. */
  public readonly sidecarDrainDurationMs: number;
  /** How long the sidecars wait for connections and requests in flight after the drain window, in milliseconds. */
  public readonly sidecarDrainTimeoutMs: number;
  /** @internal The drain fields of every sidecar config of the mesh: only those the props set. */
  public readonly _sidecarDrainConfig: { readonly drainDurationMs?: number; readonly drainTimeoutMs?: number };
  /** The Pod Security level every pod of the mesh passes (the Namespace's pod-security labels). */
  public readonly podSecurityLevel: PodSecurityLevel;
  /** Outbound CIDRs never redirected to the sidecar, normalized. */
  public readonly excludeOutboundCidrs: string[];
  /** Telemetry defaults, as given. */
  public readonly telemetry: TelemetryOptions;
  /** @internal Telemetry defaults, validated and with every default filled in (what services inherit). */
  public readonly _telemetry: ResolvedTelemetry;
  /** The issuer that signs workload certificates. */
  public readonly issuer: IssuerReference;
  /** @internal The caFile of every sidecar config, and the trust bundle volume it mounts (if any). */
  public readonly _sidecarTrust: SidecarTrust;
  /** Workload certificate lifetime, in milliseconds. */
  public readonly workloadCertificateDurationMs: number;
  /** Workload certificate renewal margin, in milliseconds. */
  public readonly workloadCertificateRenewBeforeMs: number;

  /** What the sidecars do with requests for undeclared hosts. */
  public readonly egress: EgressMode;

  private defaultMtls: { mode: MtlsMode; setBy?: string };
  private readonly externals = new Map<string, ExternalService>();
  private readonly registered = new Map<string, RegisteredService>();

  constructor(scope: Construct, id: string, props: MeshProps) {
    super(scope, id);
    checkDnsLabel(this, 'namespace', props.namespace, 'shop');
    // Two meshes of one namespace would synthesize the Namespace, Issuers and CA Certificate twice.
    const twin = this.node.root.node.findAll().find((c) => c instanceof Mesh && BUILT_MESHES.has(c) && c.namespaces.includes(props.namespace));
    if (twin) {
      fail({ construct: this, prop: 'namespace', value: props.namespace, problem: `the mesh ${twin.node.path} already uses this namespace in the same app (its Namespace, Issuers and CA Certificate would be synthesized twice)`, fix: `add the services to that Mesh, or give this mesh another namespace` });
    }
    this.namespace = props.namespace;
    this.namespaces = [props.namespace];
    (props.namespaces ?? []).forEach((ns, i) => {
      checkDnsLabel(this, `namespaces[${i}]`, ns, 'billing');
      if (this.namespaces.includes(ns)) {
        fail({ construct: this, prop: `namespaces[${i}]`, value: ns, problem: ns === props.namespace ? 'is the home namespace, already part of the mesh' : 'is listed twice', fix: 'list each further namespace once, without the home namespace' });
      }
      const other = this.node.root.node.findAll().find((c) => c instanceof Mesh && BUILT_MESHES.has(c) && c.namespaces.includes(ns));
      if (other) {
        fail({ construct: this, prop: `namespaces[${i}]`, value: ns, problem: `the mesh ${other.node.path} already spans this namespace: a namespace belongs to one mesh`, fix: 'add the workloads of that namespace to that Mesh, or use another namespace' });
      }
      this.namespaces.push(ns);
    });
    this.clusterResourceNamespace = props.clusterResourceNamespace ?? 'cert-manager';
    checkDnsLabel(this, 'clusterResourceNamespace', this.clusterResourceNamespace, 'cert-manager');
    if (this.namespaces.length > 1 && props.trustBundle) {
      fail({ construct: this, prop: 'trustBundle', value: this.namespaces, problem: 'a trust bundle is not yet supported for a mesh that spans several namespaces (its Bundle targets the home namespace only)', fix: 'drop trustBundle (the sidecars trust the ca.crt of their own Secret), or keep the mesh to one namespace' });
    }
    this.trustDomain = props.trustDomain ?? 'cluster.local';
    if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(this.trustDomain)) {
      fail({ construct: this, prop: 'trustDomain', value: this.trustDomain, problem: 'must be a SPIFFE trust domain (lower-case letters, digits, "." and "-")', fix: 'use a domain such as "cluster.local" or "prod.example.com"' });
    }
    this.clusterDomain = props.clusterDomain ?? 'cluster.local';
    this.partOf = props.partOf ?? props.namespace;
    this.sidecarImage = props.sidecarImage ?? DEFAULT_SIDECAR_IMAGE;
    this.sidecarResources = props.sidecarResources ?? DEFAULT_SIDECAR_RESOURCES;
    this.sidecarMode = props.sidecarMode ?? SidecarMode.NATIVE;
    if (!Object.values(SidecarMode).includes(this.sidecarMode)) {
      fail({ construct: this, prop: 'sidecarMode', value: this.sidecarMode, problem: `must be one of ${Object.values(SidecarMode).join(', ')}`, fix: 'use SidecarMode.NATIVE (Kubernetes 1.29+) or SidecarMode.LEGACY' });
    }
    this.interception = props.interception ?? InterceptionMode.INIT_CONTAINER;
    if (!Object.values(InterceptionMode).includes(this.interception)) {
      fail({ construct: this, prop: 'interception', value: this.interception, problem: `must be one of ${Object.values(InterceptionMode).join(', ')}`, fix: 'use InterceptionMode.INIT_CONTAINER, CNI or EXPLICIT' });
    }
    this.podSecurityLevel = podSecurityLevelOf(this.interception);
    this.iptablesBackend = props.iptablesBackend ?? IptablesBackend.NFT;
    if (!Object.values(IptablesBackend).includes(this.iptablesBackend)) {
      fail({ construct: this, prop: 'iptablesBackend', value: this.iptablesBackend, problem: `must be one of ${Object.values(IptablesBackend).join(', ')}`, fix: 'use IptablesBackend.NFT or IptablesBackend.LEGACY' });
    }
    if (this.iptablesBackend === IptablesBackend.LEGACY && this.interception !== InterceptionMode.INIT_CONTAINER) {
      fail({ construct: this, prop: 'iptablesBackend', value: this.iptablesBackend, problem: `applies to the typemesh-init container only, and interception is ${this.interception} (${this.interception === InterceptionMode.CNI ? 'typemesh-cni runs the node\'s own iptables' : 'no rules are written'})`, fix: 'remove iptablesBackend, or use InterceptionMode.INIT_CONTAINER' });
    }
    const drain = props.sidecarDrainDuration === undefined ? undefined : durationMs(this, 'sidecarDrainDuration', props.sidecarDrainDuration);
    const drainTimeout = props.sidecarDrainTimeout === undefined ? undefined : durationMs(this, 'sidecarDrainTimeout', props.sidecarDrainTimeout);
    this.sidecarDrainDurationMs = drain ?? DEFAULT_DRAIN_DURATION_MS;
    this.sidecarDrainTimeoutMs = drainTimeout ?? DEFAULT_DRAIN_TIMEOUT_MS;
    this._sidecarDrainConfig = { ...(drain !== undefined ? { drainDurationMs: drain } : {}), ...(drainTimeout !== undefined ? { drainTimeoutMs: drainTimeout } : {}) };
    const shutdownMs = this.sidecarDrainDurationMs + this.sidecarDrainTimeoutMs;
    if (shutdownMs >= DEFAULT_TERMINATION_GRACE_PERIOD_MS) {
      // The kubelet sends SIGKILL when the grace period ends: a drain still running then drops its requests.
      const prop = drain !== undefined ? 'sidecarDrainDuration' : 'sidecarDrainTimeout';
      fail({
        construct: this, prop, value: goDuration(prop === 'sidecarDrainDuration' ? this.sidecarDrainDurationMs : this.sidecarDrainTimeoutMs),
        problem: `the sidecar may take sidecarDrainDuration + sidecarDrainTimeout = ${goDuration(shutdownMs)} after SIGTERM, not below the pods' terminationGracePeriodSeconds (${DEFAULT_TERMINATION_GRACE_PERIOD_MS / 1000} s, Kubernetes' default: the constructs set none), so the kubelet would kill it mid-drain`,
        fix: `keep the two below ${DEFAULT_TERMINATION_GRACE_PERIOD_MS / 1000} s together, e.g. Duration.seconds(5) each (the defaults)`,
      });
    }
    this.excludeOutboundCidrs = [];
    (props.excludeOutboundCidrs ?? []).forEach((cidr, i) => {
      let normalized: readonly string[] = [];
      try {
        normalized = resolveInterceptionOptions({ excludeOutboundCidrs: [cidr] }).excludeOutboundCidrs;
      } catch {
        fail({ construct: this, prop: `excludeOutboundCidrs[${i}]`, value: cidr, problem: 'is not an IPv4 or IPv6 address or CIDR', fix: 'use e.g. "169.254.169.254/32" or "fd00:ec2::254/128"' });
      }
      for (const n of normalized) if (!this.excludeOutboundCidrs.includes(n)) this.excludeOutboundCidrs.push(n);
    });
    if (this.excludeOutboundCidrs.length > 0 && this.interception === InterceptionMode.EXPLICIT) {
      fail({ construct: this, prop: 'excludeOutboundCidrs', value: props.excludeOutboundCidrs, problem: 'has no effect with InterceptionMode.EXPLICIT (no traffic is redirected)', fix: 'remove excludeOutboundCidrs, or use InterceptionMode.INIT_CONTAINER or CNI' });
    }
    this.defaultMtls = { mode: props.mtlsMode ?? MtlsMode.STRICT };
    this.egress = props.egress ?? EgressMode.ALLOW_LIST;
    if (!Object.values(EgressMode).includes(this.egress)) {
      fail({ construct: this, prop: 'egress', value: this.egress, problem: `must be one of ${Object.values(EgressMode).join(', ')}`, fix: 'use EgressMode.ALLOW_LIST or EgressMode.PASSTHROUGH' });
    }
    this.telemetry = props.telemetry ?? {};
    this._telemetry = resolveMeshTelemetry(this, this.telemetry);
    this.workloadCertificateDurationMs = durationMs(this, 'workloadCertificateDuration', props.workloadCertificateDuration ?? Duration.hours(24), 3_600_000);
    this.workloadCertificateRenewBeforeMs = durationMs(this, 'workloadCertificateRenewBefore', props.workloadCertificateRenewBefore ?? Duration.hours(8), 60_000);
    if (this.workloadCertificateRenewBeforeMs >= this.workloadCertificateDurationMs) {
      fail({ construct: this, prop: 'workloadCertificateRenewBefore', value: goDuration(this.workloadCertificateRenewBeforeMs), problem: `must be shorter than workloadCertificateDuration (${goDuration(this.workloadCertificateDurationMs)})`, fix: 'renew at about a third of the lifetime, e.g. Duration.hours(8) for 24 h certificates' });
    }

    for (const ns of props.createNamespace ?? true ? this.namespaces : []) {
      new ApiObject(this, ns === this.namespace ? 'namespace' : `namespace-${ns}`, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: {
          name: ns,
          labels: {
            ...this.labels('namespace', ns),
            'typemesh.io/mesh': this.namespace,
            // What every meshed pod passes (test/constructs/pod-security.test.ts checks it):
            // enforcing a stricter level would reject the pods, a looser one admits worse pods.
            'pod-security.kubernetes.io/enforce': this.podSecurityLevel,
            'pod-security.kubernetes.io/audit': this.podSecurityLevel,
            'pod-security.kubernetes.io/warn': this.podSecurityLevel,
          },
        },
      });
    }

    const ca = (props.certificateAuthority ?? CertificateAuthority.selfSigned())._spec;
    if (ca.kind === 'existing') {
      checkDnsLabel(this, 'certificateAuthority.name', ca.issuer.name, 'my-ca-issuer');
      this.issuer = ca.issuer;
    } else if (this.namespaces.length > 1) {
      // A namespaced Issuer signs Certificates of its own namespace only: a mesh of several
      // namespaces signs through a ClusterIssuer, whose CA Secret lives in cert-manager's
      // cluster resource namespace (the private key stays in one namespace, never copied).
      this.issuer = { name: `typemesh-${this.namespace}-ca`, kind: 'ClusterIssuer', group: 'cert-manager.io' };
      this.synthesizeClusterCa(
        durationMs(this, 'certificateAuthority.duration', ca.duration, 3_600_000),
        durationMs(this, 'certificateAuthority.renewBefore', ca.renewBefore, 3_600_000),
      );
    } else {
      this.issuer = { name: 'typemesh-ca', kind: 'Issuer', group: 'cert-manager.io' };
      this.synthesizeSelfSignedCa(
        durationMs(this, 'certificateAuthority.duration', ca.duration, 3_600_000),
        durationMs(this, 'certificateAuthority.renewBefore', ca.renewBefore, 3_600_000),
      );
    }
    this._sidecarTrust = resolveSidecarTrust(this, props.trustBundle, ca.kind, SIDECAR_CERTS_DIR);
    BUILT_MESHES.add(this);
  }

  /** The mTLS mode of workloads that set none themselves. */
  public get mtlsMode(): MtlsMode {
    return this.defaultMtls.mode;
  }

  /** The Kubernetes recommended labels for an object of this mesh. */
  public labels(component: string, name: string, instance = name, version?: string): Record<string, string> {
    return recommendedLabels({ name, instance, version, component, partOf: this.partOf });
  }

  /** The names of the mesh's services, in the order they were created. */
  public get serviceNames(): string[] {
    return [...this.registered.keys()];
  }

  /** The mesh's services, in the order they were created (e.g. for a local runner). */
  public get services(): MeshService[] {
    return [...this.registered.values()] as MeshService[];
  }

  /** @internal Called by StrictMtls. */
  public _setMtlsMode(mode: MtlsMode, by: IConstruct): void {
    if (this.defaultMtls.setBy) {
      fail({ construct: by, prop: 'mode', value: mode, problem: `the mesh's mTLS mode is already set by ${this.defaultMtls.setBy}`, fix: 'declare one mesh-wide StrictMtls (use `service:` for per-service exceptions)' });
    }
    this.defaultMtls = { mode, setBy: by.node.path };
  }

  /** @internal Called by MeshService. */
  public _register(service: RegisteredService): void {
    const key = this.registrationKey(service);
    const existing = this.registered.get(key);
    if (existing) {
      fail({ construct: service, prop: 'name', value: service.serviceName, problem: `a service of this name already exists in the mesh (${existing.node.path})`, fix: 'give every MeshService of a namespace of the mesh a different name' });
    }
    this.registered.set(key, service);
  }

  /** A service's name in the mesh: `<name>` in the home namespace, `<name>.<namespace>` in another. */
  private registrationKey(service: RegisteredService): string {
    return service.namespace && service.namespace !== this.namespace ? `${service.serviceName}.${service.namespace}` : service.serviceName;
  }

  /** The mesh's external services, in the order they were created. */
  public get externalServices(): ExternalService[] {
    return [...this.externals.values()];
  }

  /** @internal Called by ExternalService. */
  public _registerExternal(ext: ExternalService): void {
    const existing = this.externals.get(ext.serviceName);
    if (existing) {
      fail({ construct: ext, prop: 'name', value: ext.serviceName, problem: `an external service of this name already exists in the mesh (${existing.node.path})`, fix: 'give every ExternalService of a mesh a different name' });
    }
    const service = this.registered.get(ext.serviceName);
    if (service) {
      fail({ construct: ext, prop: 'name', value: ext.serviceName, problem: `a MeshService of this name exists in the mesh (${service.node.path})`, fix: 'give the ExternalService another name (props.name)' });
    }
    for (const other of this.externals.values()) {
      const shared = ext.hosts.find((h) => other.hosts.includes(h));
      if (shared) fail({ construct: ext, prop: 'hosts', value: shared, problem: `the host is already declared by ${other.node.path}`, fix: 'declare each external host once' });
    }
    this.externals.set(ext.serviceName, ext);
  }

  /** @internal The outbound section's egress part of every sidecar config of the mesh. */
  public _egressConfig(): { externalServices: ReturnType<ExternalService['_config']>[]; passthrough: boolean } {
    return { externalServices: this.externalServices.map((e) => e._config()), passthrough: this.egress === EgressMode.PASSTHROUGH };
  }

  /**
   * Joins a workload TypeMesh did not write to the mesh: a cdk8s-plus Deployment, StatefulSet,
   * DaemonSet, Job or CronJob, or an ApiObject with a pod template (also from `Include` or
   * `Helm`). Its pod gets the same sidecar as a MeshService's, and the workload its
   * ServiceAccount, Certificate and sidecar config (docs/constructs.md "Injecting any workload").
   */
  public inject(workload: IConstruct, options: InjectOptions = {}): InjectedWorkload {
    const base = `inject-${workload.node.path.replace(/\//g, '-')}`;
    let id = base;
    // A second injection of the same workload gets its own id, so that it fails with its own message.
    for (let n = 2; this.node.tryFindChild(id); n++) id = `${base}-${n}`;
    return new InjectedWorkload(this, id, { ...options, mesh: this, workload });
  }

  /** @internal */
  public _isRegistered(service: RegisteredService): boolean {
    return this.registered.get(this.registrationKey(service)) === service;
  }

  /**
   * Checks that `namespace` is one of the mesh's, for a workload at `construct`/`prop`.
   * @internal
   */
  public _checkNamespace(construct: IConstruct, prop: string, namespace: string): void {
    checkDnsLabel(construct, prop, namespace, this.namespace);
    if (!this.namespaces.includes(namespace)) {
      fail({ construct, prop, value: namespace, problem: `is not a namespace of the mesh ${this.node.path} (${this.namespaces.join(', ')})`, fix: `add it to the Mesh's namespaces (namespaces: ['${namespace}']), or use one of those` });
    }
  }

  /** The self-signed root of a mesh of several namespaces, signing through a ClusterIssuer. */
  private synthesizeClusterCa(caDurationMs: number, caRenewBeforeMs: number): void {
    const ns = this.clusterResourceNamespace;
    const name = `typemesh-${this.namespace}-ca`;
    new ApiObject(this, 'selfsigned-issuer', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Issuer',
      metadata: { name: `typemesh-${this.namespace}-selfsigned`, namespace: ns, labels: this.labels('certificate-authority', `typemesh-${this.namespace}-selfsigned`) },
      spec: { selfSigned: {} },
    });
    new ApiObject(this, 'ca-certificate', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name, namespace: ns, labels: this.labels('certificate-authority', name) },
      spec: {
        isCA: true,
        commonName: `typemesh-ca.${this.trustDomain}`,
        secretName: name,
        duration: goDuration(caDurationMs),
        renewBefore: goDuration(caRenewBeforeMs),
        // Never, as for the one-namespace CA (synthesizeSelfSignedCa).
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Never' },
        issuerRef: { name: `typemesh-${this.namespace}-selfsigned`, kind: 'Issuer', group: 'cert-manager.io' },
      },
    });
    new ApiObject(this, 'ca-issuer', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'ClusterIssuer',
      metadata: { name, labels: this.labels('certificate-authority', name) },
      spec: { ca: { secretName: name } },
    });
  }

  private synthesizeSelfSignedCa(caDurationMs: number, caRenewBeforeMs: number): void {
    const ns = this.namespace;
    new ApiObject(this, 'selfsigned-issuer', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Issuer',
      metadata: { name: 'typemesh-selfsigned', namespace: ns, labels: this.labels('certificate-authority', 'typemesh-selfsigned') },
      // Only signs the CA certificate below; workloads never use it.
      spec: { selfSigned: {} },
    });
    new ApiObject(this, 'ca-certificate', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: 'typemesh-ca', namespace: ns, labels: this.labels('certificate-authority', 'typemesh-ca') },
      spec: {
        isCA: true,
        commonName: `typemesh-ca.${this.trustDomain}`,
        secretName: MESH_CA_SECRET,
        duration: goDuration(caDurationMs),
        renewBefore: goDuration(caRenewBeforeMs),
        // Never: a renewal keeps the CA key, so every leaf it signed still verifies against the
        // renewed CA certificate (same subject, same key). cert-manager 1.18+ defaults to Always,
        // which gives the renewed CA a new key without reissuing the leaves: pods on the old and
        // the new CA would refuse each other until their leaves renew. A real key change is a
        // deliberate rotation through a trust bundle (trustBundle, docs/constructs.md).
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Never' },
        issuerRef: { name: 'typemesh-selfsigned', kind: 'Issuer', group: 'cert-manager.io' },
      },
    });
    new ApiObject(this, 'ca-issuer', {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Issuer',
      metadata: { name: 'typemesh-ca', namespace: ns, labels: this.labels('certificate-authority', 'typemesh-ca') },
      spec: { ca: { secretName: MESH_CA_SECRET } },
    });
  }
}
