/**
 * What a new mTLS connection between sidecars costs, with and without TLS 1.3 session
 * resumption: the sidecar's own connector (src/proxy-image/upstream-connector.ts) opens N
 * connections one after another to a TLS server with the inbound listener's settings (TLS 1.3,
 * client certificate required, ECDSA P-256 workload certificates from the local CA). "full"
 * uses a fresh connector per connection (no ticket to resume with), "resumed" one connector for
 * all. Client and server run in this process; CPU is this process's user + system time, so it
 * is the cost of both ends of the handshake. Loopback only.
 *
 * Usage: ts-node --transpile-only bench/handshake.ts [--connections=500]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { LocalCertificateAuthority } from '../src/local/certificate-authority';
import { loadIdentity } from '../src/proxy-image/identity';
import { mtlsConnector } from '../src/proxy-image/upstream-connector';

const SERVER_ID = 'spiffe://bench.local/ns/bench/sa/upstream';
const CLIENT_ID = 'spiffe://bench.local/ns/bench/sa/bench-client';

type Connector = ReturnType<typeof mtlsConnector>;

function connectOnce(connect: Connector, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    connect({ hostname: '127.0.0.1', host: `127.0.0.1:${port}`, port: String(port), protocol: 'https:' } as never, (err, socket) => {
      if (err || !socket) return reject(err);
      const s = socket as tls.TLSSocket;
      s.resume();
      // The server answers one byte and ends; reading to the end also delivers its session tickets.
      s.on('end', () => {
        resolve(s.isSessionReused());
        s.destroy();
      });
      s.on('error', reject);
    });
  });
}

async function main(): Promise<void> {
  const n = Number(/--connections=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 500);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'typemesh-handshake-'));
  try {
    const ca = await LocalCertificateAuthority.create({ commonName: 'TypeMesh handshake bench CA' });
    const server = await loadIdentity(await ca.writeWorkloadFiles(path.join(dir, 'server'), { spiffeId: SERVER_ID }));
    const client = await loadIdentity(await ca.writeWorkloadFiles(path.join(dir, 'client'), { spiffeId: CLIENT_ID }));
    const srv = tls.createServer({ ...server.serverOptions, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => s.end('x'));
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as { port: number }).port;
    const newConnector = (): Connector => mtlsConnector({ secureContext: () => client.clientContext, expectedIdentity: SERVER_ID, connectTimeoutMs: 5000, alpn: ['http/1.1'] });

    const measure = async (label: string, connectorFor: () => Connector): Promise<void> => {
      for (let i = 0; i < 20; i++) await connectOnce(connectorFor(), port); // warm-up
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      let resumed = 0;
      for (let i = 0; i < n; i++) if (await connectOnce(connectorFor(), port)) resumed++;
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      console.log(`${label.padEnd(8)} ${n} connections, ${resumed} resumed: ${(cpuMs / n).toFixed(3)} ms CPU (client + server) and ${(wallMs / n).toFixed(3)} ms wall per connection`);
    };
    const shared = newConnector();
    await measure('full', newConnector);
    await measure('resumed', () => shared);
    await measure('full', newConnector);
    await measure('resumed', () => shared);
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
