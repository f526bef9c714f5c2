/**
 * typemesh-init --iptables-backend (the Mesh's iptablesBackend): the bundled typemesh-init run
 * as the init container runs it, as root with only the capabilities the constructs give it,
 * inside network namespaces this test creates (`tmh15-<pid>-*`) and removes. With `legacy`
 * the rules land in the legacy tables and nowhere else, and need NET_RAW besides NET_ADMIN
 * (which is why the constructs add NET_RAW for that backend only); with `nft` in the nft tables.
 *
 * Needs root, `ip netns`, setpriv and both iptables backends; skipped otherwise with the reason.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { savedInterceptionRules, scriptInterceptionRules } from '../../src/cni/netns-rules';
import { generateInterceptionScript, parseInterceptionArgs } from '../../src/proxy-image/interception';
import { netnsUnavailableReason } from '../netns-support';

const ROOT = path.resolve(__dirname, '../..');
const PREFIX = `tmh15-${process.pid}`;
const EXEC_TIMEOUT_MS = 30_000;
const FLAGS = ['--proxy-uid', '1337', '--app-ports', '8080', '--outbound-ports', '80'];

let tmp: string;
let init: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'tm-backend-'));
  init = path.join(tmp, 'typemesh-init.js');
  execFileSync(path.join(ROOT, 'node_modules/.bin/esbuild'), ['src/proxy-image/interception/cli.ts', '--bundle', '--platform=node', '--log-level=warning', `--outfile=${init}`], { cwd: ROOT, timeout: EXEC_TIMEOUT_MS });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function typemeshInit(args: string[], wrap: string[] = []) {
  return spawnSync(wrap[0] ?? process.execPath, wrap.length > 0 ? [...wrap.slice(1), process.execPath, init, ...args] : [init, ...args], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS });
}

describe('typemesh-init --iptables-backend (script)', () => {
  it('legacy and nft make the script call that backend\'s tools; the rules themselves do not change', () => {
    const plain = typemeshInit([...FLAGS, '--dry-run']);
    expect(plain.status).toBe(0);
    expect(plain.stdout).not.toContain('iptables() {');
    for (const backend of ['legacy', 'nft']) {
      const r = typemeshInit([...FLAGS, '--iptables-backend', backend, '--dry-run']);
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toContain(`iptables() { iptables-${backend} "$@"; }`);
      expect(r.stdout).toContain(`ip6tables() { ip6tables-${backend} "$@"; }`);
      expect(scriptInterceptionRules(r.stdout, 'ipv4')).toEqual(scriptInterceptionRules(plain.stdout, 'ipv4'));
      expect(scriptInterceptionRules(r.stdout, 'ipv6')).toEqual(scriptInterceptionRules(plain.stdout, 'ipv6'));
    }
  });

  it('an unknown backend is refused (exit 2) naming the flag', () => {
    const r = typemeshInit([...FLAGS, '--iptables-backend', 'iptables']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--iptables-backend must be one of nft, legacy, got "iptables"');
  });
});

function unavailableReason(): string | undefined {
  return netnsUnavailableReason(PREFIX, {
    iptables: ['iptables-legacy', 'iptables-nft'],
    timeoutMs: EXEC_TIMEOUT_MS,
    extra: () => {
      for (const tool of ['/usr/sbin/iptables-legacy', '/usr/sbin/iptables-nft', '/usr/bin/setpriv']) {
        if (!existsSync(tool)) return `${path.basename(tool)} is not installed`;
      }
      return undefined;
    },
  });
}

const reason = unavailableReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED interception-backend (real part): needs root, ip netns, setpriv and both iptables backends: ${reason}`);
}

(reason ? describe.skip : describe)('typemesh-init --iptables-backend in a network namespace, with the init container\'s capabilities', () => {
  const namespaces: string[] = [];
  const expected = () => scriptInterceptionRules(generateInterceptionScript(parseInterceptionArgs(FLAGS).options), 'ipv4');

  function netns(suffix: string): string {
    const name = `${PREFIX}-${suffix}`;
    execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    namespaces.push(name);
    return name;
  }

  afterAll(() => {
    for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns], { timeout: EXEC_TIMEOUT_MS });
  });

  /** typemesh-init in `ns` as uid 0 with exactly these capabilities (as the container runtime grants them). */
  function initIn(ns: string, caps: string[], args: string[]) {
    const set = ['-all', ...caps.map((c) => `+${c}`)].join(',');
    return typemeshInit(args, ['ip', 'netns', 'exec', ns, 'setpriv', `--bounding-set=${set}`, `--inh-caps=${set}`, '--']);
  }

  const nat = (ns: string, save: string) => savedInterceptionRules(execFileSync('ip', ['netns', 'exec', ns, save, '-t', 'nat'], { encoding: 'utf8', timeout: EXEC_TIMEOUT_MS }));

  it('legacy with NET_ADMIN and NET_RAW: the rules are in the legacy tables only', () => {
    const ns = netns('legacy');
    const r = initIn(ns, ['net_admin', 'net_raw'], [...FLAGS, '--iptables-backend', 'legacy']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(nat(ns, 'iptables-legacy-save')).toEqual(expected());
    expect(nat(ns, 'iptables-nft-save')).toEqual([]);
  });

  it('legacy with NET_ADMIN alone fails (iptables-legacy needs a raw socket), so the pod does not start unintercepted', () => {
    const ns = netns('legacy-noraw');
    const r = initIn(ns, ['net_admin'], [...FLAGS, '--iptables-backend', 'legacy']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('the iptables script failed');
    expect(nat(ns, 'iptables-legacy-save')).toEqual([]);
  });

  it('nft with NET_ADMIN alone: the rules are in the nft tables only', () => {
    const ns = netns('nft');
    const r = initIn(ns, ['net_admin'], [...FLAGS, '--iptables-backend', 'nft']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(nat(ns, 'iptables-nft-save')).toEqual(expected());
    expect(nat(ns, 'iptables-legacy-save')).toEqual([]);
  });
});
