import * as YAML from 'yaml';
import { buildQuickstart } from '../../examples/quickstart';
import { find, sidecarConfigOf, testApp } from './helpers';
import { validateObject } from './k8s-schemas';

function quickstartYaml(): string {
  const app = testApp();
  buildQuickstart(app);
  return app.synthYaml();
}

describe('examples/quickstart.ts', () => {
  const yaml = quickstartYaml();
  const objects: any[] = YAML.parseAllDocuments(yaml).map((d) => d.toJSON());

  test('synthesizes valid, deterministic objects', () => {
    for (const o of objects) validateObject(o);
    expect(quickstartYaml()).toBe(yaml);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toMatchSnapshot();
  });

  test('the api calls backend 90/10 with retries and a circuit breaker; only api may call backend', () => {
    const api = sidecarConfigOf(find(objects, 'ConfigMap', 'api-v1-sidecar'));
    const backend = api.outbound.services[0];
    expect(backend.name).toBe('backend');
    expect(backend.routes[0].destinations).toEqual([{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }]);
    expect(backend.routes[0].retries).toMatchObject({ attempts: 3, perTryTimeoutMs: 2000, retryOn: ['5xx'] });
    expect(backend.connectionPool.maxConnections).toBe(100);
    expect(backend.outlierDetection?.consecutive5xxErrors).toBe(5);
    for (const v of ['v1', 'v2']) {
      const cfg = sidecarConfigOf(find(objects, 'ConfigMap', `backend-${v}-sidecar`));
      expect(cfg.inbound.mtls.mode).toBe('STRICT');
      expect(cfg.inbound.authorization.rules).toEqual([{ name: 'allow-from-api', action: 'ALLOW', principals: ['spiffe://cluster.local/ns/quickstart/sa/api'], methods: ['GET', 'POST'] }]);
    }
  });
});
