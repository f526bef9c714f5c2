/**
 * The parts of the CNI specification (https://www.cni.dev/docs/spec/) a chained plugin
 * speaks: the environment a container runtime sets, the network config it writes to stdin,
 * the error object it reads from stdout. Nothing here is TypeMesh-specific.
 */

/** The CNI versions this plugin accepts in the network config (CHECK needs 0.4.0 or later). */
export const SUPPORTED_CNI_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;

/** Well-known error codes of the CNI specification (1-99 are reserved for it). */
export const CniErrorCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  CONTAINER_UNKNOWN: 3,
  INVALID_ENVIRONMENT: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_NETWORK_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** Plugin-specific (100+): the pod's interception options are invalid. */
  INVALID_POD_OPTIONS: 100,
  /** Plugin-specific (100+): writing or reading the rules in the pod's namespace failed. */
  RULES_FAILED: 101,
  /** Plugin-specific (100+): CHECK found rules different from the expected ones. */
  RULES_DIFFER: 102,
} as const;

/** A failure the plugin reports to the runtime as the CNI error object. */
export class CniError extends Error {
  constructor(public readonly code: number, message: string, public readonly details?: string) {
    super(message);
    this.name = 'CniError';
  }

  /** The error object of the specification: `{cniVersion, code, msg, details}`. */
  public toJson(cniVersion: string): Record<string, unknown> {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** The commands a runtime passes in CNI_COMMAND. */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

/** The CNI_* variables of one invocation. */
export interface CniEnvironment {
  readonly command: CniCommand;
  readonly containerId?: string;
  /** Path of the pod's network namespace, e.g. /var/run/netns/cni-1234. */
  readonly netns?: string;
  readonly ifName?: string;
  /** CNI_ARGS as key/value pairs (`K8S_POD_NAMESPACE=shop;K8S_POD_NAME=order-0`). */
  readonly args: Readonly<Record<string, string>>;
}

/** Reads the CNI_* variables; throws CniError (code 4) for a missing or unknown command. */
export function readCniEnvironment(env: NodeJS.ProcessEnv): CniEnvironment {
  const command = env.CNI_COMMAND;
  const commands: readonly string[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];
  if (!command || !commands.includes(command)) {
    throw new CniError(CniErrorCode.INVALID_ENVIRONMENT, `CNI_COMMAND must be one of ${commands.join(', ')}, got ${JSON.stringify(command ?? '')}`);
  }
  const args: Record<string, string> = {};
  for (const pair of (env.CNI_ARGS ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0) args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    command: command as CniCommand,
    containerId: env.CNI_CONTAINERID || undefined,
    netns: env.CNI_NETNS || undefined,
    ifName: env.CNI_IFNAME || undefined,
    args,
  };
}

/** The network config a runtime writes to a chained plugin's stdin (the fields read here). */
export interface CniNetworkConfig {
  readonly cniVersion: string;
  readonly name: string;
  readonly type: string;
  /** What the runtime passes for the capabilities the plugin declared. */
  readonly runtimeConfig?: Readonly<Record<string, unknown>>;
  /** The result of the previous plugin in the chain, passed on unchanged. */
  readonly prevResult?: Readonly<Record<string, unknown>>;
  readonly [key: string]: unknown;
}

/** Parses stdin as the network config; throws CniError (code 6 or 1) when it cannot be used. */
export function parseNetworkConfig(text: string): CniNetworkConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CniError(CniErrorCode.DECODE_FAILURE, `the network config on stdin is not JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniError(CniErrorCode.DECODE_FAILURE, 'the network config on stdin must be a JSON object');
  }
  const config = value as CniNetworkConfig;
  if (typeof config.cniVersion !== 'string') {
    throw new CniError(CniErrorCode.INVALID_NETWORK_CONFIG, 'the network config has no cniVersion');
  }
  if (!(SUPPORTED_CNI_VERSIONS as readonly string[]).includes(config.cniVersion)) {
    throw new CniError(CniErrorCode.INCOMPATIBLE_VERSION, `cniVersion ${config.cniVersion} is not supported (supported: ${SUPPORTED_CNI_VERSIONS.join(', ')})`);
  }
  return config;
}
