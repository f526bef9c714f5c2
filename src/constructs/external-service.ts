import { Duration } from 'cdk8s';
import { Construct } from 'constructs';
import type { ExternalServiceConfig, SidecarConfigInput } from '../config';
import { EXTERNAL_HOST } from '../config/schema';
import { checkDnsLabel, checkInteger, fail } from './errors';
import type { Mesh } from './mesh';
import { connectionPoolConfig, ConnectionPoolOptions, outlierDetectionConfig, OutlierDetectionOptions, retryConfig, RetryOptions } from './traffic-options';
import { durationMs } from './values';

/**
 * What a mesh's sidecars do with a request for a host that is neither a mesh service nor an
 * {@link ExternalService}.
 */
export enum EgressMode {
  /**
   * Refuse it: 502 with response flag NR, counted in the request metrics. Only declared
   * destinations are reachable through the sidecar (Istio's REGISTRY_ONLY).
   */
  ALLOW_LIST = 'ALLOW_LIST',
  /** Forward it in plain HTTP to the host's own address (Istio's ALLOW_ANY). */
  PASSTHROUGH = 'PASSTHROUGH',
}

/** How the sidecar talks to an external host. */
export enum ExternalProtocol {
  /** Plain HTTP over TCP to the host. */
  HTTP = 'http',
  /**
   * TLS originated by the sidecar: the app sends plain HTTP to its sidecar, which opens TLS to
   * the host and verifies its certificate against the host name (TLS origination).
   */
  HTTPS = 'https',
}

/** Where the CA that signs an external host's certificate comes from. */
export class ExternalCa {
  /** The CAs the sidecar image trusts (Node.js's bundled Mozilla CA store). */
  public static systemCas(): ExternalCa {
    return new ExternalCa({ kind: 'system' });
  }

  /**
   * A PEM bundle in a Secret of the mesh namespace, mounted read-only into every sidecar of the mesh.
   * @param key the Secret's key holding the PEM bundle
   */
  public static fromSecret(name: string, key = 'ca.crt'): ExternalCa {
    return new ExternalCa({ kind: 'secret', name, key });
  }

  /**
   * A PEM bundle in a ConfigMap of the mesh namespace, mounted read-only into every sidecar of the mesh.
   * @param key the ConfigMap's key holding the PEM bundle
   */
  public static fromConfigMap(name: string, key = 'ca.crt'): ExternalCa {
    return new ExternalCa({ kind: 'configMap', name, key });
  }

  private constructor(
    /** @internal */
    public readonly _spec: { readonly kind: 'system' } | { readonly kind: 'secret' | 'configMap'; readonly name: string; readonly key: string },
  ) {}
}

/** Props of {@link ExternalService}. */
export interface ExternalServiceProps {
  /** The mesh whose sidecars may call the service. */
  readonly mesh: Mesh;
  /**
   * The host names the app calls (lower case, no wildcard, no port), e.g. `api.stripe.com`.
   * The first is resolved by DNS for the service's addresses, names it in metrics and access
   * logs (destination_service), and is the name its certificate must carry.
   */
  readonly hosts: string[];
  /**
   * The name of the service in the sidecar config (a DNS-1123 label).
   * @default - the construct id
   */
  readonly name?: string;
  /**
   * How the sidecar connects to the host.
   * @default ExternalProtocol.HTTPS (nothing leaves the cluster in clear text unless asked)
   */
  readonly protocol?: ExternalProtocol;
  /**
   * The port the app calls (its plain HTTP request goes to the sidecar).
   * @default 80
   */
  readonly port?: number;
  /**
   * The host's port the sidecar connects to.
   * @default 443 for HTTPS, else `port`
   */
  readonly targetPort?: number;
  /**
   * HTTPS only: the CAs that may sign the host's certificate.
   * @default ExternalCa.systemCas()
   */
  readonly caCertificate?: ExternalCa;
  /**
   * HTTPS only: the name sent as SNI and checked in the host's certificate.
   * @default - the first host
   */
  readonly serverName?: string;
  /**
   * Whole-request timeout, retries included (Duration.millis(0) disables it).
   * @default Duration.seconds(15)
   */
  readonly timeout?: Duration;
  /**
   * Retries of failed requests, as a {@link RetryPolicy} declares them for mesh services.
   * @default - no retries
   */
  readonly retries?: RetryOptions;
  /**
   * The circuit breaker: connections and pending requests every sidecar may hold to the host.
   * @default - 1024 connections, 1024 pending requests, 10 s connect timeout
   */
  readonly connectionPool?: ConnectionPoolOptions;
  /**
   * Eject addresses of the host that fail repeatedly.
   * @default - no outlier detection
   */
  readonly outlierDetection?: OutlierDetectionOptions;
}

/** Where the sidecars mount the CA bundles of external services. */
export const EXTERNAL_CA_DIR = '/etc/typemesh/external-ca';

/**
 * A service outside the mesh that its workloads may call (Istio's ServiceEntry with a
 * DestinationRule). It becomes an entry of every sidecar config of the mesh: the app's plain
 * HTTP request for one of `hosts` goes to the host's DNS addresses, in plain TCP or with TLS
 * originated by the sidecar (the certificate verified against the host name and the system CAs
 * or a given CA), with the declared timeout, retries and circuit breaker. No mesh identity is
 * presented: the host is not a sidecar. Under {@link EgressMode.ALLOW_LIST} (the default), only
 * declared external services are reachable through the sidecars.
 */
export class ExternalService extends Construct {
  /** The service name in the sidecar config. */
  public readonly serviceName: string;
  /** The host names, as declared. */
  public readonly hosts: string[];
  /** The mesh. */
  public readonly mesh: Mesh;
  private readonly config: ExternalServiceConfig;
  private readonly caVolume?: { readonly volume: Record<string, unknown>; readonly mount: Record<string, unknown> };

  constructor(scope: Construct, id: string, props: ExternalServiceProps) {
    super(scope, id);
    this.mesh = props.mesh;
    this.serviceName = props.name ?? id;
    checkDnsLabel(this, 'name', this.serviceName, 'payments-api');
    if (!Array.isArray(props.hosts) || props.hosts.length === 0) {
      fail({ construct: this, prop: 'hosts', value: props.hosts, problem: 'an external service needs at least one host name', fix: 'set hosts: ["api.example.com"]' });
    }
    props.hosts.forEach((h, i) => {
      if (typeof h !== 'string' || !EXTERNAL_HOST.test(h)) {
        fail({ construct: this, prop: `hosts[${i}]`, value: h, problem: 'must be a lower-case DNS name without wildcard, scheme or port', fix: 'write the bare host, e.g. "api.example.com"' });
      }
    });
    this.hosts = [...props.hosts];
    const protocol = props.protocol ?? ExternalProtocol.HTTPS;
    if (!Object.values(ExternalProtocol).includes(protocol)) {
      fail({ construct: this, prop: 'protocol', value: protocol, problem: `must be one of ${Object.values(ExternalProtocol).join(', ')}`, fix: 'use ExternalProtocol.HTTPS (TLS originated by the sidecar) or ExternalProtocol.HTTP' });
    }
    const port = props.port ?? 80;
    checkInteger(this, 'port', port, 1, 65535);
    const targetPort = props.targetPort ?? (protocol === ExternalProtocol.HTTPS ? 443 : port);
    checkInteger(this, 'targetPort', targetPort, 1, 65535);
    if (protocol === ExternalProtocol.HTTP && (props.caCertificate || props.serverName)) {
      fail({ construct: this, prop: props.caCertificate ? 'caCertificate' : 'serverName', value: props.caCertificate ? props.caCertificate._spec.kind : props.serverName, problem: 'applies to ExternalProtocol.HTTPS only (plain HTTP has no certificate to verify)', fix: 'set protocol: ExternalProtocol.HTTPS, or remove it' });
    }
    if (props.serverName !== undefined && !EXTERNAL_HOST.test(props.serverName)) {
      fail({ construct: this, prop: 'serverName', value: props.serverName, problem: 'must be a lower-case DNS name', fix: 'use the name the host\'s certificate carries, e.g. "api.example.com"' });
    }

    let caFile: string | undefined;
    const ca = props.caCertificate?._spec;
    if (ca && ca.kind !== 'system') {
      checkDnsLabel(this, 'caCertificate.name', ca.name, 'payments-ca');
      if (!/^[-._a-zA-Z0-9]+$/.test(ca.key)) {
        fail({ construct: this, prop: 'caCertificate.key', value: ca.key, problem: 'must be a Secret or ConfigMap key (letters, digits, "-", "_", ".")', fix: 'use e.g. "ca.crt"' });
      }
      // Each sidecar of the mesh mounts the bundle; the pods are built when their MeshService is
      // created, so a CA declared later could not be mounted into them.
      const built = this.mesh.services.map((s) => s.node.path);
      if (built.length > 0) {
        fail({ construct: this, prop: 'caCertificate', value: `${ca.kind} ${ca.name}`, problem: `the mesh's pods are already built (${built.join(', ')}), so their sidecars could not mount this CA`, fix: 'declare ExternalServices with a caCertificate before the MeshServices of the mesh' });
      }
      const volumeName = `typemesh-ext-ca-${this.serviceName}`.slice(0, 63).replace(/-+$/, '');
      const dir = `${EXTERNAL_CA_DIR}/${this.serviceName}`;
      caFile = `${dir}/${ca.key}`;
      this.caVolume = {
        volume: ca.kind === 'secret'
          ? { name: volumeName, secret: { secretName: ca.name, items: [{ key: ca.key, path: ca.key }] } }
          : { name: volumeName, configMap: { name: ca.name, items: [{ key: ca.key, path: ca.key }] } },
        mount: { name: volumeName, mountPath: dir, readOnly: true },
      };
    }

    const retries = props.retries ? retryConfig(this, 'retries.', props.retries) : undefined;
    const timeoutMs = durationMs(this, 'timeout', props.timeout ?? Duration.seconds(15));
    if (retries && timeoutMs > 0 && retries.perTryTimeoutMs > timeoutMs) {
      fail({ construct: this, prop: 'retries.perTryTimeout', value: `${retries.perTryTimeoutMs}ms`, problem: `exceeds the timeout (${timeoutMs} ms)`, fix: 'make the per-try timeout shorter than timeout' });
    }
    this.config = {
      name: this.serviceName,
      hosts: this.hosts,
      port,
      protocol,
      ...(protocol === ExternalProtocol.HTTPS && (caFile || props.serverName) ? { tls: { ...(props.serverName ? { serverName: props.serverName } : {}), ...(caFile ? { caFile } : {}) } } : {}),
      // A cluster resolves the real host; the local runner may point it elsewhere (docs/local.md).
      discovery: { type: 'dns', hostname: this.hosts[0], port: targetPort, refreshIntervalMs: 30_000 },
      timeoutMs,
      retries,
      connectionPool: connectionPoolConfig(this, props.connectionPool ?? {}),
      outlierDetection: props.outlierDetection ? outlierDetectionConfig(this, props.outlierDetection) : undefined,
    };
    this.mesh._registerExternal(this);
    if (this.caVolume) {
      // Every sidecar (and gateway) of the mesh mounts the CA next to the mesh trust.
      this.mesh._sidecarTrust.volumes.push(this.caVolume.volume);
      this.mesh._sidecarTrust.volumeMounts.push(this.caVolume.mount);
    }
  }

  /** @internal The entry of outbound.externalServices in every sidecar config of the mesh. */
  public _config(): NonNullable<NonNullable<SidecarConfigInput['outbound']>['externalServices']>[number] {
    const { retries, outlierDetection, tls, ...rest } = this.config;
    return { ...rest, ...(tls ? { tls } : {}), ...(retries ? { retries } : {}), ...(outlierDetection ? { outlierDetection } : {}) };
  }
}
