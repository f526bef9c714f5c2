/**
 * The second anchor: the same two-hop mTLS topology through two HAProxy instances (Debian's
 * haproxy package), configured like the nginx pair:
 *   haproxy #1 (outbound): plain HTTP frontend, backend server over TLS 1.3 presenting a client
 *     certificate, verifying haproxy #2 against the mesh CA and its DNS name, connections reused.
 *   haproxy #2 (inbound): TLS 1.3 frontend with `verify required` (client certificate from the
 *     mesh CA), plain HTTP to the upstream with connections reused.
 * One thread each (nbthread 1) to compare fairly with one Node process per sidecar; an HTTP
 * access log line per request to stdout, which goes to a file as the sidecars' logs do.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { WorkloadCertFiles } from './certs';
import { BenchProcess, ProcessRegistry, waitForPort } from './processes';

/** Where haproxy is looked for (Debian's package: apt-get install haproxy). */
export const HAPROXY_BINARY = '/usr/sbin/haproxy';

export function haproxyAvailable(): boolean {
  return existsSync(HAPROXY_BINARY);
}

/** HAProxy reads a certificate and its key from one PEM file: written into the instance's prefix. */
export function writeCombinedPem(prefix: string, files: WorkloadCertFiles): string {
  mkdirSync(prefix, { recursive: true });
  const pem = path.join(prefix, 'identity.pem');
  writeFileSync(pem, `${readFileSync(files.certFile, 'utf8').trimEnd()}\n${readFileSync(files.keyFile, 'utf8').trimEnd()}\n`, { mode: 0o600 });
  return pem;
}

// Shared by both instances: one thread, keep-alive timeouts as long as nginx's, connection reuse
// towards the next hop ("always": the pools of the sidecars and nginx reuse idle connections
// across clients too), and an access log line per request.
function globalAndDefaults(): string {
  return `global
  nbthread 1
  maxconn 8192
  log stdout format raw local0
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3

defaults
  mode http
  log global
  option httplog
  option http-keep-alive
  http-reuse always
  timeout connect 10s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  timeout http-request 60s
`;
}

/** haproxy #1's config: plain HTTP in, mTLS out to haproxy #2 (verified against the CA and peerDnsName). */
export function outboundHaproxyConf(listenPort: number, peerPort: number, clientPem: string, caFile: string, peerDnsName: string): string {
  return `${globalAndDefaults()}
frontend outbound
  bind 127.0.0.1:${listenPort}
  default_backend mesh_peer

backend mesh_peer
  server peer 127.0.0.1:${peerPort} ssl crt ${clientPem} ca-file ${caFile} verify required verifyhost ${peerDnsName} sni str(${peerDnsName}) alpn http/1.1
`;
}

/** haproxy #2's config: mTLS in (a client certificate from the CA required), plain HTTP to the upstream. */
export function inboundHaproxyConf(listenPort: number, upstreamPort: number, serverPem: string, caFile: string): string {
  return `${globalAndDefaults()}
frontend inbound
  bind 127.0.0.1:${listenPort} ssl crt ${serverPem} ca-file ${caFile} verify required alpn http/1.1
  default_backend app

backend app
  server app 127.0.0.1:${upstreamPort}
`;
}

/** Writes the config into its prefix, checks it (`haproxy -c`), and runs haproxy in the foreground (-db). */
export async function startHaproxy(registry: ProcessRegistry, name: string, prefix: string, conf: string, listenPort: number): Promise<BenchProcess> {
  mkdirSync(prefix, { recursive: true });
  const confFile = path.join(prefix, 'haproxy.cfg');
  writeFileSync(confFile, conf);
  const p = registry.start(name, HAPROXY_BINARY, ['-db', '-f', confFile], { cwd: prefix, stdoutFile: path.join(prefix, 'access.log') });
  p.child.stdin?.end();
  await waitForPort(listenPort, p);
  return p;
}
