/**
 * The bench's second anchor must really be a two-hop mTLS pair: real haproxy processes, real
 * TLS, a client certificate required by haproxy #2 and haproxy #2's certificate verified by #1.
 * Skipped where haproxy is not installed (as the bench skips it).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent, request } from 'undici';
import { BenchCertificates, WorkloadCertFiles } from '../../bench/lib/certs';
import { haproxyAvailable, inboundHaproxyConf, outboundHaproxyConf, startHaproxy, writeCombinedPem } from '../../bench/lib/haproxy';
import { ProcessRegistry } from '../../bench/lib/processes';
// The tests' port allocator (a per-worker range), not the bench's listen(0).
import { freePort } from '../proxy/harness';

const maybe = haproxyAvailable() ? describe : describe.skip;

maybe('bench haproxy anchor', () => {
  const registry = new ProcessRegistry();
  let tmp: string;
  let upstream: http.Server;
  let upstreamPort: number;
  let entryPort: number;
  let inboundPort: number;
  let client: WorkloadCertFiles;
  let server: WorkloadCertFiles;
  let stranger: WorkloadCertFiles;
  let certs: BenchCertificates;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'typemesh-bench-test-'));
    upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(`from upstream via ${req.headers.host}`));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamPort = (upstream.address() as AddressInfo).port;
    certs = await BenchCertificates.create(path.join(tmp, 'certs'));
    client = await certs.issue('client', 'spiffe://bench.local/ns/bench/sa/client', 'client.bench.local');
    server = await certs.issue('server', 'spiffe://bench.local/ns/bench/sa/upstream', 'upstream.bench.local');
    // Same names, another CA: haproxy must refuse it.
    stranger = await (await BenchCertificates.create(path.join(tmp, 'other-ca'))).issue('client', 'spiffe://bench.local/ns/bench/sa/client', 'client.bench.local');
    inboundPort = await freePort();
    entryPort = await freePort();
    const inPrefix = path.join(tmp, 'in');
    const outPrefix = path.join(tmp, 'out');
    await startHaproxy(registry, 'haproxy inbound', inPrefix, inboundHaproxyConf(inboundPort, upstreamPort, writeCombinedPem(inPrefix, server), server.caFile), inboundPort);
    await startHaproxy(registry, 'haproxy outbound', outPrefix, outboundHaproxyConf(entryPort, inboundPort, writeCombinedPem(outPrefix, client), client.caFile, server.dnsName), entryPort);
  }, 30_000);

  afterAll(async () => {
    await registry.stopAll();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
    rmSync(tmp, { recursive: true, force: true });
  });

  test('a request goes through both instances to the upstream, and is logged', async () => {
    const res = await request(`http://127.0.0.1:${entryPort}/x`, { method: 'POST', headers: { host: 'upstream.bench.local' }, body: 'q'.repeat(1024) });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('from upstream via upstream.bench.local');
    for (let i = 0; i < 100 && !readFileSync(path.join(tmp, 'out', 'access.log'), 'utf8').includes('POST /x'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(path.join(tmp, 'out', 'access.log'), 'utf8')).toContain('POST /x');
  });

  test('haproxy #2 refuses a TLS client without a certificate or with one from another CA', async () => {
    const call = async (cert?: WorkloadCertFiles): Promise<number | string> => {
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
      } catch (e) {
        return 'refused';
      } finally {
        await agent.close();
      }
    };
    expect(await call()).toBe('refused');
    expect(await call(stranger)).toBe('refused');
    expect(await call(client)).toBe(200);
  });

  test('haproxy #1 refuses a peer whose certificate does not carry the expected name', async () => {
    // A second inbound instance with a certificate of the right CA but another DNS name.
    const other = await certs.issue('other', 'spiffe://bench.local/ns/bench/sa/other', 'other.bench.local');
    const port = await freePort();
    const entry = await freePort();
    const p1 = path.join(tmp, 'in2');
    const p2 = path.join(tmp, 'out2');
    await startHaproxy(registry, 'haproxy inbound 2', p1, inboundHaproxyConf(port, upstreamPort, writeCombinedPem(p1, other), other.caFile), port);
    await startHaproxy(registry, 'haproxy outbound 2', p2, outboundHaproxyConf(entry, port, writeCombinedPem(p2, client), client.caFile, server.dnsName), entry);
    const res = await request(`http://127.0.0.1:${entry}/x`);
    await res.body.dump();
    expect(res.statusCode).toBe(503);
  });
});
