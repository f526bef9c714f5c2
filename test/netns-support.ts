/**
 * Whether this machine can run a test that builds pods in network namespaces: the one probe
 * every such test starts with. Creating a namespace and listing a table in it is the only
 * reliable answer; a present `ip` or `iptables` binary says nothing about a container without
 * CAP_SYS_ADMIN, or an iptables-nft whose kernel lacks nf_tables.
 */
import { execFileSync } from 'node:child_process';

export interface NetnsProbeOptions {
  /**
   * The iptables binaries that must list the nat table inside the probe namespace.
   * @default ['iptables']
   */
  readonly iptables?: readonly string[];
  /**
   * The test's own requirements (tools, bundles), checked after the root check and before the
   * probe namespace is created: a reason to skip, or undefined.
   * @default none
   */
  readonly extra?: () => string | undefined;
  /**
   * Timeout of each `ip` command.
   * @default 10_000
   */
  readonly timeoutMs?: number;
}

/**
 * Why network namespaces with working iptables are unavailable here, or undefined when they
 * are. Creates the namespace `<prefix>-probe` for the check and deletes it again; use the
 * test's own unique prefix so that parallel test files never collide.
 */
export function netnsUnavailableReason(prefix: string, options: NetnsProbeOptions = {}): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces and iptables need root)';
  const extra = options.extra?.();
  if (extra) return extra;
  const iptables = options.iptables ?? ['iptables'];
  const timeout = options.timeoutMs ?? 10_000;
  const probe = `${prefix}-probe`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe', timeout });
  } catch (e) {
    return `cannot create a network namespace: ${(e as Error).message.split('\n')[0]}`;
  }
  try {
    for (const bin of iptables) execFileSync('ip', ['netns', 'exec', probe, bin, '-w', '-t', 'nat', '-L', '-n'], { stdio: 'pipe', timeout });
    return undefined;
  } catch (e) {
    return `${iptables.join(' or ')} does not work in a network namespace: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe', timeout });
  }
}
