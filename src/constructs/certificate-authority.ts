import { Duration } from 'cdk8s';

/** Options of the self-signed mesh CA that the constructs bootstrap with cert-manager. */
export interface SelfSignedCaOptions {
  /**
   * Lifetime of the CA certificate.
   * @default Duration.days(365)
   */
  readonly duration?: Duration;
  /**
   * How long before expiry cert-manager renews the CA certificate.
   * @default Duration.days(30)
   */
  readonly renewBefore?: Duration;
}

/** A cert-manager issuer that you operate, which signs the workload certificates. */
export interface ExistingIssuerOptions {
  /** The issuer's name. */
  readonly name: string;
  /**
   * `Issuer` (in the mesh namespace) or `ClusterIssuer`.
   * @default 'Issuer'
   */
  readonly kind?: 'Issuer' | 'ClusterIssuer';
  /**
   * The issuer's API group (for external issuers such as AWS PCA).
   * @default 'cert-manager.io'
   */
  readonly group?: string;
}

/**
 * Who signs the workload certificates. Either a CA that the mesh bootstraps itself with
 * cert-manager (a self-signed Issuer signs a CA Certificate, whose Secret backs a CA
 * Issuer), or an issuer you already run.
 */
export class CertificateAuthority {
  /** A cert-manager chain synthesized by the mesh: self-signed bootstrap Issuer, CA Certificate, CA Issuer. */
  public static selfSigned(options: SelfSignedCaOptions = {}): CertificateAuthority {
    return new CertificateAuthority({
      kind: 'self-signed',
      duration: options.duration ?? Duration.days(365),
      renewBefore: options.renewBefore ?? Duration.days(30),
    });
  }

  /** An issuer you operate; the mesh synthesizes no CA objects and points every workload Certificate at it. */
  public static fromIssuer(options: ExistingIssuerOptions): CertificateAuthority {
    return new CertificateAuthority({
      kind: 'existing',
      issuer: { name: options.name, kind: options.kind ?? 'Issuer', group: options.group ?? 'cert-manager.io' },
    });
  }

  private constructor(
    /** @internal */
    public readonly _spec:
    | { kind: 'self-signed'; duration: Duration; renewBefore: Duration }
    | { kind: 'existing'; issuer: { name: string; kind: 'Issuer' | 'ClusterIssuer'; group: string } },
  ) {}
}
