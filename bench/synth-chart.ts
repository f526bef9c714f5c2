/**
 * Builds a chart of N MeshServices (default 100) the way a large mesh would be written, then
 * times construction and `app.synthYaml()` separately from module loading. Each service has
 * one version (every tenth has a second, canary-style), calls its next three neighbours and
 * admits its callers, so the synthesis exercises outbound configs, authorization rules and
 * per-version sidecar configs, not just empty services.
 *
 * Usage: ts-node --transpile-only bench/synth-chart.ts [N]; prints one JSON line.
 */
import { performance } from 'node:perf_hooks';
import { App, Chart } from 'cdk8s';
import { Mesh } from '../src/constructs/mesh';
import { MeshService } from '../src/constructs/mesh-service';

/** Builds the app with count services in one chart. */
export function buildLargeMesh(count: number): App {
  const app = new App({ outdir: '/nonexistent-synthYaml-does-not-write' });
  const chart = new Chart(app, 'bench');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'bench' });
  const services: MeshService[] = [];
  for (let i = 0; i < count; i++) {
    const name = `svc-${String(i).padStart(3, '0')}`;
    const versions = [{ name: 'v1', image: `registry.example.com/bench/${name}:1.0.0` }];
    if (i % 10 === 0) versions.push({ name: 'v2', image: `registry.example.com/bench/${name}:1.1.0` });
    services.push(new MeshService(chart, name, { mesh, name, versions }));
  }
  for (let i = 0; i < count; i++) {
    for (let k = 1; k <= 3 && k < count; k++) services[(i + k) % count].allowFrom(services[i]);
  }
  return app;
}

if (require.main === module) {
  const count = Number(process.argv[2] ?? 100);
  const t0 = performance.now();
  const app = buildLargeMesh(count);
  const t1 = performance.now();
  const yaml = app.synthYaml();
  const t2 = performance.now();
  // Every Kubernetes object is one YAML document.
  const objects = yaml.split(/^---$/m).filter((doc) => doc.trim().length > 0).length;
  process.stdout.write(`${JSON.stringify({ services: count, constructMs: t1 - t0, synthMs: t2 - t1, yamlBytes: Buffer.byteLength(yaml), objects })}\n`);
}
