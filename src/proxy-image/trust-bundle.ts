/**
 * The mesh trust bundle: the CA certificates a sidecar verifies peers against, read from
 * config.tls.caFile. During a CA rotation the file holds the old and the new CA (a trust-manager
 * Bundle or an operator writes it), so pods with leaves of either CA accept each other.
 *
 * Each certificate is parsed and checked before it is used: a bundle that is empty, half
 * written or holds a non-CA certificate is refused as a whole, and the caller keeps the trust it
 * had. Loading an empty bundle would make the sidecar trust nothing, and every new connection of
 * the pod would fail until the next good write: one bad ConfigMap update must not cut a pod off.
 */
import { X509Certificate } from 'node:crypto';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** One CA of a trust bundle: the PEM text and facts for logs and tests. */
export interface TrustedCa {
  readonly pem: string;
  readonly subject: string;
  readonly fingerprint256: string;
  readonly notAfter: Date;
}

/**
 * Splits a PEM bundle into its CA certificates; throws (naming the file and the certificate's
 * position) when it holds none, when one does not parse, or when one is not a CA certificate.
 */
export function parseTrustBundle(content: string | Buffer, file: string): TrustedCa[] {
  const pems = content.toString('utf8').match(PEM_CERTIFICATE) ?? [];
  if (pems.length === 0) throw new Error(`trust bundle ${file} holds no PEM certificate`);
  return pems.map((pem, i) => {
    let x: X509Certificate;
    try {
      x = new X509Certificate(pem);
    } catch (e) {
      throw new Error(`trust bundle ${file}: certificate ${i + 1} of ${pems.length} does not parse (${(e as Error).message})`);
    }
    if (!x.ca) throw new Error(`trust bundle ${file}: certificate ${i + 1} of ${pems.length} (${x.subject.replace(/\n/g, ', ')}) is not a CA certificate`);
    return { pem: `${pem}\n`, subject: x.subject.replace(/\n/g, ', '), fingerprint256: x.fingerprint256, notAfter: new Date(x.validTo) };
  });
}
