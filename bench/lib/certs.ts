/**
 * Certificates for the benchmark, from the project's own LocalCertificateAuthority (ECDSA
 * P-256, SPIFFE URI SANs), so the sidecars run the same mTLS path as in a local mesh. Each
 * workload certificate also carries a DNS SAN: nginx's proxy_ssl_verify checks a host name,
 * not a URI SAN. Both proxy pairs use the same CA and leaf certificates, so the comparison
 * is not skewed by key type. Keys live in the bench's temp directory only.
 */
import * as path from 'node:path';
import { LocalCertificateAuthority } from '../../src/local/certificate-authority';

/** PEM files of one workload identity. */
export interface WorkloadCertFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  readonly spiffeId: string;
  readonly dnsName: string;
}

/** A throw-away mesh CA whose files go under dir. */
export class BenchCertificates {
  public static async create(dir: string): Promise<BenchCertificates> {
    return new BenchCertificates(dir, await LocalCertificateAuthority.create({ commonName: 'TypeMesh bench CA' }));
  }

  private constructor(private readonly dir: string, private readonly ca: LocalCertificateAuthority) {}

  /** Issues a workload certificate for spiffeId, also valid for dnsName, into <dir>/<label>/. */
  public async issue(label: string, spiffeId: string, dnsName: string): Promise<WorkloadCertFiles> {
    const files = await this.ca.writeWorkloadFiles(path.join(this.dir, label), { spiffeId, dnsNames: [dnsName] });
    return { ...files, spiffeId, dnsName };
  }
}
