/**
 * Runs a whole mesh on one machine: every instance of every workload version is an app
 * process plus its own sidecar process, each instance on its own loopback address (or in
 * its own network namespace), with a certificate from a local CA and static discovery in
 * place of DNS. The sidecar configs are the chart's, rewritten only where a cluster and
 * this machine differ (see local-sidecar-config.ts).
 */
import { mkdtempSync, rmSync, writeFileSync, renameSync, mkdirSync, chmodSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';
import type { SidecarConfig, Subset } from '../config';
import { interceptionArgsFor } from '../config/pod-contract';
import { generateInterceptionScript, parseInterceptionArgs } from '../proxy-image/interception';
import { LocalCertificateAuthority } from './certificate-authority';
import { LocalEndpoint, LocalExternalEndpoint, localizeSidecarConfig, LocalTlsFiles, subsetVersion } from './local-sidecar-config';
import { LoopbackAddressPool } from './loopback-addresses';
import { ManagedProcess } from './managed-process';
import { NetnsNetwork } from './netns-network';
import type { LocalProcessSpec } from './plan';
import { ensureProxyBundle } from './proxy-bundle';
import type { MeshWorkload } from './topology';

/** Where instances live. */
export type LocalIsolation = 'loopback' | 'netns';

/** Options of {@link LocalMesh.start}. */
export interface LocalMeshOptions {
  /** The workload versions to run (from {@link workloadsFromChart}, or written by hand). */
  readonly workloads: readonly MeshWorkload[];
  /**
   * App processes keyed by `<workload>/<version>`, or `<namespace>/<workload>/<version>` where
   * two namespaces have a workload of the same name (that key wins). A workload version without
   * one runs its sidecar only (a client whose "app" is whoever talks to its outbound listener).
   * @default {}
   */
  readonly processes?: Readonly<Record<string, LocalProcessSpec>>;
  /**
   * Workload versions (`<workload>/<version>`) to run in their own network namespace with
   * the generated iptables rules (transparent interception; root only). `'all'` puts every
   * instance in a namespace.
   * @default none: every instance on its own loopback address
   */
  readonly netns?: readonly string[] | 'all';
  /**
   * The sidecar executable and its arguments before `--config <file>`.
   * @default node dist/proxy/typemesh-proxy.js (bundled on first use)
   */
  readonly proxyCommand?: { readonly command: string; readonly args: readonly string[] };
  /**
   * How long every instance has to become ready, in ms.
   * @default 30000
   */
  readonly readyTimeoutMs?: number;
  /**
   * Progress messages (one line each).
   * @default silent
   */
  readonly log?: (line: string) => void;
  /**
   * Stand-ins of ExternalServices (by name): their sidecar entries point at these addresses
   * instead of resolving the real hosts (see {@link LocalExternalEndpoint}).
   * @default none: external services resolve their real hosts
   */
  readonly externalEndpoints?: Readonly<Record<string, LocalExternalEndpoint>>;
}

/** One running instance: an app process and its sidecar. */
export interface LocalInstance {
  /** `<workload>/<version>#<index>`, or `<namespace>/<workload>/<version>#<index>` where two namespaces have a workload of that name. */
  readonly id: string;
  readonly workload: MeshWorkload;
  readonly index: number;
  /** The pod-like name the app sees in POD_NAME, e.g. `payment-service-v2-1`. */
  readonly podName: string;
  /** Its address: a 127.x address, or its namespace's veth address. */
  readonly address: string;
  /** The network namespace, when it runs in one. */
  readonly netns?: string;
  /** The sidecar's listener ports. */
  readonly ports: { readonly outbound: number; readonly inbound: number; readonly admin: number; readonly app: number };
  /** Its working directory (config and certificates). */
  readonly dir: string;
  readonly configFile: string;
  readonly tls: LocalTlsFiles;
  /** The app process, unless the workload version has none. */
  readonly app?: ManagedProcess;
  readonly sidecar: ManagedProcess;
  /** Its sidecar config as last written. */
  readonly config: SidecarConfig;
  /**
   * A MeshGateway's outside-facing listeners, as a client outside the mesh reaches them
   * (e.g. `http://127.31.4.2:8080`); empty for a sidecar.
   */
  readonly gatewayListeners: readonly LocalGatewayListener[];
  /** A gateway's locally issued HTTPS server certificate (verify it with the mesh's `ca.certPem`). */
  readonly gatewayTls?: LocalTlsFiles;
  /** false once it is being stopped: it is no longer anyone's endpoint. */
  readonly serving: boolean;
}

/** A listener of a gateway on this machine. */
export interface LocalGatewayListener {
  readonly name: string;
  readonly protocol: 'http' | 'https';
  readonly address: string;
  readonly port: number;
  /** `http://<address>:<port>` or `https://...`; send the route's host in the Host header (HTTPS: as the TLS server name). */
  readonly url: string;
}

type MutableInstance = { -readonly [K in keyof LocalInstance]: LocalInstance[K] };

/** The SPIFFE ID the local load driver and tests use as an outside caller (like an ingress gateway). */
export function ingressIdentity(trustDomain: string, namespace: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/typemesh-ingress`;
}

/** A client certificate issued by the mesh CA (PEM strings). */
export interface ClientCredentials {
  readonly spiffeId: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** A mesh running on this machine. */
export class LocalMesh {
  /** Starts every instance and waits until each sidecar reports ready. */
  public static async start(options: LocalMeshOptions): Promise<LocalMesh> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'typemesh-local-'));
    const ca = await LocalCertificateAuthority.create({ commonName: 'TypeMesh Local CA' });
    const mesh = new LocalMesh(options, dir, ca);
    try {
      await mesh.launch();
    } catch (e) {
      await mesh.stop();
      throw e;
    }
    return mesh;
  }

  private readonly all: MutableInstance[] = [];
  private readonly log: (line: string) => void;
  private netnsNetwork?: NetnsNetwork;
  private stopped = false;

  private constructor(private readonly options: LocalMeshOptions, public readonly workDir: string, public readonly ca: LocalCertificateAuthority) {
    this.log = options.log ?? (() => undefined);
  }

  /** Every instance started (including stopped ones). */
  public get instances(): readonly LocalInstance[] {
    return this.all;
  }

  /**
   * The instances of a workload version (`<workload>/<version>`), or of every version of a
   * workload (`<workload>`); prefix `<namespace>/` to pick one namespace's.
   */
  public instancesOf(key: string): LocalInstance[] {
    return this.all.filter((i) => i.workload.key === key || i.workload.name === key
      || `${i.workload.namespace}/${i.workload.key}` === key || `${i.workload.namespace}/${i.workload.name}` === key);
  }

  /** One instance by id (`<workload>/<version>#<index>`). */
  public instance(id: string): LocalInstance {
    const found = this.all.find((i) => i.id === id);
    if (!found) throw new Error(`no instance "${id}" (have: ${this.all.map((i) => i.id).join(', ')})`);
    return found;
  }

  /**
   * The listeners of a MeshGateway's first instance: where a client outside the mesh gets in.
   * @param name the gateway's name; default: the only gateway of the mesh
   */
  public gateway(name?: string): readonly LocalGatewayListener[] {
    const gateways = this.all.filter((i) => i.gatewayListeners.length > 0 && (name === undefined || i.workload.name === name));
    if (gateways.length === 0) throw new Error(`no gateway${name ? ` "${name}"` : ''} in this mesh (declare a MeshGateway in the chart)`);
    const names = new Set(gateways.map((g) => g.workload.name));
    if (name === undefined && names.size > 1) throw new Error(`the mesh has several gateways (${[...names].join(', ')}): name one`);
    return gateways[0].gatewayListeners;
  }

  /** Issues a client certificate for an identity (default: the ingress identity of the first workload's namespace). */
  public async clientCredentials(spiffeId?: string): Promise<ClientCredentials> {
    const first = this.options.workloads[0].config.workload;
    const id = spiffeId ?? ingressIdentity(first.trustDomain, first.namespace);
    const issued = await this.ca.issueWorkload({ spiffeId: id });
    return { spiffeId: id, cert: issued.certPem, key: issued.keyPem, ca: this.ca.certPem };
  }

  /**
   * Takes one instance out of service the way a rolling update does: it leaves every
   * caller's endpoints first (configs rewritten and reloaded), then its sidecar drains the
   * requests it has accepted and exits, then its app is stopped.
   */
  public async stopInstance(id: string): Promise<void> {
    const inst = this.all.find((i) => i.id === id);
    if (!inst) throw new Error(`no instance "${id}"`);
    if (!inst.serving) return;
    inst.serving = false;
    const changed = this.rewriteConfigs();
    await this.waitForReloads(changed);
    this.log(`stopping ${inst.id}: draining its sidecar`);
    await inst.sidecar.stop(inst.config.drainTimeoutMs + 2000);
    await inst.app?.stop(3000);
  }

  /** Issues the instance a fresh certificate (same identity, new key) into its files; the sidecar reloads it. */
  public async rotateCertificate(id: string): Promise<void> {
    const inst = this.instance(id);
    await this.ca.writeWorkloadFiles(path.dirname(inst.tls.certFile), { spiffeId: inst.workload.config.workload.identity });
    this.makeReadableForProxy(inst);
  }

  /** Stops every process (sidecars drain first), removes namespaces and the working directory. Safe to call twice. */
  public async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.all.map(async (inst) => {
      inst.serving = false;
      // sidecar is unset for instances a failed start never reached.
      await inst.sidecar?.stop(Math.min(inst.config.drainTimeoutMs, 5000) + 2000);
      await inst.app?.stop(3000);
    }));
    this.netnsNetwork?.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const proxy = this.options.proxyCommand ?? { command: process.execPath, args: [ensureProxyBundle({ rebuild: true })] };
    const inNetns = (w: MeshWorkload): boolean => this.options.netns === 'all' || (this.options.netns ?? []).includes(w.key);
    const anyNetns = this.options.workloads.some(inNetns);
    for (const w of this.options.workloads.filter(inNetns)) {
      // A namespace reaches the other namespaces and the host link, but not the host's 127.x addresses.
      // A destination by name, or (several ports, TCP services: <service>-<port name>) by identity.
      const calls = (o: MeshWorkload, svc: { name: string; namespace: string; subsets: Subset[] }): boolean => o.namespace === svc.namespace
        && (o.name === svc.name || svc.subsets.some((x) => x.identity === o.config.workload.identity && subsetVersion(x) === o.version));
      const onLoopback = [...new Set([...w.config.outbound.services, ...w.config.outbound.tcpServices]
        .flatMap((svc) => this.options.workloads.filter((o) => calls(o, svc) && !inNetns(o))))];
      if (onLoopback.length > 0) {
        throw new Error(`${w.key} runs in a network namespace but calls ${onLoopback.map((o) => o.key).join(', ')} on loopback, which a namespace cannot reach: put those in namespaces too (netns: 'all')`);
      }
    }
    if (anyNetns) this.netnsNetwork = NetnsNetwork.create();
    const allPorts = new Set<number>();
    for (const w of this.options.workloads) {
      const l = w.config.listeners;
      [l.outboundPort, l.inboundPort, l.adminPort, w.config.inbound.app.port, ...w.config.workload.appPorts.map((p) => p.port),
        ...w.config.outbound.tcpServices.map((t) => t.listenerPort), ...(w.config.gateway?.listeners ?? []).map((g) => g.port)].forEach((p) => allPorts.add(p));
    }
    const pool = new LoopbackAddressPool([...allPorts]);

    // 1. Addresses, certificates and directories for every instance, before any config is
    //    written: each config lists the other instances' addresses.
    for (const w of this.options.workloads) {
      const spec = this.processOf(w);
      // A gateway is a proxy without an app: it needs no process.
      if (!spec && !w.config.gateway) this.log(`note: the plan has no process for ${w.key}: running its sidecar only`);
      const replicas = spec?.replicas ?? w.replicas;
 // Two namespaces may each have a workload of this name: then its instances are told apart by namespace.
      const qualified = this.options.workloads.some((o) => o !== w && o.key === w.key);
      for (let index = 0; index < replicas; index++) {
        const id = `${qualified ? `${w.namespace}/` : ''}${w.key}#${index}`;
        const podName = `${w.name}-${w.version}-${index}`;
        const dir = path.join(this.workDir, w.namespace, podName);
        mkdirSync(dir, { recursive: true });
        const netns = inNetns(w) ? this.netnsNetwork!.addNamespace(qualified ? `${podName}-${w.namespace}` : podName, w.config.outbound.services.flatMap((svc) => svc.hosts)) : undefined;
        const address = netns ? netns.address : await pool.allocate();
        const tls = await this.ca.writeWorkloadFiles(path.join(dir, 'certs'), { spiffeId: w.config.workload.identity });
        const l = w.config.listeners;
        const gw = w.config.gateway;
        // The gateway's HTTPS server certificate: cert-manager issues it for the route hosts in a
        // cluster; here the local CA does, so clients verify it against the mesh's CA.
        const gatewayTls = gw?.listeners.some((g) => g.protocol === 'https')
          ? await this.ca.writeWorkloadFiles(path.join(dir, 'gateway-tls'), { spiffeId: w.config.workload.identity, dnsNames: [...new Set(['localhost', ...gw.routes.flatMap((r) => r.hosts).filter((h) => h !== '*')])] })
          : undefined;
        const gatewayListeners = (gw?.listeners ?? []).map((g) => ({ name: g.name, protocol: g.protocol, address, port: g.port, url: `${g.protocol}://${address}:${g.port}` }));
        this.all.push({
          id, workload: w, index, podName, address, netns: netns?.name, dir,
          ports: { outbound: l.outboundPort, inbound: l.inboundPort, admin: l.adminPort, app: w.config.inbound.app.port },
          configFile: path.join(dir, 'sidecar.yaml'), tls, gatewayListeners, gatewayTls,
          app: undefined, sidecar: undefined as unknown as ManagedProcess, config: w.config, serving: true,
        });
      }
    }
    this.rewriteConfigs();

    // 2. Interception rules for namespaced instances, then apps, then sidecars.
    for (const inst of this.all) {
      if (inst.netns) {
        // The same rules the init container installs in a pod, generated from the same config.
        const script = path.join(inst.dir, 'interception.sh');
        writeFileSync(script, generateInterceptionScript(parseInterceptionArgs(interceptionArgsFor(inst.config)).options), { mode: 0o755 });
        this.netnsNetwork!.runScript(inst.netns, script);
        this.makeReadableForProxy(inst);
      }
      const spec = this.processOf(inst.workload);
      if (spec) inst.app = this.startApp(inst, spec);
      const sidecarArgs = [...proxy.args, '--config', inst.configFile];
      inst.sidecar = ManagedProcess.start({
        name: `${inst.id} sidecar`,
        ...(inst.netns ? this.netnsNetwork!.wrapAsProxyUser(inst.netns, proxy.command, sidecarArgs) : { command: proxy.command, args: sidecarArgs }),
        env: { ...process.env, NODE_ENV: 'production' },
        logFile: path.join(inst.dir, 'sidecar.log'),
      });
      this.log(`started ${inst.id} at ${inst.address}${inst.netns ? ` (netns ${inst.netns})` : ''}`);
      if (inst.gatewayListeners.length > 0) {
        const hosts = [...new Set((inst.config.gateway?.routes ?? []).flatMap((r) => r.hosts))].join(', ');
        this.log(`gateway ${inst.workload.name}: ${inst.gatewayListeners.map((g) => g.url).join('  ')}  (hosts: ${hosts}; e.g. curl -H 'Host: ${hosts.split(', ')[0].replace(/^\*\.?/, '') || 'any'}' ${inst.gatewayListeners[0].url}/)`);
      }
    }
    await Promise.all(this.all.map((inst) => this.waitReady(inst)));
    this.log(`all ${this.all.length} instances ready`);
  }

  /** The app process of a workload version: by `<namespace>/<workload>/<version>`, else `<workload>/<version>`. */
  private processOf(w: MeshWorkload): LocalProcessSpec | undefined {
    return this.options.processes?.[`${w.namespace}/${w.key}`] ?? this.options.processes?.[w.key];
  }

  private startApp(inst: MutableInstance, spec: LocalProcessSpec): ManagedProcess {
    const w = inst.workload.config.workload;
    // What a pod's app would see: the container's env from the chart, its port, its name
    // (downward API) and, in explicit mode, HTTP_PROXY pointing at its own sidecar.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...inst.workload.appEnv,
      PORT: String(inst.ports.app),
      HOST: inst.netns ? '0.0.0.0' : inst.address,
      POD_NAME: inst.podName,
      POD_NAMESPACE: w.namespace,
      POD_IP: inst.address,
      ...spec.env,
      ...spec.instanceEnv?.(inst.index),
    };
    delete env.HTTP_PROXY;
    delete env.http_proxy;
    delete env.HTTPS_PROXY;
    delete env.NO_PROXY;
    if (!inst.netns) {
      env.HTTP_PROXY = `http://${inst.address}:${inst.ports.outbound}`;
      // No interception redirects a TCP service's port here: the app connects to its sidecar's
      // listener for the service, TYPEMESH_TCP_<NAMESPACE>_<SERVICE>_<PORT>=<address>:<listenerPort>.
      for (const t of inst.workload.config.outbound.tcpServices) env[tcpServiceEnvName(t)] = `${inst.address}:${t.listenerPort}`;
    }
    const args = [...(spec.args ?? [])];
    return ManagedProcess.start({
      name: `${inst.id} app`,
      ...(inst.netns ? this.netnsNetwork!.wrap(inst.netns, spec.command, args) : { command: spec.command, args }),
      env,
      logFile: path.join(inst.dir, 'app.log'),
    });
  }

  /** Endpoints of a subset: the inbound listeners of the serving instances of that version. */
  private endpointsOf(service: string, namespace: string, subset: Subset): LocalEndpoint[] {
    const version = subsetVersion(subset);
    return this.all
      .filter((i) => i.serving && i.workload.namespace === namespace && i.workload.version === version
        && (i.workload.name === service || i.workload.config.workload.identity === subset.identity))
      .map((i) => ({ address: i.address, port: i.ports.inbound }));
  }

  /** Writes every serving instance's config; returns the instances whose config changed. */
  private rewriteConfigs(): MutableInstance[] {
    const changed: MutableInstance[] = [];
    for (const inst of this.all) {
      if (!inst.serving) continue;
      const config = localizeSidecarConfig(inst.workload.config, {
        bindAddress: inst.netns ? '0.0.0.0' : inst.address,
        appAddress: inst.netns ? '127.0.0.1' : inst.address,
        tls: inst.tls,
        gatewayTls: inst.gatewayTls,
        endpointsOf: (svc, ns, subset) => this.endpointsOf(svc, ns, subset),
        externalEndpoints: this.options.externalEndpoints,
      });
      const text = YAML.stringify(config);
      if (inst.config !== inst.workload.config && YAML.stringify(inst.config) === text) continue;
      inst.config = config;
      // Rename over the old file so the sidecar's watcher never reads half a config.
      const tmp = `${inst.configFile}.tmp`;
      writeFileSync(tmp, `# ${inst.id}: generated by typemesh local from the chart's ConfigMap\n${text}`, { mode: 0o644 });
      renameSync(tmp, inst.configFile);
      changed.push(inst);
    }
    return changed;
  }

  /** The proxy in a namespace runs as uid 1337: it must be able to read its files. */
  private makeReadableForProxy(inst: LocalInstance): void {
    if (!inst.netns) return;
    for (const p of [this.workDir, inst.dir, path.dirname(inst.tls.certFile)]) chmodSync(p, 0o755);
    for (const f of [inst.tls.certFile, inst.tls.keyFile, inst.tls.caFile, inst.configFile]) chmodSync(f, 0o644);
    if (inst.gatewayTls) {
      chmodSync(path.dirname(inst.gatewayTls.certFile), 0o755);
      for (const f of [inst.gatewayTls.certFile, inst.gatewayTls.keyFile]) chmodSync(f, 0o644);
    }
  }

  /** Waits until each sidecar has accepted its rewritten config (typemesh_config_reloads_total grows), at most 5 s. */
  private async waitForReloads(changed: readonly MutableInstance[]): Promise<void> {
    await Promise.all(changed.filter((i) => i.sidecar?.running).map(async (inst) => {
      const before = await this.acceptedReloads(inst);
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        const now = await this.acceptedReloads(inst);
        if (before !== undefined && now !== undefined && now > before) return;
        await sleep(100);
      }
      this.log(`warning: ${inst.id} did not confirm reloading its config within 5 s`);
    }));
  }

  private async acceptedReloads(inst: LocalInstance): Promise<number | undefined> {
    try {
      const text = await httpGetText(`http://${inst.address}:${inst.ports.admin}/metrics`, 2000);
      const m = /^typemesh_config_reloads_total\{[^}]*result="accepted"[^}]*\}\s+([0-9.e+]+)/m.exec(text.body);
      return m ? Number(m[1]) : 0;
    } catch {
      return undefined;
    }
  }

  private async waitReady(inst: LocalInstance): Promise<void> {
    const timeoutMs = this.options.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let appUp = inst.app === undefined;
    for (;;) {
      for (const p of [inst.sidecar, inst.app]) {
        if (p && !p.running) {
          throw new Error(`${p.options.name} exited during start-up (${JSON.stringify(p.exit)}); last log lines:\n${p.logTail()}`);
        }
      }
      if (!appUp) {
        // From the host, a namespaced app port is captured by the interception rules (it
        // would reach the sidecar), so ask the namespace's socket table instead.
        appUp = inst.netns ? this.netnsNetwork!.isListening(inst.netns, inst.ports.app) : await tcpReachable(inst.address, inst.ports.app, inst.address);
      }
      if (appUp) {
        try {
          const res = await httpGetText(`http://${inst.address}:${inst.ports.admin}/healthz/ready`, 1000);
          if (res.status === 200) return;
        } catch {
          // Not listening yet.
        }
      }
      if (Date.now() > deadline) {
        throw new Error(`${inst.id} not ready after ${timeoutMs} ms (app ${appUp ? 'up' : 'not listening'}); sidecar log:\n${inst.sidecar.logTail()}${inst.app ? `\napp log:\n${inst.app.logTail()}` : ''}`);
      }
      await sleep(100);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** GET a URL with node:http (no proxy, no keep-alive). */
export function httpGetText(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${url}`)));
    req.on('error', reject);
  });
}

function tcpReachable(host: string, port: number, localAddress?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, localAddress });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The environment variable an explicit-mode local app reads to reach a TCP service through its
 * sidecar: `TYPEMESH_TCP_<NAMESPACE>_<SERVICE>_<PORT>` (upper case, "-" as "_").
 */
export function tcpServiceEnvName(t: { readonly name: string; readonly namespace: string; readonly port: number }): string {
  return `TYPEMESH_TCP_${t.namespace}_${t.name}_${t.port}`.toUpperCase().replace(/-/g, '_');
}
