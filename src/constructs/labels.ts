/** The values of the Kubernetes recommended labels. */
export interface RecommendedLabelValues {
  readonly name: string;
  readonly instance: string;
  readonly version?: string;
  readonly component: string;
  readonly partOf: string;
}

/** The Kubernetes recommended labels (app.kubernetes.io/*), managed-by typemesh. */
export function recommendedLabels(v: RecommendedLabelValues): Record<string, string> {
  const labels: Record<string, string> = {
    'app.kubernetes.io/name': v.name,
    'app.kubernetes.io/instance': v.instance,
  };
  if (v.version) labels['app.kubernetes.io/version'] = v.version;
  labels['app.kubernetes.io/component'] = v.component;
  labels['app.kubernetes.io/part-of'] = v.partOf;
  labels['app.kubernetes.io/managed-by'] = 'typemesh';
  return labels;
}
