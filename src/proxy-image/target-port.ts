/**
 * Which app port a meshed connection is for (docs/architecture.md#ports-and-tcp).
 *
 * Node.js cannot read SO_ORIGINAL_DST, so the inbound sidecar cannot learn the port a peer's
 * connection was first addressed to once iptables redirected it to 15006. Instead the calling
 * sidecar, which knows the service port the app called (from the Host header for HTTP, from
 * the listener the app connected to for TCP), names the destination's app port in the SNI of
 * its mTLS connection, as Istio does with `outbound_.9090_._.payment.shop.svc.cluster.local`.
 * The inbound sidecar reads it after the handshake (the port is covered by the handshake, and
 * only an authenticated peer gets that far) and forwards to that app port if the workload
 * declares it. No SNI (a plaintext PERMISSIVE client, a client that is not a sidecar): the
 * default app port (inbound.app.port), which is also where undeclared ports captured by the
 * init step go.
 */
import type { SidecarConfig } from '../config';
import type { ServiceEntry } from './state';
import { hostWithoutPort } from './routing';

/** The SNI a calling sidecar sends for the destination's app port `port` of service `service` in `namespace`. */
export function targetPortServerName(port: number, service: string, namespace: string): string {
  return `outbound_.${port}_._.${service}.${namespace}`;
}

const SNI = /^outbound_\.(\d{1,5})_\./;

/** The app port named by an SNI of {@link targetPortServerName}, or undefined (no SNI, another name). */
export function targetPortOf(servername: string | false | null | undefined): number | undefined {
  if (typeof servername !== 'string') return undefined;
  const m = SNI.exec(servername);
  if (!m) return undefined;
  const port = Number(m[1]);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** An app port of the workload, as the inbound listener serves it. */
export type AppPortTarget =
  | { readonly kind: 'default' }
  | { readonly kind: 'port'; readonly port: number; readonly protocol: SidecarConfig['workload']['appPorts'][number]['protocol'] }
  | { readonly kind: 'undeclared'; readonly port: number };

/** Resolves the SNI of an inbound connection against the workload's declared app ports. */
export function appPortTarget(config: SidecarConfig, servername: string | false | null | undefined): AppPortTarget {
  const port = targetPortOf(servername);
  if (port === undefined) return { kind: 'default' };
  const declared = config.workload.appPorts.find((p) => p.port === port);
  // A peer may only name a port the workload serves: never any other loopback port of the pod.
  if (!declared) return { kind: 'undeclared', port };
  return { kind: 'port', port, protocol: declared.protocol };
}

/**
 * The state's key for a service reached on a given port: services are found by `host:port`
 * first (two ports of one service are two outbound services with the same hosts), then by host.
 */
export function hostPortKey(host: string, port: number): string {
  return `${hostWithoutPort(host)}:${port}`;
}

/** The service an authority (Host header or :authority) selects: by host and explicit port (none: 80), else by host alone. */
export function serviceForAuthority(hosts: ReadonlyMap<string, ServiceEntry>, authority: string): ServiceEntry | undefined {
  const host = hostWithoutPort(authority);
  // Where the port would start: after "]" for an IPv6 literal, at the first ":" otherwise.
  const colon = authority.startsWith('[') ? authority.indexOf(']') + 1 : authority.indexOf(':');
  if (colon > 0 && authority[colon] === ':') {
    const port = Number(authority.slice(colon + 1));
    if (Number.isInteger(port) && port > 0) {
      const byPort = hosts.get(`${host}:${port}`);
      if (byPort) return byPort;
    }
  } else {
    // No port is the http scheme's port 80: a multi-port service's port 80, whichever port
    // was declared last (a service without port 80 still goes by host alone).
    const onDefaultPort = hosts.get(`${host}:80`);
    if (onDefaultPort) return onDefaultPort;
  }
  return hosts.get(host);
}
