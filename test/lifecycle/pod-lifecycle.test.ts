/**
 * Meshed pods' lifecycle seen from outside, as a cluster would see it: a chart synthesized with
 * Mesh + MeshService (order calls payment), in both sidecar modes (native, the default, and
 * legacy), its pod specs read back from the YAML and run by a small kubelet
 * (./pod-runner.ts) as real processes in network namespaces: the init container's generated
 * iptables rules, the bundled sidecar as uid 1337 with certificates from the local CA, and
 * stand-in node processes for the apps' images. It proves:
 * - start-up: the app's very first outbound call succeeds (native: the startup probe gates the
 *   app; legacy: the postStart hook `typemesh-proxy --wait-ready` holds it);
 * - shutdown: no refused connection during the grace period, for the app calling out (native:
 *   the app is stopped first; legacy: both get SIGTERM at once) and for a peer calling in
 *   during the drain window (it is told `Connection: close` and reconnects);
 * - a meshed Job completes: its app exits 0, the sidecar is terminated, the pod Succeeds and
 *   no process is left in its network namespace.
 *
 * Needs root, `ip netns`, iptables, setpriv and curl; skipped otherwise with the reason.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import * as YAML from 'yaml';
import { Mesh, MeshService, SidecarMode } from '../../src';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';
import { bundleWithEsbuild } from '../../src/local/proxy-bundle';
import { generateInterceptionScript, parseInterceptionArgs } from '../../src/proxy-image/interception';
import { ContainerSpec, Pod, PodSpec } from './pod-runner';
import { netnsUnavailableReason } from '../netns-support';

type Layouts = Record<'native' | 'legacy', Record<'order' | 'payment', Workload>>;

jest.setTimeout(240_000);

const ROOT = path.resolve(__dirname, '../..');
const PREFIX = `tmlc-${process.pid}`;
const EXEC_TIMEOUT_MS = 10_000;
const SIDECAR = 'typemesh-proxy';
const INIT = 'typemesh-init';
const APP = 'app';
const ORDER_ID = 'spiffe://cluster.local/ns/shop/sa/order';
const PAYMENT_ID = 'spiffe://cluster.local/ns/shop/sa/payment';
/** Calls the order app makes after SIGTERM (its grace period's work). */
const GRACE_CALLS = 30;

function unavailableReason(): string | undefined {
  return netnsUnavailableReason(PREFIX, {
    timeoutMs: EXEC_TIMEOUT_MS,
    extra: () => {
      for (const tool of ['/usr/bin/setpriv', '/usr/bin/curl']) if (!existsSync(tool)) return `${tool} is not installed`;
      if (!existsSync('/usr/sbin/iptables') && !existsSync('/sbin/iptables')) return 'iptables is not installed (apt-get install iptables)';
      return undefined;
    },
  });
}

const reason = unavailableReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED pod lifecycle: running pods in network namespaces needs root, ip netns, iptables, setpriv and curl: ${reason}`);
}
const describeReal = reason ? describe.skip : describe;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: EXEC_TIMEOUT_MS });
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The payment app: answers every request; after SIGTERM it keeps serving while traffic arrives, and exits once idle. */
const PAYMENT_APP = `
const http = require('http');
let last = Date.now();
http.createServer((req, res) => { last = Date.now(); res.end('payment ' + req.url); }).listen(8080, '0.0.0.0');
process.on('SIGTERM', () => setInterval(() => { if (Date.now() - last > 500) process.exit(0); }, 100));
setTimeout(() => process.exit(3), 200000).unref(); // never outlive the test
`;

/**
 * The order app: calls payment at the very first instant of its life; as a Job it then exits
 * (0 when the call succeeded); as a service it runs until SIGTERM, then makes GRACE_CALLS more
 * calls (alternately on its kept-alive connection and on a new one) and exits 0. Each call is
 * a JSON line in the results file.
 */
const ORDER_APP = `
const http = require('http'); const fs = require('fs');
const [file, mode, graceCalls] = process.argv.slice(1);
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
function call(tag, agent) {
  return new Promise((resolve) => {
    const req = http.get({ host: 'payment', port: 80, path: '/' + tag, agent }, (res) => {
      let body = ''; res.on('data', (d) => { body += d; }); res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', (e) => resolve({ error: e.code || e.message }));
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  });
}
const record = (r) => fs.appendFileSync(file, JSON.stringify({ ...r, time: Date.now() }) + '\\n');
call('first', keepAlive).then((r) => {
  record({ phase: 'first', ...r });
  if (mode === 'job') process.exit(r.status === 200 ? 0 : 1);
});
process.on('SIGTERM', async () => {
  for (let i = 0; i < Number(graceCalls); i++) record({ phase: 'grace', i, ...(await call('grace-' + i, i % 2 ? false : keepAlive)) });
  process.exit(0);
});
setInterval(() => undefined, 1000);
setTimeout(() => process.exit(3), 200000).unref();
`;

/**
 * A peer pod's client calling into payment's inbound listener over mTLS with order's certificate,
 * on a kept-alive connection (a new one after each Connection: close), every 20 ms, until its
 * first refused connection (at most 3000 calls). One JSON line per call on stdout.
 */
const PEER = `
const https = require('https'); const fs = require('fs');
const [url, cert, key, ca] = process.argv.slice(1);
const agent = new https.Agent({ keepAlive: true, maxSockets: 1, cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca), checkServerIdentity: () => undefined });
function call(i) {
  return new Promise((resolve) => {
    const req = https.get(url + '/peer-' + i, { agent, headers: { host: 'payment' } }, (res) => {
      res.resume(); res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection }));
    });
    req.on('error', (e) => resolve({ error: e.code || e.message }));
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  });
}
(async () => {
  for (let i = 0; i < 3000; i++) {
    const r = await call(i);
    console.log(JSON.stringify({ i, ...r, time: Date.now() }));
    if (r.error === 'ECONNREFUSED') break;
    await new Promise((s) => setTimeout(s, 20));
  }
  process.exit(0);
})();
`;

interface Workload {
  /** The Deployment's pod spec as synthesized. */
  readonly spec: PodSpec;
  /** The sidecar's config file content. */
  readonly config: string;
}

/**
 * Synthesizes the chart a user would write (order calls payment), in a sidecar mode, and returns
 * each workload's pod spec and sidecar config as the YAML says.
 */
function synthesize(sidecarMode: SidecarMode): Record<'order' | 'payment', Workload> {
  const app = new App({ outdir: path.join(tmpdir(), 'typemesh-tests-never-written') });
  const chart = new Chart(app, 'lifecycle');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', sidecarMode });
  const order = new MeshService(chart, 'order', { mesh, name: 'order', versions: [{ name: 'v1', image: 'example.com/order:1' }] });
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
  payment.allowFrom(order);
  const objects: any[] = YAML.parseAllDocuments(app.synthYaml()).map((d) => d.toJSON());
  const workload = (name: string): Workload => {
    const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === `${name}-v1`);
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${name}-v1-sidecar`);
    if (!deployment || !configMap) throw new Error(`no Deployment/ConfigMap for ${name}-v1 in the synthesized chart`);
    return { spec: deployment.spec.template.spec, config: configMap.data['sidecar.yaml'] };
  };
  return { order: workload('order'), payment: workload('payment') };
}

/**
 * A batch workload as a user meshes it: a cdk8s-plus Job that TypeMesh did not write, given the
 * sidecar with `mesh.inject` under order's identity, and allowed to call payment. Returns the
 * Job's pod spec (restartPolicy Never, as cdk8s-plus writes it) and its sidecar config.
 */
function synthesizeJob(): Workload {
  const app = new App({ outdir: path.join(tmpdir(), 'typemesh-tests-never-written') });
  const chart = new Chart(app, 'lifecycle-job');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
  const payment = new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
  const job = new kplus.Job(chart, 'order-job', {
    metadata: { namespace: 'shop' },
    containers: [{ name: APP, image: 'example.com/order:1', securityContext: { ensureNonRoot: true, user: 1000 } }],
  });
  payment.allowFrom(mesh.inject(job, { name: 'order', ports: [{ port: 8080 }] }));
  const objects: any[] = YAML.parseAllDocuments(app.synthYaml()).map((d) => d.toJSON());
  const synthesized = objects.find((o) => o.kind === 'Job');
  const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'order-v1-sidecar');
  if (!synthesized || !configMap) throw new Error('no Job/ConfigMap for the injected order Job in the synthesized chart');
  return { spec: synthesized.spec.template.spec, config: configMap.data['sidecar.yaml'] };
}

describeReal('meshed pods run by a kubelet-like runner: start-up, shutdown and Job completion', () => {
  const node = process.execPath;
  const namespaces: string[] = [];
  const pods: Pod[] = [];
  let tmp: string;
  let bundle: string;
  let ca: LocalCertificateAuthority;
  let layouts: Layouts;
  let seq = 0;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'tmlc-'));
    chmodSync(tmp, 0o755); // the sidecar (uid 1337) reads its files here
    layouts = { native: synthesize(SidecarMode.NATIVE), legacy: synthesize(SidecarMode.LEGACY) };
    ca = await LocalCertificateAuthority.create();
    // Our own bundle: the shared dist/ may be rebuilt by another jest run meanwhile.
    bundle = path.join(tmp, 'typemesh-proxy.js');
    bundleWithEsbuild(ROOT, 'src/proxy-image/main.ts', bundle);
    chmodSync(bundle, 0o644);
  }, 120_000);

  afterAll(async () => {
    for (const pod of pods) {
      // Bounded: the runner SIGKILLs at the grace period; the timer never holds jest open.
      await Promise.race([pod.delete(), new Promise((r) => setTimeout(r, 35_000).unref())]);
    }
    for (const ns of namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
      } catch {
        // already gone
      }
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  /** Two pod network namespaces (order, payment) on one veth pair; names resolve as cluster DNS would. */
  function network(): { order: string; payment: string; paymentIp: string } {
    const n = ++seq;
    const order = `${PREFIX}-${n}-order`;
    const payment = `${PREFIX}-${n}-pay`;
    const [vo, vp] = [`tmlc${process.pid}${n}o`, `tmlc${process.pid}${n}p`];
    const [orderIp, paymentIp] = [`10.254.${n}.1`, `10.254.${n}.2`];
    for (const ns of [order, payment]) {
      sh('ip', ['netns', 'add', ns]);
      namespaces.push(ns);
    }
    sh('ip', ['-n', order, 'link', 'add', vo, 'type', 'veth', 'peer', 'name', vp, 'netns', payment]);
    for (const [ns, dev, ip] of [[order, vo, orderIp], [payment, vp, paymentIp]]) {
      sh('ip', ['-n', ns, 'addr', 'add', `${ip}/30`, 'dev', dev]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      // `ip netns exec` mounts /etc/netns/<ns>/hosts over /etc/hosts: the pod's cluster DNS.
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/hosts`, [
        '127.0.0.1 localhost', '::1 localhost',
        `${paymentIp} payment payment.shop payment.shop.svc payment.shop.svc.cluster.local payment-v1.shop.svc.cluster.local`,
        `${orderIp} order order.shop order.shop.svc order.shop.svc.cluster.local order-v1.shop.svc.cluster.local`,
      ].join('\n') + '\n');
    }
    return { order, payment, paymentIp };
  }

  /**
   * Materializes a workload's volumes on this machine (the certificate Secret from the local CA
   * with cert-manager's keys, the ConfigMap) and returns how each container's image is run.
   * There are no mount namespaces here: mount paths in the sidecar's args and config are
   * pointed at the host directories instead.
   */
  async function images(workload: Workload, name: 'order' | 'payment', identity: string): Promise<{ resolve: (c: ContainerSpec) => string[]; exec: (c: ContainerSpec, command: string[]) => string[]; dir: string }> {
    const dir = mkdtempSync(path.join(tmp, `${name}-`));
    chmodSync(dir, 0o755);
    mkdirSync(path.join(dir, 'results'));
    chmodSync(path.join(dir, 'results'), 0o777); // the app (a non-root uid) writes here
    const issued = await ca.writeWorkloadFiles(path.join(dir, 'issued'), { spiffeId: identity, dnsNames: [name] });
    const certs = path.join(dir, 'certs');
    const config = path.join(dir, 'config');
    for (const d of [certs, config]) mkdirSync(d, { mode: 0o755 });
    copyFileSync(issued.certFile, path.join(certs, 'tls.crt'));
    copyFileSync(issued.keyFile, path.join(certs, 'tls.key'));
    copyFileSync(issued.caFile, path.join(certs, 'ca.crt'));
    chmodSync(path.join(certs, 'tls.key'), 0o644); // a test key, readable by the sidecar's uid
    const spec = workload.spec;
    const sidecar = [...(spec.initContainers ?? []), ...spec.containers].find((c) => c.name === SIDECAR)!;
    const hostDirs: Record<string, string> = { 'typemesh-config': config, 'typemesh-certs': certs, 'typemesh-tmp': path.join(dir, 'tmp') };
    const mounts = ((sidecar.volumeMounts ?? []) as Array<{ name: string; mountPath: string }>).map((m) => {
      if (!hostDirs[m.name]) throw new Error(`volume ${m.name} of ${name}'s sidecar is not materialized by this test`);
      return [m.mountPath, hostDirs[m.name]] as const;
    });
    // One pass, longest mount path first, whole path segments only.
    const pattern = new RegExp(`(${mounts.map(([from]) => from).sort((a, b) => b.length - a.length).map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?=/|$|\\s)`, 'gm');
    const remap = (text: string): string => text.replace(pattern, (m) => mounts.find(([from]) => from === m)![1]);
    writeFileSync(path.join(config, 'sidecar.yaml'), remap(workload.config), { mode: 0o644 });
    return {
      dir,
      exec: (c, command) => {
        // The legacy sidecar's postStart hook runs the proxy binary in its container.
        if (c.name === SIDECAR && command[0] === 'typemesh-proxy') return [node, bundle, ...command.slice(1).map(remap)];
        throw new Error(`no stand-in for exec ${command.join(' ')} in ${c.name}`);
      },
      resolve: (c) => {
        if (c.name === INIT) {
          // typemesh-init: the rules its args generate, applied in the pod's namespace.
          const script = path.join(dir, 'interception.sh');
          writeFileSync(script, generateInterceptionScript(parseInterceptionArgs(c.args ?? []).options));
          return ['sh', '-e', script];
        }
        if (c.name === SIDECAR) {
          expect(c.command).toEqual(['typemesh-proxy']);
          return [node, bundle, ...(c.args ?? []).map(remap)];
        }
        throw new Error(`no stand-in for container ${c.name} (${c.image})`);
      },
    };
  }

  /** Starts a workload's pod (spec: the synthesized one, or a variant of it). */
  async function startPod(name: 'order' | 'payment', netns: string, workload: Workload, appArgv: (dir: string) => string[], spec = workload.spec): Promise<{ pod: Pod; output: string[]; dir: string }> {
    const output: string[] = [];
    const img = await images(workload, name, name === 'order' ? ORDER_ID : PAYMENT_ID);
    const pod = await Pod.start({
      name: `${name}-v1-0`, namespace: 'shop', netns, spec,
      // The app's image: a stand-in node process, whose image would say USER 1000 (the app
      // container asks runAsNonRoot and sets no uid).
      resolve: (c) => (c.name === APP ? appArgv(img.dir) : img.resolve(c)),
      resolveExec: img.exec,
      imageUser: (c) => (c.name === APP ? 1000 : 0),
      onOutput: (container, line) => output.push(`${container}: ${line}`),
    });
    pods.push(pod);
    if (pod.phase === 'Failed') throw new Error(`${name} pod failed: ${pod.failure}\n${output.join('\n')}`);
    return { pod, output, dir: img.dir };
  }

  /** Waits (bounded) until the sidecar of a pod answers ready, as its readinessProbe would. */
  async function untilReady(netns: string): Promise<void> {
    for (let i = 0; i < 300; i++) {
      try {
        if (sh('ip', ['netns', 'exec', netns, 'curl', '-s', '-o', '/dev/null', '-m', '2', '-w', '%{http_code}', 'http://127.0.0.1:15020/healthz/ready']) === '200') return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`sidecar in ${netns} never ready`);
  }

  const results = (dir: string): Array<{ phase: string; i?: number; status?: number; error?: string; time: number }> => {
    const file = path.join(dir, 'results', 'results.jsonl');
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  };
  const paymentApp = (): string[] => [node, '-e', PAYMENT_APP];
  const orderApp = (mode: 'service' | 'job') => (dir: string): string[] => [node, '-e', ORDER_APP, path.join(dir, 'results', 'results.jsonl'), mode, String(GRACE_CALLS)];
  /** Processes still in a network namespace (what `ip netns pids` lists). */
  const pidsIn = (ns: string): string[] => sh('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean);
  /** The time of a sidecar's log line. */
  function logTime(output: string[], msg: string): number | undefined {
    for (const line of output) {
      const json = line.slice(line.indexOf(': ') + 2);
      if (!json.startsWith('{')) continue;
      const entry = JSON.parse(json) as { msg?: string; time?: string };
      if (entry.msg === msg) return Date.parse(entry.time!);
    }
    return undefined;
  }

  test('native sidecars: the proxy is ready before the app starts, so the app\'s first outbound call succeeds; on deletion the app is stopped first and its grace-period calls all succeed', async () => {
    const net = network();
    const { native } = layouts;
    // The synthesized layout: the proxy is a native sidecar (what the kubelet's ordering needs).
    expect(native.order.spec.initContainers!.map((c) => [c.name, c.restartPolicy, c.startupProbe?.httpGet?.path])).toEqual([[INIT, undefined, undefined], [SIDECAR, 'Always', '/healthz/ready']]);
    const payment = await startPod('payment', net.payment, native.payment, () => paymentApp());
    const order = await startPod('order', net.order, native.order, orderApp('service'));
    // The runner started the app only after the sidecar's startup probe passed.
    expect(order.pod.seqOf(SIDECAR, 'ready')).toBeLessThan(order.pod.seqOf(APP, 'started')!);
    for (let i = 0; i < 300 && results(order.dir).length === 0; i++) await sleep(100);
    const [first] = results(order.dir);
    expect({ phase: first?.phase, status: first?.status, error: first?.error }).toEqual({ phase: 'first', status: 200, error: undefined });

    await order.pod.delete();
    const grace = results(order.dir).filter((r) => r.phase === 'grace');
    expect(grace.length).toBe(GRACE_CALLS);
    expect(grace.filter((r) => r.status !== 200)).toEqual([]);
    // Kubelet order: the app got SIGTERM, exited, and only then the sidecar got SIGTERM; it exited 0.
    expect(order.pod.seqOf(APP, 'exited')).toBeLessThan(order.pod.seqOf(SIDECAR, 'SIGTERM')!);
    expect(order.pod.exits()[APP]).toEqual({ code: 0, signal: null });
    expect(order.pod.exits()[SIDECAR]).toEqual({ code: 0, signal: null });
    expect(order.pod.events.filter((e) => e.what === 'SIGKILL')).toEqual([]);
    await payment.pod.delete();
    expect(payment.pod.exits()[SIDECAR]).toEqual({ code: 0, signal: null });
  });

  test('legacy sidecars: the postStart hook holds the app until the proxy is ready; SIGTERM to app and proxy at once: the app\'s grace-period calls are not refused; a peer calling in through the drain window is told Connection: close and never refused until the window is over', async () => {
    const net = network();
    const { legacy } = layouts;
    expect(legacy.order.spec.containers.map((c) => c.name)).toEqual([SIDECAR, APP]);
    const payment = await startPod('payment', net.payment, legacy.payment, () => paymentApp());
    const order = await startPod('order', net.order, legacy.order, orderApp('service'));
    // The postStart hook (typemesh-proxy --wait-ready) held the app until the proxy was ready:
    // its first call succeeded too.
    expect(order.pod.seqOf(SIDECAR, 'postStart-done')).toBeLessThan(order.pod.seqOf(APP, 'started')!);
    for (let i = 0; i < 300 && results(order.dir).length === 0; i++) await sleep(100);
    expect(results(order.dir)[0]).toMatchObject({ phase: 'first', status: 200 });
    await untilReady(net.payment);

    // The app keeps calling out after SIGTERM, while its sidecar got SIGTERM too.
    await order.pod.delete();
    expect(order.pod.seqOf(SIDECAR, 'SIGTERM')).toBeLessThan(order.pod.seqOf(APP, 'exited')!);
    const grace = results(order.dir).filter((r) => r.phase === 'grace');
    expect(grace.length).toBe(GRACE_CALLS);
    expect(grace.filter((r) => r.status !== 200)).toEqual([]);
    expect(order.pod.exits()[SIDECAR]).toEqual({ code: 0, signal: null });

    // A peer calls into payment continuously; payment is deleted meanwhile.
    const peerOut: string[] = [];
    const peer = spawn('ip', ['netns', 'exec', net.order, node, '-e', PEER, `https://${net.paymentIp}:15006`,
      path.join(order.dir, 'certs/tls.crt'), path.join(order.dir, 'certs/tls.key'), path.join(order.dir, 'certs/ca.crt')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const peerDone = new Promise<void>((resolve) => peer.once('exit', () => resolve()));
    let buf = '';
    peer.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      peerOut.push(...lines);
    });
    const calls = (): Array<{ i: number; status?: number; connection?: string; error?: string; time: number }> => peerOut.map((l) => JSON.parse(l));
    for (let i = 0; i < 300 && calls().filter((c) => c.status === 200).length < 5; i++) await sleep(100);
    expect(calls().filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(5);

    await payment.pod.delete();
    await peerDone;
    const sigterm = payment.pod.timeOf(SIDECAR, 'SIGTERM')!;
    const windowOver = logTime(payment.output, 'drain window over: inbound listener closed');
    expect(windowOver).toBeDefined();
    const during = calls().filter((c) => c.time > sigterm && c.time < windowOver!);
    // Calls were made during the window, all answered, and the peer was told to close.
    expect(during.length).toBeGreaterThanOrEqual(10);
    expect(during.filter((c) => c.status !== 200)).toEqual([]);
    expect(during.some((c) => c.connection === 'close')).toBe(true);
    // Before SIGTERM connections were kept alive.
    expect(calls().filter((c) => c.time < sigterm).every((c) => c.connection !== 'close')).toBe(true);
    // Once the window was over the listener closed: the peer's loop saw it (the check can fail).
    expect(calls().at(-1)!.error).toBe('ECONNREFUSED');
    expect(payment.pod.exits()[SIDECAR]).toEqual({ code: 0, signal: null });
  });

  test('a meshed Job completes: the app exits 0 after its first call, the native sidecar is then terminated, the pod Succeeds and no process is left', async () => {
    const net = network();
    const { native } = layouts;
    const payment = await startPod('payment', net.payment, native.payment, () => paymentApp());
    // The pod of a cdk8s-plus Job meshed with mesh.inject, exactly as synthesized.
    const meshedJob = synthesizeJob();
    expect(meshedJob.spec.restartPolicy).toBe('Never');
    expect(meshedJob.spec.initContainers!.map((c) => [c.name, c.restartPolicy])).toEqual([[INIT, undefined], [SIDECAR, 'Always']]);
    const job = await startPod('order', net.order, meshedJob, orderApp('job'));
    expect(await job.pod.completed()).toBe('Succeeded');
    expect(results(job.dir).map((r) => [r.phase, r.status])).toEqual([['first', 200]]);
    expect(job.pod.exits()[APP]).toEqual({ code: 0, signal: null });
    expect(job.pod.seqOf(APP, 'exited')).toBeLessThan(job.pod.seqOf(SIDECAR, 'SIGTERM')!);
    expect(job.pod.exits()[SIDECAR]).toEqual({ code: 0, signal: null });
    expect(job.pod.running()).toEqual([]);
    expect(pidsIn(net.order)).toEqual([]);
    await payment.pod.delete();
  });

  test('for contrast, a Job with a legacy sidecar never completes: the app exits 0 but the proxy keeps the pod Running', async () => {
    const net = network();
    const { legacy } = layouts;
    const payment = await startPod('payment', net.payment, legacy.payment, () => paymentApp());
    const job = await startPod('order', net.order, legacy.order, orderApp('job'), { ...legacy.order.spec, restartPolicy: 'Never' });
    await job.pod.exitOf(APP);
    expect(job.pod.phase).toBe('Running');
    expect(job.pod.running()).toEqual([SIDECAR]);
    expect(pidsIn(net.order).length).toBeGreaterThan(0);
    await job.pod.delete();
    await payment.pod.delete();
  });
});
