/**
 * The node installer of the typemesh-cni plugin (docs/interception.md "CNI mode"): a DaemonSet
 * running `typemesh-cni-install run` from the sidecar image on every node, with the node's CNI
 * bin and config directories mounted, plus its ServiceAccount and the Namespace it runs in.
 *
 * A construct of its own rather than a part of {@link Mesh}: the plugin is a property of the
 * cluster's nodes (one conflist per node), not of a mesh's namespace. One installer serves
 * every mesh of the cluster in CNI mode, it lives in a namespace that admits `privileged`
 * pods (hostPath, host network), and the meshes' namespaces stay `restricted` (as Istio
 * installs istio-cni with a chart of its own, in a namespace of its own).
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { HOST_CNI_BIN_MOUNT, HOST_CNI_CONF_MOUNT, INSTALL_COMMAND } from '../cni/install';
import { checkDnsLabel, fail } from './errors';
import { recommendedLabels } from './labels';
import { ContainerResources, Mesh } from './mesh';
import { DEFAULT_SIDECAR_IMAGE } from './package-version';
import { k8sResources, POD_SECURITY_CONTEXT } from './sidecar-injection';

/** Props of {@link CniInstaller}. */
export interface CniInstallerProps {
  /**
   * The namespace of the DaemonSet and its ServiceAccount. It must admit `privileged` pods, so
   * it must not be a mesh's namespace (those enforce `restricted` in CNI mode).
   * @default 'typemesh-cni'
   */
  readonly namespace?: string;
  /**
   * Synthesize the Namespace, labelled `pod-security.kubernetes.io/enforce: privileged`. Turn
   * off when the namespace is managed elsewhere (it must admit privileged pods).
   * @default true
   */
  readonly createNamespace?: boolean;
  /**
   * The image holding `typemesh-cni-install`, the plugin and a Node.js binary: the sidecar
   * image. Use the meshes' `sidecarImage` when they set one.
   * @default 'ghcr.io/typemesh/proxy:<typemesh package version>'
   */
  readonly image?: string;
  /**
   * The node's CNI bin directory (containerd's `bin_dir`, CRI-O's `plugin_dirs`).
   * @default '/opt/cni/bin'
   */
  readonly cniBinDir?: string;
  /**
   * The node's CNI config directory (containerd's `conf_dir`, CRI-O's `network_dir`); the
   * plugin is chained into its first `.conflist`.
   * @default '/etc/cni/net.d'
   */
  readonly cniConfDir?: string;
  /**
   * The plugin's `podOptionsDir` on the node, for runtimes that do not pass pod annotations to
   * CNI plugins (src/cni/pod-options.ts).
   * @default - none: the flags come from the pod annotation only (containerd 1.5+)
   */
  readonly podOptionsDir?: string;
  /**
   * The installer container's resources.
   * @default - requests cpu 10m and memory 48Mi, limit memory 128Mi
   */
  readonly resources?: ContainerResources;
  /**
   * The installer pods' priority class: they must run on every node, before meshed pods.
   * @default 'system-node-critical'
   */
  readonly priorityClassName?: string;
  /**
   * The `app.kubernetes.io/part-of` label of every object.
   * @default 'typemesh'
   */
  readonly partOf?: string;
}

/** The installer's default resources: an idle Node.js process checking a file every 10 s. */
export const DEFAULT_CNI_INSTALLER_RESOURCES: ContainerResources = {
  requests: { cpu: '10m', memory: '48Mi' },
  limits: { memory: '128Mi' },
};

/** The name of the DaemonSet, its ServiceAccount and its container's app label. */
const NAME = 'typemesh-cni';

/** Apps that already have an installer: a second one would fight over the same conflists. */
const INSTALLERS = new WeakMap<Construct, CniInstaller>();

/**
 * Installs the typemesh-cni plugin on every Linux node: a DaemonSet, its ServiceAccount and
 * (unless `createNamespace: false`) its Namespace, labelled `privileged` because the pods mount
 * the node's CNI directories and use the host network. Meshes using
 * `interception: InterceptionMode.CNI` need exactly one in the cluster.
 *
 * The pods run `typemesh-cni-install run` as root (no capabilities, read-only root file
 * system): it copies the plugin into the bin directory and chains it into the first conflist,
 * puts it back when the node's network plugin rewrites that file, and removes both when the pod
 * stops. Their readiness probe (`typemesh-cni-install check`) passes only while both are there.
 */
export class CniInstaller extends Construct {
  /** The namespace of the DaemonSet. */
  public readonly namespace: string;
  /** The installer image. */
  public readonly image: string;
  /** The node's CNI bin directory. */
  public readonly cniBinDir: string;
  /** The node's CNI config directory. */
  public readonly cniConfDir: string;

  constructor(scope: Construct, id: string, props: CniInstallerProps = {}) {
    super(scope, id);
    const earlier = INSTALLERS.get(this.node.root);
    if (earlier) {
      fail({ construct: this, prop: 'id', value: id, problem: `the app already has a CniInstaller (${earlier.node.path}); two would write the same conflist on every node`, fix: 'keep one CniInstaller per cluster: it serves every mesh in CNI mode' });
    }
    this.namespace = props.namespace ?? NAME;
    checkDnsLabel(this, 'namespace', this.namespace, NAME);
    this.image = props.image ?? DEFAULT_SIDECAR_IMAGE;
    if (this.image.trim() === '') {
      fail({ construct: this, prop: 'image', value: this.image, problem: 'must name an image', fix: 'omit it (the sidecar image) or give the meshes\' sidecarImage' });
    }
    this.cniBinDir = hostDir(this, 'cniBinDir', props.cniBinDir ?? '/opt/cni/bin');
    this.cniConfDir = hostDir(this, 'cniConfDir', props.cniConfDir ?? '/etc/cni/net.d');
    const podOptionsDir = props.podOptionsDir === undefined ? undefined : hostDir(this, 'podOptionsDir', props.podOptionsDir);
    const partOf = props.partOf ?? 'typemesh';
    const labels = (component: string, name: string) => recommendedLabels({ name, instance: name, component, partOf });
    // A mesh's namespace enforces restricted in CNI mode (the point of the mode): the installer
    // would be rejected there. Checked at synth, when every Mesh of the app exists.
    this.node.addValidation({
      validate: () => {
        for (const c of this.node.root.node.findAll()) {
          if (c instanceof Mesh && c.namespaces.includes(this.namespace)) {
            fail({ construct: this, prop: 'namespace', value: this.namespace, problem: `is a namespace of the mesh ${c.node.path}, whose pods and Namespace labels are not privileged; the installer needs privileged (hostPath, host network)`, fix: `omit namespace (default '${NAME}') or use a namespace of its own` });
          }
        }
        return [];
      },
    });
    INSTALLERS.set(this.node.root, this);

    if (props.createNamespace ?? true) {
      new ApiObject(this, 'namespace', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: {
          name: this.namespace,
          labels: {
            ...labels('cni', this.namespace),
            // What the installer pods pass: hostPath volumes and the host network are denied
            // by baseline (test/constructs/cni-installer.test.ts checks it).
            'pod-security.kubernetes.io/enforce': 'privileged',
            'pod-security.kubernetes.io/audit': 'privileged',
            'pod-security.kubernetes.io/warn': 'privileged',
          },
        },
      });
    }

    new ApiObject(this, 'service-account', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: NAME, namespace: this.namespace, labels: labels('cni', NAME) },
      // The installer never calls the Kubernetes API.
      automountServiceAccountToken: false,
    });

    const dirArgs = ['--cni-bin-dir', HOST_CNI_BIN_MOUNT, '--cni-conf-dir', HOST_CNI_CONF_MOUNT, ...(podOptionsDir ? ['--pod-options-dir', podOptionsDir] : [])];
    const selector = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/instance': NAME };
    new ApiObject(this, 'daemon-set', {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: NAME, namespace: this.namespace, labels: labels('cni', NAME) },
      spec: {
        selector: { matchLabels: selector },
        // One node at a time: while a node's installer restarts, its new pods are not meshed.
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels: labels('cni', NAME) },
          spec: {
            serviceAccountName: NAME,
            automountServiceAccountToken: false,
            // The host network: the installer's pod must start even when the node's chain is
            // broken (a conflist naming a plugin binary that is gone fails every pod network
            // set-up, and this pod is what repairs it). It opens no port.
            hostNetwork: true,
            priorityClassName: props.priorityClassName ?? 'system-node-critical',
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            // Every node, tainted or not: a node without the plugin runs meshed pods unintercepted.
            tolerations: [{ operator: 'Exists' }],
            securityContext: POD_SECURITY_CONTEXT,
            // SIGTERM only stops the watcher (the plugin stays chained: fail closed).
            terminationGracePeriodSeconds: 30,
            containers: [{
              name: 'install-cni',
              image: this.image,
              command: [INSTALL_COMMAND],
              args: ['run', ...dirArgs],
              resources: k8sResources(props.resources ?? DEFAULT_CNI_INSTALLER_RESOURCES),
              readinessProbe: { exec: { command: [INSTALL_COMMAND, 'check', ...dirArgs] }, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 1 },
              // Root writes the root-owned CNI directories; no capability is needed for that
              // (the files are root's own), so none is kept, and nothing else is writable.
              securityContext: {
                runAsUser: 0,
                runAsGroup: 0,
                runAsNonRoot: false,
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'cni-bin-dir', mountPath: HOST_CNI_BIN_MOUNT },
                { name: 'cni-net-dir', mountPath: HOST_CNI_CONF_MOUNT },
              ],
            }],
            volumes: [
              { name: 'cni-bin-dir', hostPath: { path: this.cniBinDir, type: 'DirectoryOrCreate' } },
              { name: 'cni-net-dir', hostPath: { path: this.cniConfDir, type: 'DirectoryOrCreate' } },
            ],
          },
        },
      },
    });
  }
}

function hostDir(construct: Construct, prop: string, dir: string): string {
  if (!dir.startsWith('/') || dir.split('/').includes('..') || /\s/.test(dir)) {
    fail({ construct, prop, value: dir, problem: 'must be an absolute directory path on the node, without ".." or spaces', fix: `use e.g. ${prop === 'cniConfDir' ? '"/etc/cni/net.d"' : prop === 'cniBinDir' ? '"/opt/cni/bin"' : '"/var/run/typemesh/pods"'}` });
  }
  return dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
}
