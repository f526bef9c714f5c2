/**
 * The local plan: how each workload version of a mesh chart runs on this machine. A
 * chart's Deployments name container images, which cannot run here, so the plan maps
 * each `<workload>/<version>` to a command. Everything mesh-related (sidecar config,
 * addresses, certificates, discovery) still comes from the chart.
 */
import type { Chart } from 'cdk8s';

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
}

/** Where the demo's load driver sends requests. */
export interface LocalTrafficSpec {
  /** The workload whose inbound listener receives the traffic, e.g. `order-service`. */
  readonly entryWorkload: string;
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
