/**
 * The pod contract: what the constructs (src/constructs), the sidecar (src/proxy-image), its
 * init step (typemesh-init, typemesh-cni) and the local runner (src/local) must agree on about a
 * meshed pod. The ports, the proxy's uid, the mount paths, the container names and the
 * interception flags live here once; every side imports them, so none can drift.
 *
 * This module imports nothing from the constructs or the proxy: both depend on it, not on each
 * other.
 */
import type { SidecarConfig } from './schema';

/** The proxy's outbound listener (loopback only): the app's intercepted outbound traffic. */
export const PROXY_OUTBOUND_PORT = 15001;
/** The proxy's inbound listener: mTLS from other sidecars and intercepted inbound traffic. */
export const PROXY_INBOUND_PORT = 15006;
/** The proxy's admin listener: /metrics, /healthz/ready, /healthz/live, /app-health/... */
export const PROXY_ADMIN_PORT = 15020;
/** Lowest port reserved for the sidecar; apps may not use 15000-15090. */
export const RESERVED_PORT_MIN = 15000;
/** Highest port reserved for the sidecar. */
export const RESERVED_PORT_MAX = 15090;

/**
 * The first of the loopback listener ports a caller's sidecar opens for the meshed TCP services
 * it calls (outbound.tcpServices[].listenerPort): the n-th TCP destination port of a caller,
 * in declaration order, gets TCP_LISTENER_PORT_MIN + n. Inside the reserved range, so no app
 * port can collide with one.
 */
export const TCP_LISTENER_PORT_MIN = 15040;
/** The last TCP listener port: a caller reaches at most 50 TCP service ports. */
export const TCP_LISTENER_PORT_MAX = 15089;

/** The uid the proxy runs as; the interception rules never capture its own traffic. */
export const PROXY_UID = 1337;

/** Where the sidecar finds its config (the ConfigMap is mounted here). */
export const SIDECAR_CONFIG_DIR = '/etc/typemesh/config';
/** The key of the sidecar config in its ConfigMap, the file name under SIDECAR_CONFIG_DIR. */
export const SIDECAR_CONFIG_KEY = 'sidecar.yaml';
/** Where the sidecar finds its certificate (the cert-manager Secret is mounted here). */
export const SIDECAR_CERTS_DIR = '/etc/typemesh/certs';
/** Where the sidecar finds the mesh's trust bundle (the bundle ConfigMap is mounted here). */
export const SIDECAR_TRUST_DIR = '/etc/typemesh/trust';

/** The name of the app container (it appears in the probe paths). */
export const APP_CONTAINER = 'app';
/** The name of the sidecar container, and the proxy's command. */
export const SIDECAR_CONTAINER = 'typemesh-proxy';
/** The name of the interception init container, and its command. */
export const INIT_CONTAINER = 'typemesh-init';

/** The pod annotation carrying typemesh-init's flags for the typemesh-cni plugin (CNI mode). */
export const INTERCEPTION_ARGS_ANNOTATION = 'typemesh.io/interception-args';

/** The readiness URL the legacy sidecar's postStart hook (`typemesh-proxy --wait-ready`) polls. */
export const WAIT_READY_URL = `http://127.0.0.1:${PROXY_ADMIN_PORT}/healthz/ready`;

/**
 * typemesh-init's arguments for a workload, for the init container of its pod: every inbound
 * port is captured (its app ports are passed for validation); outbound, the ports of the mesh
 * services it calls (each service port and each subset's discovery port) are captured. A
 * workload that calls no mesh service gets --no-outbound-capture: capturing all its TCP would
 * send non-mesh traffic (a database, say) to the HTTP proxy. Each meshed TCP service port goes
 * to its own listener (--tcp-redirects PORT:LISTENER, matched before the HTTP capture); its port
 * is also listed in --outbound-ports so that a caller of TCP services only never captures all TCP.
 */
export function interceptionArgsFor(config: SidecarConfig): string[] {
  const appPorts = sortedUnique(config.workload.appPorts.map((p) => p.port));
  const outboundPorts = new Set<number>();
  for (const svc of config.outbound.services) {
    outboundPorts.add(svc.port);
    for (const subset of svc.subsets) {
      if (subset.discovery.type === 'dns') outboundPorts.add(subset.discovery.port);
      else for (const e of subset.discovery.endpoints) outboundPorts.add(e.port);
    }
  }
  const tcp = config.outbound.tcpServices;
  for (const svc of tcp) outboundPorts.add(svc.port);
  const { outboundPort, inboundPort, adminPort } = config.listeners;
  // A mesh port that is one of the proxy's own listener ports is already reached directly.
  for (const p of [outboundPort, inboundPort, adminPort]) outboundPorts.delete(p);
  const args = [
    '--proxy-uid', String(PROXY_UID),
    '--outbound-port', String(outboundPort),
    '--inbound-port', String(inboundPort),
    '--admin-port', String(adminPort),
    '--app-ports', appPorts.join(','),
  ];
  if ((config.outbound.services.length === 0 && tcp.length === 0) || outboundPorts.size === 0) args.push('--no-outbound-capture');
  else args.push('--outbound-ports', sortedUnique([...outboundPorts]).join(','));
  if (tcp.length > 0) {
    args.push('--tcp-redirects', [...tcp].sort((a, b) => a.port - b.port).map((s) => `${s.port}:${s.listenerPort}`).join(','));
  }
  return args;
}

function sortedUnique(ports: readonly number[]): number[] {
  return [...new Set(ports)].sort((a, b) => a - b);
}
