/**
 * How a workload's pod is built: the app container, the injected sidecar and the
 * interception init container. Kept apart from MeshService so that the pod layout (the
 * part the proxy image depends on: paths, ports, uid, flags) is in one place.
 */
import { Lazy } from 'cdk8s';
import type { ContainerResources } from './mesh';

/** Ports and identities of the sidecar, in the style of Istio's. */
export const SidecarPorts = {
  /** Outbound listener (loopback only): the app's intercepted outbound traffic. */
  OUTBOUND: 15001,
  /** Inbound listener: mTLS from other sidecars; intercepted inbound traffic. */
  INBOUND: 15006,
  /** Admin: /metrics, /healthz/ready, /app-health/... (the declared app probes); config dump and clusters on loopback only. */
  ADMIN: 15020,
  /** Lowest port reserved for the sidecar; apps may not use 15000-15090. */
  RESERVED_MIN: 15000,
  /** Highest port reserved for the sidecar. */
  RESERVED_MAX: 15090,
} as const;

/**
 * The name of the sidecar container's admin port (15020). A PodMonitor scrapes the port by
 * this name, so renaming it breaks scraping.
 */
export const SIDECAR_ADMIN_PORT_NAME = 'mesh-admin';

/** The sidecar runs as this uid; the interception rules exclude its traffic. */
export const SIDECAR_UID = 1337;

/** Where the sidecar finds its config (the ConfigMap is mounted here). */
export const SIDECAR_CONFIG_DIR = '/etc/typemesh/config';
/** Where the sidecar finds its certificate (the cert-manager Secret is mounted here). */
export const SIDECAR_CERTS_DIR = '/etc/typemesh/certs';
/** The key of the sidecar config in its ConfigMap. */
export const SIDECAR_CONFIG_KEY = 'sidecar.yaml';
/** The name of the app container (it appears in the probe paths). */
export const APP_CONTAINER = 'app';
/** The name of the sidecar container. */
export const SIDECAR_CONTAINER = 'typemesh-proxy';
/** The name of the interception init container. */
export const INIT_CONTAINER = 'typemesh-init';

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
  readonly env: Array<{ name: string; value: string }>;
  readonly ports: Array<{ name: string; containerPort: number }>;
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

/** The pod spec (without metadata) of a workload with its sidecar injected. */
export function podSpec(w: WorkloadPodSpec, initArgs: () => string[]): Record<string, unknown> {
  const rewrittenProbe = (p: AppProbe) => ({
    // The kubelet cannot reach the app's own port (inbound traffic is intercepted and needs
    // mTLS), so it probes the sidecar's admin port, which probes the app on loopback.
    httpGet: { path: appHealthPath(p), port: SidecarPorts.ADMIN, scheme: 'HTTP' },
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
    ...(liveness ? { livenessProbe: rewrittenProbe(liveness) } : {}),
    ...(readiness ? { readinessProbe: rewrittenProbe(readiness) } : {}),
  };

  const sidecar = {
    name: SIDECAR_CONTAINER,
    image: w.sidecarImage,
    command: ['typemesh-proxy'],
    args: ['--config', `${SIDECAR_CONFIG_DIR}/${SIDECAR_CONFIG_KEY}`],
    // No containerPort for the outbound listener: it listens on loopback only and is reached
    // by the pod's own processes, never through the pod IP.
    ports: [
      { name: 'mesh-inbound', containerPort: SidecarPorts.INBOUND, protocol: 'TCP' },
      { name: SIDECAR_ADMIN_PORT_NAME, containerPort: SidecarPorts.ADMIN, protocol: 'TCP' },
    ],
    readinessProbe: {
      httpGet: { path: '/healthz/ready', port: SidecarPorts.ADMIN, scheme: 'HTTP' },
      periodSeconds: 5,
      failureThreshold: 3,
    },
    resources: k8sResources(w.sidecarResources),
    securityContext: {
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: 'typemesh-config', mountPath: SIDECAR_CONFIG_DIR, readOnly: true },
      { name: 'typemesh-certs', mountPath: SIDECAR_CERTS_DIR, readOnly: true },
      ...(w.trust?.volumeMounts ?? []),
      { name: 'typemesh-tmp', mountPath: '/tmp' },
    ],
  };

  const init = {
    name: INIT_CONTAINER,
    image: w.sidecarImage,
    command: ['typemesh-init'],
    args: Lazy.any({ produce: initArgs }),
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    // The only container with network privileges: it writes the iptables rules and exits.
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };

  return {
    serviceAccountName: w.serviceAccountName,
    // Neither the app nor the sidecar talks to the Kubernetes API.
    automountServiceAccountToken: false,
    initContainers: [init],
    // The sidecar comes first so that it starts before the app.
    containers: [sidecar, app],
    volumes: [
      { name: 'typemesh-config', configMap: { name: w.configMapName } },
      { name: 'typemesh-certs', secret: { secretName: w.certSecretName } },
      ...(w.trust?.volumes ?? []),
      { name: 'typemesh-tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
    ],
  };
}
