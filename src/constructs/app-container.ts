/**
 * The app container of a MeshService version, checked at the edge: its environment (values,
 * downward-API fields, Secret keys), its volumes and its security context against the Pod
 * Security level of the mesh's namespaces. Errors name the construct, the prop, the value and
 * the fix.
 */
import { IConstruct } from 'constructs';
import { checkDnsLabel, fail } from './errors';
import type { Mesh } from './mesh';
import type { VersionOptions } from './mesh-service';
import { ContainerSecurityContext, DEFAULT_APP_SECURITY_CONTEXT } from './sidecar-injection';

/** Pod fields the downward API offers as environment variables. */
const DOWNWARD_API_FIELD = /^(metadata\.(name|namespace|uid)|metadata\.(labels|annotations)\['[^']+'\]|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs))$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** What Kubernetes accepts as an environment variable name (C_IDENTIFIER-like, as kubectl warns otherwise). */
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** The app's environment: plain values, then downward-API fields, then Secret keys. */
export function appEnv(c: IConstruct, v: VersionOptions, index: number): Array<Record<string, unknown>> {
  const env: Array<Record<string, unknown>> = Object.entries(v.env ?? {}).map(([k, value]) => ({ name: k, value }));
  for (const [name, fieldPath] of Object.entries(v.fieldEnv ?? {})) {
    if (!DOWNWARD_API_FIELD.test(fieldPath)) {
      fail({ construct: c, prop: `versions[${index}].fieldEnv.${name}`, value: fieldPath, problem: 'is not a pod field the downward API offers as an environment variable', fix: 'use metadata.name, metadata.namespace, metadata.uid, metadata.labels[\'<key>\'], metadata.annotations[\'<key>\'], spec.nodeName, spec.serviceAccountName, status.hostIP, status.podIP or status.podIPs' });
    }
    env.push({ name, valueFrom: { fieldRef: { fieldPath } } });
  }
  for (const [name, ref] of Object.entries(v.secretEnv ?? {})) {
    if (!DNS_SUBDOMAIN.test(ref.secretName) || ref.secretName.length > 253) {
      fail({ construct: c, prop: `versions[${index}].secretEnv.${name}.secretName`, value: ref.secretName, problem: 'is not a Secret name (a DNS-1123 subdomain)', fix: 'use the name of a Secret in the service\'s namespace, e.g. "payment-db"' });
    }
    if (!ref.key || !/^[-._a-zA-Z0-9]+$/.test(ref.key)) {
      fail({ construct: c, prop: `versions[${index}].secretEnv.${name}.key`, value: ref.key, problem: 'is not a Secret key', fix: 'use a key of the Secret, e.g. "password"' });
    }
    env.push({ name, valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key } } });
  }
  const seen = new Set<string>();
  env.forEach((e) => {
    const name = e.name as string;
    if (!ENV_NAME.test(name)) fail({ construct: c, prop: `versions[${index}].env`, value: name, problem: 'is not a valid environment variable name', fix: 'use letters, digits, "_", "-" and "." not starting with a digit' });
    if (seen.has(name)) fail({ construct: c, prop: `versions[${index}]`, value: name, problem: 'sets this environment variable twice (env, fieldEnv, secretEnv)', fix: 'set each variable once' });
    seen.add(name);
  });
  return env;
}

/** The app's volumes, checked: one source each, names unique and clear of the sidecar's. */
export function appVolumes(c: IConstruct, v: VersionOptions, index: number): { volumes: Array<Record<string, unknown>>; volumeMounts: Array<Record<string, unknown>> } {
  const volumes: Array<Record<string, unknown>> = [];
  const volumeMounts: Array<Record<string, unknown>> = [];
  (v.volumes ?? []).forEach((vol, i) => {
    const prop = `versions[${index}].volumes[${i}]`;
    checkDnsLabel(c, `${prop}.name`, vol.name, 'app-data');
    if (vol.name.startsWith('typemesh-')) fail({ construct: c, prop: `${prop}.name`, value: vol.name, problem: 'starts with "typemesh-", which names the sidecar\'s volumes', fix: 'pick another name, e.g. "app-data"' });
    if (volumes.some((x) => x.name === vol.name)) fail({ construct: c, prop: `${prop}.name`, value: vol.name, problem: 'another volume of this version has this name', fix: 'give every volume a different name' });
    if (!vol.mountPath.startsWith('/')) fail({ construct: c, prop: `${prop}.mountPath`, value: vol.mountPath, problem: 'must be an absolute path', fix: `use "/${vol.mountPath}"` });
    const sources = [
      vol.configMap !== undefined ? { configMap: { name: vol.configMap } } : undefined,
      vol.secret !== undefined ? { secret: { secretName: vol.secret } } : undefined,
      vol.persistentVolumeClaim !== undefined ? { persistentVolumeClaim: { claimName: vol.persistentVolumeClaim } } : undefined,
      vol.emptyDir ? { emptyDir: {} } : undefined,
    ].filter((x) => x !== undefined);
    if (sources.length !== 1) fail({ construct: c, prop, value: vol.name, problem: `has ${sources.length} sources`, fix: 'set exactly one of configMap, secret, persistentVolumeClaim, emptyDir' });
    volumes.push({ name: vol.name, ...sources[0] });
    const readOnly = vol.readOnly ?? (vol.configMap !== undefined || vol.secret !== undefined);
    volumeMounts.push({ name: vol.name, mountPath: vol.mountPath, ...(readOnly ? { readOnly: true } : {}) });
  });
  return { volumes, volumeMounts };
}

/** The app's security context; in a restricted mesh, refused unless it passes restricted. */
export function appSecurityContext(c: IConstruct, mesh: Mesh, v: VersionOptions, index: number): ContainerSecurityContext {
  const ctx = v.securityContext ?? DEFAULT_APP_SECURITY_CONTEXT;
  if (mesh.podSecurityLevel === 'restricted') {
    const problems = restrictedProblems(ctx);
    if (problems.length > 0) {
      fail({ construct: c, prop: `versions[${index}].securityContext`, value: ctx, problem: `would not pass the restricted Pod Security level that the mesh's namespace enforces (interception ${mesh.interception}): ${problems.join('; ')}`, fix: 'start from { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } }, or use InterceptionMode.INIT_CONTAINER (privileged namespace)' });
    }
  }
  return ctx;
}

/**
 * What keeps a container's security context from passing the `restricted` Pod Security level
 * (the pod sets the RuntimeDefault seccomp profile); the pod-level runAsNonRoot counts when the
 * container sets none.
 */
export function restrictedProblems(ctx: ContainerSecurityContext, podRunAsNonRoot?: boolean): string[] {
  const problems: string[] = [];
  if (ctx.privileged) problems.push('privileged is true');
  if (ctx.allowPrivilegeEscalation !== false) problems.push('allowPrivilegeEscalation must be false');
  if ((ctx.runAsNonRoot ?? podRunAsNonRoot) !== true) problems.push('runAsNonRoot must be true');
  if (ctx.runAsUser === 0) problems.push('runAsUser is 0');
  if (!(ctx.capabilities?.drop ?? []).includes('ALL')) problems.push('capabilities.drop must include ALL');
  const added = (ctx.capabilities?.add ?? []).filter((a) => a !== 'NET_BIND_SERVICE');
  if (added.length > 0) problems.push(`capabilities.add may hold only NET_BIND_SERVICE, not ${added.join(', ')}`);
  return problems;
}
