/**
 * The command line of typemesh-init, both ways: parsing it into InterceptionOptions, and
 * deriving it from a sidecar config (what the constructs put on the init container), so
 * the two cannot disagree on flag names.
 */
import { parseArgs } from 'node:util';
import { InterceptionOptions, InterceptionOptionsError } from './options';
import { IPTABLES_BACKENDS, IptablesBackendName } from './script';

/** What the command line asks for. */
export interface InterceptionCommand {
  readonly options: InterceptionOptions;
  /** Print the script instead of running it. */
  readonly dryRun: boolean;
  /** Remove the chains and jumps instead of installing them. */
  readonly clean: boolean;
  readonly help: boolean;
  /** --iptables-backend: which iptables tools the script runs (unset: the image's default). */
  readonly iptablesBackend?: IptablesBackendName;
}

/** The usage text of typemesh-init. */
export const INTERCEPTION_USAGE = `Usage: typemesh-init [options]

Installs the iptables and ip6tables rules that send a pod's TCP traffic through the TypeMesh
sidecar (run as root with CAP_NET_ADMIN, as the pod's init container). Running it twice is safe.

Options:
  --app-ports LIST               the app's ports (checked against the exclusions; every inbound TCP port
                                 but the admin, inbound and excluded ports is captured anyway)
  --outbound-ports LIST          outbound destination ports redirected to the outbound port (empty: all TCP)
  --no-outbound-capture          leave outbound traffic alone
  --proxy-uid UID                uid of the proxy, never captured (default 1337)
  --outbound-port PORT           the proxy's outbound listener (default 15001)
  --inbound-port PORT            the proxy's inbound listener (default 15006)
  --admin-port PORT              the proxy's admin port, never captured (default 15020)
  --exclude-inbound-ports LIST   inbound ports never captured (not the outbound port)
  --exclude-outbound-ports LIST  outbound destination ports never captured
  --exclude-outbound-cidrs LIST  outbound destinations never captured (a.b.c.d/n or IPv6 addr/n)
  --tcp-redirects LIST           meshed TCP services: PORT:LISTENER pairs, outbound TCP to PORT goes to
                                 the proxy's LISTENER (e.g. 5432:15101)
  --iptables-backend nft|legacy  run iptables-nft or iptables-legacy (default: iptables as the image
                                 resolves it, nft in the sidecar image); legacy needs NET_RAW as well
  --dry-run                      print the script instead of running it
  --clean                        remove the rules instead of installing them
  -h, --help                     show this help

LIST is comma-separated, e.g. --app-ports 8080,8443.`;

/** Parses typemesh-init's arguments. Throws InterceptionOptionsError naming the bad flag. */
export function parseInterceptionArgs(argv: readonly string[]): InterceptionCommand {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'app-ports': { type: 'string' },
        'outbound-ports': { type: 'string' },
        'no-outbound-capture': { type: 'boolean' },
        'proxy-uid': { type: 'string' },
        'outbound-port': { type: 'string' },
        'inbound-port': { type: 'string' },
        'admin-port': { type: 'string' },
        'exclude-inbound-ports': { type: 'string' },
        'exclude-outbound-ports': { type: 'string' },
        'exclude-outbound-cidrs': { type: 'string' },
        'tcp-redirects': { type: 'string' },
        'iptables-backend': { type: 'string' },
        'dry-run': { type: 'boolean' },
        'clean': { type: 'boolean' },
        'help': { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new InterceptionOptionsError(`${(e as Error).message}\n\n${INTERCEPTION_USAGE}`);
  }
  const str = (flag: string): string | undefined => values[flag] as string | undefined;
  const options: InterceptionOptions = {
    appPorts: numberList('--app-ports', str('app-ports')),
    outboundPorts: numberList('--outbound-ports', str('outbound-ports')),
    captureOutbound: values['no-outbound-capture'] ? false : undefined,
    proxyUid: number('--proxy-uid', str('proxy-uid')),
    outboundPort: number('--outbound-port', str('outbound-port')),
    inboundPort: number('--inbound-port', str('inbound-port')),
    adminPort: number('--admin-port', str('admin-port')),
    excludeInboundPorts: numberList('--exclude-inbound-ports', str('exclude-inbound-ports')),
    excludeOutboundPorts: numberList('--exclude-outbound-ports', str('exclude-outbound-ports')),
    excludeOutboundCidrs: list(str('exclude-outbound-cidrs')),
    tcpRedirects: list(str('tcp-redirects'))?.map((pair) => {
      const m = /^(\d+):(\d+)$/.exec(pair);
      if (!m) throw new InterceptionOptionsError(`--tcp-redirects expects PORT:LISTENER pairs such as 5432:15101, got ${JSON.stringify(pair)}`);
      return { port: Number(m[1]), listenerPort: Number(m[2]) };
    }),
  };
  const backend = str('iptables-backend');
  if (backend !== undefined && !(IPTABLES_BACKENDS as readonly string[]).includes(backend)) {
    throw new InterceptionOptionsError(`--iptables-backend must be one of ${IPTABLES_BACKENDS.join(', ')}, got ${JSON.stringify(backend)}`);
  }
  return {
    options, dryRun: values['dry-run'] === true, clean: values.clean === true, help: values.help === true,
    ...(backend !== undefined ? { iptablesBackend: backend as IptablesBackendName } : {}),
  };
}

function list(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function numberList(flag: string, value: string | undefined): number[] | undefined {
  return list(value)?.map((item) => number(flag, item)!);
}

function number(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InterceptionOptionsError(`${flag} expects a number, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Derived from a sidecar config: it lives with the rest of the pod contract. */
export { interceptionArgsFor } from '../../config/pod-contract';
