/**
 * A small kubelet for tests: runs a synthesized pod spec as processes in a network namespace,
 * following the kubelet's ordering rules, so the pod's lifecycle can be observed from outside.
 *
 * - Init containers run in order, each to completion (a non-zero exit fails the pod), except a
 *   native sidecar (an init container with `restartPolicy: Always`, Kubernetes 1.29+): it is
 *   started, and its startupProbe must pass before the next container starts.
 * - Then the containers start, in order. The kubelet does not wait for a container to be ready,
 *   but it does run a container's postStart hook to its end before it starts the next one (a
 *   legacy sidecar's hook holds the app until the proxy is ready); a failed hook fails the pod.
 * - Deletion: with native sidecars the containers get SIGTERM first, then, once they have all
 *   exited, the sidecars in reverse order; with legacy sidecars every container gets SIGTERM at
 *   once. Whatever still runs at terminationGracePeriodSeconds gets SIGKILL.
 * - A pod whose restartPolicy is not Always (a Job's) completes when its containers have exited:
 *   its native sidecars are then terminated as on deletion, and the phase is Succeeded when every
 *   container (sidecars not counted, as the kubelet does) exited 0.
 *
 * Images are not run here: the test maps each container (and each exec hook) to a command line.
 * The user is the container's `runAsUser`, else the pod's, else the image's (`imageUser`), run
 * with setpriv; `runAsNonRoot` with uid 0 is refused as the kubelet refuses it. `env` values and
 * the downward API's metadata.name / metadata.namespace are passed; other sources fail loudly.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';

/** A container of a pod spec (the fields the runner reads). */
export interface ContainerSpec {
  readonly name: string;
  readonly image?: string;
  readonly command?: string[];
  readonly args?: string[];
  readonly restartPolicy?: string;
  readonly startupProbe?: ProbeSpec;
  readonly securityContext?: SecurityContext;
  readonly env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } & Record<string, unknown> }>;
  readonly lifecycle?: { readonly postStart?: { readonly exec?: { readonly command: string[] } } };
  readonly [key: string]: unknown;
}

/** The securityContext fields that choose the user. */
export interface SecurityContext {
  readonly runAsUser?: number;
  readonly runAsGroup?: number;
  readonly runAsNonRoot?: boolean;
}

/** An httpGet probe (the only kind TypeMesh's pods use). */
export interface ProbeSpec {
  readonly httpGet?: { readonly path?: string; readonly port: number | string };
  readonly periodSeconds?: number;
  readonly failureThreshold?: number;
}

/** A pod spec (the fields the runner reads). */
export interface PodSpec {
  readonly initContainers?: ContainerSpec[];
  readonly containers: ContainerSpec[];
  readonly restartPolicy?: string;
  readonly terminationGracePeriodSeconds?: number;
  readonly securityContext?: SecurityContext;
  readonly [key: string]: unknown;
}

/** The pod's phase, as the kubelet reports it. */
export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

/** One thing the runner did or saw, in order (the test reads the order, never the times). */
export interface PodEvent {
  readonly seq: number;
  readonly time: number;
  readonly container: string;
  readonly what: 'started' | 'ready' | 'exited' | 'SIGTERM' | 'SIGKILL' | 'probe-failed' | 'postStart-done';
  readonly detail?: string;
}

/** What the runner needs besides the spec. */
export interface PodRunOptions {
  /** For messages. */
  readonly name: string;
  /** The pod's network namespace (made by the test). */
  readonly netns: string;
  readonly spec: PodSpec;
  /** The pod's namespace (metadata.namespace for the downward API). */
  readonly namespace: string;
  /** The command line that stands for a container's image (its command and args resolved). */
  readonly resolve: (container: ContainerSpec) => string[];
  /** The command line of an exec hook's command in a container. */
  readonly resolveExec?: (container: ContainerSpec, command: string[]) => string[];
  /** The uid the container's image runs as (its USER) when the spec sets none. @default 0 */
  readonly imageUser?: (container: ContainerSpec) => number;
  /** Receives each line the containers write (for failure messages). */
  readonly onOutput?: (container: string, line: string) => void;
}

const PROBE_INTERVAL_MS = 100;
/** The runner polls faster than periodSeconds; this many polls per allowed probe failure. */
const POLLS_PER_PERIOD = 10;

/** A running container process. */
interface Running {
  readonly spec: ContainerSpec;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

/** True for a native sidecar: an init container that keeps running for the pod's life. */
export function isNativeSidecar(c: ContainerSpec): boolean {
  return c.restartPolicy === 'Always';
}

/** A pod run by the test kubelet. */
export class Pod {
  /** Runs the init containers, then starts the containers; resolves once they are all started. */
  public static async start(opts: PodRunOptions): Promise<Pod> {
    const pod = new Pod(opts);
    await pod.run();
    return pod;
  }

  public phase: PodPhase = 'Pending';
  public readonly events: PodEvent[] = [];
  /** Why the pod failed, when it did. */
  public failure?: string;
  private readonly sidecars: Running[] = [];
  private readonly containers: Running[] = [];
  private terminating?: Promise<void>;
  private completion?: Promise<PodPhase>;

  private constructor(private readonly opts: PodRunOptions) {}

  /** The exit of each container that has exited, by name. */
  public exits(): Record<string, { code: number | null; signal: NodeJS.Signals | null } | undefined> {
    return Object.fromEntries([...this.sidecars, ...this.containers].map((r) => [r.spec.name, r.exit]));
  }

  /** Processes of this pod still running. */
  public running(): string[] {
    return [...this.sidecars, ...this.containers].filter((r) => !r.exit).map((r) => r.spec.name);
  }

  /** Sequence number of the first event matching, or undefined. */
  public seqOf(container: string, what: PodEvent['what']): number | undefined {
    return this.events.find((e) => e.container === container && e.what === what)?.seq;
  }

  /** Time (ms since epoch) of the first event matching, or undefined. */
  public timeOf(container: string, what: PodEvent['what']): number | undefined {
    return this.events.find((e) => e.container === container && e.what === what)?.time;
  }

  /**
   * Deletes the pod as the kubelet does (see the file comment) and resolves once every process
   * is gone. Safe to call twice.
   */
  public delete(): Promise<void> {
    this.terminating ??= this.terminate();
    return this.terminating;
  }

  /**
   * A Job's pod (restartPolicy not Always): resolves with the phase once the containers have
   * exited and the native sidecars have been terminated. With a legacy sidecar (a plain
   * container that never exits by itself) it never resolves: the pod stays Running.
   */
  public completed(): Promise<PodPhase> {
    if (!this.completion) throw new Error(`${this.opts.name}: restartPolicy Always: the pod never completes`);
    return this.completion;
  }

  /** Resolves once the named container has exited. */
  public async exitOf(container: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const r = [...this.sidecars, ...this.containers].find((c) => c.spec.name === container);
    if (!r) throw new Error(`${this.opts.name}: no container ${container}`);
    return r.exited;
  }

  private event(container: string, what: PodEvent['what'], detail?: string): void {
    this.events.push({ seq: this.events.length, time: Date.now(), container, what, detail });
  }

  private async run(): Promise<void> {
    for (const init of this.opts.spec.initContainers ?? []) {
      if (isNativeSidecar(init)) {
        const r = this.spawn(init);
        this.sidecars.push(r);
        if (init.startupProbe && !(await this.probe(init, init.startupProbe, r))) {
          this.fail(`native sidecar ${init.name}: startupProbe never passed`);
          await this.delete();
          return;
        }
        this.event(init.name, 'ready');
        continue;
      }
      const r = this.spawn(init);
      const exit = await r.exited;
      if (exit.code !== 0) {
        this.fail(`init container ${init.name} exited with ${exit.code ?? exit.signal}`);
        await this.delete();
        return;
      }
    }
    this.phase = 'Running';
    for (const c of this.opts.spec.containers) {
      const r = this.spawn(c);
      this.containers.push(r);
      const hook = c.lifecycle?.postStart?.exec?.command;
      if (!hook) continue;
      if (!this.opts.resolveExec) throw new Error(`${this.opts.name}/${c.name}: a postStart exec hook and no resolveExec`);
      const done = this.spawn(c, this.opts.resolveExec(c, hook), `${c.name} postStart`);
      const exit = await done.exited;
      if (exit.code !== 0) {
        this.fail(`container ${c.name}: postStart hook exited with ${exit.code ?? exit.signal}`);
        await this.delete();
        return;
      }
      this.event(c.name, 'postStart-done');
    }
    // A pod that is not restarted (a Job's) ends when its containers have all exited; its
    // native sidecars are then terminated. Their exit codes do not count for the phase.
    if ((this.opts.spec.restartPolicy ?? 'Always') !== 'Always') {
      this.completion = Promise.all(this.containers.map((c) => c.exited)).then(async () => {
        await this.delete();
        this.phase = this.containers.every((c) => c.exit?.code === 0) ? 'Succeeded' : 'Failed';
        return this.phase;
      });
    }
  }

  private fail(why: string): void {
    this.phase = 'Failed';
    this.failure = why;
  }

  /** Starts a container's process (or, with argv, a hook's process in it). */
  private spawn(spec: ContainerSpec, argv = this.opts.resolve(spec), label = spec.name): Running {
    const pod = this.opts.spec.securityContext ?? {};
    const own = spec.securityContext ?? {};
    const uid = own.runAsUser ?? pod.runAsUser ?? this.opts.imageUser?.(spec) ?? 0;
    const gid = own.runAsGroup ?? pod.runAsGroup ?? uid;
    if ((own.runAsNonRoot ?? pod.runAsNonRoot) && uid === 0) {
      throw new Error(`${this.opts.name}/${spec.name}: runAsNonRoot and the image runs as root: the kubelet refuses to start it`);
    }
    const asUser = uid !== 0 ? ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups'] : [];
    const env: Record<string, string> = { ...process.env as Record<string, string> };
    for (const e of spec.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = this.opts.name;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = this.opts.namespace;
      else throw new Error(`${this.opts.name}/${spec.name}: env ${e.name} from ${JSON.stringify(e.valueFrom)} is not run here`);
    }
    // `ip netns exec` and setpriv exec the command: the child's pid is the container's process.
    const child = spawn('ip', ['netns', 'exec', this.opts.netns, ...asUser, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env });
    for (const stream of [child.stdout!, child.stderr!]) {
      let buf = '';
      stream.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const line of lines) this.opts.onOutput?.(label, line);
      });
    }
    const r: Running = {
      spec,
      child,
      exited: new Promise((resolve) => child.once('exit', (code, signal) => {
        r.exit = { code, signal };
        if (label === spec.name) this.event(spec.name, 'exited', String(code ?? signal));
        resolve(r.exit);
      })),
    };
    if (label === spec.name) this.event(spec.name, 'started');
    return r;
  }

  /** Polls an httpGet probe from the pod's network namespace until it passes (bounded). */
  private async probe(spec: ContainerSpec, probe: ProbeSpec, r: Running): Promise<boolean> {
    if (!probe.httpGet) throw new Error(`${this.opts.name}/${spec.name}: only httpGet probes are run here`);
    const url = `http://127.0.0.1:${probe.httpGet.port}${probe.httpGet.path ?? '/'}`;
    const polls = Math.max(1, (probe.failureThreshold ?? 3) * (probe.periodSeconds ?? 10) * POLLS_PER_PERIOD);
    for (let i = 0; i < polls && !r.exit; i++) {
      if (await this.httpStatus(url) === 200) return true;
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
    }
    this.event(spec.name, 'probe-failed', url);
    return false;
  }

  private httpStatus(url: string): Promise<number> {
    return new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', this.opts.netns, 'curl', '-s', '-o', '/dev/null', '-m', '2', '-w', '%{http_code}', url], { timeout: 5000 }, (_e, stdout) => resolve(Number(stdout) || 0));
    });
  }

  private async terminate(): Promise<void> {
    const graceMs = (this.opts.spec.terminationGracePeriodSeconds ?? 30) * 1000;
    const kill = setTimeout(() => {
      for (const r of [...this.containers, ...this.sidecars]) {
        if (!r.exit) {
          this.event(r.spec.name, 'SIGKILL');
          r.child.kill('SIGKILL');
        }
      }
    }, graceMs);
    const term = (r: Running): void => {
      if (r.exit) return;
      this.event(r.spec.name, 'SIGTERM');
      r.child.kill('SIGTERM');
    };
    if (this.sidecars.length > 0) {
      // Native sidecars: the containers first; the sidecars, in reverse order, once they are gone.
      for (const c of this.containers) term(c);
      await Promise.all(this.containers.map((c) => c.exited));
      for (const s of [...this.sidecars].reverse()) {
        term(s);
        await s.exited;
      }
    } else {
      for (const c of this.containers) term(c);
      await Promise.all(this.containers.map((c) => c.exited));
    }
    clearTimeout(kill);
  }
}
