/**
 * Every process the benchmark starts goes through one registry, so that all of them are
 * stopped on success, on error, on Ctrl-C and on SIGTERM. Children get a pipe as stdin: the
 * bench's own helpers exit when it closes (so they die with the harness even on SIGKILL);
 * the sidecar and nginx are stopped by signal.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import * as net from 'node:net';

/** Keeps the tail of a stream for diagnostics without growing without bound. */
class OutputTail {
  private text = '';
  public constructor(private readonly limit = 64 * 1024) {}
  public push(chunk: Buffer): void {
    this.text += chunk.toString('utf8');
    if (this.text.length > this.limit) this.text = this.text.slice(-this.limit);
  }
  public toString(): string {
    return this.text;
  }
}

/** A process started by the bench. */
export class BenchProcess {
  public readonly pid: number;
  public readonly exited: Promise<number | null>;
  private readonly stdoutTail = new OutputTail();
  private readonly stderrTail = new OutputTail();
  private exitCode: number | null | undefined;

  /**
   * @param stdoutFile when set, stdout went to this file (not a pipe), as a container
   * runtime's log file would take it; the tail is read from the file for diagnostics.
   */
  public constructor(public readonly name: string, public readonly child: ChildProcess, private readonly stdoutFile?: string) {
    if (child.pid === undefined) throw new Error(`${name}: the process did not start`);
    this.pid = child.pid;
    child.stdout?.on('data', (c: Buffer) => this.stdoutTail.push(c));
    child.stderr?.on('data', (c: Buffer) => this.stderrTail.push(c));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? null : code);
        resolve(code);
      });
    });
  }

  public get running(): boolean {
    return this.exitCode === undefined;
  }

  public get stdout(): string {
    return this.stdoutFile ? readTail(this.stdoutFile, 64 * 1024) : this.stdoutTail.toString();
  }

  public get stderr(): string {
    return this.stderrTail.toString();
  }

  /** A one-paragraph description for error messages. */
  public describe(): string {
    const tail = (s: string): string => s.split('\n').slice(-15).join('\n');
    return `${this.name} (pid ${this.pid}, ${this.running ? 'running' : `exited ${this.exitCode}`})\n--- stderr ---\n${tail(this.stderr)}\n--- stdout ---\n${tail(this.stdout)}`;
  }

  /** Resolves with the first stdout line that parses as JSON, or rejects on exit/timeout. */
  public async firstJsonLine<T>(timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const line of this.stdout.split('\n')) {
        if (line.startsWith('{')) {
          try {
            return JSON.parse(line) as T;
          } catch {
            // an incomplete line: wait for the rest
          }
        }
      }
      if (!this.running) break;
      await sleep(20);
    }
    throw new Error(`no JSON line from ${this.describe()}`);
  }
}

/** Starts and stops the bench's processes. */
export class ProcessRegistry {
  private readonly processes: BenchProcess[] = [];

  /** Starts a process; stdout goes to stdoutFile when given (the child's writes then never wait on us). */
  public start(name: string, command: string, args: readonly string[], opts: { cwd?: string; stdoutFile?: string } = {}): BenchProcess {
    const fd = opts.stdoutFile ? openSync(opts.stdoutFile, 'a') : undefined;
    try {
      const child = spawn(command, args, { cwd: opts.cwd, stdio: ['pipe', fd ?? 'pipe', 'pipe'] });
      const p = new BenchProcess(name, child, opts.stdoutFile);
      this.processes.push(p);
      return p;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** SIGTERM everything still running, then SIGKILL what is left after graceMs. */
  public async stopAll(graceMs = 3000): Promise<void> {
    const running = this.processes.filter((p) => p.running);
    for (const p of running) {
      p.child.stdin?.end();
      p.child.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(running.map((p) => p.exited)),
      new Promise((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
    this.killAllSync();
  }

  /** Last resort, safe inside a process 'exit' handler (synchronous). */
  public killAllSync(): void {
    for (const p of this.processes) {
      if (p.running) {
        try {
          p.child.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
}

function readTail(file: string, bytes: number): string {
  try {
    const size = statSync(file).size;
    const length = Math.min(size, bytes);
    const buf = Buffer.alloc(length);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    return buf.toString('utf8');
  } catch {
    return '';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port that was free a moment ago on 127.0.0.1 (the kernel picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Waits until a TCP connect to 127.0.0.1:port succeeds, or fails naming the process. */
export async function waitForPort(port: number, owner: BenchProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!owner.running) throw new Error(`exited before listening on ${port}: ${owner.describe()}`);
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (connected) return;
    await sleep(50);
  }
  throw new Error(`port ${port} not listening after ${timeoutMs} ms: ${owner.describe()}`);
}
