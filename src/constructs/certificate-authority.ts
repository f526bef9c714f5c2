import { X509Certificate } from 'node:crypto';
import { ApiObject, Duration } from 'cdk8s';
import { IConstruct } from 'constructs';
import { SIDECAR_TRUST_DIR } from '../config/pod-contract';
import { checkDnsLabel, fail } from './errors';

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

/** Where the sidecar mounts the trust bundle ConfigMap (a directory mount, so updates reach the pod). */
export { SIDECAR_TRUST_DIR };
/** The pod volume of the trust bundle. */
export const TRUST_BUNDLE_VOLUME = 'typemesh-trust';
/** The Secret of the CA that {@link CertificateAuthority.selfSigned} bootstraps (cert-manager writes tls.crt, tls.key, ca.crt). */
export const MESH_CA_SECRET = 'typemesh-ca';
const DEFAULT_TRUST_BUNDLE_NAME = 'typemesh-trust-bundle';
const DEFAULT_TRUST_BUNDLE_KEY = 'ca-bundle.pem';
/** A ConfigMap data key (Kubernetes: [-._a-zA-Z0-9]+, at most 253 characters). */
const CONFIG_MAP_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** A key of a Secret or ConfigMap that trust-manager reads from its trust namespace. */
export interface TrustSourceReference {
  /** Name of the Secret or ConfigMap. */
  readonly name: string;
  /** The data key holding PEM CA certificates. */
  readonly key: string;
}

/** Options of {@link TrustBundle.trustManager}. */
export interface TrustManagerBundleOptions {
  /**
   * Name of the cluster-scoped trust-manager `Bundle`, and of the ConfigMap it writes into the
   * mesh's namespace. Bundles are cluster-scoped: two meshes in one cluster need different names.
   * @default 'typemesh-trust-bundle'
   */
  readonly name?: string;
  /**
   * The ConfigMap key the bundle is written to (PEM, all CAs concatenated).
   * @default 'ca-bundle.pem'
   */
  readonly key?: string;
  /**
   * The namespace trust-manager reads Secret and ConfigMap sources from (its trust namespace:
   * Helm value `app.trust.namespace`, whose own default is `cert-manager`). The mesh CA's Secret
   * can only be a source when this is the mesh's namespace.
   * @default - the mesh's namespace
   */
  readonly trustNamespace?: string;
  /**
   * Whether the bundle holds the mesh CA that {@link CertificateAuthority.selfSigned} bootstraps
   * (the `tls.crt` of Secret `typemesh-ca`). Always the current CA: when its key changes, the new
   * CA enters the bundle by itself; keep the old one in {@link additionalCas} until every leaf
   * has been reissued.
   * @default - true with CertificateAuthority.selfSigned() when trustNamespace is the mesh's namespace, else false
   */
  readonly includeMeshCa?: boolean;
  /**
   * More CA certificates (PEM, one or several per string) trusted by every sidecar: the old CA
   * during a CA key rotation, or the CA of an issuer you operate. Checked at synth: each must
   * parse and be a CA certificate; private keys are refused.
   * @default - none
   */
  readonly additionalCas?: string[];
  /**
   * Secret keys in the trust namespace holding CA certificates (e.g. `ca.crt` of your issuer's CA Secret).
   * @default - none
   */
  readonly secrets?: TrustSourceReference[];
  /**
   * ConfigMap keys in the trust namespace holding CA certificates.
   * @default - none
   */
  readonly configMaps?: TrustSourceReference[];
}

/** Options of {@link TrustBundle.fromConfigMap}. */
export interface ExistingTrustBundleOptions {
  /** Name of the ConfigMap in the mesh's namespace. */
  readonly name: string;
  /**
   * The key holding the PEM CA certificates.
   * @default 'ca-bundle.pem'
   */
  readonly key?: string;
}

/**
 * The CAs every sidecar trusts. Without one, each sidecar trusts the `ca.crt` of its own
 * certificate Secret, that is only the CA that signed its own leaf: while a CA key changes,
 * pods on the old and the new CA refuse each other. A trust bundle is one ConfigMap mounted by
 * every sidecar; during a rotation it holds the old and the new CA, and the sidecars reload it
 * when it changes, without dropping connections.
 */
export class TrustBundle {
  /**
   * A trust-manager `Bundle` (trust.cert-manager.io/v1alpha1) that writes the ConfigMap into the
   * mesh's namespace from the mesh CA and the sources you list. Needs trust-manager installed.
   */
  public static trustManager(options: TrustManagerBundleOptions = {}): TrustBundle {
    return new TrustBundle({ kind: 'trust-manager', options });
  }

  /** A ConfigMap in the mesh's namespace that you maintain (by your own tooling); nothing is synthesized. */
  public static fromConfigMap(options: ExistingTrustBundleOptions): TrustBundle {
    return new TrustBundle({ kind: 'config-map', options });
  }

  private constructor(
    /** @internal */
    public readonly _spec:
    | { kind: 'trust-manager'; options: TrustManagerBundleOptions }
    | { kind: 'config-map'; options: ExistingTrustBundleOptions },
  ) {}
}

/** @internal What every sidecar of a mesh mounts to verify peers, and the caFile of its config. */
export interface SidecarTrust {
  /** config.tls.caFile. */
  readonly caFile: string;
  /** Pod volumes to add. */
  readonly volumes: Array<Record<string, unknown>>;
  /** Sidecar volume mounts to add. */
  readonly volumeMounts: Array<Record<string, unknown>>;
}

/** The mesh as {@link resolveSidecarTrust} needs it. */
interface TrustOwner extends IConstruct {
  readonly namespace: string;
  labels(component: string, name: string): Record<string, string>;
}

const TRUST_MANAGER_API_VERSION = 'trust.cert-manager.io/v1alpha1';

/**
 * @internal Validates the mesh's trust bundle, synthesizes the trust-manager Bundle if asked,
 * and says what the sidecars mount. Without a bundle: the ca.crt of the workload's own Secret.
 */
export function resolveSidecarTrust(mesh: TrustOwner, bundle: TrustBundle | undefined, caKind: 'self-signed' | 'existing', certsDir: string): SidecarTrust {
  if (!bundle) return { caFile: `${certsDir}/ca.crt`, volumes: [], volumeMounts: [] };
  const spec = bundle._spec;
  const name = spec.options.name ?? DEFAULT_TRUST_BUNDLE_NAME;
  const key = spec.options.key ?? DEFAULT_TRUST_BUNDLE_KEY;
  checkDnsLabel(mesh, 'trustBundle.name', name, DEFAULT_TRUST_BUNDLE_NAME);
  if (typeof key !== 'string' || !CONFIG_MAP_KEY.test(key)) {
    fail({ construct: mesh, prop: 'trustBundle.key', value: key, problem: 'is not a ConfigMap key ([-._a-zA-Z0-9]+, at most 253 characters)', fix: `use e.g. '${DEFAULT_TRUST_BUNDLE_KEY}'` });
  }
  if (spec.kind === 'trust-manager') synthesizeTrustManagerBundle(mesh, spec.options, name, key, caKind);
  return {
    caFile: `${SIDECAR_TRUST_DIR}/${key}`,
    // A directory mount, not subPath: the kubelet swaps ConfigMap contents only in directory
    // mounts, and the sidecar reloads the file when that swap happens.
    volumes: [{ name: TRUST_BUNDLE_VOLUME, configMap: { name, items: [{ key, path: key }] } }],
    volumeMounts: [{ name: TRUST_BUNDLE_VOLUME, mountPath: SIDECAR_TRUST_DIR, readOnly: true }],
  };
}

function synthesizeTrustManagerBundle(mesh: TrustOwner, o: TrustManagerBundleOptions, name: string, key: string, caKind: 'self-signed' | 'existing'): void {
  const trustNamespace = o.trustNamespace ?? mesh.namespace;
  checkDnsLabel(mesh, 'trustBundle.trustNamespace', trustNamespace, 'cert-manager');
  if (o.includeMeshCa === true && caKind !== 'self-signed') {
    fail({ construct: mesh, prop: 'trustBundle.includeMeshCa', value: true, problem: 'the mesh bootstraps no CA: certificateAuthority is an issuer you operate', fix: "list your issuer's CA in trustBundle.additionalCas or trustBundle.secrets" });
  }
  if (o.includeMeshCa === true && trustNamespace !== mesh.namespace) {
    fail({
      construct: mesh, prop: 'trustBundle.includeMeshCa', value: true,
      problem: `trust-manager reads sources only from its trust namespace "${trustNamespace}", and the mesh CA Secret ${MESH_CA_SECRET} lives in "${mesh.namespace}"`,
      fix: `install trust-manager with trust namespace "${mesh.namespace}" (Helm: app.trust.namespace) and drop trustBundle.trustNamespace, or copy the CA into trustBundle.additionalCas`,
    });
  }
  const includeMeshCa = o.includeMeshCa ?? (caKind === 'self-signed' && trustNamespace === mesh.namespace);
  const sources: Array<Record<string, unknown>> = [];
  if (includeMeshCa) sources.push({ secret: { name: MESH_CA_SECRET, key: 'tls.crt' } });
  (o.secrets ?? []).forEach((s, i) => sources.push({ secret: checkReference(mesh, `trustBundle.secrets[${i}]`, s) }));
  (o.configMaps ?? []).forEach((c, i) => sources.push({ configMap: checkReference(mesh, `trustBundle.configMaps[${i}]`, c) }));
  (o.additionalCas ?? []).forEach((pem, i) => sources.push({ inLine: checkCaPem(mesh, `trustBundle.additionalCas[${i}]`, pem) }));
  if (sources.length === 0) {
    fail({
      construct: mesh, prop: 'trustBundle', value: { includeMeshCa, trustNamespace },
      problem: 'the Bundle has no source, so it would distribute no CA and no sidecar could verify a peer',
      fix: `use the mesh CA (CertificateAuthority.selfSigned() with trust-manager's trust namespace "${mesh.namespace}"), or list CAs in additionalCas, secrets or configMaps`,
    });
  }

  const twin = mesh.node.root.node.findAll().find((c) => c instanceof ApiObject && c.kind === 'Bundle' && c.apiVersion === TRUST_MANAGER_API_VERSION && c.name === name);
  if (twin) {
    fail({ construct: mesh, prop: 'trustBundle.name', value: name, problem: `trust-manager Bundles are cluster-scoped and ${twin.node.path} already has this name`, fix: "give each mesh's trust bundle its own name" });
  }

  new ApiObject(mesh, 'trust-bundle', {
    apiVersion: TRUST_MANAGER_API_VERSION,
    kind: 'Bundle',
    // Cluster-scoped: no namespace. The target ConfigMap has the Bundle's name.
    metadata: { name, labels: mesh.labels('trust-bundle', name) },
    spec: {
      sources,
      target: {
        configMap: { key },
        // Only the mesh's namespace (the label every namespace carries since Kubernetes 1.21).
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': mesh.namespace } },
      },
    },
  });
}

function checkReference(mesh: IConstruct, prop: string, ref: TrustSourceReference): TrustSourceReference {
  checkDnsLabel(mesh, `${prop}.name`, ref?.name, 'my-ca');
  if (typeof ref.key !== 'string' || !CONFIG_MAP_KEY.test(ref.key)) {
    fail({ construct: mesh, prop: `${prop}.key`, value: ref.key, problem: 'is not a data key ([-._a-zA-Z0-9]+)', fix: "name the key holding the PEM CA certificates, e.g. 'ca.crt'" });
  }
  return { name: ref.name, key: ref.key };
}

/** Checks a PEM string of CA certificates for a Bundle's inLine source; returns it normalized. */
function checkCaPem(mesh: IConstruct, prop: string, pem: string): string {
  const shown = typeof pem === 'string' ? `${pem.slice(0, 40)}...` : pem;
  if (typeof pem !== 'string') fail({ construct: mesh, prop, value: pem, problem: 'must be a PEM string', fix: 'pass the CA certificate as PEM text' });
  if (/PRIVATE KEY-----/.test(pem)) {
    fail({ construct: mesh, prop, value: '<redacted: holds a private key>', problem: 'holds a private key, which would be published in a ConfigMap of every mesh namespace', fix: 'pass only the CA certificate (-----BEGIN CERTIFICATE-----)' });
  }
  const pems = pem.match(PEM_CERTIFICATE) ?? [];
  if (pems.length === 0) fail({ construct: mesh, prop, value: shown, problem: 'holds no PEM certificate', fix: 'pass the CA certificate as PEM text (-----BEGIN CERTIFICATE-----)' });
  for (const [i, one] of pems.entries()) {
    let x: X509Certificate;
    try {
      x = new X509Certificate(one);
    } catch (e) {
      return fail({ construct: mesh, prop, value: shown, problem: `certificate ${i + 1} does not parse (${(e as Error).message})`, fix: 'pass the PEM text exactly as the CA Secret holds it' });
    }
    if (!x.ca) {
      fail({ construct: mesh, prop, value: x.subject.replace(/\n/g, ', '), problem: `certificate ${i + 1} is not a CA certificate (basicConstraints CA:FALSE): trusting a leaf as a root is refused`, fix: 'pass the CA certificate (ca.crt or the CA Secret\'s tls.crt), not a workload certificate' });
    }
  }
  return `${pems.join('\n')}\n`;
}
