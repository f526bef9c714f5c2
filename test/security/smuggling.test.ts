/**
 * Request smuggling against the inbound listener, over mTLS with order's identity so that
 * the first request of each connection passes authorization: each attack hides a second
 * request (GET /admin/smuggled, which the policy denies) in framing that parsers disagree
 * on. The sidecar must either refuse the connection's bytes (400 and close) or read them
 * exactly as the app will; so the app never sees the hidden request, and the app runs a
 * request only when the client was told so (2xx).
 */
import { describeSecurity, httpRequest, PORTS, statuses, usePodFixture } from './pod-fixture';

const HIDDEN = 'GET /admin/smuggled HTTP/1.1\r\nhost: payment\r\nconnection: close\r\n\r\n';
const HIDDEN_LF = 'GET /admin/smuggled HTTP/1.1\nhost: payment\nconnection: close\n\n';

/** A request head (CRLF) with the given header lines and raw body. */
function raw(headLines: string[], body: string, eol = '\r\n'): string {
  return ['POST /process HTTP/1.1', 'host: payment', ...headLines].join(eol) + eol + eol + body;
}

const chunkedHidden = `0\r\n\r\n${HIDDEN}`;

const ATTACKS: Array<[string, string]> = [
  ['CL+TE (TE second)', raw([`content-length: ${Buffer.byteLength(chunkedHidden)}`, 'transfer-encoding: chunked'], chunkedHidden)],
  ['TE+CL (CL second)', raw(['transfer-encoding: chunked', 'content-length: 5'], chunkedHidden)],
  ['CL+TE with CL 0', raw(['content-length: 0', 'transfer-encoding: chunked'], chunkedHidden)],
  ['TE chunked then TE identity', raw(['transfer-encoding: chunked', 'transfer-encoding: identity', 'content-length: 5'], chunkedHidden)],
  ['TE "chunked, identity"', raw(['transfer-encoding: chunked, identity', 'content-length: 5'], chunkedHidden)],
  ['TE xchunked with CL', raw(['transfer-encoding: xchunked', `content-length: ${Buffer.byteLength(chunkedHidden)}`], chunkedHidden)],
  ['TE with a space before the colon', raw(['transfer-encoding : chunked', 'content-length: 5'], chunkedHidden)],
  ['TE with a tab value', raw(['transfer-encoding:\tchunked', 'content-length: 5'], chunkedHidden)],
  ['TE "chunked" in upper case with CL', raw(['Transfer-Encoding: CHUNKED', 'content-length: 5'], chunkedHidden)],
  ['duplicate Content-Length (0, then the hidden length)', raw(['content-length: 0', `content-length: ${Buffer.byteLength(HIDDEN)}`], HIDDEN)],
  ['duplicate Content-Length (hidden length, then 0)', raw([`content-length: ${Buffer.byteLength(HIDDEN)}`, 'content-length: 0'], HIDDEN)],
  ['Content-Length as a list "0, N"', raw([`content-length: 0, ${Buffer.byteLength(HIDDEN)}`], HIDDEN)],
  ['Content-Length with a plus sign', raw(['content-length: +0'], HIDDEN)],
  ['obs-fold hiding Transfer-Encoding', raw(['x-note: a', ' transfer-encoding: chunked', 'content-length: 5'], chunkedHidden)],
  ['obs-fold continuing Transfer-Encoding', raw(['transfer-encoding:', ' chunked', 'content-length: 5'], chunkedHidden)],
  ['bare LF line endings', raw(['content-length: 0'], HIDDEN_LF, '\n')],
  ['bare LF inside one header line', 'POST /process HTTP/1.1\r\nhost: payment\r\ncontent-length: 0\nx-a: b\r\n\r\n' + HIDDEN],
  ['bare CR as a line ending', 'POST /process HTTP/1.1\rhost: payment\rcontent-length: 0\r\r' + HIDDEN],
  ['chunk size larger than 64 bits', raw(['transfer-encoding: chunked'], `fffffffffffffffff1\r\nAB\r\n0\r\n\r\n${HIDDEN}`)],
  ['negative chunk size', raw(['transfer-encoding: chunked'], `-1\r\nA\r\n0\r\n\r\n${HIDDEN}`)],
  ['chunk size with 0x prefix', raw(['transfer-encoding: chunked'], `0x2\r\nAB\r\n0\r\n\r\n${HIDDEN}`)],
  ['chunk size with a leading space', raw(['transfer-encoding: chunked'], ` 2\r\nAB\r\n0\r\n\r\n${HIDDEN}`)],
  ['chunk shorter than its size', raw(['transfer-encoding: chunked'], `10\r\nAB\r\n0\r\n\r\n${HIDDEN}`)],
  ['chunk longer than its size', raw(['transfer-encoding: chunked'], `1\r\nAB${HIDDEN}\r\n0\r\n\r\n`)],
  ['chunk data without CRLF', raw(['transfer-encoding: chunked'], `2\r\nAB0\r\n\r\n${HIDDEN}`)],
  ['a valid request pipelined with a malformed one (no colon)', raw(['content-length: 2'], '{}') + 'GET /public HTTP/1.1\r\nhost payment\r\n\r\n' + HIDDEN],
  ['a valid request pipelined with a malformed one (bad version)', raw(['content-length: 2'], '{}') + 'GET /public HTTP/9.9\r\nhost: payment\r\n\r\n' + HIDDEN],
  ['a valid request pipelined with a malformed one (NUL in a header)', raw(['content-length: 2'], '{}') + 'GET /public HTTP/1.1\r\nhost: payment\r\nx-a: b\x00c\r\n\r\n' + HIDDEN],
  ['a valid request pipelined with a malformed one (CL+TE)', raw(['content-length: 2'], '{}') + raw(['content-length: 5', 'transfer-encoding: chunked'], chunkedHidden)],
  ['Content-Length after 2100 other headers (past Node\'s maxHeadersCount)', raw([...Array.from({ length: 2100 }, (_, i) => `x-flood-${i}: v`), `content-length: ${Buffer.byteLength(HIDDEN)}`], HIDDEN)],
  ['HTTP/0.9 simple request', 'GET /admin/smuggled\r\n\r\n'],
  ['HTTP/1.0 with a chunked body', 'POST /process HTTP/1.0\r\nhost: payment\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n' + chunkedHidden],
];

describeSecurity('request smuggling over mTLS from the allowed peer', () => {
  const fx = usePodFixture();

  test('control: a pipelined second request is authorized on its own (403), the first is served', async () => {
    const mark = fx().target.events.length;
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, httpRequest('POST', '/process', { host: 'payment' }, '{}') + HIDDEN, { tls: fx().peerIdentity() });
    expect(statuses(r.data)).toEqual([200, 403]);
    expect(fx().target.requestsSince(mark).map((e) => e.url)).toEqual(['/process']);
  });

  test.each(ATTACKS)('%s: the hidden request never reaches the app', async (_name, bytes) => {
    const mark = fx().target.events.length;
    const r = await fx().peerRogue.send(fx().target.ip, PORTS.inbound, bytes, { tls: fx().peerIdentity(), timeoutMs: 4000 });
    await fx().normalCall();
    const foreign = (e: { headers?: Record<string, unknown> }): boolean => e.headers?.['x-suite-normal-client'] === undefined;
    expect(fx().target.requestsSince(mark).filter((e) => e.url!.includes('smuggled'))).toEqual([]);
    // The app completed exactly the requests the client was told succeeded, no more.
    const answeredOk = statuses(r.data).filter((c) => c >= 200 && c < 300).length;
    expect(fx().target.completedSince(mark).filter(foreign).length).toBe(answeredOk);
    // At most the one genuine request succeeded, and the server ended the connection (no hang).
    expect(answeredOk).toBeLessThanOrEqual(1);
    expect(r.closedBy).toBe('peer');
  });

  test('outbound: HTTP/0.9 in absolute form from the app is refused and reaches no peer', async () => {
    const mark = fx().mark();
    const r = await fx().podApp.send('127.0.0.1', PORTS.outbound, 'GET http://order/admin/smuggled\r\n\r\n');
    expect(statuses(r.data).filter((c) => c < 400)).toEqual([]);
    expect(r.closedBy).toBe('peer');
    await fx().expectAppsUntouched(mark);
  });

  test('the sidecar is still up and serving after every attack', async () => {
    await fx().expectSidecarAlive();
    await fx().normalCall();
  });
});
