/**
 * A small certificate authority for local meshes, tests and benchmarks: it issues SPIFFE
 * workload certificates (ECDSA P-256) the way cert-manager does in a cluster, so the local
 * runner and the tests exercise the same mTLS code path as production.
 */
import { webcrypto } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
// tsyringe (a dependency of @peculiar/x509) needs the Reflect metadata API first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 needs a WebCrypto provider; Node's is standard-conformant.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 60 * 60 * 1000;

/** Options of {@link LocalCertificateAuthority.create}. */
export interface LocalCertificateAuthorityOptions {
  /**
   * Common name of the CA certificate.
   * @default 'TypeMesh Local CA'
   */
  readonly commonName?: string;
  /**
   * Start of the CA certificate's validity.
   * @default one hour ago (tolerates small clock skew)
   */
  readonly notBefore?: Date;
  /**
   * End of the CA certificate's validity.
   * @default 10 years from now
   */
  readonly notAfter?: Date;
}

/** Options of a workload certificate. */
export interface WorkloadCertificateOptions {
  /** The workload's SPIFFE ID, written as the certificate's URI SAN. */
  readonly spiffeId: string;
  /**
   * DNS names added as DNS SANs.
   * @default none
   */
  readonly dnsNames?: readonly string[];
  /**
   * Start of validity.
   * @default one hour ago
   */
  readonly notBefore?: Date;
  /**
   * End of validity.
   * @default 1 day from now (short-lived, like a mesh certificate)
   */
  readonly notAfter?: Date;
}

/** A workload certificate and its key, PEM encoded. */
export interface WorkloadCertificate {
  /** The leaf certificate (PEM). */
  readonly certPem: string;
  /** The private key (PKCS#8 PEM). */
  readonly keyPem: string;
}

/** The files written by {@link LocalCertificateAuthority.writeWorkloadFiles}. */
export interface WorkloadCertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

/** A self-signed CA held in memory that issues SPIFFE workload certificates. */
export class LocalCertificateAuthority {
  /** Creates a new CA with a fresh P-256 key. */
  public static async create(opts: LocalCertificateAuthorityOptions = {}): Promise<LocalCertificateAuthority> {
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    return LocalCertificateAuthority.selfSign(keys, opts);
  }

  /**
   * A trust bundle: the CAs' certificates concatenated (PEM), as a trust-manager Bundle writes
   * its ConfigMap key. During a CA rotation it holds the old and the new CA.
   */
  public static trustBundle(cas: readonly LocalCertificateAuthority[]): string {
    return cas.map((c) => c.certPem).join('');
  }

  /**
   * Writes the trust bundle of the CAs to file (atomically: a watcher
   * never reads half a bundle).
   */
  public static async writeTrustBundle(file: string, cas: readonly LocalCertificateAuthority[]): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    await atomicWrite(file, LocalCertificateAuthority.trustBundle(cas), 0o644);
  }

  private static async selfSign(keys: webcrypto.CryptoKeyPair, opts: LocalCertificateAuthorityOptions): Promise<LocalCertificateAuthority> {
    const now = Date.now();
    const name = `CN=${opts.commonName ?? 'TypeMesh Local CA'}, O=TypeMesh`;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name,
      notBefore: opts.notBefore ?? new Date(now - 60 * 60 * 1000),
      notAfter: opts.notAfter ?? new Date(now + 3650 * DAY_MS),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new LocalCertificateAuthority(cert, keys);
  }

  /** The CA certificate (PEM): the trust bundle workloads verify peers against. */
  public readonly certPem: string;

  private constructor(private readonly cert: x509.X509Certificate, private readonly keys: webcrypto.CryptoKeyPair) {
    this.certPem = cert.toString('pem') + '\n';
  }

  /**
   * The CA renewed as cert-manager renews a CA Certificate with `rotationPolicy: Never`: a new
   * certificate (new serial and validity) over the same key pair and subject. Leaves issued by
   * this CA verify against the renewed certificate, because a chain is checked by subject name
   * and signature, and the signing key did not change.
   */
  public async renew(opts: Omit<LocalCertificateAuthorityOptions, 'commonName'> = {}): Promise<LocalCertificateAuthority> {
    const cn = /CN=([^,]+)/.exec(this.cert.subject)?.[1] ?? 'TypeMesh Local CA';
    return LocalCertificateAuthority.selfSign(this.keys, { ...opts, commonName: cn });
  }

  /** Issues a workload certificate with URI SAN = spiffeId, usable as TLS server and client. */
  public async issueWorkload(opts: WorkloadCertificateOptions): Promise<WorkloadCertificate> {
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const sans: x509.JsonGeneralNames = [{ type: 'url', value: opts.spiffeId }];
    for (const dns of opts.dnsNames ?? []) sans.push({ type: 'dns', value: dns });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      // SPIFFE SVIDs carry identity in the URI SAN; the subject is informational only.
      subject: `CN=${opts.spiffeId.split('/').pop() ?? 'workload'}, O=TypeMesh`,
      issuer: this.cert.subject,
      notBefore: opts.notBefore ?? new Date(now - 60 * 60 * 1000),
      notAfter: opts.notAfter ?? new Date(now + DAY_MS),
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(sans, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey),
      ],
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return { certPem: cert.toString('pem') + '\n', keyPem: toPem(pkcs8, 'PRIVATE KEY') };
  }

  /**
   * Issues a workload certificate and writes cert.pem, key.pem (mode 0600) and ca.pem into dir.
   * Files are written to a temporary name and renamed, so a watcher never reads half a file.
   */
  public async writeWorkloadFiles(dir: string, opts: WorkloadCertificateOptions): Promise<WorkloadCertificateFiles> {
    await mkdir(dir, { recursive: true });
    const issued = await this.issueWorkload(opts);
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    const caFile = path.join(dir, 'ca.pem');
    await atomicWrite(caFile, this.certPem, 0o644);
    await atomicWrite(keyFile, issued.keyPem, 0o600);
    await atomicWrite(certFile, issued.certPem, 0o644);
    return { certFile, keyFile, caFile };
  }
}

async function atomicWrite(file: string, content: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, file);
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // positive INTEGER
  if (bytes[0] === 0) bytes[0] = 1;
  return Buffer.from(bytes).toString('hex');
}
