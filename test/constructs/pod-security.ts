/**
 * A checker of the Kubernetes Pod Security Standards (baseline and restricted), written from
 * https://kubernetes.io/docs/concepts/security/pod-security-standards/ (policy version 1.33),
 * so that tests can say which level a synthesized pod passes, as the API server's Pod Security
 * admission would. Every control applies to containers, initContainers and ephemeralContainers.
 *
 * Not implemented: the Windows-only details beyond hostProcess, and the rule history of older
 * policy versions (the checker is the 1.33 policy).
 */

/** A Pod Security Standards level. */
export type Level = 'privileged' | 'baseline' | 'restricted';

/** A control a pod fails. */
export interface Violation {
  /** The lowest level whose policy has this control. */
  readonly level: 'baseline' | 'restricted';
  /** The control's name as the Kubernetes docs spell it. */
  readonly control: string;
  /** The container, when the violation is a container's. */
  readonly container?: string;
  /** What is wrong. */
  readonly detail: string;
}

type Json = any;

/** Capabilities baseline allows to add (docs: "Capabilities", baseline). */
export const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE',
  'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
];
/** Sysctls baseline allows (docs: "Sysctls"). */
export const SAFE_SYSCTLS = [
  'kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
];
/** Volume types restricted allows (docs: "Volume Types"). */
export const RESTRICTED_VOLUME_TYPES = [
  'configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'image', 'persistentVolumeClaim', 'projected', 'secret',
];
const SELINUX_TYPES = ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];

/** Every container of a pod spec, each with its list's name. */
function containersOf(spec: Json): Json[] {
  return [...(spec.containers ?? []), ...(spec.initContainers ?? []), ...(spec.ephemeralContainers ?? [])];
}

/** The controls a pod spec (and its metadata's annotations) fails, at both levels. */
export function podSecurityViolations(spec: Json, metadata: Json = {}): Violation[] {
  const out: Violation[] = [];
  const v = (level: Violation['level'], control: string, detail: string, container?: string) =>
    out.push({ level, control, detail, ...(container ? { container } : {}) });
  const pod = spec.securityContext ?? {};
  const containers = containersOf(spec);

  // ---- baseline ----
  if (pod.windowsOptions?.hostProcess === true) v('baseline', 'HostProcess', 'securityContext.windowsOptions.hostProcess is true');
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[f] === true) v('baseline', 'Host Namespaces', `${f} is true`);
  for (const vol of spec.volumes ?? []) if (vol.hostPath !== undefined) v('baseline', 'HostPath Volumes', `volume ${vol.name} is a hostPath`);
  const podAppArmor = pod.appArmorProfile?.type;
  if (podAppArmor !== undefined && !['RuntimeDefault', 'Localhost'].includes(podAppArmor)) v('baseline', 'AppArmor', `securityContext.appArmorProfile.type is ${podAppArmor}`);
  for (const [k, val] of Object.entries<string>(metadata.annotations ?? {})) {
    if (k.startsWith('container.apparmor.security.beta.kubernetes.io/') && val !== 'runtime/default' && !val.startsWith('localhost/')) {
      v('baseline', 'AppArmor', `annotation ${k} is ${val}`);
    }
  }
  const seLinux = (se: Json, where: string, container?: string) => {
    if (!se) return;
    if (se.type !== undefined && !SELINUX_TYPES.includes(se.type)) v('baseline', 'SELinux', `${where}.seLinuxOptions.type is ${se.type}`, container);
    if (se.user) v('baseline', 'SELinux', `${where}.seLinuxOptions.user is set`, container);
    if (se.role) v('baseline', 'SELinux', `${where}.seLinuxOptions.role is set`, container);
  };
  seLinux(pod.seLinuxOptions, 'securityContext');
  if (pod.seccompProfile?.type === 'Unconfined') v('baseline', 'Seccomp', 'securityContext.seccompProfile.type is Unconfined');
  for (const s of pod.sysctls ?? []) if (!SAFE_SYSCTLS.includes(s.name)) v('baseline', 'Sysctls', `sysctl ${s.name} is not in the safe set`);

  for (const c of containers) {
    const sc = c.securityContext ?? {};
    const name = c.name;
    if (sc.windowsOptions?.hostProcess === true) v('baseline', 'HostProcess', 'windowsOptions.hostProcess is true', name);
    if (sc.privileged === true) v('baseline', 'Privileged Containers', 'privileged is true', name);
    const added: string[] = sc.capabilities?.add ?? [];
    const beyondBaseline = added.filter((a) => !BASELINE_CAPABILITIES.includes(a));
    if (beyondBaseline.length > 0) v('baseline', 'Capabilities', `adds ${beyondBaseline.join(', ')}`, name);
    for (const p of c.ports ?? []) if (p.hostPort !== undefined && p.hostPort !== 0) v('baseline', 'Host Ports', `port ${p.containerPort} has hostPort ${p.hostPort}`, name);
    const aa = sc.appArmorProfile?.type;
    if (aa !== undefined && !['RuntimeDefault', 'Localhost'].includes(aa)) v('baseline', 'AppArmor', `appArmorProfile.type is ${aa}`, name);
    seLinux(sc.seLinuxOptions, 'securityContext', name);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') v('baseline', '/proc Mount Type', `procMount is ${sc.procMount}`, name);
    if (sc.seccompProfile?.type === 'Unconfined') v('baseline', 'Seccomp', 'seccompProfile.type is Unconfined', name);
  }

  // ---- restricted ----
  for (const vol of spec.volumes ?? []) {
    const type = Object.keys(vol).find((k) => k !== 'name');
    if (type === undefined || !RESTRICTED_VOLUME_TYPES.includes(type)) v('restricted', 'Volume Types', `volume ${vol.name} is of type ${type}`);
  }
  if (pod.runAsUser === 0) v('restricted', 'Running as Non-root user', 'securityContext.runAsUser is 0');
  const podSeccomp = pod.seccompProfile?.type;
  if (podSeccomp !== undefined && !['RuntimeDefault', 'Localhost'].includes(podSeccomp)) {
    v('restricted', 'Seccomp', `securityContext.seccompProfile.type is ${podSeccomp}`);
  }
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    const name = c.name;
    if (sc.allowPrivilegeEscalation !== false) v('restricted', 'Privilege Escalation', 'allowPrivilegeEscalation is not false', name);
    // Non-root: the container says true, or the pod says true and the container does not say false.
    const nonRoot = sc.runAsNonRoot === true || (pod.runAsNonRoot === true && sc.runAsNonRoot !== false);
    if (!nonRoot) v('restricted', 'Running as Non-root', 'runAsNonRoot is not true (neither on the container nor inherited from the pod)', name);
    if (sc.runAsUser === 0) v('restricted', 'Running as Non-root user', 'runAsUser is 0', name);
    const seccomp = sc.seccompProfile?.type;
    if (seccomp !== undefined && !['RuntimeDefault', 'Localhost'].includes(seccomp)) v('restricted', 'Seccomp', `seccompProfile.type is ${seccomp}`, name);
    if (seccomp === undefined && !['RuntimeDefault', 'Localhost'].includes(podSeccomp)) {
      v('restricted', 'Seccomp', 'no RuntimeDefault or Localhost seccomp profile (neither on the container nor on the pod)', name);
    }
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) v('restricted', 'Capabilities', 'capabilities.drop does not include ALL', name);
    const beyond = (sc.capabilities?.add ?? []).filter((a: string) => a !== 'NET_BIND_SERVICE');
    if (beyond.length > 0) v('restricted', 'Capabilities', `adds ${beyond.join(', ')} (only NET_BIND_SERVICE may be added)`, name);
  }
  return out;
}

/** The most restrictive level a pod passes. */
export function levelPassed(spec: Json, metadata: Json = {}): Level {
  const violations = podSecurityViolations(spec, metadata);
  if (violations.some((x) => x.level === 'baseline')) return 'privileged';
  if (violations.length > 0) return 'baseline';
  return 'restricted';
}

/** Orders levels: privileged < baseline < restricted. */
export const LEVEL_ORDER: Level[] = ['privileged', 'baseline', 'restricted'];

/** The pod template of a workload object (Deployment, StatefulSet, DaemonSet, Job; CronJob's job template), else undefined. */
export function podTemplateOf(o: Json): { metadata: Json; spec: Json } | undefined {
  if (o.kind === 'Pod') return { metadata: o.metadata ?? {}, spec: o.spec };
  if (o.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template;
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind)) return o.spec?.template;
  return undefined;
}
