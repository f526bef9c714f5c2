/**
 * The CniInstaller construct: what a cluster gets (Namespace, ServiceAccount, DaemonSet),
 * checked against the Kubernetes schemas and the Pod Security Standards. The installer pods
 * pass only `privileged` (hostPath mounts of the node's CNI directories, the host network), so
 * they live in a namespace of their own labelled so, while a CNI-mode mesh's pods and
 * Namespace stay `restricted`. What the pods run is tested in test/cni/install.test.ts.
 */
import { CniInstaller, InterceptionMode, Mesh, MeshService, MeshValidationError } from '../../src';
import { find, newChart, synth } from './helpers';
import { validateObject } from './k8s-schemas';
import { levelPassed, podSecurityViolations, podTemplateOf } from './pod-security';

describe('CniInstaller', () => {
  test('snapshot: Namespace (privileged), ServiceAccount and DaemonSet, valid against the Kubernetes schemas', () => {
    const chart = newChart();
    new CniInstaller(chart, 'cni');
    const objects = synth(chart);
    for (const o of objects) validateObject(o);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Namespace/typemesh-cni', 'ServiceAccount/typemesh-cni', 'DaemonSet/typemesh-cni']);
    expect(objects).toMatchSnapshot();
  });

  test('the installer pod passes only privileged, for exactly its host mounts, host network and uid 0; the Namespace says privileged', () => {
    const chart = newChart();
    new CniInstaller(chart, 'cni');
    const objects = synth(chart);
    const pod = podTemplateOf(find(objects, 'DaemonSet', 'typemesh-cni'))!;
    expect(levelPassed(pod.spec, pod.metadata)).toBe('privileged');
    const violations = podSecurityViolations(pod.spec, pod.metadata).map((v) => `${v.level} ${v.control}`);
    expect([...new Set(violations)].sort()).toEqual([
      'baseline Host Namespaces',
      'baseline HostPath Volumes',
      'restricted Running as Non-root',
      'restricted Running as Non-root user',
      'restricted Volume Types',
    ]);
    // No capability and no privileged flag: writing root's own files in the CNI directories needs none.
    const container = pod.spec.containers[0];
    expect(container.securityContext).toMatchObject({ capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(container.securityContext.privileged).toBeUndefined();
    expect(find(objects, 'Namespace', 'typemesh-cni').metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'privileged',
      'pod-security.kubernetes.io/audit': 'privileged',
      'pod-security.kubernetes.io/warn': 'privileged',
    });
  });

  test('beside a CNI-mode mesh: the mesh stays restricted, the installer has its own privileged namespace', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', interception: InterceptionMode.CNI, sidecarImage: 'registry.example.com/typemesh/proxy:1.2.3' });
    new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'ghcr.io/acme/payment:1' }] });
    new CniInstaller(chart, 'cni', { image: mesh.sidecarImage });
    const objects = synth(chart);
    for (const o of objects) validateObject(o);
    expect(find(objects, 'Namespace', 'shop').metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    const payment = podTemplateOf(find(objects, 'Deployment', 'payment-v1'))!;
    expect(levelPassed(payment.spec, payment.metadata)).toBe('restricted');
    const ds = find(objects, 'DaemonSet', 'typemesh-cni');
    expect(ds.spec.template.spec.containers[0].image).toBe('registry.example.com/typemesh/proxy:1.2.3');
  });

  test('props: directories, podOptionsDir, namespace, no Namespace object', () => {
    const chart = newChart();
    new CniInstaller(chart, 'cni', {
      namespace: 'kube-system', createNamespace: false, cniBinDir: '/home/kubernetes/bin/', cniConfDir: '/etc/cni/net.d', podOptionsDir: '/var/run/typemesh/pods',
    });
    const objects = synth(chart);
    for (const o of objects) validateObject(o);
    expect(objects.map((o) => o.kind)).toEqual(['ServiceAccount', 'DaemonSet']);
    const spec = find(objects, 'DaemonSet', 'typemesh-cni').spec.template.spec;
    expect(spec.volumes).toEqual([
      { name: 'cni-bin-dir', hostPath: { path: '/home/kubernetes/bin', type: 'DirectoryOrCreate' } },
      { name: 'cni-net-dir', hostPath: { path: '/etc/cni/net.d', type: 'DirectoryOrCreate' } },
    ]);
    const args = ['--cni-bin-dir', '/host/opt/cni/bin', '--cni-conf-dir', '/host/etc/cni/net.d', '--pod-options-dir', '/var/run/typemesh/pods'];
    expect(spec.containers[0].args).toEqual(['run', ...args]);
    // The readiness probe checks the same directories and entry the installer writes.
    expect(spec.containers[0].readinessProbe.exec.command).toEqual(['typemesh-cni-install', 'check', ...args]);
  });

  test.each([
    [{ cniBinDir: 'opt/cni/bin' }, /test\/cni: cniBinDir = "opt\/cni\/bin": must be an absolute directory path on the node.*Fix: use e\.g\. "\/opt\/cni\/bin"/],
    [{ cniConfDir: '/etc/cni/../net.d' }, /test\/cni: cniConfDir = "\/etc\/cni\/\.\.\/net\.d": must be an absolute directory path/],
    [{ podOptionsDir: 'pods' }, /test\/cni: podOptionsDir = "pods"/],
    [{ namespace: 'Kube_System' }, /test\/cni: namespace = "Kube_System"/],
  ])('invalid props are refused naming the prop, the value and the fix: %j', (props, message) => {
    const chart = newChart();
    expect(() => new CniInstaller(chart, 'cni', props)).toThrow(message);
  });

  test('refused in a mesh namespace (restricted) and twice in one app', () => {
    const chart = newChart();
    new Mesh(chart, 'mesh', { namespace: 'shop', interception: InterceptionMode.CNI });
    new CniInstaller(chart, 'cni', { namespace: 'shop', createNamespace: false });
    expect(() => synth(chart)).toThrow(/test\/cni: namespace = "shop": is a namespace of the mesh test\/mesh.*Fix: omit namespace/);

    const other = newChart();
    new CniInstaller(other, 'cni');
    expect(() => new CniInstaller(other, 'cni2')).toThrow(MeshValidationError);
    expect(() => new CniInstaller(other, 'cni3')).toThrow(/already has a CniInstaller \(test\/cni\)/);
  });
});
