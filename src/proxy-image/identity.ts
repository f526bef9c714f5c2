/**
 * The workload's identity: its certificate, key and the mesh CA bundle, read from the files
 * named in config.tls and reloaded when they change. A reload builds new TLS contexts used by
 * new connections only; connections already open keep the context they were made with, so
 * rotation never drops a request in flight.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as tls from 'node:tls';
import { createSecureContext, PeerCertificate, SecureContext } from 'node:tls';
import { FileWatcher } from './file-watch';
import { errorMessage, log } from './log';
import { parseTrustBundle } from './trust-bundle';

/** Node's cipher list at OpenSSL security level 2 (RSA >= 2048, EC >= 224 bits, for peers and ourselves). */
export const MIN_KEY_STRENGTH_CIPHERS = `${tls.DEFAULT_CIPHERS}:@SECLEVEL=2`;

/** The files of an identity. */
export interface IdentityFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** One loaded generation of the identity. */
export interface IdentityMaterial {
  /** Options for a TLS server (the inbound listener); passed to setSecureContext on rotation. */
  readonly serverOptions: tls.SecureContextOptions;
  /** Context for TLS clients (outbound connections to peers). */
  readonly clientContext: SecureContext;
  /** The SPIFFE ID in our own certificate's URI SAN. */
  readonly spiffeId?: string;
  readonly notAfter: Date;
  readonly fingerprint256: string;
  /** The CAs of the trust bundle (caFile) that peers are verified against. */
  readonly trustedCas: ReadonlyArray<{ readonly subject: string; readonly fingerprint256: string }>;
}

/** Extracts the first spiffe:// URI SAN from a subjectAltName string ("URI:spiffe://..., DNS:x"). */
export function spiffeIdFromSubjectAltName(san: string | undefined): string | undefined {
  if (!san) return undefined;
  for (const part of san.split(', ')) {
    if (part.startsWith('URI:spiffe://')) return part.slice(4);
  }
  return undefined;
}

/** All URI SANs of a peer certificate. */
export function uriSans(cert: PeerCertificate | { subjectaltname?: string } | undefined): string[] {
  const san = cert?.subjectaltname;
  if (!san) return [];
  return san.split(', ').filter((p) => p.startsWith('URI:')).map((p) => p.slice(4));
}

/**
 * Why a peer certificate is not a usable workload identity (an X.509-SVID), or undefined. The
 * chain has been verified against the mesh CA by then; what is checked here is its shape, which
 * OpenSSL does not judge: a CA certificate (basicConstraints CA:TRUE) may not act as a workload,
 * and an SVID carries exactly one URI SAN, a spiffe:// one (SPIFFE X.509-SVID section 2). With
 * two, "the" identity would depend on which one a reader takes first.
 */
export function svidRefusal(cert: (PeerCertificate & { ca?: boolean }) | undefined): string | undefined {
  if (!cert || cert.subjectaltname === undefined && cert.subject === undefined) return 'no certificate';
  if (cert.ca === true) return 'the certificate is a CA certificate (basicConstraints CA:TRUE), not a workload certificate';
  const uris = uriSans(cert);
  if (uris.length !== 1 || !uris[0].startsWith('spiffe://')) return `the certificate must carry exactly one spiffe:// URI SAN, it has ${uris.length ? uris.join(', ') : 'none'}`;
  return undefined;
}

/** Reads and validates the three files; throws when they do not form a usable identity. */
export async function loadIdentity(files: IdentityFiles): Promise<IdentityMaterial> {
  const [cert, key, caFile] = await Promise.all([readFile(files.certFile), readFile(files.keyFile), readFile(files.caFile)]);
  // caFile is a trust bundle: one CA, or several during a CA rotation (old and new). It is
  // checked certificate by certificate; a bad bundle throws, so the previous trust stays.
  const trustedCas = parseTrustBundle(caFile, files.caFile);
  const ca = trustedCas.map((c) => c.pem);
  // OpenSSL security level 2 (Node's default is 1): peer certificates (client or server) with RSA
  // keys under 2048 bits or EC keys under 224 bits fail verification at the handshake.
  const base: tls.SecureContextOptions = { cert, key, ca, minVersion: 'TLSv1.3', ciphers: MIN_KEY_STRENGTH_CIPHERS };
  // createSecureContext throws when the key does not match the certificate (e.g. half-written rotation).
  const clientContext = createSecureContext(base);
  const x = new X509Certificate(cert);
  return {
    serverOptions: base,
    clientContext,
    spiffeId: spiffeIdFromSubjectAltName(x.subjectAltName),
    notAfter: new Date(x.validTo),
    fingerprint256: x.fingerprint256,
    trustedCas: trustedCas.map((c) => ({ subject: c.subject, fingerprint256: c.fingerprint256 })),
  };
}

/** The current identity plus change notification. */
export class WorkloadIdentity {
  private watcher?: FileWatcher;
  private readonly listeners: Array<(m: IdentityMaterial) => void> = [];

  private constructor(private files: IdentityFiles, private material: IdentityMaterial) {}

  /** Loads the identity (throws when the files are missing or invalid) and starts watching them. */
  public static async start(files: IdentityFiles): Promise<WorkloadIdentity> {
    const id = new WorkloadIdentity(files, await loadIdentity(files));
    await id.watch();
    return id;
  }

  /** The generation in use for new connections. */
  public get current(): IdentityMaterial {
    return this.material;
  }

  /** Calls fn after every successful reload. */
  public onReload(fn: (m: IdentityMaterial) => void): void {
    this.listeners.push(fn);
  }

  /** Switches to other files (a config reload changed config.tls). */
  public async setFiles(files: IdentityFiles): Promise<void> {
    if (files.certFile === this.files.certFile && files.keyFile === this.files.keyFile && files.caFile === this.files.caFile) return;
    const material = await loadIdentity(files);
    this.files = files;
    this.watcher?.close();
    await this.watch();
    this.swap(material);
  }

  /** Reloads now (SIGHUP). */
  public async reload(): Promise<void> {
    await this.watcher?.trigger();
  }

  private async watch(): Promise<void> {
    const files = this.files;
    this.watcher = new FileWatcher([files.certFile, files.keyFile, files.caFile], async () => {
      let material: IdentityMaterial;
      try {
        material = await loadIdentity(files);
      } catch (e) {
        log('warn', 'certificate reload failed; keeping the previous certificate', { error: errorMessage(e), certFile: files.certFile });
        throw e;
      }
      if (material.fingerprint256 === this.material.fingerprint256 && sameTrust(material, this.material)) return;
      this.swap(material);
    });
    await this.watcher.prime();
  }

  private swap(material: IdentityMaterial): void {
    this.material = material;
    log('info', 'certificate loaded', {
      spiffeId: material.spiffeId,
      notAfter: material.notAfter.toISOString(),
      fingerprint256: material.fingerprint256,
      trustedCas: material.trustedCas.map((c) => c.fingerprint256),
    });
    for (const fn of this.listeners) {
      try {
        fn(material);
      } catch (e) {
        log('error', 'certificate reload listener failed', { error: errorMessage(e) });
      }
    }
  }

  public close(): void {
    this.watcher?.close();
  }
}

/** Whether two generations trust the same CAs (same certificates in the same order). */
function sameTrust(a: IdentityMaterial, b: IdentityMaterial): boolean {
  return a.trustedCas.map((c) => c.fingerprint256).join() === b.trustedCas.map((c) => c.fingerprint256).join();
}
