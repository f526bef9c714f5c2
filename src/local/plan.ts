/**
 * The local plan: how each workload version of a mesh chart runs on this machine. A
 * chart's Deployments name container images, which cannot run here, so the plan maps
 * each `<workload>/<version>` to a command. Everything mesh-related (sidecar config,
 * addresses, certificates, discovery) still comes from the chart.
 */
import type { Chart } from 'cdk8s';
import type { LocalExternalEndpoint } from './local-sidecar-config';

/** How one workload version's app process is started. */
export interface LocalProcessSpec {
  /** The executable, e.g. `process.execPath` or `'node'`. */
  readonly command: string;
  /**
   * Its arguments.
   * @default []
   */
  readonly args?: readonly string[];
  /**
   * Extra environment variables. The runner also sets PORT, HOST, POD_NAME, POD_NAMESPACE,
   * POD_IP and, in loopback mode, HTTP_PROXY (the instance's sidecar).
   * @default {}
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Extra environment of one instance (by index, from 0), e.g. to make one replica fail.
   * @default none
   */
  readonly instanceEnv?: (index: number) => Readonly<Record<string, string>>;
  /**
   * How many instances to start; overrides the Deployment's replicas.
   * @default the Deployment's `spec.replicas`, or 1
   */
  readonly replicas?: number;
}

/** A mesh chart plus the commands that run its workloads locally. */
export interface LocalPlan {
  /** Builds the chart, exactly as `cdk8s synth` would see it. */
  readonly chart: () => Chart;
  /** App processes keyed by `<workload>/<version>`, e.g. `payment-service/v2`. */
  readonly processes: Readonly<Record<string, LocalProcessSpec>>;
  /**
   * Work to do once before anything starts, e.g. bundling the apps.
   * @default nothing
   */
  readonly prepare?: () => void | Promise<void>;
  /**
   * The request the load driver sends into the mesh (the demo's traffic).
   * @default none: `typemesh up` only starts the mesh
   */
  readonly traffic?: LocalTrafficSpec;
  /**
   * Stand-ins of the chart's ExternalServices, by name (e.g. a loopback server started in
   * `prepare`): their sidecar entries point here instead of at the real hosts.
   * @default none: external services resolve their real hosts
   */
  readonly externalEndpoints?: Readonly<Record<string, LocalExternalEndpoint>>;
}

/** Where the demo's load driver sends requests. */
export interface LocalTrafficSpec {
  /**
   * The workload that serves the traffic first, e.g. `order-service`. Without `gateway`, the
   * driver calls its inbound listeners itself over mTLS with a made-up ingress identity.
   */
  readonly entryWorkload: string;
  /**
   * The MeshGateway (its name) the traffic enters through, as customers' would: plain HTTP to
   * its loopback listener, with `host` as the Host header.
   * @default none: the driver calls entryWorkload's inbound listeners directly
   */
  readonly gateway?: string;
  /**
   * The Host header sent to the gateway (one of its route hosts).
   * @default entryWorkload
   */
  readonly host?: string;
  /**
   * Lines of the demo's legend: what the plan breaks on purpose and why (printed at start, so
   * injected failures are not mistaken for bugs). The demo adds lines for its own probes.
   * @default none
   */
  readonly legend?: readonly string[];
  /**
   * Requests made slow on purpose, sent alongside the traffic, that a declared timeout must cut:
   * each must end in 504 with the timeout flag (UT) at the callers' sidecars of `service`.
   * @default none
   */
  readonly slowCalls?: InjectedRequestsSpec;
  /**
   * A burst of concurrent requests sent after the traffic, beyond a declared connection pool:
   * the callers' sidecars of `service` must refuse some with 503 overflow (UO).
   * @default none
   */
  readonly burst?: InjectedRequestsSpec;
  /** Path of each request, e.g. `/orders?item=book`. */
  readonly path: string;
  /**
   * HTTP method.
   * @default 'GET'
   */
  readonly method?: string;
  /**
   * Reads the destination version that served the request from a response body, so
   * the driver can measure a canary split itself when sidecar metrics are missing.
   * @default none
   */
  readonly versionOf?: (body: unknown) => string | undefined;
  /**
   * The service whose split the driver measures with `versionOf`.
   * @default none
   */
  readonly splitService?: string;
  /**
   * A request that authorization must refuse, sent twice a second during the demo from an
   * identity no policy allows, straight to every instance of `workload` over mTLS. Every
   * reply must be 403; the table shows them under DENIED.
   * @default none
   */
  readonly deniedProbe?: DeniedProbeSpec;
}

/** Requests the demo injects to show a declared policy at work. */
export interface InjectedRequestsSpec {
  /** Path (and query) of each request, e.g. `/orders?item=book&payDelayMs=2500`. */
  readonly path: string;
  /**
   * How many requests, all sent at once.
   * @default 3 for slowCalls, 400 for burst
   */
  readonly requests?: number;
  /** The service whose declared policy must act (its callers' sidecars are measured), e.g. `payment-service`. */
  readonly service: string;
  /** Why, in one line for the legend, e.g. `payment answers 2.5 s late: per-try timeout 2 s, route timeout 5 s`. */
  readonly why: string;
}

/** A request from an unauthorized identity that the mesh must deny. */
export interface DeniedProbeSpec {
  /** The workload whose inbound listeners receive the probe, e.g. `payment-service`. */
  readonly workload: string;
  readonly path: string;
  /**
   * @default 'GET'
   */
  readonly method?: string;
  /**
   * The caller's SPIFFE ID.
   * @default spiffe://<trust-domain>/ns/<namespace>/sa/typemesh-intruder
   */
  readonly identity?: string;
}

/** Identity helper so plan modules get type checking: `export default defineLocalPlan({...})`. */
export function defineLocalPlan(plan: LocalPlan): LocalPlan {
  return plan;
}
