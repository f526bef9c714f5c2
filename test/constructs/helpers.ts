import { App, Chart, Testing } from 'cdk8s';
import { parseSidecarConfigText, SidecarConfig } from '../../src/config';
import { Mesh, MeshService, MeshServiceProps } from '../../src/constructs';

/** A new chart in a fresh app (synthesized in memory; nothing is written). */
export function newChart(id = 'test'): Chart {
  return new Chart(Testing.app(), id);
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
