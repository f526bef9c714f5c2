/**
 * Slowloris against each listener: a client that trickles a request head (or a TLS
 * handshake) a few bytes at a time to hold a connection open forever. The sidecars here run
 * with short head and handshake timeouts (HEAD_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS in
 * pod-fixture.ts); each test asserts the SERVER closes the trickling connection (long before
 * our own give-up, which is many times the configured timeout) while a normal client keeps
 * being served, and that nothing of the slow request reached the app.
 */
import type { AgentChunk, AgentTls } from './netns-agent';
import { Agent, describeSecurity, HANDSHAKE_TIMEOUT_MS, HEAD_TIMEOUT_MS, httpRequest, PodFixture, PORTS, sleep, statuses, usePodFixture } from './pod-fixture';

/** How long we trickle before giving up: far beyond any configured timeout. */
const GIVE_UP_MS = 8 * Math.max(HEAD_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS);
/** A failing test runs to GIVE_UP_MS, plus the normal client's calls. */
const TEST_TIMEOUT_MS = GIVE_UP_MS + 20_000;
const TRICKLE_EVERY_MS = 250;

/** Sends `first` at once, then one header line every 250 ms until the server closes or we give up; meanwhile the normal client calls. */
async function trickleOn(fx: PodFixture, agent: Agent, host: string, port: number, first: string, tls?: AgentTls): Promise<{ closedBy: string; data: string; chunksSent: number }> {
  const chunks: AgentChunk[] = [{ data: first }];
  for (let i = 0; i < GIVE_UP_MS / TRICKLE_EVERY_MS; i++) chunks.push({ data: `x-slow-${i}: ${i}\r\n`, delayMs: TRICKLE_EVERY_MS });
  const attack = agent.exchange({ host, port, tls, chunks, timeoutMs: GIVE_UP_MS + 2000 });
  // The normal client is served while the slow connection is open.
  for (let i = 0; i < 4; i++) {
    await fx.normalCall();
    await sleep(200);
  }
  const r = await attack;
  await fx.normalCall();
  expect(fx.target.requestsSince(0).filter((e) => Object.keys(e.headers ?? {}).some((h) => h.startsWith('x-slow-')))).toEqual([]);
  return r;
}

describeSecurity('slowloris against every listener', () => {
  jest.setTimeout(TEST_TIMEOUT_MS);
  const fx = usePodFixture();

  const trickle = (agent: Agent, host: string, port: number, first: string, tls?: AgentTls): Promise<{ closedBy: string; data: string; chunksSent: number }> => trickleOn(fx(), agent, host, port, first, tls);

  const FIRST_HEAD = 'GET /public HTTP/1.1\r\nhost: payment\r\n';
  const keepAliveThen = (): string => httpRequest('GET', '/public', { host: 'payment' }) + FIRST_HEAD;

  test('inbound (mTLS): a trickled first request head is closed by the server', async () => {
    const r = await trickle(fx().peerRogue, fx().target.ip, PORTS.inbound, FIRST_HEAD, fx().peerIdentity());
    expect(r.closedBy).toBe('peer');
  });

  test('inbound (mTLS): a trickled SECOND request head on a keep-alive connection is closed by the server', async () => {
    const r = await trickle(fx().peerRogue, fx().target.ip, PORTS.inbound, keepAliveThen(), fx().peerIdentity());
    // The first request was served...
    expect(statuses(r.data)[0]).toBe(200);
    // ...and the trickled second one did not hold the connection.
    expect(r.closedBy).toBe('peer');
  });

  test('inbound: a TCP connection that never starts its TLS handshake is closed by the server', async () => {
    const r = await fx().attacker.exchange({ host: fx().target.ip, port: PORTS.inbound, chunks: [], timeoutMs: GIVE_UP_MS });
    expect(r.connected).toBe(true);
    expect(r.closedBy).toBe('peer');
    await fx().normalCall();
  });

  test('inbound: a TLS handshake trickled byte by byte is closed by the server', async () => {
    // The first bytes of a TLS record header (handshake, TLS 1.0 record version, a length), then one byte at a time.
    const chunks: AgentChunk[] = [{ data: '\x16\x03\x01\x02\x00\x01' }];
    for (let i = 0; i < GIVE_UP_MS / TRICKLE_EVERY_MS; i++) chunks.push({ data: '\x00', delayMs: TRICKLE_EVERY_MS });
    const attack = fx().attacker.exchange({ host: fx().target.ip, port: PORTS.inbound, chunks, timeoutMs: GIVE_UP_MS + 2000 });
    await fx().normalCall();
    const r = await attack;
    expect(r.closedBy).toBe('peer');
    await fx().normalCall();
  });

  test('outbound (from the app): a trickled first request head is closed by the server', async () => {
    const r = await trickle(fx().podApp, '127.0.0.1', PORTS.outbound, 'POST /process HTTP/1.1\r\nhost: order\r\n');
    expect(r.closedBy).toBe('peer');
  });

  test('outbound (from the app): a trickled SECOND request head is closed by the server', async () => {
    const r = await trickle(fx().podApp, '127.0.0.1', PORTS.outbound, httpRequest('POST', '/process', { host: 'order' }, '{}') + 'POST /process HTTP/1.1\r\nhost: order\r\n');
    expect(statuses(r.data)[0]).toBe(200);
    expect(r.closedBy).toBe('peer');
  });

  test('admin (from the pod network): a trickled first request head is closed by the server', async () => {
    const r = await trickle(fx().attacker, fx().target.ip, PORTS.admin, `GET /healthz/ready HTTP/1.1\r\nhost: ${fx().target.ip}\r\n`);
    expect(r.closedBy).toBe('peer');
  });

  test('admin (from the pod network): a trickled SECOND request head is closed by the server', async () => {
    const r = await trickle(fx().attacker, fx().target.ip, PORTS.admin, httpRequest('GET', '/healthz/ready', { host: fx().target.ip }) + `GET /healthz/ready HTTP/1.1\r\nhost: ${fx().target.ip}\r\n`);
    expect(statuses(r.data)[0]).toBe(200);
    expect(r.closedBy).toBe('peer');
  });

  test('after every slow connection the sidecar is up and serving', async () => {
    await fx().expectSidecarAlive();
    await fx().normalCall();
  });
});

describeSecurity('slowloris against the inbound listener in PERMISSIVE mode (plaintext accepted)', () => {
  jest.setTimeout(TEST_TIMEOUT_MS);
  const fx = usePodFixture({ mode: 'PERMISSIVE' });

  test('a connection to the app port that never sends its first byte is closed by the server', async () => {
    const r = await fx().attacker.exchange({ host: fx().target.ip, port: PORTS.app, chunks: [], timeoutMs: GIVE_UP_MS });
    expect(r.connected).toBe(true);
    expect(r.closedBy).toBe('peer');
    await fx().normalCall();
  });

  test('a trickled plaintext first request head is closed by the server', async () => {
    const r = await trickleOn(fx(), fx().attacker, fx().target.ip, PORTS.app, 'GET /public HTTP/1.1\r\nhost: payment\r\n');
    expect(r.closedBy).toBe('peer');
  });

  test('a trickled plaintext SECOND request head is closed by the server', async () => {
    const r = await trickleOn(fx(), fx().attacker, fx().target.ip, PORTS.app, httpRequest('GET', '/public', { host: 'payment' }) + 'GET /public HTTP/1.1\r\nhost: payment\r\n');
    expect(statuses(r.data)[0]).toBe(200);
    expect(r.closedBy).toBe('peer');
  });
});
