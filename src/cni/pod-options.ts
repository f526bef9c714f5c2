/**
 * How the CNI plugin learns whether a pod is meshed and with which interception options.
 * The options are typemesh-init's own flags (the same string the init container would get
 * as its args), so the CNI mode and the init-container mode cannot drift apart:
 *
 * 1. the pod annotation {@link INTERCEPTION_ARGS_ANNOTATION}, which containerd (1.5+)
 *    passes to plugins that declare the `io.kubernetes.cri.pod-annotations` capability,
 *    as `runtimeConfig["io.kubernetes.cri.pod-annotations"]`;
 * 2. else, when the plugin config sets `podOptionsDir`, the file
 *    `<podOptionsDir>/<K8S_POD_NAMESPACE>/<K8S_POD_NAME>` holding the same flags (for
 *    runtimes that pass no annotations, written by whatever places the pod);
 * 3. else the pod is not meshed and the plugin leaves its network namespace alone.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { INTERCEPTION_ARGS_ANNOTATION } from '../config/pod-contract';
import { InterceptionCommand, InterceptionOptionsError, parseInterceptionArgs, resolveInterceptionOptions } from '../proxy-image/interception';
import { CniEnvironment, CniError, CniErrorCode, CniNetworkConfig } from './cni-protocol';

/** The pod annotation holding typemesh-init's flags, e.g. `--app-ports 8080 --outbound-ports 80`. */
export { INTERCEPTION_ARGS_ANNOTATION };

/** The CNI capability under which containerd passes the pod's annotations. */
export const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations';

/** A meshed pod: who it is (for messages) and its interception options. */
export interface MeshedPod {
  /** `<namespace>/<name>` when the runtime said, else the container id. */
  readonly pod: string;
  /** Where the options came from (an annotation or a file), for messages. */
  readonly source: string;
  readonly command: InterceptionCommand;
}

/** The pod's interception options, or undefined when the pod is not meshed. */
export function meshedPod(env: CniEnvironment, config: CniNetworkConfig): MeshedPod | undefined {
  const namespace = env.args.K8S_POD_NAMESPACE;
  const name = env.args.K8S_POD_NAME;
  const pod = namespace && name ? `${namespace}/${name}` : `container ${env.containerId ?? '(unknown)'}`;

  let flags: string | undefined;
  let source = '';
  const annotations = config.runtimeConfig?.[POD_ANNOTATIONS_CAPABILITY];
  if (annotations !== undefined && (typeof annotations !== 'object' || annotations === null)) {
    throw new CniError(CniErrorCode.INVALID_NETWORK_CONFIG, `runtimeConfig["${POD_ANNOTATIONS_CAPABILITY}"] must be an object of annotations`);
  }
  const annotation = (annotations as Record<string, unknown> | undefined)?.[INTERCEPTION_ARGS_ANNOTATION];
  if (annotation !== undefined) {
    if (typeof annotation !== 'string') {
      throw new CniError(CniErrorCode.INVALID_POD_OPTIONS, `pod ${pod}: annotation ${INTERCEPTION_ARGS_ANNOTATION} must be a string of typemesh-init flags`);
    }
    flags = annotation;
    source = `annotation ${INTERCEPTION_ARGS_ANNOTATION}`;
  } else if (config.podOptionsDir !== undefined) {
    if (typeof config.podOptionsDir !== 'string' || !path.isAbsolute(config.podOptionsDir)) {
      throw new CniError(CniErrorCode.INVALID_NETWORK_CONFIG, `podOptionsDir must be an absolute directory path, got ${JSON.stringify(config.podOptionsDir)}`);
    }
    if (namespace && name) {
      const file = path.join(config.podOptionsDir, namespace, name);
      flags = readOptional(file);
      source = `file ${file}`;
    }
  }
  if (flags === undefined) return undefined;

  // Lists are comma-separated, so no flag value holds a space.
  const argv = flags.split(/\s+/).filter((a) => a !== '');
  let command: InterceptionCommand;
  try {
    command = parseInterceptionArgs(argv);
    // The checks typemesh-init makes before writing anything (ports, uid, CIDRs).
    resolveInterceptionOptions(command.options);
  } catch (e) {
    if (e instanceof InterceptionOptionsError) {
      throw new CniError(CniErrorCode.INVALID_POD_OPTIONS, `pod ${pod}: ${source} holds invalid typemesh-init flags ${JSON.stringify(flags)}`, e.message);
    }
    throw e;
  }
  if (command.dryRun || command.clean || command.help) {
    throw new CniError(CniErrorCode.INVALID_POD_OPTIONS, `pod ${pod}: ${source} may not hold --dry-run, --clean or --help (got ${JSON.stringify(flags)})`);
  }
  return { pod, source, command };
}

function readOptional(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CniError(CniErrorCode.IO_FAILURE, `cannot read ${file}: ${(e as Error).message}`);
  }
}
