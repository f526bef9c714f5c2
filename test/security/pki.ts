/**
 * Certificates for the attacker suite: a mesh CA that the fixture's sidecars trust, and
 * leaves made the way an attacker would make them (another CA, expired, no SPIFFE URI,
 * a foreign trust domain, CA:TRUE, RSA-1024). LocalCertificateAuthority only issues good
 * workload certificates, so this small issuer on @peculiar/x509 (the same library) exists
 * for the bad ones. Keys are P-256 unless a test asks otherwise.
 */
import { webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const EC_SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const HOUR_MS = 60 * 60 * 1000;

/** How a leaf is made. */
export interface LeafOptions {
  /** URI SANs (SPIFFE IDs); empty for a leaf without any. */
  readonly uris: readonly string[];
  /** @default false */
  readonly isCa?: boolean;
  /** @default 'ec-p256' */
  readonly key?: 'ec-p256' | 'rsa-1024' | 'rsa-2048';
  /** @default an hour ago */
  readonly notBefore?: Date;
  /** @default a day from now */
  readonly notAfter?: Date;
}

/** PEM files of one leaf; caFile is the bundle of the CA that issued it. */
export interface LeafFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** A CA that can issue any kind of leaf. */
export class SecurityCa {
  public static async create(commonName: string): Promise<SecurityCa> {
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${commonName}, O=TypeMesh security suite`,
      notBefore: new Date(now - HOUR_MS),
      notAfter: new Date(now + 24 * HOUR_MS),
      keys,
      signingAlgorithm: EC_SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new SecurityCa(cert, keys);
  }

  public readonly certPem: string;

  private constructor(private readonly cert: x509.X509Certificate, private readonly keys: webcrypto.CryptoKeyPair) {
    this.certPem = cert.toString('pem') + '\n';
  }

  /** Issues a leaf and writes cert.pem, key.pem and ca.pem (all world-readable: the proxy runs as uid 1337) into dir. */
  public async writeLeaf(dir: string, opts: LeafOptions): Promise<LeafFiles> {
    const keyKind = opts.key ?? 'ec-p256';
    const keys = (await webcrypto.subtle.generateKey(keyKind === 'ec-p256' ? EC_P256 : {
      name: 'RSASSA-PKCS1-v1_5', modulusLength: keyKind === 'rsa-1024' ? 1024 : 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256',
    } as webcrypto.RsaHashedKeyGenParams, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const usages = keyKind === 'ec-p256'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement
      : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(opts.isCa ?? false, undefined, true),
      new x509.KeyUsagesExtension(opts.isCa ? usages | x509.KeyUsageFlags.keyCertSign : usages, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey),
    ];
    const sans: x509.JsonGeneralNames = [...opts.uris.map((value) => ({ type: 'url' as const, value })), { type: 'dns', value: 'localhost' }];
    extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${opts.uris[0]?.split('/').pop() ?? 'no-spiffe-id'}, O=TypeMesh security suite`,
      issuer: this.cert.subject,
      notBefore: opts.notBefore ?? new Date(now - HOUR_MS),
      notAfter: opts.notAfter ?? new Date(now + 24 * HOUR_MS),
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: EC_SIGNING,
      extensions,
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const files = { certFile: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem'), caFile: path.join(dir, 'ca.pem') };
    writeFileSync(files.caFile, this.certPem, { mode: 0o644 });
    writeFileSync(files.certFile, cert.toString('pem') + '\n', { mode: 0o644 });
    writeFileSync(files.keyFile, `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`, { mode: 0o644 });
    return files;
  }
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}
