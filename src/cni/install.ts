/**
 * typemesh-cni-install: puts the typemesh-cni plugin on a node and chains it into the node's
 * CNI network configuration, and takes both away again. It is the entrypoint of the
 * installer DaemonSet (src/constructs/cni-installer.ts), which runs it from the sidecar image
 * with the node's CNI directories mounted (docs/interception.md "CNI mode").
 *
 * - the plugin: the wrapper `typemesh-cni` (src/cni/typemesh-cni.sh) in the CNI bin directory,
 *   beside `typemesh-cni.d/` holding a Node.js binary (this process's own) and the plugin's
 *   bundle. Every file is written under a temporary name and renamed, so a runtime calling the
 *   plugin meanwhile runs the old or the new file, never half of one.
 * - the chain: the entry `{"type": "typemesh-cni", ...}` appended to the `plugins` array of the
 *   node's first `.conflist` in lexical order (the one containerd and CRI-O load), replacing
 *   any earlier typemesh-cni entry, so installing twice changes nothing. Written atomically
 *   too, under a dot-name the runtimes ignore while it is incomplete.
 *
 * Commands: `install` (once), `uninstall`, `check` (the readiness probe: exit 0 only when the
 * plugin and its entry are in place), and `run` (the DaemonSet's: install, waiting for the
 * node's network plugin to write its conflist; put the entry back whenever the conflist is
 * rewritten without it). `run` leaves the plugin chained when it is stopped (SIGTERM, SIGINT):
 * a DaemonSet update or a crash must not open a window in which meshed pods start without
 * interception (fail closed). Pods without the mesh annotation pass through the plugin
 * untouched, so a chained plugin is harmless; `uninstall` removes it on purpose.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { SUPPORTED_CNI_VERSIONS } from './cni-protocol';
import { POD_ANNOTATIONS_CAPABILITY } from './pod-options';

/** The installer's command in the sidecar image (its Dockerfile writes the wrapper). */
export const INSTALL_COMMAND = 'typemesh-cni-install';
/** Where the installer's container sees the node's CNI bin directory (the default of --cni-bin-dir). */
export const HOST_CNI_BIN_MOUNT = '/host/opt/cni/bin';
/** Where the installer's container sees the node's CNI config directory (the default of --cni-conf-dir). */
export const HOST_CNI_CONF_MOUNT = '/host/etc/cni/net.d';

/** The plugin's type: the name of its executable in the CNI bin directory. */
export const PLUGIN_TYPE = 'typemesh-cni';
/** The directory beside the wrapper holding `node` and the bundle. */
export const PLUGIN_DIR = `${PLUGIN_TYPE}.d`;
/** The plugin's bundle, in the source directory and in PLUGIN_DIR. */
export const PLUGIN_BUNDLE = 'typemesh-cni.js';
/** The wrapper script in the source directory (installed as PLUGIN_TYPE). */
export const PLUGIN_WRAPPER = 'typemesh-cni.sh';

/** Where the installer finds what it installs and where it installs it. */
export interface InstallPaths {
  /** The node's CNI bin directory as mounted in the installer (e.g. /host/opt/cni/bin). */
  readonly cniBinDir: string;
  /** The node's CNI config directory as mounted in the installer (e.g. /host/etc/cni/net.d). */
  readonly cniConfDir: string;
  /** Holds typemesh-cni.js and typemesh-cni.sh (/app in the sidecar image). */
  readonly sourceDir: string;
  /** The Node.js binary to install beside the bundle. */
  readonly nodeBinary: string;
}

/** What the plugin's entry in the conflist holds besides its type. */
export interface PluginEntryOptions {
  /** The plugin's `podOptionsDir` (src/cni/pod-options.ts), for runtimes passing no annotations. */
  readonly podOptionsDir?: string;
}

/** An install or uninstall that cannot be done; the message names the file and the problem. */
export class CniInstallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CniInstallError';
  }
}

/** The entry appended to the conflist's plugins. */
export function pluginEntry(opts: PluginEntryOptions = {}): Record<string, unknown> {
  return {
    type: PLUGIN_TYPE,
    // containerd passes the pod's annotations (the interception flags) for this capability.
    capabilities: { [POD_ANNOTATIONS_CAPABILITY]: true },
    ...(opts.podOptionsDir ? { podOptionsDir: opts.podOptionsDir } : {}),
  };
}

/**
 * The node's conflist: the first `*.conflist` of the directory in lexical order, or undefined
 * when there is none yet. A directory with only single-plugin `.conf` files cannot be chained
 * into and is refused.
 */
export function findConflist(confDir: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(confDir).filter((n) => !n.startsWith('.')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CniInstallError(`cannot read the CNI config directory ${confDir}: ${(e as Error).message}`);
  }
  const conflist = names.find((n) => n.endsWith('.conflist'));
  if (conflist) return path.join(confDir, conflist);
  const conf = names.find((n) => n.endsWith('.conf') || n.endsWith('.json'));
  if (conf) {
    throw new CniInstallError(`${path.join(confDir, conf)} is a single-plugin network config: typemesh-cni can only be chained into a .conflist (a "plugins" array); convert it to a .conflist first`);
  }
  return undefined;
}

interface Conflist {
  cniVersion: string;
  plugins: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

function parseConflist(file: string, text: string): Conflist {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CniInstallError(`${file} is not valid JSON (${(e as Error).message}); fix or remove it, nothing was changed`);
  }
  const c = value as Conflist;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CniInstallError(`${file} must hold a JSON object (a network config list); nothing was changed`);
  }
  if (!Array.isArray(c.plugins) || c.plugins.some((p) => typeof p !== 'object' || p === null || Array.isArray(p))) {
    throw new CniInstallError(`${file} has no "plugins" array of objects, so it is not a network config list; nothing was changed`);
  }
  return c;
}

/**
 * The conflist text with the plugin's entry last in `plugins` (earlier typemesh-cni entries
 * removed), or undefined when it already is exactly so.
 */
export function withPlugin(file: string, text: string, entry: Record<string, unknown>): string | undefined {
  const c = parseConflist(file, text);
  if (!(SUPPORTED_CNI_VERSIONS as readonly string[]).includes(c.cniVersion)) {
    // The plugin would refuse every ADD of this network, and no pod could start on the node.
    throw new CniInstallError(`${file} has cniVersion ${JSON.stringify(c.cniVersion)}, which typemesh-cni does not support (${SUPPORTED_CNI_VERSIONS.join(', ')}); nothing was changed`);
  }
  const others = c.plugins.filter((p) => p.type !== PLUGIN_TYPE);
  if (others.length === 0) {
    throw new CniInstallError(`${file} has no network plugin for typemesh-cni to chain after; nothing was changed`);
  }
  const last = c.plugins[c.plugins.length - 1];
  if (others.length === c.plugins.length - 1 && JSON.stringify(last) === JSON.stringify(entry)) return undefined;
  return `${JSON.stringify({ ...c, plugins: [...others, entry] }, null, 2)}\n`;
}

/** The conflist text without typemesh-cni entries, or undefined when it has none. */
export function withoutPlugin(file: string, text: string): string | undefined {
  const c = parseConflist(file, text);
  const others = c.plugins.filter((p) => p.type !== PLUGIN_TYPE);
  if (others.length === c.plugins.length) return undefined;
  return `${JSON.stringify({ ...c, plugins: others }, null, 2)}\n`;
}

/** Writes a file through a dot-named temporary file in the same directory and a rename. */
function replaceFile(file: string, write: (tmp: string) => void, mode?: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.typemesh-${process.pid}.tmp`);
  try {
    write(tmp);
    if (mode !== undefined) chmodSync(tmp, mode);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CniInstallError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

/** What install and uninstall did, one line each (for the installer's log). */
export type Changes = string[];

/** Copies the wrapper, node and the bundle into the CNI bin directory. */
export function installPluginFiles(p: InstallPaths): Changes {
  for (const f of [path.join(p.sourceDir, PLUGIN_WRAPPER), path.join(p.sourceDir, PLUGIN_BUNDLE), p.nodeBinary]) {
    if (!existsSync(f)) throw new CniInstallError(`${f} is missing: the installer must run from the sidecar image (or set --source-dir)`);
  }
  if (!existsSync(p.cniBinDir)) throw new CniInstallError(`the CNI bin directory ${p.cniBinDir} does not exist: mount the node's /opt/cni/bin there`);
  const dir = path.join(p.cniBinDir, PLUGIN_DIR);
  mkdirSync(dir, { recursive: true });
  // The wrapper last: a runtime finds the plugin only once what it starts is in place.
  replaceFile(path.join(dir, 'node'), (tmp) => copyFileSync(p.nodeBinary, tmp), 0o755);
  replaceFile(path.join(dir, PLUGIN_BUNDLE), (tmp) => copyFileSync(path.join(p.sourceDir, PLUGIN_BUNDLE), tmp), 0o644);
  replaceFile(path.join(p.cniBinDir, PLUGIN_TYPE), (tmp) => copyFileSync(path.join(p.sourceDir, PLUGIN_WRAPPER), tmp), 0o755);
  return [`installed ${path.join(p.cniBinDir, PLUGIN_TYPE)} and ${dir}/`];
}

/** Chains the plugin into the node's conflist; throws when there is none. */
export function chainPlugin(confDir: string, entry: Record<string, unknown>): Changes {
  const file = findConflist(confDir);
  if (!file) throw new CniInstallError(`no .conflist in ${confDir} yet: the node's network plugin writes it once it runs`);
  const text = readFileSync(file, 'utf8');
  const updated = withPlugin(file, text, entry);
  if (updated === undefined) return [`${file} already chains ${PLUGIN_TYPE}`];
  replaceFile(file, (tmp) => writeFileSync(tmp, updated), statSync(file).mode & 0o7777);
  return [`chained ${PLUGIN_TYPE} into ${file}`];
}

/** Removes the plugin's entry from every conflist of the directory and its files from the bin directory. */
export function uninstall(p: Pick<InstallPaths, 'cniBinDir' | 'cniConfDir'>): Changes {
  const changes: Changes = [];
  if (existsSync(p.cniConfDir)) {
    for (const name of readdirSync(p.cniConfDir).filter((n) => n.endsWith('.conflist') && !n.startsWith('.')).sort()) {
      const file = path.join(p.cniConfDir, name);
      let updated: string | undefined;
      try {
        updated = withoutPlugin(file, readFileSync(file, 'utf8'));
      } catch (e) {
        // Someone else's broken file is not ours to fix; it holds no entry of ours we could see.
        changes.push(`left ${file} alone: ${(e as Error).message}`);
        continue;
      }
      if (updated === undefined) continue;
      replaceFile(file, (tmp) => writeFileSync(tmp, updated!), statSync(file).mode & 0o7777);
      changes.push(`removed ${PLUGIN_TYPE} from ${file}`);
    }
  }
  const wrapper = path.join(p.cniBinDir, PLUGIN_TYPE);
  if (existsSync(wrapper) || existsSync(path.join(p.cniBinDir, PLUGIN_DIR))) {
    rmSync(wrapper, { force: true });
    rmSync(path.join(p.cniBinDir, PLUGIN_DIR), { recursive: true, force: true });
    changes.push(`removed ${wrapper} and ${path.join(p.cniBinDir, PLUGIN_DIR)}/`);
  }
  return changes;
}

/** Why the plugin is not (fully) installed, or undefined when it is. */
export function notInstalledReason(p: Pick<InstallPaths, 'cniBinDir' | 'cniConfDir'>, entry: Record<string, unknown>): string | undefined {
  for (const f of [path.join(p.cniBinDir, PLUGIN_TYPE), path.join(p.cniBinDir, PLUGIN_DIR, 'node'), path.join(p.cniBinDir, PLUGIN_DIR, PLUGIN_BUNDLE)]) {
    if (!existsSync(f)) return `${f} is missing`;
  }
  const file = findConflist(p.cniConfDir);
  if (!file) return `no .conflist in ${p.cniConfDir}`;
  if (withPlugin(file, readFileSync(file, 'utf8'), entry) !== undefined) return `${file} does not chain ${PLUGIN_TYPE} last`;
  return undefined;
}

/** The usage text of typemesh-cni-install. */
export const INSTALL_USAGE = `Usage: typemesh-cni-install <install|uninstall|check|run> [options]

  install    copy typemesh-cni into the CNI bin directory and chain it into the first .conflist
  uninstall  remove its entry from the conflists and its files from the bin directory
  check      exit 0 when both are in place (the installer's readiness probe), else 1
  run        install (waiting for the conflist), keep the entry there; on SIGTERM it stays

Options:
  --cni-bin-dir DIR      the node's CNI bin directory (default /host/opt/cni/bin)
  --cni-conf-dir DIR     the node's CNI config directory (default /host/etc/cni/net.d)
  --source-dir DIR       where typemesh-cni.js and typemesh-cni.sh are (default /app)
  --pod-options-dir DIR  the plugin's podOptionsDir (default: none, annotations only)
  --wait-seconds N       how long install waits for a conflist (default 0; run waits forever)
  --recheck-seconds N    how often run checks that the entry is still there (default 10)`;

interface CliOptions {
  readonly command: 'install' | 'uninstall' | 'check' | 'run';
  readonly paths: InstallPaths;
  readonly entry: Record<string, unknown>;
  readonly waitSeconds: number;
  readonly recheckSeconds: number;
}

function parseCli(argv: readonly string[]): CliOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      'cni-bin-dir': { type: 'string', default: HOST_CNI_BIN_MOUNT },
      'cni-conf-dir': { type: 'string', default: HOST_CNI_CONF_MOUNT },
      'source-dir': { type: 'string', default: '/app' },
      'pod-options-dir': { type: 'string' },
      'wait-seconds': { type: 'string' },
      'recheck-seconds': { type: 'string', default: '10' },
    },
  });
  const command = positionals[0];
  if (positionals.length !== 1 || !['install', 'uninstall', 'check', 'run'].includes(command)) {
    throw new CniInstallError(`expected one command (install, uninstall, check or run), got ${JSON.stringify(positionals)}`);
  }
  const seconds = (flag: string, v: string | undefined, fallback: number): number => {
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v)) throw new CniInstallError(`--${flag} expects a whole number of seconds, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  const podOptionsDir = values['pod-options-dir'] as string | undefined;
  if (podOptionsDir !== undefined && !path.isAbsolute(podOptionsDir)) {
    throw new CniInstallError(`--pod-options-dir must be an absolute path on the node, got ${JSON.stringify(podOptionsDir)}`);
  }
  return {
    command: command as CliOptions['command'],
    paths: {
      cniBinDir: values['cni-bin-dir'] as string,
      cniConfDir: values['cni-conf-dir'] as string,
      sourceDir: values['source-dir'] as string,
      nodeBinary: process.execPath,
    },
    entry: pluginEntry({ podOptionsDir }),
    waitSeconds: seconds('wait-seconds', values['wait-seconds'] as string | undefined, command === 'run' ? Infinity : 0),
    recheckSeconds: Math.max(1, seconds('recheck-seconds', values['recheck-seconds'] as string | undefined, 10)),
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (line: string) => process.stdout.write(`typemesh-cni-install: ${line}\n`);

/** Installs, waiting up to `waitSeconds` (polling each second) for the node's conflist. */
async function installWaiting(o: CliOptions, stopped: () => boolean): Promise<void> {
  installPluginFiles(o.paths).forEach(log);
  let announced = false;
  for (let waited = 0; !findConflist(o.paths.cniConfDir); waited++) {
    if (waited >= o.waitSeconds || stopped()) {
      throw new CniInstallError(`no .conflist in ${o.paths.cniConfDir}${o.waitSeconds > 0 ? ` after ${o.waitSeconds} s` : ''}: the node's network plugin has not written its config yet (run waits for it; install takes --wait-seconds)`);
    }
    if (!announced) log(`waiting for the node's network plugin to write a .conflist in ${o.paths.cniConfDir}`);
    announced = true;
    await sleep(1000);
  }
  chainPlugin(o.paths.cniConfDir, o.entry).forEach(log);
}

/** Runs typemesh-cni-install; resolves to its exit code (0 done, 1 failed, 2 bad arguments). */
export async function runInstallCli(argv: readonly string[]): Promise<number> {
  let o: CliOptions;
  try {
    o = parseCli(argv);
  } catch (e) {
    process.stderr.write(`typemesh-cni-install: ${(e as Error).message}\n\n${INSTALL_USAGE}\n`);
    return 2;
  }
  try {
    switch (o.command) {
      case 'install':
        await installWaiting(o, () => false);
        return 0;
      case 'uninstall':
        uninstall(o.paths).forEach(log);
        return 0;
      case 'check': {
        const reason = notInstalledReason(o.paths, o.entry);
        if (reason) process.stderr.write(`typemesh-cni-install: not installed: ${reason}\n`);
        return reason ? 1 : 0;
      }
      case 'run':
        return await run(o);
    }
  } catch (e) {
    process.stderr.write(`typemesh-cni-install: ${(e as Error).message}\n`);
    return 1;
  }
}

async function run(o: CliOptions): Promise<number> {
  let stop = false;
  let wake: () => void = () => undefined;
  const onSignal = (signal: string) => {
    log(`${signal}: stopping; the plugin stays chained (run \`typemesh-cni-install uninstall\` to remove it)`);
    stop = true;
    wake();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  try {
    await installWaiting(o, () => stop);
    log('installed; watching the conflist');
    while (!stop) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, o.recheckSeconds * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stop) break;
      // The node's network plugin may rewrite its conflist (an upgrade, a restart) without us.
      const reason = notInstalledReason(o.paths, o.entry);
      if (reason) {
        log(`${reason}: installing again`);
        await installWaiting({ ...o, waitSeconds: Infinity }, () => stop);
      }
    }
  } catch (e) {
    if (!stop) throw e;
  }
  return 0;
}

if (require.main === module) {
  void runInstallCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
