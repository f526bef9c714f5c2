/**
 * The pod a MeshService synthesizes, as the kubelet would read it: which container starts when
 * (native or legacy sidecar), what tells the proxy's readiness and liveness, how interception is
 * set up (init container, CNI annotation, none), and the app's environment.
 */
import { InterceptionMode, Mesh, MeshService, SidecarMode } from '../../src';
import { meshedPod } from '../../src/cni/pod-options';
import { parseInterceptionArgs } from '../../src/proxy-image/interception/args';
import { find, newChart, synth } from './helpers';
import { validateObject } from './k8s-schemas';

function podOf(meshProps: Partial<ConstructorParameters<typeof Mesh>[2]> = {}, version: Record<string, unknown> = {}) {
  const chart = newChart();
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', ...meshProps });
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'x/payment:1' }] });
  const order = new MeshService(chart, 'order', { mesh, name: 'order', versions: [{ name: 'v1', image: 'x/order:1', readiness: { path: '/ready' }, ...version }] });
  order.callsTo(payment);
  payment.allowFrom(order);
  const objects = synth(chart);
  for (const o of objects) validateObject(o);
  return find(objects, 'Deployment', 'order-v1').spec.template;
}

const names = (cs: any[] | undefined) => (cs ?? []).map((c) => c.name);

describe('sidecar placement', () => {
  test('native (default): the rules, then the proxy as a restartable init container gated by its startup probe; the app alone', () => {
    const { metadata, spec } = podOf();
    expect(names(spec.initContainers)).toEqual(['typemesh-init', 'typemesh-proxy']);
    expect(names(spec.containers)).toEqual(['app']);
    const proxy = spec.initContainers[1];
    expect(proxy.restartPolicy).toBe('Always');
    // The kubelet starts the app only once this passes: the proxy listens and has its certificate.
    expect(proxy.startupProbe).toMatchObject({ httpGet: { path: '/healthz/ready', port: 15020, scheme: 'HTTP' }, periodSeconds: 1 });
    expect(proxy.readinessProbe.httpGet.path).toBe('/healthz/ready');
    expect(proxy.livenessProbe.httpGet.path).toBe('/healthz/live');
    expect(proxy.lifecycle).toBeUndefined();
    expect(proxy.env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ]);
    expect(metadata.annotations['kubectl.kubernetes.io/default-container']).toBe('app');
    expect(spec.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' } });
  });

  test('legacy: the proxy is the first container and its postStart hook waits for readiness before the app starts', () => {
    const { spec } = podOf({ sidecarMode: SidecarMode.LEGACY });
    expect(names(spec.initContainers)).toEqual(['typemesh-init']);
    expect(names(spec.containers)).toEqual(['typemesh-proxy', 'app']);
    const proxy = spec.containers[0];
    expect(proxy.restartPolicy).toBeUndefined();
    expect(proxy.lifecycle).toEqual({ postStart: { exec: { command: ['typemesh-proxy', '--wait-ready'] } } });
    expect(proxy.startupProbe.httpGet.path).toBe('/healthz/ready');
  });

  test('an unknown sidecarMode or interception is refused, naming the prop', () => {
    expect(() => podOf({ sidecarMode: 'sidecar' as SidecarMode })).toThrow(/sidecarMode.*must be one of native, legacy/);
    expect(() => podOf({ interception: 'ebpf' as InterceptionMode })).toThrow(/interception.*must be one of init-container, cni, explicit/);
  });
});

describe('interception', () => {
  test('CNI: no init container; the annotation holds the flags the init container would get, and the CNI plugin reads them', () => {
    const initArgs = podOf().spec.initContainers[0].args;
    const { metadata, spec } = podOf({ interception: InterceptionMode.CNI });
    expect(names(spec.initContainers)).toEqual(['typemesh-proxy']);
    const annotation = metadata.annotations['typemesh.io/interception-args'];
    expect(annotation).toBe(initArgs.join(' '));
    // As containerd hands the pod's annotations to the plugin.
    const pod = meshedPod(
      { command: 'ADD', containerId: 'c1', netns: '/var/run/netns/x', ifName: 'eth0', args: { K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: 'order-v1-abc' } },
      { cniVersion: '1.0.0', name: 'k8s', type: 'typemesh-cni', runtimeConfig: { 'io.kubernetes.cri.pod-annotations': metadata.annotations } },
    );
    expect(pod?.command.options).toEqual(parseInterceptionArgs(initArgs).options);
    expect(pod?.command.options.outboundPorts).toEqual([80]);
  });

  test('explicit: no init container and no annotation', () => {
    const { metadata, spec } = podOf({ interception: InterceptionMode.EXPLICIT });
    expect(names(spec.initContainers)).toEqual(['typemesh-proxy']);
    expect(metadata.annotations['typemesh.io/interception-args']).toBeUndefined();
  });

  test('excludeOutboundCidrs reaches typemesh-init (and the CNI annotation), normalized', () => {
    const { spec } = podOf({ excludeOutboundCidrs: ['169.254.169.254', '10.0.0.0/8', '10.0.0.0/8'] });
    const args: string[] = spec.initContainers[0].args;
    expect(args.slice(args.indexOf('--exclude-outbound-cidrs'), args.indexOf('--exclude-outbound-cidrs') + 2))
      .toEqual(['--exclude-outbound-cidrs', '169.254.169.254/32,10.0.0.0/8']);
    expect(parseInterceptionArgs(args).options.excludeOutboundCidrs).toEqual(['169.254.169.254/32', '10.0.0.0/8']);
    const cni = podOf({ interception: InterceptionMode.CNI, excludeOutboundCidrs: ['fd00:ec2::254/128'] });
    expect(cni.metadata.annotations['typemesh.io/interception-args']).toContain('--exclude-outbound-cidrs fd00:ec2::254/128');
  });

  test('a bad CIDR, or CIDRs with nothing to exclude from, are refused naming the prop', () => {
    expect(() => podOf({ excludeOutboundCidrs: ['10.0.0.0/33'] })).toThrow(/excludeOutboundCidrs\[0\].*10\.0\.0\.0\/33.*not an IPv4 or IPv6/);
    expect(() => podOf({ interception: InterceptionMode.EXPLICIT, excludeOutboundCidrs: ['10.0.0.0/8'] })).toThrow(/excludeOutboundCidrs.*no effect with InterceptionMode.EXPLICIT/);
  });
});

describe('the app container', () => {
  test('a restricted securityContext by default; a version may set its own', () => {
    expect(podOf().spec.containers[0].securityContext).toEqual({ runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const own = { runAsUser: 10001, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
    expect(podOf({}, { securityContext: own }).spec.containers[0].securityContext).toEqual(own);
  });

  test('env from values, the downward API and Secrets, in that order', () => {
    const { spec } = podOf({}, { env: { LOG: 'info' }, fieldEnv: { POD_IP: 'status.podIP', ZONE: "metadata.labels['topology.kubernetes.io/zone']" }, secretEnv: { DB_PASSWORD: { secretName: 'order-db', key: 'password' } } });
    expect(spec.containers[0].env).toEqual([
      { name: 'LOG', value: 'info' },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'ZONE', valueFrom: { fieldRef: { fieldPath: "metadata.labels['topology.kubernetes.io/zone']" } } },
      { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'order-db', key: 'password' } } },
    ]);
  });

  test('bad env is refused at synth, naming the prop', () => {
    expect(() => podOf({}, { fieldEnv: { X: 'spec.containers' } })).toThrow(/versions\[0\]\.fieldEnv\.X.*downward API/);
    expect(() => podOf({}, { env: { X: '1' }, fieldEnv: { X: 'metadata.name' } })).toThrow(/sets this environment variable twice/);
    expect(() => podOf({}, { secretEnv: { X: { secretName: 'Bad_Name', key: 'k' } } })).toThrow(/secretEnv\.X\.secretName/);
    expect(() => podOf({}, { env: { '1X': 'v' } })).toThrow(/not a valid environment variable name/);
  });

  test('the sidecar requests memory for its measured idle use', () => {
    const proxy = podOf().spec.initContainers[1];
    expect(proxy.resources).toEqual({ requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '256Mi' } });
  });

  test('opt-in PodDisruptionBudget and zone/node spread for a version', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'x/api:1', replicas: 3, maxUnavailable: 1, spreadAcrossZones: true }, { name: 'v2', image: 'x/api:2' }] });
    const objects = synth(chart);
    for (const o of objects) validateObject(o);
    expect(find(objects, 'PodDisruptionBudget', 'api-v1').spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { app: 'api', version: 'v1' } } });
    expect(objects.filter((o) => o.kind === 'PodDisruptionBudget')).toHaveLength(1);
    const spread = find(objects, 'Deployment', 'api-v1').spec.template.spec.topologySpreadConstraints;
    expect(spread.map((c: any) => [c.topologyKey, c.maxSkew, c.whenUnsatisfiable, c.labelSelector.matchLabels])).toEqual([
      ['topology.kubernetes.io/zone', 1, 'ScheduleAnyway', { app: 'api', version: 'v1' }],
      ['kubernetes.io/hostname', 1, 'ScheduleAnyway', { app: 'api', version: 'v1' }],
    ]);
    expect(find(objects, 'Deployment', 'api-v2').spec.template.spec.topologySpreadConstraints).toBeUndefined();
    expect(() => new MeshService(newChart(), 'bad', { mesh: new Mesh(newChart(), 'm2', { namespace: 'other' }), name: 'bad', versions: [{ name: 'v1', image: 'x/b:1', maxUnavailable: 0 }] }))
      .toThrow(/versions\[0\]\.maxUnavailable/);
  });

  test('app volumes: mounted in the app container only, one source each, names clear of the sidecar\'s', () => {
    const { spec } = podOf({}, { volumes: [
      { name: 'settings', mountPath: '/etc/order', configMap: 'order-settings' },
      { name: 'db-cert', mountPath: '/etc/db', secret: 'order-db-tls' },
      { name: 'scratch', mountPath: '/var/cache/order', emptyDir: true },
    ] });
    expect(spec.containers[0].volumeMounts).toEqual([
      { name: 'settings', mountPath: '/etc/order', readOnly: true },
      { name: 'db-cert', mountPath: '/etc/db', readOnly: true },
      { name: 'scratch', mountPath: '/var/cache/order' },
    ]);
    expect(spec.volumes.slice(-3)).toEqual([
      { name: 'settings', configMap: { name: 'order-settings' } },
      { name: 'db-cert', secret: { secretName: 'order-db-tls' } },
      { name: 'scratch', emptyDir: {} },
    ]);
    expect(spec.initContainers.find((c: any) => c.name === 'typemesh-proxy').volumeMounts.map((m: any) => m.name)).not.toContain('settings');
    expect(() => podOf({}, { volumes: [{ name: 'typemesh-certs', mountPath: '/x', emptyDir: true }] })).toThrow(/volumes\[0\]\.name.*typemesh-/);
    expect(() => podOf({}, { volumes: [{ name: 'a', mountPath: '/x', emptyDir: true, secret: 's' }] })).toThrow(/volumes\[0\].*has 2 sources/);
    expect(() => podOf({}, { volumes: [{ name: 'a', mountPath: 'x', emptyDir: true }] })).toThrow(/volumes\[0\]\.mountPath.*absolute/);
  });
});
