#!/usr/bin/env node
/*
 * Regenerates the vendored schemas in this directory from the upstream files (see README.md):
 *
 *   node test/schemas/vendor.js <dir holding k8s-1.33.json and the CRD YAML files>
 *
 * Kubernetes: keeps only the definitions reachable from the kinds listed in KINDS (the upstream
 * file is 1.3 MB), without their descriptions. CRDs: keeps each served version's
 * openAPIV3Schema, without descriptions. Nothing else is changed: strictness
 * (additionalProperties: false) is added when the tests load the files, not here.
 */
const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');

/** The oldest supported release the pods target (native sidecars need 1.29+) and a current one. */
const KUBERNETES_VERSIONS = ['1.30', '1.33'];
/** The kinds TypeMesh synthesizes, or may (workload kinds, PodDisruptionBudget, RBAC for a node DaemonSet). */
const KINDS = [
  'io.k8s.api.core.v1.Namespace', 'io.k8s.api.core.v1.ServiceAccount', 'io.k8s.api.core.v1.Service',
  'io.k8s.api.core.v1.ConfigMap', 'io.k8s.api.core.v1.Secret', 'io.k8s.api.core.v1.Pod',
  'io.k8s.api.apps.v1.Deployment', 'io.k8s.api.apps.v1.StatefulSet', 'io.k8s.api.apps.v1.DaemonSet',
  'io.k8s.api.batch.v1.Job', 'io.k8s.api.batch.v1.CronJob',
  'io.k8s.api.networking.v1.NetworkPolicy', 'io.k8s.api.policy.v1.PodDisruptionBudget',
  'io.k8s.api.rbac.v1.ClusterRole', 'io.k8s.api.rbac.v1.ClusterRoleBinding', 'io.k8s.api.rbac.v1.Role', 'io.k8s.api.rbac.v1.RoleBinding',
];
const CRDS = ['crd-certificates-v1.21.1.yaml', 'crd-issuers-v1.21.1.yaml', 'crd-podmonitors.yaml'];

function stripDescriptions(v) {
  if (Array.isArray(v)) return v.map(stripDescriptions);
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    // "description" is documentation, unless it is the name of a property (e.g. a field called description).
    if (k === 'description' && typeof x === 'string') continue;
    out[k] = stripDescriptions(x);
  }
  return out;
}

function main(src) {
  for (const version of KUBERNETES_VERSIONS) pruneKubernetes(src, version);
  pruneCrds(src);
}

function pruneKubernetes(src, version) {
  const all = JSON.parse(fs.readFileSync(path.join(src, `k8s-${version}.json`), 'utf8')).definitions;
  const keep = new Set();
  const visit = (name) => {
    if (keep.has(name)) return;
    if (!all[name]) throw new Error(`missing definition ${name}`);
    keep.add(name);
    JSON.stringify(all[name], (k, v) => {
      if (k === '$ref' && typeof v === 'string') visit(v.replace('#/definitions/', ''));
      return v;
    });
  };
  KINDS.forEach(visit);
  const definitions = {};
  for (const name of [...keep].sort()) definitions[name] = stripDescriptions(all[name]);
  fs.writeFileSync(path.join(__dirname, `k8s-${version}-pruned.json`), JSON.stringify({ definitions }) + '\n');
  console.log(`Kubernetes ${version}: ${keep.size} definitions`);
}

function pruneCrds(src) {
  const crds = [];
  for (const file of CRDS) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(src, file), 'utf8'))) {
      const crd = doc.toJS();
      if (!crd || crd.kind !== 'CustomResourceDefinition') continue;
      for (const v of crd.spec.versions) {
        if (!v.served) continue;
        crds.push({ group: crd.spec.group, version: v.name, kind: crd.spec.names.kind, source: file, schema: stripDescriptions(v.schema.openAPIV3Schema) });
      }
    }
  }
  fs.writeFileSync(path.join(__dirname, 'crds.json'), JSON.stringify({ crds }) + '\n');
  console.log(`${crds.length} CRD versions`);
}

main(process.argv[2] ?? '/work/shared/k8s-schemas');
