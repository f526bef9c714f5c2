/**
 * The init container's iptables backend: with LEGACY the typemesh-init container gets NET_RAW
 * besides NET_ADMIN and the flag `--iptables-backend legacy` (iptables-legacy needs the raw
 * socket: test/proxy/interception-backend.test.ts shows it fails without), with NFT (the
 * default) neither, so the default pods stay as the Pod Security test expects. The Mesh prop
 * is refused where no init container writes rules.
 */
import { ApiObject } from 'cdk8s';
import { InterceptionMode, IptablesBackend, Mesh, MeshService, MeshValidationError, SidecarMode } from '../../src/constructs';
import { injectSidecar, SidecarInjection } from '../../src/constructs/sidecar-injection';
import { newChart, synth } from './helpers';
import { validateObject } from './k8s-schemas';
import { podSecurityViolations } from './pod-security';

const INJECTION: SidecarInjection = {
  sidecarMode: SidecarMode.NATIVE,
  interception: InterceptionMode.INIT_CONTAINER,
  sidecarImage: 'ghcr.io/typemesh/proxy:test',
  sidecarResources: {},
  configMapName: 'api-v1-sidecar',
  certSecretName: 'api-mesh-tls',
  appContainer: 'app',
  appPorts: [{ name: 'http', port: 8080 }],
  metrics: false,
};

/** A Deployment whose pod got the sidecar with this backend, synthesized (Lazy args resolved). */
function deployment(iptablesBackend?: IptablesBackend): any {
  const chart = newChart();
  const template = injectSidecar({
    metadata: { labels: { app: 'api' } },
    spec: { containers: [{ name: 'app', image: 'example.com/api:1', ports: [{ name: 'http', containerPort: 8080 }], securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }] },
  }, { ...INJECTION, iptablesBackend }, () => ['--proxy-uid', '1337', '--app-ports', '8080', '--no-outbound-capture']);
  new ApiObject(chart, 'api', {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'api', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'api' } }, template },
  });
  const [d] = synth(chart);
  validateObject(d);
  return d;
}

const initOf = (d: any) => d.spec.template.spec.initContainers.find((c: any) => c.name === 'typemesh-init');

describe('iptables backend of the typemesh-init container', () => {
  test('NFT (unset or explicit): NET_ADMIN only, no backend flag', () => {
    for (const backend of [undefined, IptablesBackend.NFT]) {
      const init = initOf(deployment(backend));
      expect(init.securityContext.capabilities).toEqual({ add: ['NET_ADMIN'], drop: ['ALL'] });
      expect(init.args).toEqual(['--proxy-uid', '1337', '--app-ports', '8080', '--no-outbound-capture']);
    }
  });

  test('LEGACY: NET_ADMIN and NET_RAW, and --iptables-backend legacy; nothing else in the pod changes', () => {
    const legacy = deployment(IptablesBackend.LEGACY);
    const init = initOf(legacy);
    expect(init.securityContext.capabilities).toEqual({ add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
    expect(init.args).toEqual(['--proxy-uid', '1337', '--app-ports', '8080', '--no-outbound-capture', '--iptables-backend', 'legacy']);
    const nft = deployment();
    const withoutInit = (d: any) => ({ ...d.spec.template.spec, initContainers: d.spec.template.spec.initContainers.filter((c: any) => c.name !== 'typemesh-init') });
    expect(withoutInit(legacy)).toEqual(withoutInit(nft));
    // Pod Security: the init container's extra capability is its only new violation (privileged either way).
    const summary = (d: any) => podSecurityViolations(d.spec.template.spec, d.spec.template.metadata).map((v) => `${v.level} ${v.control} ${v.container}: ${v.detail}`);
    expect(summary(legacy)).toEqual([
      'baseline Capabilities typemesh-init: adds NET_ADMIN, NET_RAW',
      'restricted Running as Non-root typemesh-init: runAsNonRoot is not true (neither on the container nor inherited from the pod)',
      'restricted Running as Non-root user typemesh-init: runAsUser is 0',
      'restricted Capabilities typemesh-init: adds NET_ADMIN, NET_RAW (only NET_BIND_SERVICE may be added)',
    ]);
    expect(summary(nft)).toEqual(summary(legacy).map((l) => l.replace('NET_ADMIN, NET_RAW', 'NET_ADMIN')));
  });

  test('Mesh iptablesBackend: NFT by default; LEGACY refused without the init container, naming the fix', () => {
    expect(new Mesh(newChart(), 'mesh', { namespace: 'shop' }).iptablesBackend).toBe(IptablesBackend.NFT);
    expect(new Mesh(newChart(), 'mesh', { namespace: 'shop', iptablesBackend: IptablesBackend.LEGACY }).iptablesBackend).toBe(IptablesBackend.LEGACY);
    for (const interception of [InterceptionMode.CNI, InterceptionMode.EXPLICIT]) {
      expect(() => new Mesh(newChart(), 'mesh', { namespace: 'shop', interception, iptablesBackend: IptablesBackend.LEGACY }))
        .toThrow(new RegExp(`^test/mesh: iptablesBackend = "legacy": applies to the typemesh-init container only, and interception is ${interception} .*Fix: remove iptablesBackend, or use InterceptionMode.INIT_CONTAINER$`));
    }
    expect(() => new Mesh(newChart(), 'mesh', { namespace: 'shop', iptablesBackend: 'xtables' as IptablesBackend })).toThrow(MeshValidationError);
  });

  test('Mesh iptablesBackend LEGACY reaches the pods a user declares: MeshService versions and injected workloads', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', iptablesBackend: IptablesBackend.LEGACY });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'example.com/api:1' }] });
    const worker = new ApiObject(chart, 'worker', {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'worker', namespace: 'shop' },
      spec: { selector: { matchLabels: { app: 'worker' } }, template: { metadata: { labels: { app: 'worker' } }, spec: { containers: [{ name: 'app', image: 'example.com/worker:1', ports: [{ containerPort: 8080 }] }] } } },
    });
    mesh.inject(worker, { name: 'worker' });
    const deployments = synth(chart).filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['api-v1', 'worker']);
    for (const d of deployments) {
      validateObject(d);
      const init = initOf(d);
      expect(init.securityContext.capabilities).toEqual({ add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
      expect(init.args.slice(-2)).toEqual(['--iptables-backend', 'legacy']);
    }
  });
});
