import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  parseSidecarConfig, parseSidecarConfigText, SidecarConfigError, SidecarConfigInput,
  sidecarConfigJsonSchema, spiffeIdFor, validateSidecarConfig,
} from '../../src/config';

function valid(): SidecarConfigInput {
  return {
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: {
      name: 'order-service', namespace: 'shop', version: 'v1', serviceAccount: 'order-service',
      identity: spiffeIdFor('cluster.local', 'shop', 'order-service'), trustDomain: 'cluster.local',
      appPorts: [{ name: 'http', port: 8080 }],
    },
    tls: { certFile: '/etc/typemesh/certs/tls.crt', keyFile: '/etc/typemesh/certs/tls.key', caFile: '/etc/typemesh/certs/ca.crt' },
    inbound: { app: { port: 8080 } },
    outbound: {
      services: [{
        name: 'payment-service', namespace: 'shop', hosts: ['payment-service'], port: 80,
        subsets: [
          { name: 'v1', identity: 'spiffe://cluster.local/ns/shop/sa/payment-service', discovery: { type: 'dns', hostname: 'payment-service-v1.shop.svc.cluster.local', port: 15006 } },
          { name: 'v2', identity: 'spiffe://cluster.local/ns/shop/sa/payment-service', discovery: { type: 'static', endpoints: [{ address: '127.0.0.2', port: 15006 }] } },
        ],
        routes: [{
          name: 'default',
          destinations: [{ subset: 'v1', weight: 80 }, { subset: 'v2', weight: 20 }],
          timeoutMs: 5000,
          retries: { attempts: 3, perTryTimeoutMs: 2000, retryOn: ['5xx', 'reset', 'connect-failure'] },
        }],
      }],
    },
  };
}

describe('sidecar config contract', () => {
  test('a valid config gets every default filled in', () => {
    const cfg = parseSidecarConfig(valid());
    expect(cfg.listeners).toEqual({ bindAddress: '0.0.0.0', outboundPort: 15001, inboundPort: 15006, adminPort: 15020 });
    expect(cfg.inbound.mtls.mode).toBe('STRICT');
    expect(cfg.inbound.app.address).toBe('127.0.0.1');
    const route = cfg.outbound.services[0].routes[0];
    expect(route.retries?.backoff).toEqual({ baseIntervalMs: 25, maxIntervalMs: 250 });
    expect(route.retries?.budget).toEqual({ percent: 20, minRetriesPerSecond: 10 });
    expect(route.retries?.idempotentOnly).toBe(false);
    expect(cfg.outbound.services[0].loadBalancer.policy).toBe('LEAST_REQUEST');
  });

  test.each([
    ['weights not summing to 100', (c: any) => { c.outbound.services[0].routes[0].destinations[1].weight = 30; }, 'outbound.services[0].routes[0].destinations', 'weights must sum to 100, got 110'],
    ['an unknown subset', (c: any) => { c.outbound.services[0].routes[0].destinations[1].subset = 'v3'; }, 'outbound.services[0].routes[0].destinations[1].subset', 'unknown subset "v3"'],
    ['per-try timeout above the route timeout', (c: any) => { c.outbound.services[0].routes[0].retries.perTryTimeoutMs = 6000; }, 'outbound.services[0].routes[0].retries.perTryTimeoutMs', 'exceeds the route timeout'],
    ['a port out of range', (c: any) => { c.inbound.app.port = 70000; }, 'inbound.app.port', ''],
    ['an unknown field', (c: any) => { c.inbound.mtlsMode = 'STRICT'; }, 'inbound', 'mtlsMode'],
    ['a bad SPIFFE id', (c: any) => { c.workload.identity = 'cluster.local/ns/shop'; }, 'workload.identity', 'SPIFFE'],
    ['a wrong apiVersion', (c: any) => { c.apiVersion = 'v1'; }, 'apiVersion', ''],
    ['tracing without a collector', (c: any) => { c.telemetry = { tracing: { enabled: true } }; }, 'telemetry.tracing.collector', 'no collector'],
    ['a header match with two conditions', (c: any) => { c.outbound.services[0].routes[0].match = [{ headers: [{ name: 'x', exact: 'a', prefix: 'b' }] }]; }, 'outbound.services[0].routes[0].match[0].headers[0]', 'exactly one'],
  ])('rejects %s, naming the field', (_what, mutate, field, message) => {
    const doc = valid();
    mutate(doc);
    const result = validateSidecarConfig(doc);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const issue = result.issues.find((i) => i.path === field);
    expect(issue).toBeDefined();
    expect(issue!.message).toContain(message);
    expect(() => parseSidecarConfig(doc)).toThrow(SidecarConfigError);
    expect(() => parseSidecarConfig(doc)).toThrow(field);
  });

  test('YAML text that is not YAML is refused with a clear message', () => {
    expect(() => parseSidecarConfigText('a: [1, 2', 'cfg.yaml')).toThrow(/invalid sidecar config in cfg.yaml:\n {2}- \(root\): not valid YAML/);
  });

  test('the committed JSON Schema is generated from the zod schema (run `npx projen schema`)', () => {
    const committed = JSON.parse(readFileSync(path.join(__dirname, '../../src/config/sidecar-config.schema.json'), 'utf8'));
    expect(committed).toEqual(sidecarConfigJsonSchema());
    expect(committed.properties.apiVersion.const).toBe('typemesh.io/v1alpha1');
  });
});
