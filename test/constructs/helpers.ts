import * as os from 'node:os';
import * as path from 'node:path';
import { App, Chart, Testing } from 'cdk8s';
import { parseSidecarConfigText, SidecarConfig } from '../../src/config';
import { Mesh, MeshService, MeshServiceProps } from '../../src/constructs';

/**
 * A fresh app for a test. Not cdk8s's Testing.app(): that makes a new temp directory per call
 * as the app's outdir, which is never removed (a full test run left ~120 in /tmp). These tests
 * synthesize in memory only (Testing.synth, app.synthYaml), so the outdir is never created.
 */
export function testApp(): App {
  return new App({ outdir: path.join(os.tmpdir(), 'typemesh-tests-never-written') });
}

/** A new chart in a fresh app (synthesized in memory; nothing is written). */
export function newChart(id = 'test'): Chart {
  return new Chart(testApp(), id);
}

/** Synthesizes a chart to its objects (runs the constructs' validations, as `cdk8s synth` does). */
export function synth(chart: Chart): any[] {
  return Testing.synth(chart);
}

/** Finds the one object of a kind and name. */
export function find(objects: any[], kind: string, name: string): any {
  const found = objects.filter((o) => o.kind === kind && o.metadata?.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length} (have: ${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')})`);
  return found[0];
}

/** Parses (and so validates against src/config) the sidecar config of a ConfigMap. */
export function sidecarConfigOf(configMap: any): SidecarConfig {
  return parseSidecarConfigText(configMap.data['sidecar.yaml'], `ConfigMap ${configMap.metadata.name}`);
}

/** A mesh in namespace `shop` with services built from short specs. */
export function smallMesh(chart: Chart, specs: Array<Omit<Partial<MeshServiceProps>, 'versions' | 'mesh' | 'name'> & { name: string; versions?: string[] }>): { mesh: Mesh; services: MeshService[] } {
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
  const services = specs.map((s) => new MeshService(chart, s.name, {
    ...s,
    mesh,
    name: s.name,
    versions: (s.versions ?? ['v1']).map((v) => ({ name: v, image: `example.com/${s.name}:${v}` })),
  } as MeshServiceProps));
  return { mesh, services };
}

/** App helper for the byte-identical check: YAML of every chart, in order. */
export function synthYaml(app: App): string {
  return app.synthYaml();
}
