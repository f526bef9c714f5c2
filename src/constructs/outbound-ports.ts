/**
 * A caller's outbound section, port by port: every HTTP port of a destination is one outbound
 * service (same hosts, its own `port` and `targetPort`, so the caller's sidecar picks it by
 * `host:port` and names the app port in the SNI), and every TCP port is one TCP service with a
 * loopback listener of the caller's own (the init step redirects the service port there).
 * MeshService and injected workloads both build their outbound section here.
 */
import { IConstruct } from 'constructs';
import { TCP_LISTENER_PORT_MAX, TCP_LISTENER_PORT_MIN } from '../config/pod-contract';
import type { TcpServiceSchema } from '../config/schema';
import type { z } from 'zod';
import { fail } from './errors';
import type { OutboundServiceInput } from './mesh-service';

/** A TCP destination in a caller's outbound config, before the caller assigns its listener port. */
export type TcpDestinationInput = Omit<z.input<typeof TcpServiceSchema>, 'listenerPort'>;

/** What one destination contributes to a caller's outbound config. */
export interface OutboundEntries {
  readonly services: OutboundServiceInput[];
  readonly tcpServices: TcpDestinationInput[];
}

/** A destination: a MeshService (every port) or anything with one HTTP outbound service. */
export type OutboundDestination =
  | { _outboundEntries(callerNamespace: string): OutboundEntries }
  | { outboundService(callerNamespace: string): OutboundServiceInput };

/** The outbound services and TCP services of a caller in `callerNamespace`, listener ports assigned in declaration order. */
export function outboundSection(caller: IConstruct, prop: string, callerNamespace: string, destinations: readonly OutboundDestination[]): {
  services: OutboundServiceInput[];
  tcpServices: Array<z.input<typeof TcpServiceSchema>>;
} {
  const services: OutboundServiceInput[] = [];
  const tcp: TcpDestinationInput[] = [];
  for (const d of destinations) {
    if ('_outboundEntries' in d) {
      const e = d._outboundEntries(callerNamespace);
      services.push(...e.services);
      tcp.push(...e.tcpServices);
    } else {
      services.push(d.outboundService(callerNamespace));
    }
  }
  const capacity = TCP_LISTENER_PORT_MAX - TCP_LISTENER_PORT_MIN + 1;
  if (tcp.length > capacity) {
    fail({ construct: caller, prop, value: tcp.map((t) => `${t.name}:${t.port}`).join(','), problem: `calls ${tcp.length} TCP service ports; a sidecar has ${capacity} TCP listener ports (${TCP_LISTENER_PORT_MIN}-${TCP_LISTENER_PORT_MAX})`, fix: 'call fewer TCP services from one workload' });
  }
  // The init step redirects by destination port alone: a port can reach one TCP service only,
  // and none of the HTTP services' ports.
  const byPort = new Map<number, string>();
  for (const s of services) byPort.set(s.port, `the HTTP service ${s.name}.${s.namespace}`);
  for (const t of tcp) {
    const other = byPort.get(t.port);
    if (other) {
      fail({
        construct: caller, prop, value: `${t.name}.${t.namespace}:${t.port}`,
        problem: `the TCP service port ${t.port} is also the port of ${other}: the caller's interception redirects TCP by destination port alone, so one port can reach one TCP service and no HTTP service`,
        fix: 'give the TCP service (or the other service) a port of its own, e.g. ports: [{ port: 5432, protocol: Protocol.TCP }]',
      });
    }
    byPort.set(t.port, `the TCP service ${t.name}.${t.namespace}`);
  }
  return { services, tcpServices: tcp.map((t, n) => ({ ...t, listenerPort: TCP_LISTENER_PORT_MIN + n })) };
}
