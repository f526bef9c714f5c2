/**
 * inbound.pathNormalization.foldForDenyRules (on unless set to false): DENY rules also match the
 * path as apps that fold paths read it (Tomcat's `;params`, IIS's trailing dots and spaces,
 * case-insensitive servers), so `/ADMIN`, `/admin;x`, `/admin.`, `/admin%20` are denied by a rule
 * on `/admin`, while ALLOW rules are never widened. Table-tested through normalizePath +
 * Authorizer, then sent byte for byte to a running sidecar.
 */
import { Authorizer, foldPathForDeny, normalizePath } from '../../src/proxy-image/authz';
import { cleanup, echoHandler, ORDER_ID, PAYMENT_ID, rawExchange, SidecarProcess, sidecarPorts, startSidecar, startUpstream, tempDir, TestPki, Upstream, workloadConfig } from './harness';

jest.setTimeout(40_000);
afterAll(cleanup);

const RULES = [
  { name: 'no-admin', action: 'DENY' as const, paths: ['/admin', '/admin/*'] },
  { name: 'process', action: 'ALLOW' as const, methods: ['POST' as const], paths: ['/process'] },
  { name: 'reads', action: 'ALLOW' as const, methods: ['GET' as const] },
];

/** Targets an app that folds paths reads as /admin or below it. */
const FOLDED_ADMIN = ['/ADMIN', '/Admin/users', '/admin;jsessionid=1', '/admin;/users', '/x/..;/admin', '/admin/..;/admin', '/;x/admin', '/admin.', '/admin./users', '/admin%20', '/admin%09', '/admin%2e', '/%20admin', '/ADMIN%20./'];

function decide(auth: Authorizer, method: string, target: string): boolean | 'refused' {
  const norm = normalizePath(target, { mergeSlashes: true, rejectEncodedSlashes: true });
  if (!norm.ok) return 'refused';
  return auth.decide({ method, path: norm.path, headers: {}, principal: ORDER_ID }).allowed;
}

describe('foldPathForDeny', () => {
  test.each([
    ['/admin', '/admin'],
    ['/ADMIN', '/admin'],
    ['/admin;jsessionid=1', '/admin'],
    ['/x/..;/admin', '/admin'],
    ['/;x/admin', '/admin'],
    ['/admin.', '/admin'],
    ['/admin%20', '/admin'],
    ['/admin/', '/admin/'],
    ['/file.json', '/file.json'],
    ['/a/.hidden', '/a/.hidden'],
  ])('%s folds to %s', (path, folded) => {
    expect(foldPathForDeny(path)).toBe(folded);
  });
});

describe('Authorizer with foldForDenyRules', () => {
  const folding = new Authorizer(RULES, { foldForDenyRules: true });
  const strict = new Authorizer(RULES);

  test.each(FOLDED_ADMIN)('GET %s is denied by DENY /admin', (target) => {
    expect(decide(folding, 'GET', target)).toBe(false);
  });

  test('without folding, these were the known gap', () => {
    for (const t of ['/ADMIN', '/admin;jsessionid=1', '/x/..;/admin', '/admin.', '/admin%20']) expect(decide(strict, 'GET', t)).toBe(true);
  });

  test.each(['/process', '/PROCESS', '/process;x', '/process.', '/process%20'])('ALLOW POST /process is not widened: POST %s', (target) => {
    const expected = target === '/process';
    expect(decide(folding, 'POST', target)).toBe(expected);
  });

  test('ordinary paths are untouched', () => {
    for (const t of ['/public', '/api/v1/items.json', '/administrator', '/a/.well-known/x']) expect(decide(folding, 'GET', t)).toBe(true);
  });
});

describe('through the sidecar', () => {
  let app: Upstream;
  let folding: SidecarProcess;
  let literal: SidecarProcess;

  beforeAll(async () => {
    const dir = tempDir();
    const pki = await TestPki.create(dir);
    app = await startUpstream(echoHandler('payment'));
    const config = async (name: string, fold?: boolean): Promise<ReturnType<typeof workloadConfig>> => workloadConfig({
      name: 'payment', identity: PAYMENT_ID, ports: await sidecarPorts(), tls: await pki.workload(name, PAYMENT_ID), appPort: app.port,
      // Plaintext (PERMISSIVE) so that a raw socket sends the exact bytes; a GET-all ALLOW without principals.
      inbound: { mtls: { mode: 'PERMISSIVE' }, authorization: { rules: [RULES[0], { name: 'reads', action: 'ALLOW', methods: ['GET'] }] }, ...(fold === undefined ? {} : { pathNormalization: { foldForDenyRules: fold } }) },
    });
    folding = await startSidecar(dir, 'folding', await config('folding'));
    literal = await startSidecar(dir, 'literal', await config('literal', false));
  });

  test.each(FOLDED_ADMIN)('default config: GET %s gets 403 and reaches no app', async (target) => {
    const before = app.requests.length;
    const out = await rawExchange(folding.ports.inbound, `GET ${target} HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1\.1 403/);
    expect(app.requests.length).toBe(before);
  });

  test('foldForDenyRules: false keeps the literal match (a case-sensitive app may want /ADMIN served)', async () => {
    const out = await rawExchange(literal.ports.inbound, 'GET /ADMIN HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 200/);
    expect(await rawExchange(literal.ports.inbound, 'GET /admin HTTP/1.1\r\nHost: payment\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 403/);
  });
});
