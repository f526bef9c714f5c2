/**
 * How a workload's pod is built: the app container, the injected sidecar and the
 * interception init container. Kept apart from MeshService so that the pod layout (the
 * part the proxy image depends on: paths, ports, uid, flags) is in one place.
 *
 * Pod layout (docs/constructs.md "The pod"):
 * - native sidecar (default, Kubernetes 1.29+): initContainers [typemesh-init, typemesh-proxy
 *   (restartPolicy Always, startup probe on readiness)], containers [app]. The kubelet starts
 *   the app only once the proxy's startup probe passed, and stops the proxy after the app.
 * - legacy: initContainers [typemesh-init], containers [typemesh-proxy (postStart hook
 *   `typemesh-proxy --wait-ready`), app]. The kubelet starts containers in order and waits for
 *   a postStart hook before starting the next one, so the app starts once the proxy is ready
 *   (as Istio's holdApplicationUntilProxyStarts).
 * - CNI interception: no typemesh-init; the pod carries its flags in an annotation that the
 *   typemesh-cni plugin (src/cni) reads. Explicit interception: no typemesh-init, no rules.
 */
import { Lazy } from 'cdk8s';
import {
  APP_CONTAINER, INIT_CONTAINER, INTERCEPTION_ARGS_ANNOTATION, PROXY_ADMIN_PORT, PROXY_INBOUND_PORT, PROXY_OUTBOUND_PORT,
  PROXY_UID, RESERVED_PORT_MAX, RESERVED_PORT_MIN, SIDECAR_CERTS_DIR, SIDECAR_CONFIG_DIR, SIDECAR_CONFIG_KEY, SIDECAR_CONTAINER,
} from '../config/pod-contract';
import type { ContainerResources } from './mesh';

/** Ports of the sidecar, in the style of Istio's (the pod contract's, src/config/pod-contract.ts). */
export const SidecarPorts = {
  /** Outbound listener (loopback only): the app's intercepted outbound traffic. */
  OUTBOUND: PROXY_OUTBOUND_PORT,
  /** Inbound listener: mTLS from other sidecars; intercepted inbound traffic. */
  INBOUND: PROXY_INBOUND_PORT,
  /** Admin: /metrics, /healthz/ready, /app-health/... (the declared app probes); config dump and clusters on loopback only. */
  ADMIN: PROXY_ADMIN_PORT,
  /** Lowest port reserved for the sidecar; apps may not use 15000-15090. */
  RESERVED_MIN: RESERVED_PORT_MIN,
  /** Highest port reserved for the sidecar. */
  RESERVED_MAX: RESERVED_PORT_MAX,
} as const;

/**
 * The name of the sidecar container's admin port (15020). A PodMonitor scrapes the port by
 * this name, so renaming it breaks scraping.
 */
export const SIDECAR_ADMIN_PORT_NAME = 'mesh-admin';

/** The sidecar runs as this uid; the interception rules exclude its traffic. */
export const SIDECAR_UID = PROXY_UID;

// The names and paths every side of the pod agrees on (re-exported for the constructs' users).
export { APP_CONTAINER, INIT_CONTAINER, SIDECAR_CERTS_DIR, SIDECAR_CONFIG_DIR, SIDECAR_CONFIG_KEY, SIDECAR_CONTAINER };

/** How the sidecar is placed in the pod. */
export enum SidecarMode {
  /**
   * A native sidecar (Kubernetes 1.29 or later): an init container with `restartPolicy: Always`
   * and a startup probe on its readiness. The app starts only once the proxy is ready, and the
   * proxy outlives the app at shutdown; a Job's pod completes when its app exits.
   */
  NATIVE = 'native',
  /**
   * For clusters older than 1.29: the proxy is the first regular container, with a postStart
   * hook (`typemesh-proxy --wait-ready`) that holds the app's start until the proxy is ready.
   * The proxy is not ordered after the app at shutdown, and a Job's pod never completes.
   */
  LEGACY = 'legacy',
}

/** How the pod's traffic reaches the sidecar. */
export enum InterceptionMode {
  /**
   * The `typemesh-init` init container writes the iptables rules. It runs as root with
   * NET_ADMIN, which only the `privileged` Pod Security level admits, so the namespace is
   * labelled `privileged`.
   */
  INIT_CONTAINER = 'init-container',
  /**
   * The typemesh-cni node plugin writes the same rules at pod creation (docs/interception.md
   * "CNI mode"); the pod carries the flags in the `typemesh.io/interception-args` annotation
   * and needs no privilege: the pods pass `restricted`.
   */
  CNI = 'cni',
  /**
   * No interception: the app calls its sidecar explicitly (`http://127.0.0.1:15001` with the
   * service's Host, or `HTTP_PROXY`), peers reach the inbound port 15006 directly. The pods
   * pass `restricted`.
   */
  EXPLICIT = 'explicit',
}

/** Which iptables typemesh-init runs (INIT_CONTAINER interception). */
export enum IptablesBackend {
  /**
   * The image's `iptables` (iptables-nft in the sidecar image), with NET_ADMIN only. Needs a
   * kernel with nf_tables (every distribution kernel since Linux 3.13).
   */
  NFT = 'nft',
  /**
   * iptables-legacy (`typemesh-init --iptables-backend legacy`), for nodes whose kernel has no
   * nf_tables. It talks to the kernel through a raw socket, so the init container also gets
   * NET_RAW.
   */
  LEGACY = 'legacy',
}

/** A Pod Security Standards level (https://kubernetes.io/docs/concepts/security/pod-security-standards/). */
export type PodSecurityLevel = 'privileged' | 'baseline' | 'restricted';

/** The Pod Security level every meshed pod passes under an interception mode. */
export function podSecurityLevelOf(mode: InterceptionMode): PodSecurityLevel {
  // NET_ADMIN (and uid 0) of typemesh-init: neither baseline nor restricted allow it.
  return mode === InterceptionMode.INIT_CONTAINER ? 'privileged' : 'restricted';
}

/** Linux capabilities of a container. */
export interface Capabilities {
  /**
   * Capabilities to add.
   * @default - none
   */
  readonly add?: string[];
  /**
   * Capabilities to drop.
   * @default - none
   */
  readonly drop?: string[];
}

/** The security context of the app container (Kubernetes' SecurityContext, the common fields). */
export interface ContainerSecurityContext {
  /**
   * The uid the app runs as.
   * @default - the image's USER
   */
  readonly runAsUser?: number;
  /**
   * The gid the app runs as.
   * @default - the image's
   */
  readonly runAsGroup?: number;
  /**
   * Refuse to start the container as uid 0.
   * @default - not set
   */
  readonly runAsNonRoot?: boolean;
  /**
   * Mount the root filesystem read-only.
   * @default - not set
   */
  readonly readOnlyRootFilesystem?: boolean;
  /**
   * Allow setuid binaries and the like to gain privileges.
   * @default - not set
   */
  readonly allowPrivilegeEscalation?: boolean;
  /**
   * Run privileged (every capability, every device).
   * @default - not set
   */
  readonly privileged?: boolean;
  /**
   * Capabilities.
   * @default - not set
   */
  readonly capabilities?: Capabilities;
}

/**
 * The app container's security context unless a version sets its own: what the `restricted`
 * Pod Security level asks of a container (the pod sets the RuntimeDefault seccomp profile).
 * The image must run as a non-root numeric USER, or the version sets `runAsUser`.
 */
export const DEFAULT_APP_SECURITY_CONTEXT: ContainerSecurityContext = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
};

/** The proxy's security context (sidecar and gateway): uid 1337, nothing else. */
export function proxySecurityContext(): Record<string, unknown> {
  return {
    runAsUser: SIDECAR_UID,
    runAsGroup: SIDECAR_UID,
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  };
}

/** The pod-level security context of every meshed pod. */
export const POD_SECURITY_CONTEXT = { seccompProfile: { type: 'RuntimeDefault' } } as const;

/** The proxy's probes: startup and readiness on /healthz/ready, liveness on /healthz/live. */
export function proxyProbes(): Record<string, unknown> {
  const get = (path: string) => ({ httpGet: { path, port: SidecarPorts.ADMIN, scheme: 'HTTP' } });
  return {
    // Up to 2 minutes to listen and load the certificate (the Secret may not exist yet).
    startupProbe: { ...get('/healthz/ready'), periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 120 },
    readinessProbe: { ...get('/healthz/ready'), periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 3 },
    // Only a proxy that stopped answering is restarted, never one that is merely not ready.
    livenessProbe: { ...get('/healthz/live'), periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
  };
}

/** The downward-API environment of the proxy: its pod's name and namespace (for logs and metrics). */
export const PROXY_POD_ENV = [
  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
];

/** The annotation telling kubectl logs/exec which container to use when none is named. */
export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

/** The sidecar's default resources: requests match its measured idle use (docs/constructs.md). */
export const DEFAULT_SIDECAR_RESOURCES: ContainerResources = {
  requests: { cpu: '50m', memory: '96Mi' },
  limits: { memory: '256Mi' },
};

/** An app probe, already converted to Kubernetes units. */
export interface AppProbe {
  readonly kind: 'livez' | 'readyz';
  readonly path: string;
  /** The name of the app port probed (one of the workload's appPorts). */
  readonly portName: string;
  readonly initialDelaySeconds: number;
  readonly periodSeconds: number;
  readonly timeoutSeconds: number;
  readonly failureThreshold: number;
}

/** What the pod template needs to know about the workload. */
export interface WorkloadPodSpec {
  readonly serviceAccountName: string;
  readonly image: string;
  readonly command?: string[];
  readonly args?: string[];
  /** The app's environment (plain values and downward-API/Secret/ConfigMap references). */
  readonly env: Array<Record<string, unknown>>;
  readonly ports: Array<{ name: string; containerPort: number }>;
  /** The app container's security context. */
  readonly securityContext: ContainerSecurityContext;
  readonly sidecarMode: SidecarMode;
  readonly interception: InterceptionMode;
  /** typemesh-init's iptables (unset: NFT). */
  readonly iptablesBackend?: IptablesBackend;
  /** The app's own volumes: pod volumes and the app container's mounts. */
  readonly appVolumes?: { readonly volumes: Array<Record<string, unknown>>; readonly volumeMounts: Array<Record<string, unknown>> };
  /** Spread the pods matching these labels across zones and nodes (none: no constraint). */
  readonly spreadSelector?: Record<string, string>;
  readonly resources: ContainerResources;
  readonly probes: AppProbe[];
  readonly sidecarImage: string;
  readonly sidecarResources: ContainerResources;
  readonly configMapName: string;
  readonly certSecretName: string;
  /** The mesh's trust bundle volume and mount (none: the sidecar trusts its Secret's ca.crt). */
  readonly trust?: { readonly volumes: Array<Record<string, unknown>>; readonly volumeMounts: Array<Record<string, unknown>> };
}

/** Kubernetes resource requirements from ContainerResources (empty parts omitted). */
export function k8sResources(r: ContainerResources): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const part of ['requests', 'limits'] as const) {
    const v = r[part];
    if (!v) continue;
    const q: Record<string, string> = {};
    if (v.cpu) q.cpu = v.cpu;
    if (v.memory) q.memory = v.memory;
    if (Object.keys(q).length > 0) out[part] = q;
  }
  return out;
}

/**
 * The probe path the kubelet calls on the sidecar's admin port for an app probe:
 * `/app-health/<app port name>/<livez|readyz>`. The app path is not in it: the sidecar config
 * declares it (`inbound.probes`), and the admin port GETs that path and no other, so a client
 * of the admin port cannot make the sidecar GET an app path of its choosing.
 */
export function appHealthPath(p: Pick<AppProbe, 'kind' | 'portName'>): string {
  return `/app-health/${p.portName}/${p.kind}`;
}

/**
 * The pod template annotations of a workload: the default container for kubectl and, in CNI
 * mode, typemesh-init's flags for the CNI plugin (the same flags the init container would get).
 */
export function podAnnotations(interception: InterceptionMode, initArgs: () => string[], appContainer: string = APP_CONTAINER): Record<string, unknown> {
  return {
    [DEFAULT_CONTAINER_ANNOTATION]: appContainer,
    ...(interception === InterceptionMode.CNI ? { [INTERCEPTION_ARGS_ANNOTATION]: Lazy.any({ produce: () => initArgs().join(' ') }) } : {}),
  };
}

/** The Prometheus scrape annotations of a meshed pod whose sidecar serves metrics. */
export const METRICS_ANNOTATIONS: Readonly<Record<string, string>> = {
  'prometheus.io/scrape': 'true',
  'prometheus.io/port': String(PROXY_ADMIN_PORT),
  'prometheus.io/path': '/metrics',
};

/** What the sidecar injection needs to know, whoever wrote the workload (MeshService or not). */
export interface SidecarInjection {
  readonly sidecarMode: SidecarMode;
  readonly interception: InterceptionMode;
  /** typemesh-init's iptables (unset: NFT). */
  readonly iptablesBackend?: IptablesBackend;
  readonly sidecarImage: string;
  readonly sidecarResources: ContainerResources;
  /** The ConfigMap holding the sidecar config (key SIDECAR_CONFIG_KEY). */
  readonly configMapName: string;
  /** The cert-manager Secret of the workload's identity. */
  readonly certSecretName: string;
  /** The mesh's trust bundle volume and mount (none: the sidecar trusts its Secret's ca.crt). */
  readonly trust?: { readonly volumes: Array<Record<string, unknown>>; readonly volumeMounts: Array<Record<string, unknown>> };
  /** The container the sidecar serves: its HTTP probes on app ports move to the admin port. */
  readonly appContainer: string;
  /** The app ports: name and container port. */
  readonly appPorts: ReadonlyArray<{ readonly name: string; readonly port: number }>;
  /** Annotate the pod for Prometheus scraping of the sidecar. */
  readonly metrics: boolean;
}

/** A pod template as Kubernetes JSON: metadata and spec. */
export interface PodTemplateJson {
  metadata?: { labels?: Record<string, unknown>; annotations?: Record<string, unknown>; [k: string]: unknown };
  spec: Record<string, unknown>;
}

/**
 * The app probes of a container that the sidecar must serve: the HTTP liveness and readiness
 * probes aimed at an app port (by name or number). Under interception the kubelet cannot reach
 * the app port itself (mTLS), so these move to the admin port (see {@link injectSidecar}).
 */
export function appProbesOf(container: Record<string, unknown>, appPorts: SidecarInjection['appPorts']): AppProbe[] {
  const out: AppProbe[] = [];
  for (const [field, kind] of [['livenessProbe', 'livez'], ['readinessProbe', 'readyz']] as const) {
    const probe = container[field] as Record<string, unknown> | undefined;
    const get = probe?.httpGet as { path?: string; port?: number | string; scheme?: string } | undefined;
    if (!probe || !get || (get.scheme !== undefined && get.scheme !== 'HTTP')) continue;
    const port = appPorts.find((p) => p.name === get.port || p.port === get.port);
    if (!port) continue;
    out.push({
      kind,
      path: get.path ?? '/',
      portName: port.name,
      initialDelaySeconds: (probe.initialDelaySeconds as number | undefined) ?? 0,
      periodSeconds: (probe.periodSeconds as number | undefined) ?? 10,
      timeoutSeconds: (probe.timeoutSeconds as number | undefined) ?? 1,
      failureThreshold: (probe.failureThreshold as number | undefined) ?? 3,
    });
  }
  return out;
}

/**
 * Injects the sidecar into a pod template, whoever wrote it: MeshService's own pods and
 * workloads injected with `Mesh.inject` go through here, so their pods cannot differ.
 *
 * Adds the interception init container (INIT_CONTAINER mode), the proxy (a native sidecar
 * init container, or the first container in LEGACY mode), the proxy's volumes (before the
 * app's), the pod annotations, the RuntimeDefault seccomp profile unless the pod sets its own,
 * and moves the app container's HTTP probes on app ports to the sidecar's admin port. Existing
 * init containers run after the proxy, so they too have the mesh.
 */
export function injectSidecar(template: PodTemplateJson, s: SidecarInjection, initArgs: () => string[]): PodTemplateJson {
  const spec = template.spec;
  const containers = (spec.containers as Array<Record<string, unknown>> | undefined) ?? [];
  const rewrittenProbe = (p: AppProbe, original: Record<string, unknown>) => ({
    ...original,
    // The kubelet cannot reach the app's own port (inbound traffic is intercepted and needs
    // mTLS), so it probes the sidecar's admin port, which probes the app on loopback.
    httpGet: { path: appHealthPath(p), port: SidecarPorts.ADMIN, scheme: 'HTTP' },
  });
  const appContainers = containers.map((c) => {
    if (c.name !== s.appContainer) return c;
    const out = { ...c };
    for (const p of appProbesOf(c, s.appPorts)) {
      const field = p.kind === 'livez' ? 'livenessProbe' : 'readinessProbe';
      out[field] = rewrittenProbe(p, c[field] as Record<string, unknown>);
    }
    return out;
  });

  const native = s.sidecarMode === SidecarMode.NATIVE;
  const sidecar = {
    name: SIDECAR_CONTAINER,
    image: s.sidecarImage,
    command: [SIDECAR_CONTAINER],
    args: ['--config', `${SIDECAR_CONFIG_DIR}/${SIDECAR_CONFIG_KEY}`],
    // A native sidecar: the kubelet starts the next container once its startup probe passes,
    // restarts it whenever it exits, and stops it after the app containers.
    ...(native ? { restartPolicy: 'Always' } : {}),
    env: PROXY_POD_ENV,
    // No containerPort for the outbound listener: it listens on loopback only and is reached
    // by the pod's own processes, never through the pod IP.
    ports: [
      { name: 'mesh-inbound', containerPort: SidecarPorts.INBOUND, protocol: 'TCP' },
      { name: SIDECAR_ADMIN_PORT_NAME, containerPort: SidecarPorts.ADMIN, protocol: 'TCP' },
    ],
    ...proxyProbes(),
    // Legacy: the kubelet runs the next container (the app) only after this hook returns.
    ...(native ? {} : { lifecycle: { postStart: { exec: { command: [SIDECAR_CONTAINER, '--wait-ready'] } } } }),
    resources: k8sResources(s.sidecarResources),
    securityContext: proxySecurityContext(),
    volumeMounts: [
      { name: SIDECAR_VOLUMES.config, mountPath: SIDECAR_CONFIG_DIR, readOnly: true },
      { name: SIDECAR_VOLUMES.certs, mountPath: SIDECAR_CERTS_DIR, readOnly: true },
      ...(s.trust?.volumeMounts ?? []),
      { name: SIDECAR_VOLUMES.tmp, mountPath: '/tmp' },
    ],
  };

  const legacy = s.iptablesBackend === IptablesBackend.LEGACY;
  const init = {
    name: INIT_CONTAINER,
    image: s.sidecarImage,
    command: [INIT_CONTAINER],
    args: Lazy.any({ produce: () => [...initArgs(), ...(legacy ? ['--iptables-backend', IptablesBackend.LEGACY] : [])] }),
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    // The only container with network privileges: it writes the iptables rules and exits.
    // Root with NET_ADMIN only: iptables-nft needs no NET_RAW to write rules; iptables-legacy
    // does (its raw socket to the kernel), so it gets NET_RAW too.
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { add: legacy ? ['NET_ADMIN', 'NET_RAW'] : ['NET_ADMIN'], drop: ['ALL'] },
    },
  };
  const interceptionInit = s.interception === InterceptionMode.INIT_CONTAINER ? [init] : [];
  const existingInit = (spec.initContainers as unknown[] | undefined) ?? [];
  // The rules first, then the proxy: the proxy's own connections are exempt by uid either way.
  const initContainers = [...interceptionInit, ...(native ? [sidecar] : []), ...existingInit];

  const { initContainers: _i, containers: _c, volumes: _v, securityContext: podSecurity, ...rest } = spec;
  return {
    metadata: {
      ...template.metadata,
      annotations: {
        ...template.metadata?.annotations,
        ...podAnnotations(s.interception, initArgs, s.appContainer),
        ...(s.metrics ? METRICS_ANNOTATIONS : {}),
      },
    },
    spec: {
      ...rest,
      securityContext: { ...POD_SECURITY_CONTEXT, ...(podSecurity as Record<string, unknown> | undefined) },
      ...(initContainers.length > 0 ? { initContainers } : {}),
      containers: native ? appContainers : [sidecar, ...appContainers],
      volumes: [
        { name: SIDECAR_VOLUMES.config, configMap: { name: s.configMapName } },
        { name: SIDECAR_VOLUMES.certs, secret: { secretName: s.certSecretName } },
        ...(s.trust?.volumes ?? []),
        { name: SIDECAR_VOLUMES.tmp, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
        ...((spec.volumes as unknown[] | undefined) ?? []),
      ],
    },
  };
}

/** The pod volumes the injection adds; an app volume may not start with "typemesh-". */
export const SIDECAR_VOLUMES = { config: 'typemesh-config', certs: 'typemesh-certs', tmp: 'typemesh-tmp' } as const;

/** The pod spec (without metadata) of a MeshService workload: its app pod with the sidecar injected. */
export function podSpec(w: WorkloadPodSpec, initArgs: () => string[]): Record<string, unknown> {
  const original = (p: AppProbe) => ({
    httpGet: { path: p.path, port: p.portName, scheme: 'HTTP' },
    initialDelaySeconds: p.initialDelaySeconds,
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
  });
  const liveness = w.probes.find((p) => p.kind === 'livez');
  const readiness = w.probes.find((p) => p.kind === 'readyz');

  const app: Record<string, unknown> = {
    name: APP_CONTAINER,
    image: w.image,
    ...(w.command ? { command: w.command } : {}),
    ...(w.args ? { args: w.args } : {}),
    ...(w.env.length > 0 ? { env: w.env } : {}),
    ports: w.ports.map((p) => ({ name: p.name, containerPort: p.containerPort, protocol: 'TCP' })),
    resources: k8sResources(w.resources),
    ...(liveness ? { livenessProbe: original(liveness) } : {}),
    ...(readiness ? { readinessProbe: original(readiness) } : {}),
    securityContext: k8sSecurityContext(w.securityContext),
    ...(w.appVolumes?.volumeMounts.length ? { volumeMounts: w.appVolumes.volumeMounts } : {}),
  };

  const appPod: Record<string, unknown> = {
    serviceAccountName: w.serviceAccountName,
    // Neither the app nor the sidecar talks to the Kubernetes API.
    automountServiceAccountToken: false,
    ...(w.spreadSelector ? {
      topologySpreadConstraints: ['topology.kubernetes.io/zone', 'kubernetes.io/hostname'].map((topologyKey) => ({
        maxSkew: 1, topologyKey, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: w.spreadSelector },
      })),
    } : {}),
    containers: [app],
    ...(w.appVolumes?.volumes.length ? { volumes: w.appVolumes.volumes } : {}),
  };
  return injectSidecar({ spec: appPod }, {
    sidecarMode: w.sidecarMode,
    interception: w.interception,
    iptablesBackend: w.iptablesBackend,
    sidecarImage: w.sidecarImage,
    sidecarResources: w.sidecarResources,
    configMapName: w.configMapName,
    certSecretName: w.certSecretName,
    trust: w.trust,
    appContainer: APP_CONTAINER,
    appPorts: w.ports.map((p) => ({ name: p.name, port: p.containerPort })),
    metrics: false,
  }, initArgs).spec;
}

/** A Kubernetes SecurityContext from ContainerSecurityContext (unset fields omitted). */
export function k8sSecurityContext(c: ContainerSecurityContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['runAsUser', 'runAsGroup', 'runAsNonRoot', 'readOnlyRootFilesystem', 'allowPrivilegeEscalation', 'privileged'] as const) {
    if (c[k] !== undefined) out[k] = c[k];
  }
  if (c.capabilities && (c.capabilities.add?.length || c.capabilities.drop?.length)) {
    out.capabilities = {
      ...(c.capabilities.add?.length ? { add: c.capabilities.add } : {}),
      ...(c.capabilities.drop?.length ? { drop: c.capabilities.drop } : {}),
    };
  }
  return out;
}
