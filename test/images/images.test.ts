/**
 * The real images, built and run here: scripts/build-images.sh builds the sidecar image and
 * the shop's app image with podman (vfs storage, runc), then two pods of the synthesized
 * shop chart run from them exactly as their pod templates say — order-service (app +
 * sidecar) calling payment-service (app + sidecar). Each pod is a network namespace
 * (`tmimg-<pid>-*`) joined to the other by a veth pair; the order pod's init container
 * writes the interception rules with the capabilities its spec gives on a read-only root,
 * while the payment pod runs in CNI mode (no init container; typemesh-cni writes the same
 * rules); the proxy runs as uid 1337 on a read-only root; certificates are minted by the local CA into a temp dir mounted
 * read-only where the cert-manager Secret would be.
 *
 * Seen from outside: the images hold what they should (Node LTS, the bundles, iptables; no
 * npm, no source maps), the order app's plain HTTP call to http://payment-service is
 * carried over mTLS to the payment app, and a plaintext caller is refused.
 *
 * Needs root, podman, runc, mmdebstrap (first run only), ip netns and curl; skipped with
 * the reason printed otherwise (CI installs them: .ci/run). The first run builds the
 * Debian base (about a minute) and both images; later runs reuse the base.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App } from 'cdk8s';
import { buildShopChart } from '../../examples/shop/chart';
import { savedInterceptionRules, scriptInterceptionRules } from '../../src/cni/netns-rules';
import { INTERCEPTION_ARGS_ANNOTATION } from '../../src/cni/pod-options';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { generateInterceptionScript, parseInterceptionArgs } from '../../src/proxy-image/interception';
import { BUILD_SCRIPT, containerName, containerNames, ContainerSpec, podman, podmanQuiet, PodRun, PodSpec, ROOT, startPod } from './pod-runner';

// Building the base and two images, then creating six containers on vfs storage, on a
// shared two-core machine: minutes, not seconds.
jest.setTimeout(20 * 60_000);

const PREFIX = `tmimg-${process.pid}`;
const EXEC_TIMEOUT_MS = 60_000;
const ORDER_IP = '10.254.77.1';
const PAYMENT_IP = '10.254.77.2';
const PROXY_UID = 1337;
const NAMESPACE = 'shop';

function which(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root';
  for (const tool of ['podman', 'runc', 'ip', 'curl', 'iptables-save', 'setpriv']) {
    if (!which(tool)) return `${tool} is not installed (apt-get install podman runc mmdebstrap iproute2 curl iptables)`;
  }
  return undefined;
}

const reason = unavailableReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED images: building and running the real images needs root and podman: ${reason}`);
}
const describeReal = reason ? describe.skip : describe;

function inNetns(ns: string, argv: string[], opts: { allowFailure?: boolean } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
  if (!opts.allowFailure && r.status !== 0) throw new Error(`${argv.join(' ')} in ${ns} failed (${r.status}): ${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec?: { template?: { spec: PodSpec } };
  data?: Record<string, string>;
}

describeReal('the sidecar and shop images, built with podman and run as the pod spec says', () => {
  let tmp: string;
  let images: { proxy: string; shop: string };
  let manifests: Manifest[];
  const pods: PodRun[] = [];
  const netnses: string[] = [];

  const manifest = (kind: string, name: string): Manifest => {
    const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
    if (!m) throw new Error(`the shop chart has no ${kind} ${name}`);
    return m;
  };

  /** The sidecar's readiness, as its probe sees it (the admin port inside the pod). */
  async function awaitProxyReady(netns: string, container: string): Promise<void> {
    // Bounded: 240 tries half a second apart, well past the image's start-up on a loaded machine.
    for (let i = 0; i < 240; i++) {
      if (inNetns(netns, ['curl', '-sf', '-o', '/dev/null', 'http://127.0.0.1:15020/healthz/ready'], { allowFailure: true }).status === 0) return;
      const state = (await podman(['inspect', '--format', '{{.State.Status}}', container])).trim();
      if (state !== 'running') throw new Error(`${container} is ${state}: ${await podman(['logs', container])}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${container} never became ready: ${await podman(['logs', container])}`);
  }

  /**
   * Starts one shop workload's pod. In 'cni' mode the pod runs without its init container,
   * and typemesh-cni, invoked as the runtime would invoke it, writes the rules instead, from
   * the init container's args passed as the pod annotation.
   */
  async function startShopPod(workload: string, netns: string, podIp: string, mode: 'init' | 'cni', extraEnv: Record<string, Record<string, string>>): Promise<PodRun> {
    const deployment = manifest('Deployment', `${workload}-v1`);
    const template = deployment.spec!.template!.spec;
    const init = template.initContainers!.find((c) => c.name === 'typemesh-init')!;
    initArgs.set(netns, init.args!);
    const spec: PodSpec = mode === 'init' ? template : { ...template, initContainers: template.initContainers!.filter((c) => c !== init) };
    if (mode === 'cni') addWithCniPlugin(netns, init.args!.join(' '));
    const config = manifest('ConfigMap', `${workload}-v1-sidecar`).data!;
    const dir = path.join(tmp, workload);
    // The ConfigMap's files, and the Secret cert-manager would write (tls.crt, tls.key, ca.crt).
    mkdirSync(path.join(dir, 'config'), { recursive: true });
    for (const [key, value] of Object.entries(config)) writeFileSync(path.join(dir, 'config', key), value);
    mkdirSync(path.join(dir, 'certs'));
    const cert = await ca.issueWorkload({ spiffeId: `spiffe://cluster.local/ns/${NAMESPACE}/sa/${spec.serviceAccountName as string}` });
    writeFileSync(path.join(dir, 'certs', 'tls.crt'), cert.certPem);
    // 0644 as a Secret volume's defaultMode makes it: readable by the proxy's uid.
    writeFileSync(path.join(dir, 'certs', 'tls.key'), cert.keyPem, { mode: 0o644 });
    writeFileSync(path.join(dir, 'certs', 'ca.crt'), ca.certPem);
    chmodSync(path.join(dir, 'certs', 'tls.key'), 0o644);
    const volumes: Record<string, string> = {};
    for (const v of spec.volumes ?? []) {
      if (v.configMap) volumes[v.name] = path.join(dir, 'config');
      if (v.secret) volumes[v.name] = path.join(dir, 'certs');
    }
    // The cluster's DNS: the payment Service (and the headless Services the sidecar
    // resolves) answer with the payment pod's address. Both payment subsets resolve to the
    // one payment pod run here.
    const hosts = path.join(dir, 'hosts');
    writeFileSync(hosts, [
      '127.0.0.1 localhost',
      `${podIp} ${workload}`,
      `${PAYMENT_IP} payment-service payment-service.${NAMESPACE}.svc.cluster.local`,
      `${PAYMENT_IP} payment-service-v1.${NAMESPACE}.svc.cluster.local payment-service-v2.${NAMESPACE}.svc.cluster.local`,
      '',
    ].join('\n'));
    const podName = `${workload}-v1-tmimg`;
    const fields = { 'metadata.name': podName, 'metadata.namespace': NAMESPACE, 'status.podIP': podIp, 'spec.serviceAccountName': String(spec.serviceAccountName) };
    const pod: PodRun = { name: `${PREFIX}-${workload}`, netns, spec, volumes, extraEnv, hostsFile: hosts, fields };
    pods.push(pod);
    const sidecar = (c: ContainerSpec) => c.name === 'typemesh-proxy';
    await startPod(pod, (c) => (sidecar(c) ? awaitProxyReady(netns, containerName(pod, c.name)) : Promise.resolve()));
    // Without native sidecars the proxy is a plain container: await it all the same.
    await awaitProxyReady(netns, containerName(pod, 'typemesh-proxy'));
    return pod;
  }

  let ca: LocalCertificateAuthority;
  const initArgs = new Map<string, string[]>();
  let cniBin: string;

  /** CNI ADD for the pod's namespace, as a runtime calls the chained plugin after the pod's network plugin. */
  function addWithCniPlugin(netns: string, flags: string): void {
    const r = spawnSync(path.join(cniBin, 'typemesh-cni'), [], {
      input: JSON.stringify({
        cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'typemesh-cni',
        capabilities: { 'io.kubernetes.cri.pod-annotations': true },
        runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { [INTERCEPTION_ARGS_ANNOTATION]: flags } },
        prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [] },
      }),
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: 'ADD', CNI_CONTAINERID: netns, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: cniBin, CNI_ARGS: `K8S_POD_NAMESPACE=${NAMESPACE};K8S_POD_NAME=${netns}` },
      encoding: 'utf8',
      timeout: EXEC_TIMEOUT_MS,
    });
    if (r.status !== 0) throw new Error(`typemesh-cni ADD failed (${r.status}): ${r.stdout}${r.stderr}`);
  }

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'tmimg-'));
    chmodSync(tmp, 0o755);
    const built = execFileSync(BUILD_SCRIPT, ['build'], { cwd: path.dirname(BUILD_SCRIPT), encoding: 'utf8', timeout: 15 * 60_000, stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n');
    images = { proxy: built[0], shop: built[1] };

    const { chart } = buildShopChart(new App({ outdir: path.join(tmp, 'synth') }));
    manifests = chart.toJson() as Manifest[];
    ca = await LocalCertificateAuthority.create();
    // typemesh-cni laid out as an installer would lay it out in /opt/cni/bin.
    cniBin = path.join(tmp, 'cni-bin');
    mkdirSync(path.join(cniBin, 'typemesh-cni.d'), { recursive: true });
    copyFileSync(path.join(ROOT, 'src/cni/typemesh-cni.sh'), path.join(cniBin, 'typemesh-cni'));
    chmodSync(path.join(cniBin, 'typemesh-cni'), 0o755);
    symlinkSync(process.execPath, path.join(cniBin, 'typemesh-cni.d', 'node'));
    execFileSync(path.join(ROOT, 'node_modules/.bin/esbuild'), ['src/cni/typemesh-cni.ts', '--bundle', '--platform=node', '--log-level=warning',
      `--outfile=${path.join(cniBin, 'typemesh-cni.d', 'typemesh-cni.js')}`], { cwd: ROOT, timeout: EXEC_TIMEOUT_MS });

    // Two pods, one veth pair between their namespaces; no address exists outside them.
    for (const workload of ['order-service', 'payment-service']) {
      const ns = `${PREFIX}-${workload}`;
      execFileSync('ip', ['netns', 'add', ns], { timeout: EXEC_TIMEOUT_MS });
      netnses.push(ns);
      inNetns(ns, ['ip', 'link', 'set', 'lo', 'up']);
    }
    const [orderNs, paymentNs] = netnses;
    const vethOrder = `tmimg${process.pid}o`.slice(0, 15);
    const vethPayment = `tmimg${process.pid}p`.slice(0, 15);
    execFileSync('ip', ['link', 'add', vethOrder, 'netns', orderNs, 'type', 'veth', 'peer', 'name', vethPayment, 'netns', paymentNs], { timeout: EXEC_TIMEOUT_MS });
    inNetns(orderNs, ['ip', 'addr', 'add', `${ORDER_IP}/30`, 'dev', vethOrder]);
    inNetns(orderNs, ['ip', 'link', 'set', vethOrder, 'up']);
    inNetns(paymentNs, ['ip', 'addr', 'add', `${PAYMENT_IP}/30`, 'dev', vethPayment]);
    inNetns(paymentNs, ['ip', 'link', 'set', vethPayment, 'up']);

    // payment-service in CNI mode (no init container), order-service with its init container.
    await startShopPod('payment-service', paymentNs, PAYMENT_IP, 'cni', {});
    // The order app also checks stock with inventory-service, which is not run here.
    await startShopPod('order-service', orderNs, ORDER_IP, 'init', { app: { CHECK_INVENTORY: 'false' } });
  });

  afterAll(() => {
    for (const pod of pods) {
      for (const name of containerNames(pod)) podmanQuiet(['rm', '--force', '--time', '2', name]);
    }
    for (const ns of netnses.filter((n) => n.includes('-init-'))) podmanQuiet(['rm', '--force', `${ns}-init`]);
    for (const ns of netnses) spawnSync('ip', ['netns', 'del', ns], { timeout: EXEC_TIMEOUT_MS });
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe('what the images hold', () => {
    const PODMAN_RUN_TIMEOUT_MS = 180_000;
    const inImage = (image: string, script: string): string =>
      execFileSync(BUILD_SCRIPT, ['podman', 'run', '--rm', '--network=none', '--read-only', '--entrypoint', 'sh', image, '-c', script], { encoding: 'utf8', timeout: PODMAN_RUN_TIMEOUT_MS });

    it('the sidecar image: a supported Node LTS, the two bundles and iptables; no npm, corepack or source maps; uid 1337 by default', () => {
      const out = inImage(images.proxy, 'node --version; id -u; ls /app; iptables --version; for t in npm npx corepack; do command -v $t || echo "no $t"; done; ls /usr/local/lib/node_modules 2>&1 | head -1; echo "NODE_OPTIONS=$NODE_OPTIONS"');
      const [nodeVersion, uid] = out.split('\n');
      expect(Number(/^v(\d+)\./.exec(nodeVersion)![1])).toBeGreaterThanOrEqual(22);
      expect(Number(/^v(\d+)\./.exec(nodeVersion)![1]) % 2).toBe(0); // even majors are the LTS lines
      expect(uid).toBe(String(PROXY_UID));
      expect(out).toContain('typemesh-init.js\ntypemesh-proxy.js\n');
      expect(out).not.toMatch(/\.map\b/);
      expect(out).toMatch(/iptables v1\.8/);
      expect(out).toContain('no npm\nno npx\nno corepack\n');
      expect(out).toContain('NODE_OPTIONS=\n');
    });

    it('the sidecar image\'s entrypoints: typemesh-proxy (default) and typemesh-init', async () => {
      expect(await podman(['run', '--rm', '--network=none', '--read-only', images.proxy, '--version'])).toMatch(/^typemesh-proxy \S+ \(node v\d+/);
      const script = await podman(['run', '--rm', '--network=none', '--read-only', '--entrypoint', '["typemesh-init"]', images.proxy, '--app-ports', '8080', '--dry-run']);
      expect(script).toContain('iptables -w -t nat -A TYPEMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006');
    });

    it('the sidecar image carries the CNI installer: typemesh-cni-install chains a typemesh-cni that runs', () => {
      const conflist = JSON.stringify({ cniVersion: '1.0.0', name: 'net', plugins: [{ type: 'bridge' }] });
      const out = inImage(images.proxy, `mkdir -p /tmp/bin /tmp/net.d && echo '${conflist}' > /tmp/net.d/10-net.conflist`
        + ' && typemesh-cni-install install --cni-bin-dir /tmp/bin --cni-conf-dir /tmp/net.d >/dev/null'
        + ' && echo \'{"cniVersion":"1.0.0"}\' | CNI_COMMAND=VERSION /tmp/bin/typemesh-cni && cat /tmp/net.d/10-net.conflist');
      const [version, ...rest] = out.split('\n');
      expect(JSON.parse(version).supportedVersions).toContain('1.0.0');
      expect(JSON.parse(rest.join('\n')).plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'typemesh-cni']);
    });

    it('the shop image runs the app its first argument names, not as root', async () => {
      const out = inImage(images.shop, 'id -u; ls /app; command -v npm || echo "no npm"');
      expect(out).toBe('1000\nshop.js\nno npm\n');
      const r = spawnSync(BUILD_SCRIPT, ['podman', 'run', '--rm', '--network=none', images.shop, 'nonsense'], { encoding: 'utf8', timeout: PODMAN_RUN_TIMEOUT_MS });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('usage: shop <order|payment|inventory>');
    });
  });

  describe('typemesh-init from the image, in a namespace of its own', () => {
    const FLAGS = ['--proxy-uid', '1337', '--app-ports', '8080', '--outbound-ports', '80'];
    const expected = () => scriptInterceptionRules(generateInterceptionScript(parseInterceptionArgs(FLAGS).options), 'ipv4');

    /** Runs typemesh-init as uid 0 on a read-only root with exactly these capabilities. */
    function runInit(ns: string, caps: string[], extra: string[] = []): { status: number | null; stderr: string } {
      const r = spawnSync(BUILD_SCRIPT, ['podman', 'run', '--rm', '--name', `${ns}-init`, '--network', `ns:/run/netns/${ns}`,
        '--user', '0:0', '--read-only', '--read-only-tmpfs=false', '--security-opt', 'no-new-privileges', '--cap-drop', 'ALL',
        ...caps.flatMap((c) => ['--cap-add', c]), ...extra, '--entrypoint', '["typemesh-init"]', images.proxy, ...FLAGS],
      { encoding: 'utf8', timeout: 180_000 });
      return { status: r.status, stderr: r.stderr };
    }

    function freshNetns(suffix: string): string {
      const ns = `${PREFIX}-${suffix}`;
      execFileSync('ip', ['netns', 'add', ns], { timeout: EXEC_TIMEOUT_MS });
      netnses.push(ns);
      return ns;
    }

    it('with NET_ADMIN alone (no NET_RAW) and iptables-nft it writes the rules; with no capability it fails', () => {
      const ns = freshNetns('init-nft');
      const denied = runInit(ns, []);
      expect(denied.status).not.toBe(0);
      expect(savedInterceptionRules(inNetns(ns, ['iptables-save', '-t', 'nat']).stdout)).toEqual([]);
      const r = runInit(ns, ['NET_ADMIN']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(savedInterceptionRules(inNetns(ns, ['iptables-save', '-t', 'nat']).stdout)).toEqual(expected());
    });

    it('with iptables-legacy on the read-only root it needs NET_RAW as well, and then writes the rules (no /run/xtables.lock needed)', () => {
      const ns = freshNetns('init-legacy');
      // iptables and ip6tables resolve to the legacy backend through a read-only directory
      // first on PATH: the image itself stays untouched and read-only.
      const legacy = path.join(tmp, 'legacy-bin');
      mkdirSync(legacy, { recursive: true });
      for (const tool of ['iptables', 'ip6tables']) symlinkSync(`/usr/sbin/${tool}-legacy`, path.join(legacy, tool));
      const useLegacy = ['--volume', `${legacy}:/opt/legacy:ro`, '--env', 'PATH=/opt/legacy:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
      // iptables-legacy talks to the kernel through a raw socket: NET_ADMIN alone is refused.
      const adminOnly = runInit(ns, ['NET_ADMIN'], useLegacy);
      expect(adminOnly.status).not.toBe(0);
      expect(adminOnly.stderr).toContain('Permission denied');
      const r = runInit(ns, ['NET_ADMIN', 'NET_RAW'], useLegacy);
      expect(r.status).toBe(0);
      expect(savedInterceptionRules(inNetns(ns, ['iptables-legacy-save', '-t', 'nat']).stdout)).toEqual(expected());
      // And nothing went to the nft backend.
      expect(savedInterceptionRules(inNetns(ns, ['iptables-nft-save', '-t', 'nat']).stdout)).toEqual([]);
    });
  });

  describe('two pods run from the synthesized chart', () => {
    it('the order app\'s plain call to http://payment-service is carried over mTLS to the payment app', () => {
      // The request enters the order pod as `kubectl exec ... curl localhost:8080` would.
      const r = inNetns(`${PREFIX}-order-service`, ['curl', '-s', '--max-time', '30', 'http://127.0.0.1:8080/orders?item=book']);
      const body = JSON.parse(r.stdout) as { service: string; payment: { service: string; version: string; charged: number } };
      expect(body.service).toBe('order-service');
      expect(body.payment).toMatchObject({ service: 'payment-service', version: 'v1', charged: 42 });
      // The payment sidecar saw the call arrive over mTLS from order-service's identity.
      const metrics = inNetns(`${PREFIX}-payment-service`, ['curl', '-sf', 'http://127.0.0.1:15020/metrics']).stdout;
      const inbound = metrics.split('\n').filter((l) => l.includes('spiffe://cluster.local/ns/shop/sa/order-service'));
      expect(inbound.length).toBeGreaterThan(0);
    });

    it('a plaintext caller that bypasses the order sidecar (uid 1337) is refused by the payment pod', () => {
      // Port 8080 of the payment pod is redirected to its mTLS listener: plaintext HTTP fails.
      const plain = inNetns(`${PREFIX}-order-service`, ['setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups',
        'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://${PAYMENT_IP}:8080/process`], { allowFailure: true });
      expect(plain.status).not.toBe(0);
      expect(plain.stdout).toBe('000');
      // TLS without a client certificate is refused too.
      const noCert = inNetns(`${PREFIX}-order-service`, ['curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `https://${PAYMENT_IP}:15006/process`], { allowFailure: true });
      expect(noCert.status).not.toBe(0);
    });

    it('each pod\'s namespace holds exactly the rules of typemesh-init\'s args: from its init container (order) or from typemesh-cni (payment)', () => {
      for (const pod of pods) {
        const expected = scriptInterceptionRules(generateInterceptionScript(parseInterceptionArgs(initArgs.get(pod.netns)!).options), 'ipv4');
        expect(expected).toContain('-A TYPEMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006');
        expect(savedInterceptionRules(inNetns(pod.netns, ['iptables-save', '-t', 'nat']).stdout)).toEqual(expected);
      }
      // The order pod calls payment-service on port 80: that port is captured.
      const order = inNetns(`${PREFIX}-order-service`, ['iptables-save', '-t', 'nat']).stdout;
      expect(order).toContain('-A TYPEMESH_OUTPUT -p tcp -m tcp --dport 80 -j TYPEMESH_REDIRECT');
    });

    it('the payment pod in CNI mode has no init container, and no container of it holds a capability', async () => {
      const payment = pods.find((p) => p.netns === `${PREFIX}-payment-service`)!;
      expect(payment.spec.initContainers?.some((c) => c.name === 'typemesh-init')).toBe(false);
      for (const container of ['typemesh-proxy', 'app']) {
        const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', containerName(payment, container)])).trim();
        const status = execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
        expect(/^CapEff:\s+(\S+)/m.exec(status)![1]).toBe('0000000000000000');
      }
    });

    it('the proxy runs as uid 1337 on a read-only root, the app beside it not as root', async () => {
      for (const pod of pods) {
        const proxy = containerName(pod, 'typemesh-proxy');
        const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', proxy])).trim();
        const status = execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' });
        expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)!.slice(1)).toEqual([String(PROXY_UID), String(PROXY_UID)]);
        expect(/^CapEff:\s+(\S+)/m.exec(status)![1]).toBe('0000000000000000');
        const write = spawnSync(BUILD_SCRIPT, ['podman', 'exec', proxy, 'sh', '-c', 'touch /app/x'], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
        expect(write.status).not.toBe(0);
        expect(write.stderr).toContain('Read-only file system');
        const appPid = (await podman(['inspect', '--format', '{{.State.Pid}}', containerName(pod, 'app')])).trim();
        expect(/^Uid:\s+(\d+)/m.exec(execFileSync('cat', [`/proc/${appPid}/status`], { encoding: 'utf8' }))![1]).not.toBe('0');
        // Both containers are in the pod's namespace.
        const netnsOf = (p: string) => execFileSync('readlink', [`/proc/${p}/ns/net`], { encoding: 'utf8' }).trim();
        expect(netnsOf(pid)).toBe(netnsOf(appPid));
      }
    });
  });
});
