/**
 * The sidecar's two HTTP/1.1 upstream clients: the lean one on Node's llhttp binding (the
 * default) and undici's Pool, the fallback for a Node without that binding and the A/B switch
 * of the bench (TYPEMESH_HTTP1_CLIENT=undici). Both must carry the same traffic the same way:
 * two real sidecar pairs, one per client, the same requests through each.
 */
import {
  callOutbound, cleanup, MeshPair, startMeshPair,
} from './harness';

jest.setTimeout(30_000);
afterAll(cleanup);

/** The same requests through a pair; returns what the client and the app saw. */
async function exercise(pair: MeshPair): Promise<unknown[]> {
  const seen: unknown[] = [];
  const get = await callOutbound(pair.order, 'payment', '/get?q=1');
  seen.push([get.status, JSON.parse(get.body).method, JSON.parse(get.body).url]);
  const body = 'x'.repeat(70_000);
  const post = await callOutbound(pair.order, 'payment', '/post', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  const echoed = JSON.parse(post.body);
  seen.push([post.status, echoed.method, echoed.body === body, echoed.headers['content-type'], echoed.headers['content-length']]);
  const head = await callOutbound(pair.order, 'payment', '/head', { method: 'HEAD' });
  seen.push([head.status, head.body]);
  for (let i = 0; i < 5; i++) seen.push((await callOutbound(pair.order, 'payment', `/seq/${i}`)).status);
  return seen;
}

describe('HTTP/1.1 upstream client choice', () => {
  let lean: MeshPair;
  let fallback: MeshPair;

  beforeAll(async () => {
    [lean, fallback] = await Promise.all([startMeshPair(), startMeshPair({ sidecarEnv: { TYPEMESH_HTTP1_CLIENT: 'undici' } })]);
  });

  test('the sidecars say which client they run', async () => {
    for (const p of [lean.order, lean.payment]) expect(await p.waitForLog('sidecar ready')).toContain('"http1Client":"llhttp"');
    for (const p of [fallback.order, fallback.payment]) expect(await p.waitForLog('sidecar ready')).toContain('"http1Client":"undici"');
  });

  test('both clients carry GET, a 70 KB POST, HEAD and sequential requests the same way', async () => {
    const viaLean = await exercise(lean);
    const viaUndici = await exercise(fallback);
    expect(viaLean).toEqual(viaUndici);
    expect(viaLean[0]).toEqual([200, 'GET', '/get?q=1']);
    expect(viaLean[1]).toEqual([200, 'POST', true, 'text/plain', '70000']);
    expect(viaLean[2]).toEqual([200, '']);
    expect(lean.app.requests).toHaveLength(8);
    expect(fallback.app.requests).toHaveLength(8);
  });
});
