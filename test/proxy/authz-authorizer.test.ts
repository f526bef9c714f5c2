import * as http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import * as net from 'node:net';
import { AuthorizationRuleSchema, type AuthorizationRule } from '../../src/config/schema';
import { Authorizer } from '../../src/proxy-image/authz/authorizer';
import { normalizePath } from '../../src/proxy-image/authz/path';

const ORDER = 'spiffe://cluster.local/ns/shop/sa/order';
const CART = 'spiffe://cluster.local/ns/shop/sa/cart';
const INTRUDER = 'spiffe://cluster.local/ns/evil/sa/intruder';
const FOREIGN = 'spiffe://other.example/workload/x'; // no /ns/ segment

/** Rules go through the real schema, as the proxy gets them (header names lower-cased). */
function rules(...input: unknown[]): AuthorizationRule[] {
  return input.map((r) => AuthorizationRuleSchema.parse(r));
}

interface Case {
  readonly title: string;
  readonly principal?: string;
  readonly method?: string;
  readonly path: string;
  readonly headers?: IncomingHttpHeaders;
  readonly allowed: boolean;
  readonly rule?: string;
}

function check(authorizer: Authorizer, c: Case): void {
  const decision = authorizer.decide({ principal: c.principal, method: c.method ?? 'GET', path: c.path, headers: c.headers ?? {} });
  expect({ title: c.title, allowed: decision.allowed, rule: decision.rule }).toEqual({ title: c.title, allowed: c.allowed, rule: c.rule });
  expect(decision.reason.length).toBeGreaterThan(0);
}

describe('Authorizer without rules', () => {
  it('allows everything, authenticated or not', () => {
    const a = new Authorizer([]);
    check(a, { title: 'plaintext', path: '/admin', allowed: true });
    check(a, { title: 'mtls', principal: INTRUDER, method: 'DELETE', path: '/admin', allowed: true });
  });
});

describe('Authorizer with only DENY rules', () => {
  const a = new Authorizer(rules(
    { name: 'no-evil', action: 'DENY', namespaces: ['evil'] },
    { name: 'no-admin-writes', action: 'DENY', methods: ['POST', 'DELETE'], paths: ['/admin/*'] },
  ));
  const cases: Case[] = [
    { title: 'other namespace allowed', principal: ORDER, path: '/admin/users', allowed: true },
    { title: 'denied namespace', principal: INTRUDER, path: '/public', allowed: false, rule: 'no-evil' },
    { title: 'denied method+path', principal: ORDER, method: 'POST', path: '/admin/users', allowed: false, rule: 'no-admin-writes' },
    { title: 'allowed method on the path', principal: ORDER, method: 'GET', path: '/admin/users', allowed: true },
    { title: 'plaintext never matches a namespace rule', path: '/public', allowed: true },
    { title: 'plaintext still matches a rule without principals', method: 'DELETE', path: '/admin/x', allowed: false, rule: 'no-admin-writes' },
    { title: 'principal without /ns/ has no namespace', principal: FOREIGN, path: '/public', allowed: true },
  ];
  it.each(cases)('$title', (c) => check(a, c));
});

describe('Authorizer with ALLOW and DENY rules (Istio semantics)', () => {
  const a = new Authorizer(rules(
    { name: 'order-processes', action: 'ALLOW', principals: [ORDER], methods: ['POST'], paths: ['/process', '/process/*'] },
    { name: 'anyone-reads-health', action: 'ALLOW', principals: ['*'], methods: ['GET'], paths: ['/health'] },
    { name: 'shop-namespace-reads', action: 'ALLOW', namespaces: ['shop'], methods: ['GET', 'HEAD'], paths: ['/catalog/*'] },
    { name: 'debug-header', action: 'ALLOW', principals: [CART], headers: [{ name: 'X-Debug', exact: 'on' }] },
    { name: 'no-admin', action: 'DENY', paths: ['/admin', '/admin/*'] },
    { name: 'no-bad-agent', action: 'DENY', headers: [{ name: 'user-agent', regex: 'bad-bot/[0-9]+' }] },
  ));
  const cases: Case[] = [
    { title: 'exact principal, method and path', principal: ORDER, method: 'POST', path: '/process', allowed: true, rule: 'order-processes' },
    { title: 'prefix path', principal: ORDER, method: 'POST', path: '/process/42', allowed: true, rule: 'order-processes' },
    { title: 'query string is ignored for paths', principal: ORDER, method: 'POST', path: '/process?x=/admin', allowed: true, rule: 'order-processes' },
    { title: 'prefix is a string prefix, like Istio', principal: ORDER, method: 'POST', path: '/process/', allowed: true, rule: 'order-processes' },
    { title: 'no prefix match without the /', principal: ORDER, method: 'POST', path: '/processing', allowed: false },
    { title: 'wrong principal', principal: CART, method: 'POST', path: '/process', allowed: false },
    { title: 'wrong method', principal: ORDER, method: 'PUT', path: '/process', allowed: false },
    { title: 'method is case-sensitive', principal: ORDER, method: 'post', path: '/process', allowed: false },
    { title: 'path is case-sensitive', principal: ORDER, method: 'POST', path: '/PROCESS', allowed: false },
    { title: '"*" is any authenticated peer', principal: INTRUDER, method: 'GET', path: '/health', allowed: true, rule: 'anyone-reads-health' },
    { title: '"*" never matches plaintext', method: 'GET', path: '/health', allowed: false },
    { title: 'namespace from the principal', principal: CART, method: 'HEAD', path: '/catalog/1', allowed: true, rule: 'shop-namespace-reads' },
    { title: 'namespace mismatch', principal: INTRUDER, method: 'GET', path: '/catalog/1', allowed: false },
    { title: 'no namespace in a foreign principal', principal: FOREIGN, method: 'GET', path: '/catalog/1', allowed: false },
    { title: 'header exact', principal: CART, path: '/anything', headers: { 'x-debug': 'on' }, allowed: true, rule: 'debug-header' },
    { title: 'header exact mismatch', principal: CART, path: '/anything', headers: { 'x-debug': 'ON' }, allowed: false },
    { title: 'header missing', principal: CART, path: '/anything', allowed: false },
    { title: 'DENY wins over a matching ALLOW', principal: CART, path: '/admin', headers: { 'x-debug': 'on' }, allowed: false, rule: 'no-admin' },
    { title: 'DENY on a sub-path', principal: CART, path: '/admin/users', headers: { 'x-debug': 'on' }, allowed: false, rule: 'no-admin' },
    { title: 'DENY for plaintext too', path: '/admin', allowed: false, rule: 'no-admin' },
    { title: 'DENY header regex', principal: INTRUDER, method: 'GET', path: '/health', headers: { 'user-agent': 'bad-bot/7' }, allowed: false, rule: 'no-bad-agent' },
    { title: 'header regex is a whole-value match', principal: INTRUDER, method: 'GET', path: '/health', headers: { 'user-agent': 'bad-bot/7 (ok)' }, allowed: true, rule: 'anyone-reads-health' },
    { title: 'nothing matches: deny by default', principal: ORDER, method: 'GET', path: '/', allowed: false },
  ];
  it.each(cases)('$title', (c) => check(a, c));

  it('returns the same frozen decision object for the same rule (no allocation per request)', () => {
    const d1 = a.decide({ principal: ORDER, method: 'POST', path: '/process', headers: {} });
    const d2 = a.decide({ principal: ORDER, method: 'POST', path: '/process/1', headers: {} });
    expect(d1).toBe(d2);
    expect(Object.isFrozen(d1)).toBe(true);
    expect(d1.reason).toBe('allowed by rule "order-processes"');
    expect(a.decide({ principal: ORDER, method: 'GET', path: '/', headers: {} }).reason).toBe('no ALLOW rule matched (deny by default)');
  });
});

describe('Authorizer header conditions', () => {
  const a = new Authorizer(rules(
    { name: 'tenant-prefix', action: 'ALLOW', headers: [{ name: 'x-tenant', prefix: 'acme-' }, { name: 'x-canary', present: false }] },
    { name: 'needs-token', action: 'ALLOW', paths: ['/token'], headers: [{ name: 'Authorization', present: true }] },
    { name: 'cookie', action: 'ALLOW', paths: ['/cookie'], headers: [{ name: 'set-cookie', exact: 'a=1, b=2' }] },
  ));
  const cases: Case[] = [
    { title: 'prefix and absent', path: '/x', headers: { 'x-tenant': 'acme-1' }, allowed: true, rule: 'tenant-prefix' },
    { title: 'prefix but present when it must be absent', path: '/x', headers: { 'x-tenant': 'acme-1', 'x-canary': '' }, allowed: false },
    { title: 'prefix mismatch', path: '/x', headers: { 'x-tenant': 'other' }, allowed: false },
    { title: 'present (empty value counts)', path: '/token', headers: { authorization: '' }, allowed: true, rule: 'needs-token' },
    { title: 'present but absent', path: '/token', allowed: false },
    { title: 'array values are joined like Node joins repeats', path: '/cookie', headers: { 'set-cookie': ['a=1', 'b=2'] }, allowed: true, rule: 'cookie' },
  ];
  it.each(cases)('$title', (c) => check(a, c));
});

describe('Authorizer principal prefixes', () => {
  const a = new Authorizer(rules(
    { name: 'shop-accounts', action: 'DENY', principals: ['spiffe://cluster.local/ns/shop/sa/*'] },
  ));
  it('denies every account of the namespace given as a principal prefix', () => {
    check(a, { title: 'prefix', principal: CART, path: '/', allowed: false, rule: 'shop-accounts' });
    check(a, { title: 'outside the prefix', principal: INTRUDER, path: '/', allowed: true });
  });
});

describe('Authorizer refuses rules it cannot compile', () => {
  it.each(['principals', 'namespaces', 'methods', 'paths', 'headers'])('an empty %s list', (field) => {
    expect(() => new Authorizer(rules({ name: 'r', action: 'ALLOW', [field]: [] })))
      .toThrow(`inbound.authorization.rules[0] ("r").${field} is an empty list: omit ${field} to match any value, or list at least one value`);
  });
});

describe('Authorizer combined with normalizePath: bypass attempts', () => {
  // The workload allows order to POST /process/* and denies /admin to everyone.
  const a = new Authorizer(rules(
    { name: 'order-processes', action: 'ALLOW', principals: [ORDER], paths: ['/process', '/process/*'] },
    { name: 'no-admin', action: 'DENY', paths: ['/admin', '/admin/*'] },
  ));
  const opts = { mergeSlashes: true, rejectEncodedSlashes: true };

  /** What the inbound listener does: normalize once (refuse -> 400), then authorize. */
  function inbound(raw: string, method = 'POST'): 'refused' | 'allowed' | 'denied' {
    const n = normalizePath(raw, opts);
    if (!n.ok) return 'refused';
    return a.decide({ principal: ORDER, method, path: n.path, headers: {} }).allowed ? 'allowed' : 'denied';
  }

  const attempts: Array<[string, 'refused' | 'allowed' | 'denied']> = [
    ['/process/1', 'allowed'],
    ['/process/../admin', 'denied'],
    ['/process/%2e%2e/admin', 'denied'],
    ['/process/%2E%2E/admin', 'denied'],
    ['/process/.%2e/admin', 'denied'],
    ['/%2e%2e/admin', 'denied'],
    ['/process/../../admin', 'denied'],
    ['//admin', 'denied'],
    ['/process//..//admin', 'denied'],
    ['/./admin', 'denied'],
    ['/%61dmin', 'denied'],
    ['/process/..%2fadmin', 'refused'],
    ['/process/..%2Fadmin', 'refused'],
    ['/process%2f..%2fadmin', 'refused'],
    ['/process/..%5cadmin', 'refused'],
    ['/process\\..\\admin', 'refused'],
    ['/process/..;/admin', 'allowed'], // ";" is not special here: the app gets "/process/..;/admin" as normalized
    ['/process/x?next=/../admin', 'allowed'],
    ['/PROCESS/1', 'denied'], // a different path: not allowed (and not the admin path either)
    ['/ADMIN', 'denied'], // not /admin, but also matches no ALLOW rule
    ['/admin%00', 'refused'],
    ['/process/1#/../../admin', 'refused'],
  ];
  it.each(attempts)('%s -> %s', (raw, expected) => {
    expect(inbound(raw)).toBe(expected);
  });

  it('a lower-case method is a different method, and Node refuses it before authorization', async () => {
    const deny = new Authorizer(rules({ name: 'no-delete', action: 'DENY', methods: ['DELETE'] }));
    expect(deny.decide({ method: 'DELETE', path: '/', headers: {} }).allowed).toBe(false);
    // The authorizer compares exactly (RFC 9110: methods are case-sensitive), so "delete"
    // would not match a DENY on DELETE; that is safe only because Node's HTTP parser answers
    // 400 to a non-canonical method before any handler runs. Prove it with a real socket.
    expect(deny.decide({ method: 'delete', path: '/', headers: {} }).allowed).toBe(true);
    expect(await firstResponseLine('delete / HTTP/1.1\r\nHost: x\r\n\r\n')).toBe('HTTP/1.1 400 Bad Request');
    expect(await firstResponseLine('DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toBe('HTTP/1.1 200 OK');
  });
});

/** Sends raw bytes to a real node:http server on loopback and returns the status line. */
async function firstResponseLine(request: string): Promise<string> {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    return await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
      socket.setTimeout(5000, () => socket.destroy(new Error('no response within 5 s')));
      socket.once('data', (d) => { socket.destroy(); resolve(d.toString('latin1').split('\r\n')[0]); });
      socket.once('error', reject);
    });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
