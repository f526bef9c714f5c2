/**
 * The TypeMesh pair: a client-side sidecar (its outbound listener is what the client calls)
 * and a server-side sidecar (its mTLS inbound listener forwards to the upstream). Each is one
 * `node dist/proxy/typemesh-proxy.js --config <yaml>` process; the configs are validated
 * against the contract in src/config before they are written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { parseSidecarConfig, SidecarConfigInput } from '../../src/config';
import type { WorkloadCertFiles } from './certs';
import { BenchProcess, freePort, ProcessRegistry, waitForPort } from './processes';

/** The mesh's names, shared by the configs and the certificates. */
export const TRUST_DOMAIN = 'bench.local';
export const NAMESPACE = 'bench';
export const CLIENT_ACCOUNT = 'bench-client';
export const SERVER_ACCOUNT = 'upstream';
/** The Host the client sends; the client sidecar routes it to the server sidecar. */
export const UPSTREAM_HOST = 'upstream.bench.svc.cluster.local';

/** Telemetry of the sidecars under test. */
export interface SidecarTelemetry {
  /** Prometheus metrics recorded per request (the mesh default). */
  readonly metrics: boolean;
  /** One JSON access log line per request on stdout (the mesh default). */
  readonly accessLog: boolean;
}

/** Ports of one sidecar, all on 127.0.0.1. */
interface ListenerPorts {
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
}

async function listenerPorts(): Promise<ListenerPorts> {
  return { outboundPort: await freePort(), inboundPort: await freePort(), adminPort: await freePort() };
}

function workload(account: string, port: number): SidecarConfigInput['workload'] {
  return {
    name: account,
    namespace: NAMESPACE,
    version: 'v1',
    serviceAccount: account,
    identity: `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${account}`,
    trustDomain: TRUST_DOMAIN,
    appPorts: [{ name: 'http', port }],
  };
}

function telemetry(t: SidecarTelemetry): SidecarConfigInput['telemetry'] {
  return { metrics: { enabled: t.metrics }, tracing: { enabled: false }, accessLog: { enabled: t.accessLog, format: 'json' } };
}

/**
 * What both sidecars of the pair share: a STRICT inbound listener forwarding to `appPort`,
 * loopback listeners, the bench's telemetry switches and a short drain (the bench stops the
 * pair with SIGTERM and waits at most 3 s before SIGKILL).
 */
function pairMemberConfig(account: string, appPort: number, ports: ListenerPorts, certs: WorkloadCertFiles, t: SidecarTelemetry, outbound: SidecarConfigInput['outbound'], overload?: SidecarConfigInput['overload']): SidecarConfigInput {
  return {
    ...(overload ? { overload } : {}),
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: workload(account, appPort),
    listeners: { bindAddress: '127.0.0.1', ...ports },
    tls: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile },
    inbound: { mtls: { mode: 'STRICT' }, app: { address: '127.0.0.1', port: appPort } },
    outbound,
    telemetry: telemetry(t),
    drainTimeoutMs: 1000,
  };
}

/** The server-side sidecar: mTLS STRICT inbound, no authorization rules, forwards to the upstream. */
export function serverSidecarConfig(ports: ListenerPorts, certs: WorkloadCertFiles, upstreamPort: number, t: SidecarTelemetry, overload?: SidecarConfigInput['overload']): SidecarConfigInput {
  return pairMemberConfig(SERVER_ACCOUNT, upstreamPort, ports, certs, t, { services: [], passthrough: false }, overload);
}

/** The client-side sidecar: one outbound service, one route, no retries, static endpoint = the server sidecar. */
export function clientSidecarConfig(ports: ListenerPorts, certs: WorkloadCertFiles, serverInboundPort: number, t: SidecarTelemetry, overload?: SidecarConfigInput['overload']): SidecarConfigInput {
  // The client has no app of its own here; its inbound side is configured but never called.
  const unusedAppPort = 8080;
  return pairMemberConfig(CLIENT_ACCOUNT, unusedAppPort, ports, certs, t, {
    passthrough: false,
    services: [{
      name: SERVER_ACCOUNT,
      namespace: NAMESPACE,
      hosts: [UPSTREAM_HOST],
      port: 80,
      subsets: [{
        name: 'v1',
        identity: `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${SERVER_ACCOUNT}`,
        discovery: { type: 'static', endpoints: [{ address: '127.0.0.1', port: serverInboundPort }] },
      }],
      routes: [{ name: 'default', destinations: [{ subset: 'v1', weight: 100 }] }],
    }],
  }, overload);
}

/** A running sidecar pair. */
export interface SidecarPair {
  /** The client sidecar (outbound). */
  readonly outbound: BenchProcess;
  /** The server sidecar (inbound). */
  readonly inbound: BenchProcess;
  /** What the client calls (with Host: UPSTREAM_HOST). */
  readonly entryPort: number;
  /** The admin ports (/metrics) of the outbound and inbound sidecars. */
  readonly adminPorts: readonly number[];
}

/** Writes both configs into dir and starts the pair; resolves when both listen. */
export async function startSidecarPair(opts: {
  readonly registry: ProcessRegistry;
  readonly bundle: string;
  readonly dir: string;
  readonly client: WorkloadCertFiles;
  readonly server: WorkloadCertFiles;
  readonly upstreamPort: number;
  readonly telemetry: SidecarTelemetry;
  /** Extra node flags, e.g. --cpu-prof. @default none */
  readonly nodeArgs?: readonly string[];
  /** Name prefix for the processes. @default 'sidecar' */
  readonly label?: string;
  /** The sidecars' overload section. @default none (the sidecar's defaults) */
  readonly overload?: SidecarConfigInput['overload'];
}): Promise<SidecarPair> {
  const serverPorts = await listenerPorts();
  const clientPorts = await listenerPorts();
  const label = opts.label ?? 'sidecar';
  const write = (name: string, cfg: SidecarConfigInput): string => {
    parseSidecarConfig(cfg, name); // fail here, naming the field, rather than in the child
    const file = path.join(opts.dir, `${name}.yaml`);
    writeFileSync(file, YAML.stringify(cfg));
    return file;
  };
  const serverFile = write(`${label}-inbound`, serverSidecarConfig(serverPorts, opts.server, opts.upstreamPort, opts.telemetry, opts.overload));
  const clientFile = write(`${label}-outbound`, clientSidecarConfig(clientPorts, opts.client, serverPorts.inboundPort, opts.telemetry, opts.overload));
  const nodeArgs = opts.nodeArgs ?? [];
  // stdout (access log) goes to a file, as a container runtime would take it, not to a pipe we
  // would have to drain; in a directory of its own, because the sidecar watches its config's
  // directory and would otherwise re-check its files on every log write.
  const logDir = path.join(opts.dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const inbound = opts.registry.start(`${label} inbound`, process.execPath, [...nodeArgs, opts.bundle, '--config', serverFile],
    { cwd: opts.dir, stdoutFile: path.join(logDir, `${label}-inbound.stdout.log`) });
  const outbound = opts.registry.start(`${label} outbound`, process.execPath, [...nodeArgs, opts.bundle, '--config', clientFile],
    { cwd: opts.dir, stdoutFile: path.join(logDir, `${label}-outbound.stdout.log`) });
  await waitForPort(serverPorts.inboundPort, inbound);
  await waitForPort(clientPorts.outboundPort, outbound);
  return { inbound, outbound, entryPort: clientPorts.outboundPort, adminPorts: [clientPorts.adminPort, serverPorts.adminPort] };
}
