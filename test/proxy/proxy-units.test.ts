/**
 * Pure pieces of the proxy that need no sockets: route compilation and matching, weighted
 * picks, header rewrites, retry predicates and backoff, the retry budget, raw header parsing,
 * and request targets.
 */
import type { IncomingMessage } from 'node:http';
import { parseSidecarConfig, RetryPolicyConfig, Route } from '../../src/config';
import { RetryBudget } from '../../src/proxy-image/cluster';
import { forwardableHeaders } from '../../src/proxy-image/http-util';
import { spiffeIdFromSubjectAltName } from '../../src/proxy-image/identity';
import { requestTarget } from '../../src/proxy-image/outbound';
import { backoffMs, compileRetryOn, methodRetriable } from '../../src/proxy-image/retry';
import { applyRewrite, compileRoute, hostWithoutPort, selectRoute } from '../../src/proxy-image/routing';
import { parseRawHeaders } from '../../src/proxy-image/upstream-request';

function routes(input: unknown[]): Route[] {
  const cfg = parseSidecarConfig({
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: { name: 'w', namespace: 'n', version: 'v1', serviceAccount: 'w', identity: 'spiffe://cluster.local/ns/n/sa/w', trustDomain: 'cluster.local', appPorts: [{ name: 'http', port: 8080 }] },
    tls: { certFile: 'c', keyFile: 'k', caFile: 'a' },
    inbound: { app: { port: 8080 } },
    outbound: { services: [{ name: 's', namespace: 'n', hosts: ['s'], port: 80, subsets: [{ name: 'a', identity: 'spiffe://cluster.local/ns/n/sa/s', discovery: { type: 'static', endpoints: [{ address: '127.0.0.1', port: 1 }] } }, { name: 'b', identity: 'spiffe://cluster.local/ns/n/sa/s', discovery: { type: 'static', endpoints: [{ address: '127.0.0.1', port: 2 }] } }], routes: input }] },
  });
  return cfg.outbound.services[0].routes;
}

function policy(p: Partial<RetryPolicyConfig>): RetryPolicyConfig {
  return { attempts: 2, perTryTimeoutMs: 0, retryOn: ['5xx'], retriableStatusCodes: [], backoff: { baseIntervalMs: 10, maxIntervalMs: 100 }, budget: { percent: 20, minRetriesPerSecond: 10 }, idempotentOnly: false, maxBufferedBodyBytes: 65536, ...p };
}

describe('routing', () => {
  const compiled = routes([
    { name: 'r1', match: [{ path: { regex: '/v[0-9]+/items' }, method: 'GET' }], destinations: [{ subset: 'b', weight: 100 }] },
    { name: 'r2', match: [{ headers: [{ name: 'X-User', prefix: 'test-' }] }], destinations: [{ subset: 'b', weight: 100 }] },
    { name: 'r3', match: [{ headers: [{ name: 'x-debug', present: false }], path: { prefix: '/p' } }], destinations: [{ subset: 'a', weight: 100 }] },
    { name: 'r4', destinations: [{ subset: 'a', weight: 30 }, { subset: 'b', weight: 70 }] },
  ]).map(compileRoute);
  const pick = (method: string, path: string, headers: Record<string, string> = {}): string | undefined => selectRoute(compiled, { method, path, headers })?.name;

  test('first match wins; regex is anchored; header names are case-insensitive; absence matches', () => {
    expect(pick('GET', '/v2/items')).toBe('r1');
    expect(pick('POST', '/v2/items')).toBe('r4');
    expect(pick('GET', '/v2/items/1')).toBe('r4');
    expect(pick('GET', '/x', { 'x-user': 'test-1' })).toBe('r2');
    expect(pick('GET', '/p1')).toBe('r3');
    expect(pick('GET', '/p1', { 'x-debug': '1' })).toBe('r4');
  });

  test('weights: 30/70 over 10000 picks', () => {
    const r4 = compiled[3];
    let b = 0;
    for (let i = 0; i < 10_000; i++) if (r4.pickSubset() === 'b') b++;
    expect(b).toBeGreaterThan(6500);
    expect(b).toBeLessThan(7500);
  });

  test('rewrites: remove, set, add', () => {
    const [r] = routes([{ name: 'x', destinations: [{ subset: 'a', weight: 100 }], headers: { request: { remove: ['X-Gone'], set: { 'X-Set': '1' }, add: { 'X-Add': '2' } } } }]).map(compileRoute);
    const h: Record<string, string | string[]> = { 'x-gone': 'y', 'x-set': '0', 'x-add': '1' };
    applyRewrite(h, r.requestHeaders!);
    expect(h).toEqual({ 'x-set': '1', 'x-add': ['1', '2'] });
  });

  test('hostWithoutPort', () => {
    expect(hostWithoutPort('Payment:8080')).toBe('payment');
    expect(hostWithoutPort('[::1]:80')).toBe('[::1]');
    expect(hostWithoutPort('a.b')).toBe('a.b');
  });
});

describe('retry decisions', () => {
  test('conditions', () => {
    const r5 = compileRetryOn(policy({ retryOn: ['5xx'] }));
    expect(r5({ kind: 'response', status: 500 })).toBe(true);
    expect(r5({ kind: 'response', status: 404 })).toBe(false);
    expect(r5({ kind: 'connect-failure' })).toBe(true);
    const gw = compileRetryOn(policy({ retryOn: ['gateway-error'] }));
    expect(gw({ kind: 'response', status: 500 })).toBe(false);
    expect(gw({ kind: 'response', status: 504 })).toBe(true);
    const cf = compileRetryOn(policy({ retryOn: ['connect-failure'] }));
    expect(cf({ kind: 'reset' })).toBe(false);
    expect(cf({ kind: 'connect-failure' })).toBe(true);
    const grpc = compileRetryOn(policy({ retryOn: ['unavailable', 'resource-exhausted'] }));
    expect(grpc({ kind: 'response', status: 200, grpcStatus: 14 })).toBe(true);
    expect(grpc({ kind: 'response', status: 200, grpcStatus: 8 })).toBe(true);
    expect(grpc({ kind: 'response', status: 200, grpcStatus: 13 })).toBe(false);
    const codes = compileRetryOn(policy({ retryOn: ['retriable-status-codes', 'retriable-4xx'], retriableStatusCodes: [429] }));
    expect(codes({ kind: 'response', status: 429 })).toBe(true);
    expect(codes({ kind: 'response', status: 409 })).toBe(true);
    expect(codes({ kind: 'response', status: 400 })).toBe(false);
  });

  test('every method is retriable unless the policy is idempotentOnly', () => {
    expect(methodRetriable('GET', policy({}))).toBe(true);
    expect(methodRetriable('POST', policy({}))).toBe(true);
    expect(methodRetriable('PATCH', policy({ idempotentOnly: true }))).toBe(false);
    expect(methodRetriable('PUT', policy({ idempotentOnly: true }))).toBe(true);
  });

  test('backoff is full jitter under min(max, base * 2^(n-1))', () => {
    const p = policy({ backoff: { baseIntervalMs: 10, maxIntervalMs: 35 } });
    for (let i = 0; i < 1000; i++) {
      expect(backoffMs(p, 1)).toBeLessThanOrEqual(10);
      expect(backoffMs(p, 2)).toBeLessThanOrEqual(20);
      expect(backoffMs(p, 5)).toBeLessThanOrEqual(35);
    }
  });

  test('budget: the floor plus a percentage of recent requests', () => {
    const b = new RetryBudget();
    let granted = 0;
    for (let i = 0; i < 10; i++) if (b.tryAcquire(0, 3)) granted++;
    expect(granted).toBe(3);
    const c = new RetryBudget();
    for (let i = 0; i < 100; i++) c.recordRequest();
    granted = 0;
    for (let i = 0; i < 100; i++) if (c.tryAcquire(20, 0)) granted++;
    expect(granted).toBeGreaterThanOrEqual(19);
    expect(granted).toBeLessThanOrEqual(20);
  });
});

describe('HTTP helpers', () => {
  test('forwardableHeaders drops hop-by-hop and Connection-named headers, keeps te: trailers', () => {
    expect(forwardableHeaders({ 'connection': 'x-secret, keep-alive', 'x-secret': '1', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'te': 'trailers', 'x-ok': 'y', ':path': '/' })).toEqual({ te: 'trailers', 'x-ok': 'y' });
    expect(forwardableHeaders({ te: 'gzip' })).toEqual({});
  });

  test('parseRawHeaders reads HTTP/1.1 arrays and HTTP/2 objects', () => {
    expect(parseRawHeaders([Buffer.from('Content-Type'), Buffer.from('text/plain'), Buffer.from('Set-Cookie'), Buffer.from('a=1'), Buffer.from('set-cookie'), Buffer.from('b=2')])).toEqual({ 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
    expect(parseRawHeaders({ 'grpc-status': '0', ':status': '200' })).toEqual({ 'grpc-status': '0' });
  });

  test('requestTarget: origin-form and absolute-form', () => {
    const req = (url: string, host?: string): IncomingMessage => ({ url, headers: host ? { host } : {} }) as IncomingMessage;
    expect(requestTarget(req('/a?b', 'svc:80'))).toEqual({ authority: 'svc:80', path: '/a?b' });
    expect(requestTarget(req('http://svc/x/y?z=1'))).toEqual({ authority: 'svc', path: '/x/y?z=1' });
    expect(requestTarget(req('http://svc:8080'))).toEqual({ authority: 'svc:8080', path: '/' });
    expect(requestTarget(req('/no-host'))).toBeUndefined();
  });

  test('spiffeIdFromSubjectAltName', () => {
    expect(spiffeIdFromSubjectAltName('DNS:x, URI:spiffe://td/ns/a/sa/b')).toBe('spiffe://td/ns/a/sa/b');
    expect(spiffeIdFromSubjectAltName('URI:https://example.com')).toBeUndefined();
  });
});
