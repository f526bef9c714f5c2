/**
 * Synthesized pods against the Pod Security Standards, as a cluster's Pod Security admission
 * would judge them (checker: ./pod-security.ts): in CNI and explicit interception modes every
 * pod passes `restricted`; with the typemesh-init container, everything but that container's
 * NET_ADMIN and uid 0 passes `restricted`; and the Namespace's pod-security labels name the
 * level the pods pass, so a cluster enforcing them admits the pods and nothing looser.
 */
import { Chart } from 'cdk8s';
import { InterceptionMode, Mesh, MeshGateway, MeshService, SidecarMode } from '../../src';
import { find, newChart, synth } from './helpers';
import { validateObject } from './k8s-schemas';
import { LEVEL_ORDER, levelPassed, podSecurityViolations, podTemplateOf, Violation } from './pod-security';

const MODES = [InterceptionMode.INIT_CONTAINER, InterceptionMode.CNI, InterceptionMode.EXPLICIT];
const SIDECARS = [SidecarMode.NATIVE, SidecarMode.LEGACY];

/** A mesh with two services calling each other (probes, env, several ports) and a gateway. */
function meshChart(interception: InterceptionMode, sidecarMode: SidecarMode): Chart {
  const chart = newChart();
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', interception, sidecarMode, telemetry: { metrics: { podMonitor: true } } });
  const payment = new MeshService(chart, 'payment', {
    mesh, name: 'payment',
    ports: [{ port: 80, targetPort: 8080 }, { port: 9090, name: 'grpc' }],
    versions: [
      { name: 'v1', image: 'ghcr.io/acme/payment:1', readiness: { path: '/ready' }, liveness: { path: '/live' }, fieldEnv: { NODE: 'spec.nodeName' } },
      { name: 'v2', image: 'ghcr.io/acme/payment:2', securityContext: { runAsNonRoot: true, runAsUser: 10001, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } } },
    ],
  });
  const order = new MeshService(chart, 'order', { mesh, name: 'order', versions: [{ name: 'v1', image: 'ghcr.io/acme/order:1', env: { LOG: 'info' } }] });
  order.callsTo(payment);
  payment.allowFrom(order);
  const gateway = new MeshGateway(chart, 'gateway', { mesh, name: 'edge', routes: [{ hosts: ['shop.example.com'], service: order }] });
  order.allowFrom(gateway);
  return chart;
}

function pods(objects: any[]): Array<{ name: string; metadata: any; spec: any }> {
  return objects.flatMap((o) => {
    const t = podTemplateOf(o);
    return t ? [{ name: `${o.kind}/${o.metadata.name}`, metadata: t.metadata ?? {}, spec: t.spec }] : [];
  });
}

const summary = (vs: Violation[]) => vs.map((v) => `${v.level} ${v.control} ${v.container ?? '(pod)'}: ${v.detail}`);

describe.each(SIDECARS)('Pod Security of synthesized pods (sidecar %s)', (sidecarMode) => {
  test.each([InterceptionMode.CNI, InterceptionMode.EXPLICIT])('interception %s: every pod passes restricted, and the Namespace enforces restricted', (mode) => {
    const objects = synth(meshChart(mode, sidecarMode));
    for (const o of objects) validateObject(o);
    const all = pods(objects);
    expect(all.map((p) => p.name).sort()).toEqual(['Deployment/edge', 'Deployment/order-v1', 'Deployment/payment-v1', 'Deployment/payment-v2']);
    for (const p of all) {
      expect([p.name, summary(podSecurityViolations(p.spec, p.metadata))]).toEqual([p.name, []]);
      // No interception container at all.
      expect(containerNames(p.spec)).not.toContain('typemesh-init');
    }
    expect(find(objects, 'Namespace', 'shop').metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
      'pod-security.kubernetes.io/warn': 'restricted',
    });
  });

  test('interception init-container: only typemesh-init\'s NET_ADMIN and uid 0 fall short of restricted; the Namespace says privileged', () => {
    const objects = synth(meshChart(InterceptionMode.INIT_CONTAINER, sidecarMode));
    for (const o of objects) validateObject(o);
    for (const p of pods(objects)) {
      const violations = podSecurityViolations(p.spec, p.metadata);
      if (p.name === 'Deployment/edge') {
        // The gateway has no interception: restricted.
        expect(summary(violations)).toEqual([]);
        continue;
      }
      expect([p.name, summary(violations)]).toEqual([p.name, [
        'baseline Capabilities typemesh-init: adds NET_ADMIN',
        'restricted Running as Non-root typemesh-init: runAsNonRoot is not true (neither on the container nor inherited from the pod)',
        'restricted Running as Non-root user typemesh-init: runAsUser is 0',
        'restricted Capabilities typemesh-init: adds NET_ADMIN (only NET_BIND_SERVICE may be added)',
      ]]);
      // No NET_RAW: iptables (nft, the image's) writes the rules with NET_ADMIN alone.
      const init = p.spec.initContainers.find((c: any) => c.name === 'typemesh-init');
      expect(init.securityContext.capabilities).toEqual({ add: ['NET_ADMIN'], drop: ['ALL'] });
      // Without that one container, the pod passes restricted.
      const rest = { ...p.spec, initContainers: p.spec.initContainers.filter((c: any) => c !== init) };
      expect(levelPassed(rest, p.metadata)).toBe('restricted');
    }
    expect(find(objects, 'Namespace', 'shop').metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'privileged',
      'pod-security.kubernetes.io/audit': 'privileged',
      'pod-security.kubernetes.io/warn': 'privileged',
    });
  });
});

test.each(MODES.flatMap((m) => SIDECARS.map((s) => [m, s] as const)))('interception %s, sidecar %s: the Namespace enforces exactly the least level any pod passes', (mode, sidecarMode) => {
  const objects = synth(meshChart(mode, sidecarMode));
  const least = pods(objects).map((p) => levelPassed(p.spec, p.metadata)).sort((a, b) => LEVEL_ORDER.indexOf(a) - LEVEL_ORDER.indexOf(b))[0];
  expect(find(objects, 'Namespace', 'shop').metadata.labels['pod-security.kubernetes.io/enforce']).toBe(least);
});

function containerNames(spec: any): string[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])].map((c: any) => c.name);
}

describe('the checker fails on planted violations, each under its own control', () => {
  // A restricted pod from the constructs: every plant below must make it fail that control.
  const objects = synth(meshChart(InterceptionMode.CNI, SidecarMode.NATIVE));
  const base = find(objects, 'Deployment', 'payment-v1').spec.template;

  test('the unplanted pod passes restricted', () => {
    expect(summary(podSecurityViolations(base.spec, base.metadata))).toEqual([]);
  });

  const app = (spec: any) => spec.containers.find((c: any) => c.name === 'app');
  const proxy = (spec: any) => spec.initContainers.find((c: any) => c.name === 'typemesh-proxy');
  const plants: Array<[string, 'baseline' | 'restricted', string, (spec: any, metadata: any) => void]> = [
    ['hostProcess', 'baseline', 'HostProcess', (s) => { app(s).securityContext.windowsOptions = { hostProcess: true }; }],
    ['hostNetwork', 'baseline', 'Host Namespaces', (s) => { s.hostNetwork = true; }],
    ['hostPID', 'baseline', 'Host Namespaces', (s) => { s.hostPID = true; }],
    ['hostIPC', 'baseline', 'Host Namespaces', (s) => { s.hostIPC = true; }],
    ['privileged', 'baseline', 'Privileged Containers', (s) => { proxy(s).securityContext.privileged = true; }],
    ['SYS_ADMIN', 'baseline', 'Capabilities', (s) => { app(s).securityContext.capabilities.add = ['SYS_ADMIN']; }],
    ['hostPath', 'baseline', 'HostPath Volumes', (s) => { s.volumes.push({ name: 'h', hostPath: { path: '/' } }); }],
    ['hostPort', 'baseline', 'Host Ports', (s) => { app(s).ports[0].hostPort = 8080; }],
    ['AppArmor unconfined', 'baseline', 'AppArmor', (s) => { app(s).securityContext.appArmorProfile = { type: 'Unconfined' }; }],
    ['AppArmor annotation', 'baseline', 'AppArmor', (_s, m) => { m.annotations['container.apparmor.security.beta.kubernetes.io/app'] = 'unconfined'; }],
    ['SELinux type', 'baseline', 'SELinux', (s) => { s.securityContext.seLinuxOptions = { type: 'spc_t' }; }],
    ['SELinux user', 'baseline', 'SELinux', (s) => { app(s).securityContext.seLinuxOptions = { user: 'system_u' }; }],
    ['procMount', 'baseline', '/proc Mount Type', (s) => { app(s).securityContext.procMount = 'Unmasked'; }],
    ['seccomp Unconfined', 'baseline', 'Seccomp', (s) => { proxy(s).securityContext.seccompProfile = { type: 'Unconfined' }; }],
    ['sysctl', 'baseline', 'Sysctls', (s) => { s.securityContext.sysctls = [{ name: 'net.core.somaxconn', value: '1024' }]; }],
    ['nfs volume', 'restricted', 'Volume Types', (s) => { s.volumes.push({ name: 'n', nfs: { server: 'x', path: '/' } }); }],
    ['privilege escalation', 'restricted', 'Privilege Escalation', (s) => { delete app(s).securityContext.allowPrivilegeEscalation; }],
    ['runAsNonRoot unset', 'restricted', 'Running as Non-root', (s) => { delete app(s).securityContext.runAsNonRoot; }],
    ['runAsUser 0', 'restricted', 'Running as Non-root user', (s) => { proxy(s).securityContext.runAsUser = 0; }],
    ['no seccomp profile', 'restricted', 'Seccomp', (s) => { delete s.securityContext; }],
    ['drop not ALL', 'restricted', 'Capabilities', (s) => { app(s).securityContext.capabilities.drop = ['NET_RAW']; }],
    ['CHOWN added', 'restricted', 'Capabilities', (s) => { app(s).securityContext.capabilities.add = ['CHOWN']; }],
  ];

  test.each(plants)('%s', (_what, level, control, plant) => {
    const t = JSON.parse(JSON.stringify(base));
    plant(t.spec, t.metadata);
    const violations = podSecurityViolations(t.spec, t.metadata);
    expect(violations.map((v) => `${v.level} ${v.control}`)).toContain(`${level} ${control}`);
    expect(levelPassed(t.spec, t.metadata)).toBe(level === 'baseline' ? 'privileged' : 'baseline');
  });

  test('allowed values pass: NET_BIND_SERVICE at restricted, a baseline capability at baseline, safe sysctls, Localhost seccomp', () => {
    const t = JSON.parse(JSON.stringify(base));
    app(t.spec).securityContext.capabilities.add = ['NET_BIND_SERVICE'];
    t.spec.securityContext.sysctls = [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '0' }];
    proxy(t.spec).securityContext.seccompProfile = { type: 'Localhost', localhostProfile: 'p.json' };
    expect(levelPassed(t.spec, t.metadata)).toBe('restricted');
    app(t.spec).securityContext.capabilities.add = ['CHOWN'];
    expect(levelPassed(t.spec, t.metadata)).toBe('baseline');
  });
});

describe('the app securityContext in a restricted mesh', () => {
  test('one that would break restricted is refused at synth, naming the prop and the rule', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', interception: InterceptionMode.CNI });
    expect(() => new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'x/api:1', securityContext: { runAsUser: 0 } }] }))
      .toThrow(/versions\[0\]\.securityContext.*restricted.*runAsNonRoot must be true.*runAsUser is 0/);
  });

  test('with the init container (a privileged namespace) it is the user\'s choice', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'x/api:1', securityContext: { runAsUser: 0 } }] });
    const app = find(synth(chart), 'Deployment', 'api-v1').spec.template.spec.containers.find((c: any) => c.name === 'app');
    expect(app.securityContext).toEqual({ runAsUser: 0 });
  });
});
