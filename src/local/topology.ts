/**
 * Reads a mesh chart the way `cdk8s synth` sees it and lists its workload versions: every
 * ConfigMap with a `sidecar.yaml` key is one workload version's sidecar config, and the
 * Deployment that mounts it gives the replica count.
 */
import type { Chart } from 'cdk8s';
import { parseSidecarConfig, parseSidecarConfigText, SidecarConfig, SidecarConfigInput } from '../config';
// The ConfigMap key and the sidecar container's name: the pod contract the constructs write.
import { SIDECAR_CONFIG_KEY, SIDECAR_CONTAINER } from '../config/pod-contract';


/** One workload version of the mesh, as declared by the chart. */
export interface MeshWorkload {
  /** `<workload>/<version>`, the key of the local plan's processes. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly version: string;
  /** Instances to run. */
  readonly replicas: number;
  /** The sidecar config as synthesized (validated, defaults filled in). */
  readonly config: SidecarConfig;
  /**
   * The app container's literal environment from the Deployment (values from Secrets and
   * the downward API are left out): the local process gets it too, as the container would.
   */
  readonly appEnv: Readonly<Record<string, string>>;
}


interface Manifest {
  readonly kind?: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly labels?: Record<string, string> };
  readonly data?: Record<string, string>;
  readonly spec?: {
    readonly replicas?: number;
    readonly template?: {
      readonly spec?: {
        readonly volumes?: ReadonlyArray<{ readonly configMap?: { readonly name?: string } }>;
        readonly containers?: ReadonlyArray<{ readonly name?: string; readonly env?: ReadonlyArray<{ readonly name: string; readonly value?: string }> }>;
      };
    };
  };
}

/** `<workload>/<version>` of a sidecar config. */
export function workloadKey(config: Pick<SidecarConfig, 'workload'>): string {
  return `${config.workload.name}/${config.workload.version}`;
}

/** Lists the workload versions of synthesized manifests (the objects of `chart.toJson()`). */
export function workloadsFromManifests(objects: readonly unknown[]): MeshWorkload[] {
  const manifests = objects as readonly Manifest[];
  const deployments = manifests.filter((m) => m.kind === 'Deployment');
  const out: MeshWorkload[] = [];
  for (const cm of manifests) {
    const text = cm.kind === 'ConfigMap' ? cm.data?.[SIDECAR_CONFIG_KEY] : undefined;
    if (text === undefined) continue;
    const cmName = cm.metadata?.name ?? '(unnamed)';
    const config = parseSidecarConfigText(text, `ConfigMap ${cm.metadata?.namespace ?? ''}/${cmName} key ${SIDECAR_CONFIG_KEY}`);
    const key = workloadKey(config);
    if (out.some((w) => w.key === key && w.namespace === config.workload.namespace)) {
      throw new Error(`two ConfigMaps declare the sidecar of ${key} in namespace ${config.workload.namespace}; give each workload version exactly one`);
    }
    const mounting = deployments.find((d) => (d.spec?.template?.spec?.volumes ?? []).some((v) => v.configMap?.name === cmName));
    const appContainer = mounting?.spec?.template?.spec?.containers?.find((c) => c.name !== SIDECAR_CONTAINER);
    const appEnv: Record<string, string> = {};
    for (const e of appContainer?.env ?? []) if (e.value !== undefined) appEnv[e.name] = e.value;
    out.push({
      key,
      appEnv,
      name: config.workload.name,
      namespace: config.workload.namespace,
      version: config.workload.version,
      replicas: mounting?.spec?.replicas ?? 1,
      config,
    });
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/** Lists the workload versions of a chart, synthesizing it in memory. */
export function workloadsFromChart(chart: Chart): MeshWorkload[] {
  const workloads = workloadsFromManifests(chart.toJson());
  if (workloads.length === 0) {
    throw new Error(`chart "${chart.node.id}" has no ConfigMap with a "${SIDECAR_CONFIG_KEY}" key: build it with the typemesh constructs (Mesh, MeshService)`);
  }
  return workloads;
}

/** A workload version from a hand-written sidecar config (tests, or meshes not built with cdk8s). */
export function workloadFromConfig(input: SidecarConfigInput, replicas = 1, appEnv: Readonly<Record<string, string>> = {}): MeshWorkload {
  const config = parseSidecarConfig(input);
  return { key: workloadKey(config), name: config.workload.name, namespace: config.workload.namespace, version: config.workload.version, replicas, config, appEnv };
}
