/**
 * Runs a synthesized pod template with podman under runc, the way a kubelet would: one
 * network namespace for the pod, init containers to completion in order (a native sidecar,
 * an init container with `restartPolicy: Always`, is started and awaited instead), then
 * the containers, each with the command, args, env, user, capabilities, read-only root and
 * volume mounts its spec gives. Only the fields TypeMesh's pods use are translated; any
 * other field of a container fails loudly rather than being silently ignored.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const ROOT = path.resolve(__dirname, '../..');
export const BUILD_SCRIPT = path.join(ROOT, 'scripts/build-images.sh');
const PODMAN_TIMEOUT_MS = 180_000;

/** A container of a pod template (the fields read here). */
export interface ContainerSpec {
  readonly name: string;
  readonly image: string;
  readonly command?: string[];
  readonly args?: string[];
  readonly env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  readonly restartPolicy?: string;
  readonly securityContext?: {
    readonly runAsUser?: number;
    readonly runAsGroup?: number;
    readonly runAsNonRoot?: boolean;
    readonly readOnlyRootFilesystem?: boolean;
    readonly allowPrivilegeEscalation?: boolean;
    readonly capabilities?: { readonly add?: string[]; readonly drop?: string[] };
    readonly seccompProfile?: { readonly type: string };
  };
  readonly volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  readonly [key: string]: unknown;
}

/** A pod template's spec (the fields read here). */
export interface PodSpec {
  readonly initContainers?: ContainerSpec[];
  readonly containers: ContainerSpec[];
  readonly volumes?: Array<{ name: string; configMap?: unknown; secret?: unknown; emptyDir?: { medium?: string; sizeLimit?: string } }>;
  /** Pod-level defaults of the containers' securityContext (and fsGroup). */
  readonly securityContext?: ContainerSpec['securityContext'] & { readonly fsGroup?: number };
  readonly [key: string]: unknown;
}

/** Where each volume of the pod comes from on this machine (config maps and secrets as host dirs). */
export type VolumeSources = Readonly<Record<string, string>>;

/** What the pod runner needs besides the spec. */
export interface PodRun {
  /** Prefix of every container name (`<prefix>-<container>`). */
  readonly name: string;
  /** The pod's network namespace (a name under /run/netns). */
  readonly netns: string;
  readonly spec: PodSpec;
  readonly volumes: VolumeSources;
  /** Extra environment for a container, by container name (a test's stand-in for a ConfigMap, say). */
  readonly extraEnv?: Readonly<Record<string, Record<string, string>>>;
  /** A file mounted read-only as /etc/hosts in every container (the cluster's DNS stand-in). */
  readonly hostsFile?: string;
  /** What the downward API answers (`env[].valueFrom.fieldRef`). */
  readonly fields?: Readonly<Record<string, string>>;
}

// Fields of a container this runner translates or knowingly leaves to the kubelet.
const KNOWN_FIELDS = new Set([
  'name', 'image', 'command', 'args', 'env', 'restartPolicy', 'securityContext', 'volumeMounts',
  // Probes, ports and resources are the kubelet's and the scheduler's: the test awaits
  // readiness itself, ports are only documentation in a shared namespace, cgroup limits
  // are not enforced under cgroupfs here.
  'ports', 'resources', 'readinessProbe', 'livenessProbe', 'startupProbe', 'imagePullPolicy', 'lifecycle',
  'terminationMessagePolicy',
]);

/** podman with the storage and runtime configuration of scripts/build-images.sh. */
export async function podman(args: readonly string[], timeout = PODMAN_TIMEOUT_MS): Promise<string> {
  const { stdout } = await execFileAsync(BUILD_SCRIPT, ['podman', ...args], { encoding: 'utf8', timeout, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** podman, synchronously, never throwing (for clean-up). */
export function podmanQuiet(args: readonly string[]): void {
  try {
    execFileSync(BUILD_SCRIPT, ['podman', ...args], { stdio: 'pipe', timeout: PODMAN_TIMEOUT_MS });
  } catch {
    // Already gone.
  }
}

/** The `podman run` arguments for one container of the pod. */
export function runArgs(pod: PodRun, c: ContainerSpec, detach: boolean): string[] {
  const unknown = Object.keys(c).filter((k) => !KNOWN_FIELDS.has(k));
  if (unknown.length > 0) throw new Error(`container ${c.name}: the pod runner does not translate ${unknown.join(', ')}`);
  // The pod's securityContext gives defaults that the container's own overrides.
  const { fsGroup, ...podDefaults } = pod.spec.securityContext ?? {};
  const sc = { ...podDefaults, ...(c.securityContext ?? {}) };
  const args = ['run', detach ? '--detach' : '--rm', '--name', `${pod.name}-${c.name}`, '--network', `ns:/run/netns/${pod.netns}`, '--pull=never'];
  if (sc.runAsUser !== undefined) args.push('--user', `${sc.runAsUser}${sc.runAsGroup !== undefined ? `:${sc.runAsGroup}` : ''}`);
  // A read-only root as Kubernetes makes it: podman would otherwise add tmpfs on /tmp, /run, /var/tmp.
  if (fsGroup !== undefined) args.push('--group-add', String(fsGroup));
  if (sc.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) args.push('--cap-add', cap);
  if (sc.seccompProfile && sc.seccompProfile.type !== 'RuntimeDefault') throw new Error(`container ${c.name}: seccompProfile ${sc.seccompProfile.type} is not translated`);
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const value = e.value ?? (field !== undefined ? pod.fields?.[field] : undefined);
    if (value === undefined) throw new Error(`container ${c.name}: env ${e.name} has neither a value nor a fieldRef this runner knows (${JSON.stringify(e.valueFrom)})`);
    args.push('--env', `${e.name}=${value}`);
  }
  for (const [k, v] of Object.entries(pod.extraEnv?.[c.name] ?? {})) args.push('--env', `${k}=${v}`);
  for (const m of c.volumeMounts ?? []) {
    const volume = pod.spec.volumes?.find((v) => v.name === m.name);
    if (!volume) throw new Error(`container ${c.name}: volume ${m.name} is not in the pod`);
    if (volume.emptyDir) {
      const size = volume.emptyDir.sizeLimit ? `,size=${volume.emptyDir.sizeLimit.replace(/i$/, '').toLowerCase()}` : '';
      args.push('--tmpfs', `${m.mountPath}:rw,nosuid,nodev${size}`);
    } else {
      const source = pod.volumes[m.name];
      if (!source) throw new Error(`container ${c.name}: no host directory given for volume ${m.name}`);
      args.push('--volume', `${source}:${m.mountPath}:${m.readOnly ? 'ro' : 'rw'}`);
    }
  }
  if (pod.hostsFile) args.push('--volume', `${pod.hostsFile}:/etc/hosts:ro`);
  // Kubernetes' command replaces the image's ENTRYPOINT, args its CMD.
  if (c.command) args.push('--entrypoint', JSON.stringify(c.command));
  args.push(c.image, ...(c.args ?? []));
  return args;
}

/**
 * What the kubelet checks before starting a container with `runAsNonRoot: true` and no
 * `runAsUser`: the image's own user must be a non-zero numeric uid (a name cannot be
 * verified, so the kubelet refuses it too).
 */
export async function checkRunAsNonRoot(pod: PodRun, c: ContainerSpec): Promise<void> {
  const sc = { ...(pod.spec.securityContext ?? {}), ...(c.securityContext ?? {}) };
  if (sc.runAsNonRoot !== true) return;
  const uid = sc.runAsUser ?? (await podman(['image', 'inspect', '--format', '{{.Config.User}}', c.image])).trim().split(':')[0];
  if (!/^\d+$/.test(String(uid)) || Number(uid) === 0) {
    throw new Error(`container ${c.name}: runAsNonRoot is set but it would run as ${JSON.stringify(String(uid) || 'root')}: the kubelet refuses to start it`);
  }
}

/** The name podman knows a container of the pod by. */
export function containerName(pod: PodRun, container: string): string {
  return `${pod.name}-${container}`;
}

/** Every container name of the pod, for clean-up. */
export function containerNames(pod: PodRun): string[] {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map((c) => containerName(pod, c.name));
}

/**
 * Starts the pod: init containers in order (each must exit 0; a native sidecar is started
 * and `awaitReady` is called for it), then the containers in order. Returns the names of
 * the containers left running.
 */
export async function startPod(pod: PodRun, awaitReady: (container: ContainerSpec) => Promise<void>): Promise<string[]> {
  const running: string[] = [];
  for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) await checkRunAsNonRoot(pod, c);
  for (const c of pod.spec.initContainers ?? []) {
    if (c.restartPolicy === 'Always') {
      await podman(runArgs(pod, c, true));
      running.push(containerName(pod, c.name));
      await awaitReady(c);
    } else {
      try {
        await podman(runArgs(pod, c, false));
      } catch (e) {
        const err = e as { stderr?: string; stdout?: string; message: string };
        throw new Error(`init container ${c.name} of ${pod.name} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
      }
    }
  }
  for (const c of pod.spec.containers) {
    await podman(runArgs(pod, c, true));
    running.push(containerName(pod, c.name));
  }
  return running;
}
