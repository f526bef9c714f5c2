/**
 * Rewrites a workload's synthesized sidecar config for one local instance. Only the parts
 * that differ between a cluster and this machine change: where the listeners bind, where
 * the app is, where the certificate files are, and how endpoints are found (static
 * addresses of local instances instead of the headless Services' DNS names). Routes,
 * retries, outlier detection, mTLS mode and authorization stay exactly as declared.
 */
import type { SidecarConfig, Subset } from '../config';

/** An endpoint a sidecar connects to: another instance's inbound listener. */
export interface LocalEndpoint {
  readonly address: string;
  readonly port: number;
}

/**
 * Where an ExternalService is reached on this machine (its real host cannot be, or should not
 * be, called from a local run): a loopback server standing in for it, and the CA file that
 * signed that server's certificate (in a cluster the CA comes from a mounted Secret or ConfigMap).
 */
export interface LocalExternalEndpoint {
  readonly address: string;
  readonly port: number;
  /**
   * The CA bundle (PEM file) that verifies the stand-in's certificate, for an HTTPS service.
   * @default the service's own tls.caFile (or the system CAs)
   */
  readonly caFile?: string;
}

/** The certificate files of one instance. */
export interface LocalTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** What the runner decided for one instance. */
export interface LocalizeOptions {
  /** Address the sidecar's listeners bind (the instance's own 127.x address, or 0.0.0.0 in a namespace). */
  readonly bindAddress: string;
  /** Address the app listens on, as the sidecar's inbound listener reaches it. */
  readonly appAddress: string;
  readonly tls: LocalTlsFiles;
  /** The endpoints of a destination subset; the runner answers with that version's running instances. */
  readonly endpointsOf: (service: string, namespace: string, subset: Subset) => readonly LocalEndpoint[];
  /**
   * A gateway's HTTPS server certificate, issued locally for its route hosts (the cluster's
   * comes from cert-manager).
   * @default the config's files (only a gateway with an https listener needs them)
   */
  readonly gatewayTls?: { readonly certFile: string; readonly keyFile: string };
  /**
   * Stand-ins of external services, by ExternalService name; a service without one keeps
   * resolving its real host by DNS.
   * @default none
   */
  readonly externalEndpoints?: Readonly<Record<string, LocalExternalEndpoint>>;
}

/** An address nothing listens on: a subset without local instances gets it, so calls fail as "no healthy upstream" would. */
export const UNREACHABLE_ENDPOINT: LocalEndpoint = { address: '127.0.0.1', port: 9 };

/** The version a subset selects: its `version` label, else its name. */
export function subsetVersion(subset: Subset): string {
  return subset.labels.version ?? subset.name;
}

/** Returns the config one local instance's sidecar runs with. */
export function localizeSidecarConfig(config: SidecarConfig, options: LocalizeOptions): SidecarConfig {
  const localSubsets = (svc: { name: string; namespace: string; subsets: Subset[] }): Subset[] => svc.subsets.map((subset) => {
    const endpoints = options.endpointsOf(svc.name, svc.namespace, subset);
    return {
      ...subset,
      discovery: { type: 'static' as const, endpoints: (endpoints.length > 0 ? endpoints : [UNREACHABLE_ENDPOINT]).map((e) => ({ address: e.address, port: e.port })) },
    };
  });
  return {
    ...config,
    // No drain window locally: the runner takes an instance out of its callers' endpoints
    // (configs rewritten and reloaded) before stopping it, which is what the window gives
    // peers in a cluster while endpoint updates propagate.
    drainDurationMs: 0,
    listeners: { ...config.listeners, bindAddress: options.bindAddress },
    tls: { certFile: options.tls.certFile, keyFile: options.tls.keyFile, caFile: options.tls.caFile },
    inbound: { ...config.inbound, app: { ...config.inbound.app, address: options.appAddress } },
    // A gateway binds where its instance lives; its listeners keep their ports.
    ...(config.gateway ? {
      gateway: {
        ...config.gateway,
        bindAddress: options.bindAddress,
        listeners: config.gateway.listeners.map((l) => (l.tls && options.gatewayTls ? { ...l, tls: { certFile: options.gatewayTls.certFile, keyFile: options.gatewayTls.keyFile } } : l)),
      },
    } : {}),
    outbound: {
      ...config.outbound,
      services: config.outbound.services.map((svc) => ({ ...svc, subsets: localSubsets(svc) })),
      // TCP services keep their listener ports: each instance binds them on its own 127.x address.
      tcpServices: config.outbound.tcpServices.map((svc) => ({ ...svc, subsets: localSubsets(svc) })),
      externalServices: config.outbound.externalServices.map((ext) => {
        const local = options.externalEndpoints?.[ext.name];
        if (!local) return ext;
        return {
          ...ext,
          discovery: { type: 'static' as const, endpoints: [{ address: local.address, port: local.port }] },
          // The stand-in's certificate still names the real host: TLS is verified as in a cluster.
          ...(ext.tls || local.caFile ? { tls: { ...ext.tls, ...(local.caFile ? { caFile: local.caFile } : {}) } } : {}),
        };
      }),
    },
    // A cluster's collector cannot be reached from here (its spans would only produce export
    // errors in the logs), but one on this machine's loopback can: tracing to it stays on.
    telemetry: { ...config.telemetry, tracing: { ...config.telemetry.tracing, enabled: config.telemetry.tracing.enabled && onLoopback(config.telemetry.tracing.collector?.endpoint) } },
  };
}

/** True when a URL's host is a loopback address or localhost. */
function onLoopback(url: string | undefined): boolean {
  if (url === undefined) return false;
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}
