/**
 * The sidecars' shutdown timing from the Mesh props sidecarDrainDuration and
 * sidecarDrainTimeout: what the sidecar config of a MeshService and of an injected workload
 * carries (drainDurationMs, drainTimeoutMs, which the proxy reads on SIGTERM; its behaviour is
 * tested in test/lifecycle), and the synth-time refusal of a drain the kubelet would cut short
 * at the pods' terminationGracePeriodSeconds (30 s: the constructs set none).
 */
import { ApiObject, Duration } from 'cdk8s';
import { DEFAULT_DRAIN_DURATION_MS, DEFAULT_DRAIN_TIMEOUT_MS } from '../../src/config';
import { Mesh, MeshService, MeshValidationError } from '../../src/constructs';
import { find, newChart, sidecarConfigOf, synth } from './helpers';

function meshChart(props: Partial<ConstructorParameters<typeof Mesh>[2]>) {
  const chart = newChart();
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', ...props });
  new MeshService(chart, 'payment', { mesh, name: 'payment', versions: [{ name: 'v1', image: 'example.com/payment:1' }] });
  const worker = new ApiObject(chart, 'worker', {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'worker', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'worker' } }, template: { metadata: { labels: { app: 'worker' } }, spec: { containers: [{ name: 'app', image: 'example.com/worker:1', ports: [{ containerPort: 8080 }] }] } } },
  });
  mesh.inject(worker, { name: 'worker' });
  const objects = synth(chart);
  return { mesh, configs: [sidecarConfigOf(find(objects, 'ConfigMap', 'payment-v1-sidecar')), sidecarConfigOf(find(objects, 'ConfigMap', 'worker-v1-sidecar'))] };
}

describe('Mesh sidecarDrainDuration and sidecarDrainTimeout', () => {
  test('unset: the configs leave drainDurationMs to the sidecar\'s default (5 s) and drainTimeoutMs at 5 s', () => {
    const { mesh, configs } = meshChart({});
    expect([mesh.sidecarDrainDurationMs, mesh.sidecarDrainTimeoutMs]).toEqual([DEFAULT_DRAIN_DURATION_MS, DEFAULT_DRAIN_TIMEOUT_MS]);
    for (const c of configs) {
      expect(c.drainDurationMs).toBeUndefined();
      expect(c.drainTimeoutMs).toBe(5000);
    }
  });

  test('set: every sidecar config of the mesh, a MeshService\'s and an injected workload\'s, carries them', () => {
    const { mesh, configs } = meshChart({ sidecarDrainDuration: Duration.seconds(12), sidecarDrainTimeout: Duration.millis(7500) });
    expect([mesh.sidecarDrainDurationMs, mesh.sidecarDrainTimeoutMs]).toEqual([12_000, 7500]);
    for (const c of configs) expect([c.drainDurationMs, c.drainTimeoutMs]).toEqual([12_000, 7500]);
    // A zero drain window is allowed (no endpoint propagation to wait for, e.g. a Job).
    expect(meshChart({ sidecarDrainDuration: Duration.seconds(0) }).configs.map((c) => c.drainDurationMs)).toEqual([0, 0]);
  });

  test.each([
    [{ sidecarDrainDuration: Duration.seconds(25) }, 'sidecarDrainDuration', '"25s"', '30s'],
    [{ sidecarDrainTimeout: Duration.seconds(26) }, 'sidecarDrainTimeout', '"26s"', '31s'],
    [{ sidecarDrainDuration: Duration.seconds(20), sidecarDrainTimeout: Duration.seconds(15) }, 'sidecarDrainDuration', '"20s"', '35s'],
  ])('a drain not below the 30 s grace period is refused naming the mesh, the prop, the value and the fix: %j', (props, prop, value, total) => {
    const chart = newChart();
    let error: unknown;
    try {
      new Mesh(chart, 'mesh', { namespace: 'shop', ...props });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MeshValidationError);
    expect((error as Error).message).toBe(`test/mesh: ${prop} = ${value}: the sidecar may take sidecarDrainDuration + sidecarDrainTimeout = ${total} after SIGTERM, `
      + 'not below the pods\' terminationGracePeriodSeconds (30 s, Kubernetes\' default: the constructs set none), so the kubelet would kill it mid-drain. '
      + 'Fix: keep the two below 30 s together, e.g. Duration.seconds(5) each (the defaults)');
  });

  test('a negative or fractional drain is refused as any Duration prop is', () => {
    expect(() => new Mesh(newChart(), 'mesh', { namespace: 'shop', sidecarDrainDuration: Duration.millis(0.5) })).toThrow(/test\/mesh: sidecarDrainDuration = "0.5ms": must be a whole number of milliseconds/);
  });
});
