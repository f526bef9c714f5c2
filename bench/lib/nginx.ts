/**
 * The anchor: the same two-hop mTLS topology through two nginx instances.
 *   nginx #1 (outbound): plain HTTP listener, proxy_pass https:// to nginx #2 presenting a
 *     client certificate, verifying nginx #2 against the mesh CA, keep-alive upstream pool.
 *   nginx #2 (inbound): TLS listener with ssl_verify_client on, proxy_pass to the upstream
 *     with a keep-alive pool.
 * Each instance runs root-less style from its own temp prefix (config, pid, logs, temp paths),
 * with worker_processes 1 to compare fairly with one Node process per sidecar, on loopback only.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { WorkloadCertFiles } from './certs';
import { BenchProcess, ProcessRegistry, waitForPort } from './processes';

/** Where nginx is looked for (Debian's package). */
export const NGINX_BINARY = '/usr/sbin/nginx';

export function nginxAvailable(): boolean {
  return existsSync(NGINX_BINARY);
}

// Shared by both instances: an access log file per instance (the sidecars log one JSON line
// per request by default, so nginx logs too), unlimited requests per keep-alive connection on both sides (the sidecar pools do not
// rotate connections either; nginx's default of 1,000 would add a TLS handshake per 1,000
// requests), and every temp path inside the prefix.
function commonHttp(prefix: string): string {
  return `
  access_log ${prefix}/access.log;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;`;
}

function mainConf(prefix: string, http: string): string {
  return `worker_processes 1;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {${commonHttp(prefix)}
${http}
}
`;
}

/** nginx #1's config: plain HTTP in, mTLS out to nginx #2. */
export function outboundNginxConf(prefix: string, listenPort: number, peerPort: number, client: WorkloadCertFiles, peerDnsName: string): string {
  return mainConf(prefix, `
  upstream mesh_peer {
    server 127.0.0.1:${peerPort};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass https://mesh_peer;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate ${client.certFile};
      proxy_ssl_certificate_key ${client.keyFile};
      proxy_ssl_trusted_certificate ${client.caFile};
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_name ${peerDnsName};
      proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
    }
  }`);
}

/** nginx #2's config: mTLS in (client certificate required), plain HTTP to the upstream. */
export function inboundNginxConf(prefix: string, listenPort: number, upstreamPort: number, server: WorkloadCertFiles): string {
  return mainConf(prefix, `
  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${listenPort} ssl;
    ssl_certificate ${server.certFile};
    ssl_certificate_key ${server.keyFile};
    ssl_client_certificate ${server.caFile};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`);
}

/** Writes the config into its own prefix and starts `nginx -p <prefix> -c <prefix>/nginx.conf` in the foreground. */
export async function startNginx(registry: ProcessRegistry, name: string, prefix: string, conf: string, listenPort: number): Promise<BenchProcess> {
  mkdirSync(prefix, { recursive: true });
  const confFile = path.join(prefix, 'nginx.conf');
  writeFileSync(confFile, conf);
  const p = registry.start(name, NGINX_BINARY, ['-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', confFile,
    '-g', `daemon off; pid ${path.join(prefix, 'nginx.pid')};`]);
  p.child.stdin?.end();
  await waitForPort(listenPort, p);
  return p;
}
