/**
 * typemesh-proxy: the TypeMesh sidecar's entry point.
 *
 *   typemesh-proxy --config <file>          run the sidecar
 *   typemesh-proxy --config <file> --check  validate the config and exit
 *   typemesh-proxy --wait-ready             wait until the local sidecar is ready (a postStart hook)
 *   typemesh-proxy --help | --version
 *
 * Exit codes: 0 ok (including a drained SIGTERM), 1 invalid config or start failure, 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { parseSidecarConfigText, SidecarConfig, SidecarConfigError } from '../config';
import { WAIT_READY_URL } from '../config/pod-contract';
import { errorMessage, log } from './log';
import { createObserver } from './observer-factory';
import { Sidecar } from './sidecar';
import { PROXY_VERSION } from './version';

const USAGE = `Usage: typemesh-proxy --config <file> [--check]

The TypeMesh sidecar proxy.

Options:
  --config <file>  the sidecar config (YAML or JSON, typemesh.io/v1alpha1 SidecarConfig)
  --check          validate the config and exit (0 valid, 1 invalid)
  --wait-ready     wait until the sidecar of this pod answers 200 on 127.0.0.1:15020/healthz/ready,
                   then exit 0 (1 after 120 s); the legacy-sidecar postStart hook, which holds the
                   app's start until the proxy is ready
  --version        print the version and exit
  --help           print this help and exit

Signals: SIGHUP reloads config and certificates; SIGTERM/SIGINT drain and exit 0 (listeners keep
  accepting for drainDurationMs, peers are told to close, then the listeners close).
Environment: TYPEMESH_LOG_LEVEL=debug|info|warn|error (default info);
  TYPEMESH_REQUEST_HEAD_TIMEOUT_MS: time a new connection has to send its first request head (default 60000).
`;

interface Args {
  config?: string;
  check: boolean;
  help: boolean;
  version: boolean;
  waitReady: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { check: false, help: false, version: false, waitReady: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') args.help = true;
    else if (a === '--version' || a === '-v') args.version = true;
    else if (a === '--check') args.check = true;
    else if (a === '--wait-ready') args.waitReady = true;
    else if (a === '--config' || a === '-c') {
      const v = argv[++i];
      if (!v) throw new UsageError('--config needs a file path');
      args.config = v;
    } else if (a.startsWith('--config=')) args.config = a.slice('--config='.length);
    else throw new UsageError(`unknown argument "${a}"`);
  }
  return args;
}

class UsageError extends Error {}

const WAIT_READY_TRIES = 600;
const WAIT_READY_INTERVAL_MS = 200;

/** Polls the local readiness endpoint: 0 once it answers 200, 1 when it never does. */
async function waitReady(): Promise<number> {
  for (let i = 0; i < WAIT_READY_TRIES; i++) {
    try {
      const res = await fetch(WAIT_READY_URL, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return 0;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, WAIT_READY_INTERVAL_MS));
  }
  process.stderr.write(`typemesh-proxy: ${WAIT_READY_URL} did not answer 200 after ${WAIT_READY_TRIES} tries\n`);
  return 1;
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`typemesh-proxy: ${errorMessage(e)}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`typemesh-proxy ${PROXY_VERSION} (node ${process.version})\n`);
    return 0;
  }
  if (args.waitReady) return waitReady();
  if (!args.config) {
    process.stderr.write(`typemesh-proxy: --config <file> is required\n\n${USAGE}`);
    return 2;
  }
  let config: SidecarConfig;
  let configText: string;
  try {
    configText = readFileSync(args.config, 'utf8');
    config = parseSidecarConfigText(configText, args.config);
  } catch (e) {
    const msg = e instanceof SidecarConfigError ? e.message : `cannot read config ${args.config}: ${errorMessage(e)}`;
    process.stderr.write(`typemesh-proxy: ${msg}\n`);
    return 1;
  }
  if (args.check) {
    process.stdout.write(`config ${args.config} is valid (workload ${config.workload.name}, ${config.outbound.services.length} outbound services)\n`);
    return 0;
  }
  let sidecar: Sidecar;
  try {
    sidecar = await Sidecar.start({ configFile: args.config, config, configText, observer: createObserver(config) });
  } catch (e) {
    process.stderr.write(`typemesh-proxy: failed to start: ${errorMessage(e)}\n`);
    return 1;
  }
  process.on('SIGHUP', () => void sidecar.reloadAll());
  // One request's unexpected error must not take down every other request of the workload:
  // log it loudly and keep serving (the error is counted by whoever tails the logs).
  process.on('uncaughtException', (e) => log('error', 'uncaught exception', { error: errorMessage(e), stack: (e as Error).stack }));
  process.on('unhandledRejection', (e) => log('error', 'unhandled rejection', { error: errorMessage(e) }));
  const stop = (signal: string): void => {
    log('info', 'signal received', { signal });
    sidecar.drain().then(() => process.exit(0), (e) => {
      log('error', 'drain failed', { error: errorMessage(e) });
      process.exit(1);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return -1; // keep running
}

main().then((code) => {
  if (code >= 0) process.exitCode = code;
}, (e) => {
  process.stderr.write(`typemesh-proxy: ${errorMessage(e)}\n`);
  process.exitCode = 1;
});
