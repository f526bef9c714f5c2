/**
 * The strict schema check itself: it must reject what a strict API server would, or every
 * "validates against the schemas" test elsewhere proves nothing.
 */
import { Chart, Testing } from 'cdk8s';
import { Mesh, MeshService } from '../../src';
import { strict, validateObject, VALIDATING_KUBERNETES_VERSIONS } from './k8s-schemas';

function synth(): any[] {
  const app = Testing.app();
  const chart = new Chart(app, 'c');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', telemetry: { metrics: { podMonitor: true } } });
  new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'ghcr.io/acme/api:1' }] });
  return Testing.synth(chart);
}

const copy = (o: unknown): any => JSON.parse(JSON.stringify(o));
const find = (objects: any[], kind: string) => objects.find((o) => o.kind === kind);

describe(`strict schema validation (Kubernetes ${VALIDATING_KUBERNETES_VERSIONS.join(' and ')}, and the CRDs)`, () => {
  const objects = synth();

  test('every synthesized object validates', () => {
    for (const o of objects) validateObject(o);
  });

  test('a misspelt field anywhere in a pod template fails, naming the field', () => {
    const d = copy(find(objects, 'Deployment'));
    d.spec.template.spec.containers[0].imagePullPolice = 'Always';
    expect(() => validateObject(d)).toThrow(/Kubernetes 1\.30 schema: \/spec\/template\/spec\/containers\/0 must NOT have additional properties \(unknown field "imagePullPolice"\)/);
    const e = copy(find(objects, 'Deployment'));
    e.spec.template.spec.securityContext = { ...e.spec.template.spec.securityContext, seccompProfle: { type: 'RuntimeDefault' } };
    expect(() => validateObject(e)).toThrow(/unknown field "seccompProfle"/);
  });

  test('a misspelt field in a CRD object (Certificate, Issuer, PodMonitor) fails', () => {
    const c = copy(find(objects, 'Certificate'));
    c.spec.privateKey.rotationPolcy = 'Never';
    expect(() => validateObject(c)).toThrow(/unknown field "rotationPolcy"/);
    const i = copy(find(objects, 'Issuer'));
    i.spec.selfSigend = {};
    expect(() => validateObject(i)).toThrow(/unknown field "selfSigend"/);
    const m = copy(find(objects, 'PodMonitor'));
    m.spec.podMetricsEndpoints[0].scrapeTimout = '5s';
    expect(() => validateObject(m)).toThrow(/scrapeTimout/);
    const meta = copy(find(objects, 'Certificate'));
    meta.metadata.lables = {};
    expect(() => validateObject(meta)).toThrow(/unknown field "lables"/);
  });

  test('wrong types fail; unknown kinds and versions fail', () => {
    const d = copy(find(objects, 'Deployment'));
    d.spec.replicas = 'two';
    expect(() => validateObject(d)).toThrow(/\/spec\/replicas must be integer/);
    expect(() => validateObject({ apiVersion: 'apps/v1beta1', kind: 'Deployment', metadata: { name: 'x' } })).toThrow(/no schema validator for apps\/v1beta1\/Deployment/);
  });

  test('strict() leaves maps and preserve-unknown-fields objects open', () => {
    const s = strict({
      type: 'object',
      properties: {
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        raw: { type: 'object', properties: { a: { type: 'string' } }, 'x-kubernetes-preserve-unknown-fields': true },
        closed: { type: 'object', properties: { b: { type: 'string' } } },
      },
    });
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.labels.additionalProperties).toEqual({ type: 'string' });
    expect(s.properties.raw.additionalProperties).toBeUndefined();
    expect(s.properties.closed.additionalProperties).toBe(false);
  });

  test('a field newer than 1.30 fails the 1.30 schema even where 1.33 knows it', () => {
    // PodSpec.resources (pod-level resources) exists in 1.33 (alpha), not in 1.30: an object
    // using it would not apply on the oldest release the pods target.
    const d = copy(find(objects, 'Deployment'));
    d.spec.template.spec.resources = { limits: { memory: '1Gi' } };
    expect(() => validateObject(d)).toThrow(/Kubernetes 1\.30 schema: \/spec\/template\/spec must NOT have additional properties \(unknown field "resources"\)/);
  });
});
