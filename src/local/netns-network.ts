/**
 * Network namespaces for local instances (root only). Each namespaced instance gets its
 * own namespace, like a pod: an `eth0` veth with its own 10.x address on a bridge that
 * lives in a private "hub" namespace, so the instances reach each other without touching
 * the host's interfaces or forwarding settings. One more veth joins the hub to the host
 * (the only thing this adds to the host, removed on destroy), so the runner, the load
 * driver and the tests can reach the instances' listeners.
 *
 * Service names resolve through /etc/netns/<namespace>/hosts (bind-mounted over
 * /etc/hosts by `ip netns exec`) to a placeholder cluster IP that nothing listens on: a
 * call reaches the mesh only because the generated iptables rules redirect it to the
 * sidecar, which is what transparent interception means.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PROXY_UID } from '../config/pod-contract';

/** The placeholder "ClusterIP" every mesh service name resolves to inside a namespace. */
export const PLACEHOLDER_CLUSTER_IP = '10.96.0.10';
/** The uid of the proxy: the interception rules never capture its traffic (the pod contract's). */
export { PROXY_UID };

/** True when `ip netns` works here (root with iproute2). */
export function netnsAvailable(): boolean {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    execFileSync('iptables', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ip(args: readonly string[]): void {
  try {
    execFileSync('ip', [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`ip ${args.join(' ')} failed: ${stderr ?? (e as Error).message}`);
  }
}

/** A namespace handed to one instance. */
export interface InstanceNamespace {
  readonly name: string;
  /** Its eth0 address, reachable from the host. */
  readonly address: string;
}

/** The hub, the host link and every instance namespace of one local mesh. */
export class NetnsNetwork {
  /** Creates the hub namespace with its bridge, and the host link. */
  public static create(): NetnsNetwork {
    if (!netnsAvailable()) throw new Error('network namespaces need root and iproute2 + iptables (`ip netns`); run without netns isolation instead');
    const run = Math.random().toString(36).slice(2, 6);
    const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
    const net = new NetnsNetwork(run, subnet);
    try {
      net.setUp();
    } catch (e) {
      net.destroy();
      throw e;
    }
    return net;
  }

  private readonly hub: string;
  private readonly hostLink: string;
  private readonly namespaces: string[] = [];
  private destroyed = false;

  private constructor(private readonly run: string, private readonly subnet: string) {
    this.hub = `tm-${run}-hub`;
    this.hostLink = `tm${run}h`;
  }

  private setUp(): void {
    ip(['netns', 'add', this.hub]);
    ip(['-n', this.hub, 'link', 'set', 'lo', 'up']);
    ip(['-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', this.hub, 'link', 'set', 'br0', 'up']);
    ip(['link', 'add', this.hostLink, 'type', 'veth', 'peer', 'name', 'host', 'netns', this.hub]);
    ip(['-n', this.hub, 'link', 'set', 'host', 'master', 'br0', 'up']);
    ip(['addr', 'add', `${this.subnet}.254/24`, 'dev', this.hostLink]);
    ip(['link', 'set', this.hostLink, 'up']);
  }

  /** Creates a namespace for one instance, with eth0 on the bridge, and the hosts file that names the mesh services. */
  public addNamespace(podName: string, serviceHosts: readonly string[] = []): InstanceNamespace {
    const k = this.namespaces.length + 1;
    if (k > 250) throw new Error('at most 250 namespaced instances per local mesh');
    const name = `tm-${this.run}-${k}`;
    const address = `${this.subnet}.${k}`;
    this.namespaces.push(name);
    ip(['netns', 'add', name]);
    ip(['link', 'add', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', `p${k}`, 'netns', this.hub]);
    ip(['-n', this.hub, 'link', 'set', `p${k}`, 'master', 'br0', 'up']);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    ip(['-n', name, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    ip(['-n', name, 'link', 'set', 'eth0', 'up']);
    // A default route, so that a connect() to a service's placeholder IP gets as far as
    // the iptables OUTPUT chain (without a route it fails before interception can act).
    ip(['-n', name, 'route', 'add', 'default', 'dev', 'eth0']);
    this.writeHosts(name, podName, address, serviceHosts);
    return { name, address };
  }

  private writeHosts(name: string, podName: string, address: string, serviceHosts: readonly string[]): void {
    const dir = path.join('/etc/netns', name);
    mkdirSync(dir, { recursive: true });
    const lines = ['127.0.0.1 localhost', `${address} ${podName}`];
    if (serviceHosts.length > 0) lines.push(`${PLACEHOLDER_CLUSTER_IP} ${[...new Set(serviceHosts)].join(' ')}`);
    writeFileSync(path.join(dir, 'hosts'), lines.join('\n') + '\n');
  }

  /** Runs a shell script inside a namespace (the interception rules). */
  public runScript(namespace: string, scriptFile: string): void {
    try {
      execFileSync('ip', ['netns', 'exec', namespace, 'sh', scriptFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: Buffer; stdout?: Buffer };
      throw new Error(`interception script ${scriptFile} failed in ${namespace}: ${err.stderr?.toString() ?? ''}${err.stdout?.toString() ?? ''}`);
    }
  }

  /** True when something listens on the TCP port inside the namespace (`ss -N`). */
  public isListening(namespace: string, port: number): boolean {
    try {
      return execFileSync('ss', ['-N', namespace, '-ltnH', `sport = :${port}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().length > 0;
    } catch {
      return false;
    }
  }

  /** A command line that runs `command` inside the namespace (as root, like an app container here). */
  public wrap(namespace: string, command: string, args: readonly string[]): { command: string; args: string[] } {
    return { command: 'ip', args: ['netns', 'exec', namespace, command, ...args] };
  }

  /** A command line that runs `command` inside the namespace as the proxy's uid, which the rules exclude. */
  public wrapAsProxyUser(namespace: string, command: string, args: readonly string[]): { command: string; args: string[] } {
    // Changing uid clears the parent-death signal, so it is set again here.
    return this.wrap(namespace, 'setpriv', [`--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', '--pdeathsig', 'KILL', '--', command, ...args]);
  }

  /** Deletes every namespace (their veths go with them) and their hosts files. Processes must be stopped first. */
  public destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const name of [...this.namespaces, this.hub]) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
      rmSync(path.join('/etc/netns', name), { recursive: true, force: true });
    }
    try {
      execFileSync('ip', ['link', 'del', this.hostLink], { stdio: 'ignore' });
    } catch {
      // Removed with the hub, the normal case.
    }
  }
}
