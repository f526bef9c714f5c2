/**
 * A child process in its own process group. Stopping signals the whole group, so nothing
 * a child spawned survives it, and a last-resort `exit` hook kills every group still
 * alive when the runner itself exits, so no process is ever left behind.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';

/** How to start one process. */
export interface ManagedProcessOptions {
  /** Shown in messages, e.g. `payment-service/v2#0 sidecar`. */
  readonly name: string;
  readonly command: string;
  readonly args?: readonly string[];
  /** The complete environment of the child. */
  readonly env: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  /**
   * Working directory.
   * @default the runner's
   */
  readonly cwd?: string;
}

/** How a process ended. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const alive = new Set<ManagedProcess>();
const HAVE_SETPRIV = process.platform === 'linux' && ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL every group still alive.
  process.on('exit', () => {
    for (const p of alive) p.killNow();
  });
}

/** A running child process (and its process group). */
export class ManagedProcess {
  /** Starts the process in a new process group. */
  public static start(options: ManagedProcessOptions): ManagedProcess {
    installExitHook();
    const fd = openSync(options.logFile, 'a');
    // setpriv --pdeathsig: the kernel kills the child if the runner dies without cleaning
    // up (SIGKILL, a crash), the one case the exit hook below cannot cover.
    const [command, args] = HAVE_SETPRIV
      ? ['setpriv', ['--pdeathsig', 'KILL', '--', options.command, ...(options.args ?? [])]]
      : [options.command, [...(options.args ?? [])]];
    try {
      const child = spawn(command, args, {
        env: options.env,
        cwd: options.cwd,
        detached: true, // its own process group: signals reach its children too
        stdio: ['ignore', fd, fd],
      });
      return new ManagedProcess(options, child);
    } finally {
      closeSync(fd);
    }
  }

  /** Resolves when the process has exited. */
  public readonly exited: Promise<ProcessExit>;
  private exitInfo: ProcessExit | undefined;

  private constructor(public readonly options: ManagedProcessOptions, private readonly child: ChildProcess) {
    alive.add(this);
    this.exited = new Promise<ProcessExit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        alive.delete(this);
        resolve(this.exitInfo);
      });
      child.once('error', (err) => {
        this.exitInfo = { code: -1, signal: null };
        alive.delete(this);
        process.stderr.write(`typemesh: could not start ${options.name} (${options.command}): ${err.message}\n`);
        resolve(this.exitInfo);
      });
    });
  }

  /** The process id (also its process group id). */
  public get pid(): number | undefined {
    return this.child.pid;
  }

  /** True until the process has exited. */
  public get running(): boolean {
    return this.exitInfo === undefined && this.child.pid !== undefined;
  }

  /** How it ended, once it has. */
  public get exit(): ProcessExit | undefined {
    return this.exitInfo;
  }

  /** Sends a signal to the whole process group. */
  public signal(signal: NodeJS.Signals): void {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // The group is already gone.
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs` if the group is still alive; resolves once it has exited. */
  public async stop(graceMs: number): Promise<ProcessExit> {
    if (!this.running) return this.exitInfo ?? { code: null, signal: null };
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
      // Children that ignored SIGTERM and outlived the leader.
      this.killGroupRemnants();
    }
  }

  /** SIGKILL the group, synchronously (for exit hooks). */
  public killNow(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  /** The last lines of the process's log, for error messages. */
  public logTail(lines = 20): string {
    try {
      return readFileSync(this.options.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  private killGroupRemnants(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // Nothing left in the group: the normal case.
    }
  }
}

/** The processes still alive (for tests that prove nothing is left behind). */
export function livingProcesses(): readonly ManagedProcess[] {
  return [...alive];
}
