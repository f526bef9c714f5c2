/**
 * Meshed TCP under transparent capture, for real: in a network namespace this test creates
 * (prefix tm14), typemesh-init's rules with `--tcp-redirects 6379:<listener>` are installed,
 * and an app that knows nothing of the mesh connects to a "Redis" service address on port
 * 6379 (IPv4 and IPv6). The rule sends it to order's TCP service listener; order's sidecar
 * opens mTLS to db's sidecar, which pipes to the echo app. The echo coming back proves the
 * whole path: without the redirect the address does not exist, and the HTTP outbound
 * listener would answer an HTTP error, not the bytes sent. A connection to another port still
 * goes to the HTTP outbound listener.
 *
 * Needs root, `ip netns` and iptables; skipped otherwise with the reason printed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { SidecarConfigInput } from '../../src/config';
import { generateInterceptionScript } from '../../src/proxy-image/interception';
import { cleanup, ORDER_ID, PROXY_BUNDLE, tempDir, TestPki, TRUST_DOMAIN } from './harness';
import { netnsUnavailableReason } from '../netns-support';

jest.setTimeout(90_000);

const NS = `tm14-${process.pid}`;
// A veth pair with both ends in the namespace (no dummy module needed): one end carries the addresses.
const VETH = `tm14a${process.pid}`.slice(0, 15);
const VETH_PEER = `tm14b${process.pid}`.slice(0, 15);
const EXEC_TIMEOUT_MS = 10_000;
const DB_ID = 'spiffe://cluster.local/ns/shop/sa/db';
// A service address that exists only as a route on the namespace's veth.
const SERVICE_IP = '10.255.14.9';
const SERVICE_IP6 = 'fd00:14::9';
// Inside a fresh namespace every port is free: fixed ports keep the configs readable.
const PORTS = { echo: 6000, listener: 15102, order: { outbound: 15001, inbound: 15006, admin: 15020 }, db: { outbound: 16001, inbound: 16006, admin: 16020 } };

function unavailableReason(): string | undefined {
  return netnsUnavailableReason(NS, {
    timeoutMs: EXEC_TIMEOUT_MS,
    extra: () => (!existsSync('/usr/sbin/iptables') && !existsSync('/sbin/iptables') ? 'iptables is not installed' : undefined),
  });
}

const reason = unavailableReason();
if (reason) {
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED tcp-interception-netns: ${reason}`);
}
const describeReal = reason ? describe.skip : describe;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: EXEC_TIMEOUT_MS });
}

/**
 * Runs inside the namespace: the echo app, both sidecars, then the app's connections.
 * Prints one JSON line with what each connection got back.
 */
const DRIVER = `
const { spawn } = require('child_process');
const net = require('net');
const http = require('http');
const [bundle, dbConfig, orderConfig, dbAdmin, orderAdmin, echoPort, ip4, ip6] = process.argv.slice(1);
setTimeout(() => process.exit(2), 60000).unref();
const echo = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => undefined);
  s.on('data', (c) => s.write(c));
  s.on('end', () => s.end());
}).listen(Number(echoPort), '127.0.0.1');
const kids = [dbConfig, orderConfig].map((c) => spawn(process.execPath, [bundle, '--config', c], { stdio: ['ignore', 'ignore', 'inherit'] }));
const ready = (port) => new Promise((resolve) => {
  const attempt = (left) => {
    const retry = () => (left > 0 ? setTimeout(() => attempt(left - 1), 50) : resolve(false));
    http.get({ host: '127.0.0.1', port: Number(port), path: '/healthz/ready' }, (r) => {
      r.resume();
      if (r.statusCode === 200) resolve(true); else retry();
    }).on('error', retry);
  };
  attempt(400);
});
const exchange = (host, port, data) => new Promise((resolve) => {
  const chunks = [];
  const s = net.connect(port, host, () => s.end(data));
  s.on('data', (c) => chunks.push(c));
  s.on('error', () => undefined);
  s.on('close', () => resolve(Buffer.concat(chunks).toString()));
});
(async () => {
  const result = { ready: (await ready(dbAdmin)) && (await ready(orderAdmin)) };
  if (result.ready) {
    result.v4 = await exchange(ip4, 6379, 'PING over iptables v4\\r\\n');
    result.v6 = await exchange(ip6, 6379, 'PING over iptables v6\\r\\n');
    result.http = (await exchange(ip4, 8080, 'not http\\r\\n\\r\\n')).split('\\r\\n')[0];
  }
  console.log(JSON.stringify(result));
  for (const k of kids) k.kill('SIGKILL');
  echo.close();
  process.exit(0);
})();
`;

describeReal('meshed TCP through typemesh-init\'s --tcp-redirects (real iptables, netns tm14)', () => {
  let result: { ready: boolean; v4?: string; v6?: string; http?: string };

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    const config = (name: string, identity: string, ports: typeof PORTS.db, extra: Partial<SidecarConfigInput>): string => {
      const c: SidecarConfigInput = {
        apiVersion: 'typemesh.io/v1alpha1',
        kind: 'SidecarConfig',
        workload: { name, namespace: 'shop', version: 'v1', serviceAccount: name, identity, trustDomain: TRUST_DOMAIN, appPorts: [{ name: 'redis', port: PORTS.echo, protocol: 'tcp' }] },
        // 0.0.0.0: the outbound listeners are on 127.0.0.1 and ::1, where REDIRECT sends IPv4 and IPv6.
        listeners: { bindAddress: '0.0.0.0', outboundPort: ports.outbound, inboundPort: ports.inbound, adminPort: ports.admin },
        tls: files[name],
        inbound: { app: { address: '127.0.0.1', port: PORTS.echo } },
        telemetry: { metrics: { enabled: false }, accessLog: { enabled: false } },
        drainDurationMs: 0,
        ...extra,
      };
      const file = path.join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(c));
      return file;
    };
    const files: Record<string, { certFile: string; keyFile: string; caFile: string }> = {
      db: await pki.workload('db', DB_ID),
      order: await pki.workload('order', ORDER_ID),
    };
    const dbConfig = config('db', DB_ID, PORTS.db, { inbound: { app: { address: '127.0.0.1', port: PORTS.echo }, authorization: { rules: [{ name: 'order', action: 'ALLOW', principals: [ORDER_ID] }] } } });
    const orderConfig = config('order', ORDER_ID, PORTS.order, {
      outbound: {
        tcpServices: [{
          name: 'redis', namespace: 'shop', port: 6379, targetPort: PORTS.echo, listenerPort: PORTS.listener,
          subsets: [{ name: 'v1', identity: DB_ID, discovery: { type: 'static', endpoints: [{ address: '127.0.0.1', port: PORTS.db.inbound }] } }],
        }],
      },
    });

    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', NS, 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', VETH_PEER]);
    sh('ip', ['-n', NS, 'addr', 'add', '10.255.14.1/24', 'dev', VETH]);
    sh('ip', ['-n', NS, '-6', 'addr', 'add', 'fd00:14::1/64', 'dev', VETH, 'nodad']);
    sh('ip', ['-n', NS, 'link', 'set', VETH, 'up']);
    sh('ip', ['-n', NS, 'link', 'set', VETH_PEER, 'up']);
    const script = path.join(dir, 'interception.sh');
    writeFileSync(script, generateInterceptionScript({ appPorts: [PORTS.echo], tcpRedirects: [{ port: 6379, listenerPort: PORTS.listener }] }));
    sh('ip', ['netns', 'exec', NS, 'sh', '-e', script]);

    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', DRIVER, PROXY_BUNDLE, dbConfig, orderConfig, String(PORTS.db.admin), String(PORTS.order.admin), String(PORTS.echo), SERVICE_IP, SERVICE_IP6], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`driver exited ${code}:\n${stderr}`))));
    });
    result = JSON.parse(out.trim().split('\n').pop()!);
  });

  afterAll(async () => {
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'pipe', timeout: EXEC_TIMEOUT_MS });
    } catch { /* already gone */ }
    await cleanup();
  });

  test('both sidecars start in the namespace', () => {
    expect(result.ready).toBe(true);
  });

  test('the app\'s TCP to the service port (IPv4 and IPv6) is meshed and echoed', () => {
    expect(result.v4).toBe('PING over iptables v4\r\n');
    expect(result.v6).toBe('PING over iptables v6\r\n');
  });

  test('other ports still go to the HTTP outbound listener', () => {
    expect(result.http).toMatch(/^HTTP\/1\.1 400 /);
  });
});
