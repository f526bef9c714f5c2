// The README quickstart: two services, a 90/10 canary, retries, a circuit breaker, strict mTLS
// and one authorization rule. Run: npx ts-node --transpile-only examples/quickstart.ts
import { App, Chart, Duration } from 'cdk8s';
import { Canary, CircuitBreaker, Mesh, MeshService, RetryOn, RetryPolicy, StrictMtls } from '../src';

export function buildQuickstart(app = new App({ outdir: 'dist/quickstart' })): Chart {
  const chart = new Chart(app, 'quickstart');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'quickstart' });
  const image = 'ghcr.io/typemesh/examples-shop:0.1.0';
  const api = new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image, args: ['order'] }] });
  const backend = new MeshService(chart, 'backend', {
    mesh, name: 'backend',
    versions: [{ name: 'v1', image, args: ['payment'] }, { name: 'v2', image, args: ['payment'] }],
  });
  new Canary(chart, 'canary', { service: backend, stable: 'v1', canary: 'v2', canaryWeight: 10 });
  new RetryPolicy(chart, 'retries', { service: backend, attempts: 3, perTryTimeout: Duration.seconds(2), retryOn: [RetryOn.FIVE_XX] });
  new CircuitBreaker(chart, 'breaker', { service: backend, maxConnections: 100, outlierDetection: { consecutive5xxErrors: 5 } });
  new StrictMtls(chart, 'mtls', { mesh });
  backend.allowFrom(api, { methods: ['GET', 'POST'] }); // also declares api.callsTo(backend)
  return chart;
}

if (require.main === module) {
  const app = new App({ outdir: 'dist/quickstart' });
  buildQuickstart(app);
  app.synth();
}
