/** The SPIFFE ID of a service account: `spiffe://<trust-domain>/ns/<namespace>/sa/<account>`. */
export function spiffeIdFor(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** The namespace segment of a SPIFFE ID in the Kubernetes form, or undefined. */
export function namespaceOfSpiffeId(id: string): string | undefined {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(id);
  return m ? m[1] : undefined;
}
