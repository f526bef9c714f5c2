/**
 * The options of transparent interception (the init container's iptables rules) and their
 * validation. Validation runs before any rule is generated, so a bad option never leaves a
 * pod with half its traffic captured.
 *
 * Part of the pod contract (./pod-contract.ts): the constructs validate these options at synth
 * time and typemesh-init / typemesh-cni at pod start, from this one module.
 */
import { isIPv6 } from 'node:net';
import { PROXY_ADMIN_PORT, PROXY_INBOUND_PORT, PROXY_OUTBOUND_PORT, PROXY_UID } from './pod-contract';

/** The uid the proxy runs as; its own traffic is never captured. */
export const DEFAULT_PROXY_UID = PROXY_UID;
/** The proxy's outbound listener. */
export const DEFAULT_OUTBOUND_PORT = PROXY_OUTBOUND_PORT;
/** The proxy's inbound (mTLS) listener. */
export const DEFAULT_INBOUND_PORT = PROXY_INBOUND_PORT;
/** The proxy's admin listener (metrics, health, probes). */
export const DEFAULT_ADMIN_PORT = PROXY_ADMIN_PORT;

/** What the generated iptables rules capture and what they leave alone. */
export interface InterceptionOptions {
  /**
   * The uid of the proxy process: its connections are never redirected (or the proxy
   * would loop into itself).
   * @default 1337
   */
  readonly proxyUid?: number;
  /**
   * Where outbound TCP is redirected (the proxy's outbound listener).
   * @default 15001
   */
  readonly outboundPort?: number;
  /**
   * Where inbound TCP to the app ports is redirected (the proxy's inbound listener).
   * @default 15006
   */
  readonly inboundPort?: number;
  /**
   * The proxy's admin port: never captured, so kubelet probes and Prometheus reach it.
   * @default 15020
   */
  readonly adminPort?: number;
  /**
   * The app's ports. Inbound capture covers every TCP port except adminPort, inboundPort and
   * excludeInboundPorts whatever this lists (a port the app opens without declaring it must not
   * bypass the sidecar); the list is checked against those (an app port cannot be excluded or
   * be one of the proxy's ports) and named in the script's header.
   * @default []
   */
  readonly appPorts?: readonly number[];
  /**
   * Destination ports of outbound TCP to capture (the mesh services' ports). Empty
   * captures all outbound TCP.
   * @default []
   */
  readonly outboundPorts?: readonly number[];
  /**
   * Capture outbound traffic at all. false leaves outbound alone (a workload that calls no
   * mesh service: capturing all TCP would send its database traffic to an HTTP proxy).
   * @default true
   */
  readonly captureOutbound?: boolean;
  /**
   * Inbound ports never captured (ssh, a metrics port scraped without mTLS). The outbound port
   * cannot be excluded: from outside the pod it must reach the mTLS listener, not the proxy.
   * @default []
   */
  readonly excludeInboundPorts?: readonly number[];
  /**
   * Outbound destination ports never captured.
   * @default []
   */
  readonly excludeOutboundPorts?: readonly number[];
  /**
   * Meshed TCP services: outbound TCP to destination `port` goes to the proxy's `listenerPort`
   * (outbound.tcpServices[].listenerPort of the sidecar config) instead of the HTTP outbound
   * port. The proxy cannot read a redirected connection's original destination
   * (SO_ORIGINAL_DST), so the listener it arrives on is what tells it the service.
   * @default []
   */
  readonly tcpRedirects?: readonly TcpRedirect[];
  /**
   * Outbound destinations never captured, e.g. the cloud metadata server: IPv4 (a.b.c.d or
   * a.b.c.d/n) or IPv6 (an address or address/n); each goes into its family's rules.
   * @default []
   */
  readonly excludeOutboundCidrs?: readonly string[];
}

/** One meshed TCP service port and the proxy listener its connections are redirected to. */
export interface TcpRedirect {
  /** The destination port the app connects to (the service port). */
  readonly port: number;
  /** The proxy's loopback listener for that service. */
  readonly listenerPort: number;
}

/** InterceptionOptions with every default filled in, validated, sorted and de-duplicated. */
export interface ResolvedInterceptionOptions {
  readonly proxyUid: number;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
  readonly appPorts: readonly number[];
  readonly outboundPorts: readonly number[];
  readonly captureOutbound: boolean;
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  readonly excludeOutboundCidrs: readonly string[];
  readonly tcpRedirects: readonly TcpRedirect[];
}

/** Thrown for an invalid option; the message names the option, the value and the fix. */
export class InterceptionOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InterceptionOptionsError';
  }
}

/** Fills in defaults and validates; throws InterceptionOptionsError listing every problem. */
export function resolveInterceptionOptions(opts: InterceptionOptions): ResolvedInterceptionOptions {
  const problems: string[] = [];
  const port = (field: string, value: unknown, fallback: number): number => {
    if (value === undefined) return fallback;
    if (!isPort(value)) {
      problems.push(`${field} must be an integer port from 1 to 65535, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return value;
  };
  const ports = (field: string, value: readonly unknown[] | undefined): number[] => {
    if (value === undefined) return [];
    const bad = value.filter((v) => !isPort(v));
    if (bad.length > 0) {
      problems.push(`${field} must list integer ports from 1 to 65535, got ${bad.map((v) => JSON.stringify(v)).join(', ')}`);
    }
    return [...new Set(value.filter(isPort))].sort((a, b) => a - b);
  };

  let proxyUid = DEFAULT_PROXY_UID;
  if (opts.proxyUid !== undefined) {
    if (!Number.isInteger(opts.proxyUid) || opts.proxyUid < 0 || opts.proxyUid > 0xfffffffe) {
      problems.push(`proxyUid must be a non-negative integer uid, got ${JSON.stringify(opts.proxyUid)}`);
    } else if (opts.proxyUid === 0) {
      problems.push('proxyUid must not be 0: root\'s traffic would bypass interception; run the proxy as its own uid (1337)');
    } else {
      proxyUid = opts.proxyUid;
    }
  }
  const outboundPort = port('outboundPort', opts.outboundPort, DEFAULT_OUTBOUND_PORT);
  const inboundPort = port('inboundPort', opts.inboundPort, DEFAULT_INBOUND_PORT);
  const adminPort = port('adminPort', opts.adminPort, DEFAULT_ADMIN_PORT);
  const proxyPorts = new Map<number, string>([[outboundPort, 'outboundPort'], [inboundPort, 'inboundPort'], [adminPort, 'adminPort']]);
  if (proxyPorts.size < 3) {
    problems.push(`outboundPort (${outboundPort}), inboundPort (${inboundPort}) and adminPort (${adminPort}) must be three different ports`);
  }
  const appPorts = ports('appPorts', opts.appPorts);
  const outboundPorts = ports('outboundPorts', opts.outboundPorts);
  const excludeInboundPorts = ports('excludeInboundPorts', opts.excludeInboundPorts);
  const excludeOutboundPorts = ports('excludeOutboundPorts', opts.excludeOutboundPorts);
  for (const p of appPorts) {
    const proxyPort = proxyPorts.get(p);
    if (proxyPort) problems.push(`appPorts contains ${p}, which is the proxy's ${proxyPort}: give the app another port`);
    if (excludeInboundPorts.includes(p)) problems.push(`appPorts and excludeInboundPorts both contain ${p}: remove it from one of them`);
  }
  if (excludeInboundPorts.includes(outboundPort)) {
    problems.push(`excludeInboundPorts contains ${outboundPort}, the proxy's outboundPort: from outside the pod it would reach the outbound proxy; remove it`);
  }
  for (const p of outboundPorts) {
    if (excludeOutboundPorts.includes(p)) problems.push(`outboundPorts and excludeOutboundPorts both contain ${p}: remove it from one of them`);
  }
  const captureOutbound = opts.captureOutbound ?? true;
  if (!captureOutbound && outboundPorts.length > 0) {
    problems.push(`captureOutbound is false but outboundPorts lists ${outboundPorts.join(', ')}: drop one of the two`);
  }
  const tcpRedirects: TcpRedirect[] = [];
  for (const r of opts.tcpRedirects ?? []) {
    if (!isPort(r.port) || !isPort(r.listenerPort)) {
      problems.push(`tcpRedirects must map integer ports from 1 to 65535, got ${JSON.stringify(r)}`);
      continue;
    }
    const proxyPort = proxyPorts.get(r.listenerPort);
    if (proxyPort) problems.push(`tcpRedirects sends port ${r.port} to ${r.listenerPort}, which is the proxy's ${proxyPort}: give the TCP service a listener port of its own`);
    if (excludeOutboundPorts.includes(r.port)) problems.push(`tcpRedirects and excludeOutboundPorts both contain ${r.port}: remove it from one of them`);
    if (!captureOutbound) problems.push(`captureOutbound is false but tcpRedirects lists port ${r.port}: drop one of the two`);
    const same = tcpRedirects.find((t) => t.port === r.port);
    if (same && same.listenerPort !== r.listenerPort) problems.push(`tcpRedirects sends port ${r.port} to both ${same.listenerPort} and ${r.listenerPort}: one destination port can reach one TCP service only`);
    else if (!same) tcpRedirects.push({ port: r.port, listenerPort: r.listenerPort });
  }
  tcpRedirects.sort((a, b) => a.port - b.port);
  const excludeOutboundCidrs: string[] = [];
  for (const cidr of opts.excludeOutboundCidrs ?? []) {
    const normalized = parseIpv4Cidr(cidr) ?? parseIpv6Cidr(cidr);
    if (normalized === undefined) {
      problems.push(`excludeOutboundCidrs contains ${JSON.stringify(cidr)}, which is not an IPv4 or IPv6 address or CIDR such as 169.254.169.254/32 or fd00:ec2::254/128`);
    } else if (!excludeOutboundCidrs.includes(normalized)) {
      excludeOutboundCidrs.push(normalized);
    }
  }
  if (problems.length > 0) {
    throw new InterceptionOptionsError(`invalid interception options:\n  - ${problems.join('\n  - ')}`);
  }
  return {
    proxyUid, outboundPort, inboundPort, adminPort, appPorts, outboundPorts, captureOutbound,
    excludeInboundPorts, excludeOutboundPorts, excludeOutboundCidrs, tcpRedirects,
  };
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/** An IPv6 address or address/n (n up to 128) as "address/n", or undefined. */
function parseIpv6Cidr(s: string): string | undefined {
  const m = /^([0-9A-Fa-f:.]+)(?:\/(\d{1,3}))?$/.exec(s);
  if (!m || !isIPv6(m[1])) return undefined;
  const bits = m[2] === undefined ? 128 : Number(m[2]);
  if (bits > 128) return undefined;
  return `${m[1].toLowerCase()}/${bits}`;
}

/** "a.b.c.d" or "a.b.c.d/n" in canonical form ("a.b.c.d/n"), or undefined. */
function parseIpv4Cidr(s: string): string | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(s);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const bits = m[5] === undefined ? 32 : Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) return undefined;
  return `${octets.join('.')}/${bits}`;
}
