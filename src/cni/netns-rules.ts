/**
 * Runs the interception script inside a pod's network namespace and reads back what is
 * there. The plugin runs on the node, so it enters the namespace by path with nsenter
 * (the runtime passes a path such as /var/run/netns/cni-..., not always a named netns)
 * and uses the node's iptables: the rules land in the pod's own tables either way.
 */
import { spawnSync } from 'node:child_process';
import { INTERCEPTION_CHAINS } from '../proxy-image/interception';
import { CniError, CniErrorCode } from './cni-protocol';

// Runtimes call plugins with a minimal environment; iptables and nsenter live in sbin.
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function run(netns: string, argv: readonly string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('nsenter', [`--net=${netns}`, '--', ...argv], {
    input,
    encoding: 'utf8',
    env: { ...process.env, PATH: process.env.PATH ? `${process.env.PATH}:${SYSTEM_PATH}` : SYSTEM_PATH },
    timeout: 60_000,
  });
  if (result.error) {
    throw new CniError(CniErrorCode.RULES_FAILED, `cannot run ${argv[0]} in ${netns}: ${result.error.message}`);
  }
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a generated interception script (with `sh -e`) in the namespace at `netns`. */
export function runScriptInNetns(netns: string, script: string, what: string): void {
  const result = run(netns, ['sh', '-e', '-s'], script);
  if (result.status !== 0) {
    throw new CniError(CniErrorCode.RULES_FAILED, `${what}: the iptables script failed in ${netns} (exit ${result.status})`, result.stderr.trim());
  }
}

/** An address family's iptables tools. */
export type IpFamily = 'ipv4' | 'ipv6';
const SAVE: Record<IpFamily, string> = { ipv4: 'iptables-save', ipv6: 'ip6tables-save' };
const COMMAND: Record<IpFamily, string> = { ipv4: 'iptables', ipv6: 'ip6tables' };

/** `iptables-save -t nat` (or ip6tables-save) of the namespace at `netns`. */
export function natTableOf(netns: string, family: IpFamily = 'ipv4'): string {
  const result = run(netns, [SAVE[family], '-t', 'nat']);
  if (result.status !== 0) {
    throw new CniError(CniErrorCode.RULES_FAILED, `${SAVE[family]} failed in ${netns} (exit ${result.status})`, result.stderr.trim());
  }
  return result.stdout;
}

const OWNED = new Set<string>(INTERCEPTION_CHAINS);

/**
 * The interception rules of a nat table dump (iptables-save), one normalized line each
 * (`-A CHAIN ...`): the rules of TypeMesh's chains and the jumps into them, grouped by chain
 * (sorted by chain name) in their order within the chain, which is all that matters to the
 * kernel. iptables-save writes `-p tcp -m tcp --dport N` where the script writes
 * `-p tcp --dport N`.
 */
export function savedInterceptionRules(dump: string): string[] {
  return interceptionRules(dump.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('-A ')));
}

/**
 * The interception rules a generated script appends for one family (its `iptables -A` or
 * `ip6tables -A` commands), normalized and grouped as {@link savedInterceptionRules} does.
 */
export function scriptInterceptionRules(script: string, family: IpFamily): string[] {
  const prefix = new RegExp(`^${COMMAND[family]}(?:\\s+-w)?\\s+-t\\s+nat\\s+(?=-A\\s)`);
  return interceptionRules(script.split('\n').map((l) => l.trim()).filter((l) => prefix.test(l)).map((l) => l.replace(prefix, '')));
}

function interceptionRules(lines: readonly string[]): string[] {
  const byChain = new Map<string, string[]>();
  for (const line of lines) {
    const tokens = line.split(/\s+/);
    const chain = tokens[1];
    const target = tokens[tokens.indexOf('-j') + 1];
    if (!OWNED.has(chain) && !OWNED.has(target)) continue;
    const normalized = tokens.slice(2).join(' ').replace(/(^|\s)-m tcp(?=\s)/g, '').replace(/\s+/g, ' ').trim();
    byChain.set(chain, [...(byChain.get(chain) ?? []), `-A ${chain} ${normalized}`]);
  }
  return [...byChain.keys()].sort().flatMap((c) => byChain.get(c)!);
}
