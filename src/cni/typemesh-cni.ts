/**
 * typemesh-cni: a chained CNI plugin that writes TypeMesh's interception rules into a
 * meshed pod's network namespace when the runtime creates the pod, so the pod needs no
 * privileged init container. The rules are exactly those typemesh-init writes for the same
 * flags (the same generator, src/proxy-image/interception/script.ts). docs/interception.md
 * ("CNI mode") says how it is installed and configured.
 *
 * Invoked as the CNI specification says: CNI_COMMAND and friends in the environment, the
 * network config (with the previous plugin's result) on stdin. ADD and CHECK print the
 * previous result unchanged; errors are printed as the CNI error object with exit code 1.
 */
import { existsSync, readFileSync } from 'node:fs';
import { generateInterceptionScript } from '../proxy-image/interception';
import {
  CniEnvironment, CniError, CniErrorCode, CniNetworkConfig, parseNetworkConfig, readCniEnvironment, SUPPORTED_CNI_VERSIONS,
} from './cni-protocol';
import { IpFamily, natTableOf, runScriptInNetns, savedInterceptionRules, scriptInterceptionRules } from './netns-rules';
import { meshedPod } from './pod-options';

/** What one invocation writes to stdout and its exit code. */
export interface CniOutcome {
  readonly stdout: string;
  readonly exitCode: number;
}

/** Runs one CNI invocation; never throws (failures become the CNI error object). */
export function runCniPlugin(envVars: NodeJS.ProcessEnv, stdin: string): CniOutcome {
  let cniVersion = '1.0.0';
  try {
    const env = readCniEnvironment(envVars);
    if (env.command === 'VERSION') {
      // The config on stdin only carries the caller's version; answer in it when we can.
      const asked = tryVersion(stdin);
      if (asked && (SUPPORTED_CNI_VERSIONS as readonly string[]).includes(asked)) cniVersion = asked;
      return ok({ cniVersion, supportedVersions: [...SUPPORTED_CNI_VERSIONS] });
    }
    const config = parseNetworkConfig(stdin);
    cniVersion = config.cniVersion;
    switch (env.command) {
      case 'ADD': return ok(add(env, config));
      case 'CHECK': return check(env, config);
      case 'DEL': return del(env);
      // CNI 1.1: the plugin is ready whenever it can run; it keeps no state to collect.
      case 'STATUS':
      case 'GC':
        return { stdout: '', exitCode: 0 };
    }
  } catch (e) {
    const error = e instanceof CniError ? e : new CniError(CniErrorCode.IO_FAILURE, `typemesh-cni failed: ${(e as Error).message}`);
    return { stdout: JSON.stringify(error.toJson(cniVersion)) + '\n', exitCode: 1 };
  }
}

function ok(result: unknown): CniOutcome {
  return { stdout: JSON.stringify(result) + '\n', exitCode: 0 };
}

function tryVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The previous plugin's result, passed on unchanged (a chained plugin adds no interface). */
function passThrough(config: CniNetworkConfig): Record<string, unknown> {
  return config.prevResult ? { ...config.prevResult, cniVersion: config.cniVersion } : { cniVersion: config.cniVersion };
}

function requireNetns(env: CniEnvironment): string {
  if (!env.netns) throw new CniError(CniErrorCode.INVALID_ENVIRONMENT, `CNI_NETNS must name the pod's network namespace for ${env.command}`);
  if (!env.containerId) throw new CniError(CniErrorCode.INVALID_ENVIRONMENT, `CNI_CONTAINERID must be set for ${env.command}`);
  if (!existsSync(env.netns)) throw new CniError(CniErrorCode.CONTAINER_UNKNOWN, `the network namespace ${env.netns} does not exist`);
  return env.netns;
}

function add(env: CniEnvironment, config: CniNetworkConfig): Record<string, unknown> {
  const netns = requireNetns(env);
  // Options are read (and refused when invalid) before anything is written: a meshed pod
  // with bad options fails to start rather than running unintercepted.
  const pod = meshedPod(env, config);
  if (pod) {
    runScriptInNetns(netns, generateInterceptionScript(pod.command.options), `pod ${pod.pod}`);
  }
  return passThrough(config);
}

function check(env: CniEnvironment, config: CniNetworkConfig): CniOutcome {
  const netns = requireNetns(env);
  const pod = meshedPod(env, config);
  const script = pod ? generateInterceptionScript(pod.command.options) : '';
  // The script writes its IPv6 rules only where the kernel has IPv6.
  const families: IpFamily[] = existsSync('/proc/net/if_inet6') ? ['ipv4', 'ipv6'] : ['ipv4'];
  for (const family of families) {
    const expected = scriptInterceptionRules(script, family);
    let dump: string;
    try {
      dump = natTableOf(netns, family);
    } catch (e) {
      // A node without ip6tables cannot hold IPv6 rules that nobody expects.
      if (expected.length === 0 && family === 'ipv6') continue;
      throw e;
    }
    const actual = savedInterceptionRules(dump);
    if (expected.join('\n') !== actual.join('\n')) {
      const who = pod ? `pod ${pod.pod} (${pod.source})` : `unmeshed container ${env.containerId}`;
      throw new CniError(CniErrorCode.RULES_DIFFER, `${who}: the ${family} interception rules in ${netns} differ from the expected ones`,
        `expected:\n${expected.join('\n')}\nfound:\n${actual.join('\n')}`);
    }
  }
  // CHECK prints nothing on success.
  return { stdout: '', exitCode: 0 };
}

function del(env: CniEnvironment): CniOutcome {
  // DEL must succeed when things are already gone: no netns, or a netns the runtime already
  // removed, takes its rules with it. Otherwise remove only what typemesh-cni owns.
  if (env.netns && existsSync(env.netns)) {
    runScriptInNetns(env.netns, generateInterceptionScript({}, { clean: true }), `container ${env.containerId ?? '(unknown)'}`);
  }
  return { stdout: '', exitCode: 0 };
}

if (require.main === module) {
  const outcome = runCniPlugin(process.env, readFileSync(0, 'utf8'));
  process.stdout.write(outcome.stdout);
  process.exitCode = outcome.exitCode;
}
