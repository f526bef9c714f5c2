import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { Agent, request } from 'undici';
import { BenchCertificates, WorkloadCertFiles } from '../../bench/lib/certs';
import { inboundNginxConf, nginxAvailable, outboundNginxConf, startNginx } from '../../bench/lib/nginx';
import { ProcessRegistry } from '../../bench/lib/processes';
// The tests' port allocator (a per-worker range), not the bench's listen(0): see its comment.
import { freePort } from '../proxy/harness';

/**
 * The bench's anchor must really be a two-hop mTLS pair, or the comparison flatters nginx:
 * real nginx processes, real TLS. Skipped where nginx is not installed (as the bench skips it).
 */
const maybe = nginxAvailable() ? describe : describe.skip;

maybe('bench nginx anchor', () => {
  const registry = new ProcessRegistry();
  let tmp: string;
  let upstream: http.Server;
  let entryPort: number;
  let inboundPort: number;
  let server: WorkloadCertFiles;
  let stranger: WorkloadCertFiles;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'typemesh-bench-test-'));
    upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('from upstream'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upstreamPort = (upstream.address() as AddressInfo).port;
    const certs = await BenchCertificates.create(path.join(tmp, 'certs'));
    const client = await certs.issue('client', 'spiffe://bench.local/ns/bench/sa/client', 'client.bench.local');
    server = await certs.issue('server', 'spiffe://bench.local/ns/bench/sa/upstream', 'upstream.bench.local');
    // Same names, another CA: nginx must refuse it.
    stranger = await (await BenchCertificates.create(path.join(tmp, 'other-ca'))).issue('client', 'spiffe://bench.local/ns/bench/sa/client', 'client.bench.local');
    inboundPort = await freePort();
    entryPort = await freePort();
    const inPrefix = path.join(tmp, 'in');
    const outPrefix = path.join(tmp, 'out');
    await startNginx(registry, 'nginx inbound', inPrefix, inboundNginxConf(inPrefix, inboundPort, upstreamPort, server), inboundPort);
    await startNginx(registry, 'nginx outbound', outPrefix, outboundNginxConf(outPrefix, entryPort, inboundPort, client, server.dnsName), entryPort);
  }, 30_000);

  afterAll(async () => {
    await registry.stopAll();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
    rmSync(tmp, { recursive: true, force: true });
  });

  test('a request goes through both instances to the upstream', async () => {
    const res = await request(`http://127.0.0.1:${entryPort}/x`, { method: 'POST', body: 'q'.repeat(1024) });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('from upstream');
  });

  test('nginx #2 refuses a TLS client without a certificate or with one from another CA', async () => {
    const call = async (cert?: WorkloadCertFiles): Promise<number> => {
      const agent = new Agent({
        connect: {
          ca: readFileSync(server.caFile),
          servername: server.dnsName,
          ...(cert ? { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) } : {}),
        },
      });
      try {
        const res = await request(`https://127.0.0.1:${inboundPort}/x`, { dispatcher: agent });
        await res.body.dump();
        return res.statusCode;
      } finally {
        await agent.close();
      }
    };
    expect(await call()).toBe(400); // "No required SSL certificate was sent"
    expect(await call(stranger)).toBe(400); // "The SSL certificate error"
  });

  test('nginx #2 presents the workload certificate signed by the mesh CA', async () => {
    const peer = await new Promise<tls.PeerCertificate>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: inboundPort, servername: server.dnsName, ca: readFileSync(server.caFile) }, () => {
        resolve(socket.getPeerCertificate());
        socket.destroy();
      });
      socket.once('error', reject);
    });
    expect(peer.subjectaltname).toContain('URI:spiffe://bench.local/ns/bench/sa/upstream');
  });
});
