/**
 * What the floor proxies read from a sidecar config (the same YAML the bench writes for the
 * TypeMesh pair), so a floor runs with the same ports, certificates and upstream as the pair.
 */
import { readFileSync } from 'node:fs';
import * as YAML from 'yaml';

/** The parts of a sidecar config a floor proxy uses. */
export interface FloorConfig {
  /** Which side of the pair this process is. */
  readonly role: 'outbound' | 'inbound';
  readonly bindAddress: string;
  /** The port this process listens on (outbound: plain HTTP; inbound: mTLS). */
  readonly listenPort: number;
  /** Where it connects (outbound: the inbound floor over mTLS; inbound: the upstream, plain). */
  readonly target: { readonly address: string; readonly port: number };
  readonly tls: { readonly cert: Buffer; readonly key: Buffer; readonly ca: Buffer };
}

/** Reads `--config <file>` from argv. */
export function readFloorConfig(argv: readonly string[] = process.argv): FloorConfig {
  const i = argv.indexOf('--config');
  if (i < 0 || !argv[i + 1]) throw new Error('usage: node <floor>.js --config <sidecar-config.yaml>');
  const cfg = YAML.parse(readFileSync(argv[i + 1], 'utf8'));
  const tls = { cert: readFileSync(cfg.tls.certFile), key: readFileSync(cfg.tls.keyFile), ca: readFileSync(cfg.tls.caFile) };
  const service = cfg.outbound.services[0];
  if (service) {
    const ep = service.subsets[0].discovery.endpoints[0];
    return { role: 'outbound', bindAddress: cfg.listeners.bindAddress, listenPort: cfg.listeners.outboundPort, target: { address: ep.address, port: ep.port }, tls };
  }
  return { role: 'inbound', bindAddress: cfg.listeners.bindAddress, listenPort: cfg.listeners.inboundPort, target: cfg.inbound.app, tls };
}

/** Exits on SIGTERM/SIGINT, as the bench stops its processes. */
export function exitOnSignals(): void {
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => process.exit(0));
}
