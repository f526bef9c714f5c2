/**
 * The test side of telemetry-observer-driver.ts: bundles the driver with esbuild, starts it
 * as a real Node.js process and calls it over stdin/stdout.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { buildSync } from 'esbuild';
import type { SidecarConfig } from '../../src/config/schema';
import type { RequestInfo, RequestOutcome } from '../../src/proxy-image/observer';

/** What requestStarted returned, as seen through the driver. */
export interface RemoteObservation {
  readonly handle: number;
  readonly requestId: string;
  readonly traceId?: string;
  readonly propagationHeaders: Record<string, string>;
}

/** Observers living in a child process. */
export class RemoteObservers {
  public static start(): RemoteObservers {
    const dir = mkdtempSync(path.join(tmpdir(), 'typemesh-telemetry-driver-'));
    const outfile = path.join(dir, 'driver.js');
    buildSync({ entryPoints: [path.join(__dirname, 'telemetry-observer-driver.ts')], bundle: true, platform: 'node', target: 'node20', outfile, logLevel: 'warning' });
    return new RemoteObservers(dir, spawn(process.execPath, [outfile], { stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private exited = false;

  private constructor(private readonly dir: string, private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line);
      const waiter = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error !== undefined) waiter?.reject(new Error(`driver: ${msg.error}`));
      else waiter?.resolve(msg.result);
    });
    child.on('exit', () => {
      this.exited = true;
      for (const w of this.pending.values()) w.reject(new Error('driver exited'));
      this.pending.clear();
    });
  }

  public create(name: string, config: SidecarConfig, spanExportDelayMillis?: number): Promise<void> {
    return this.call({ op: 'create', name, config, spanExportDelayMillis });
  }

  public start(observer: string, info: RequestInfo): Promise<RemoteObservation> {
    return this.call({ op: 'start', observer, info });
  }

  public end(observation: RemoteObservation, outcome: RequestOutcome): Promise<void> {
    return this.call({ op: 'end', handle: observation.handle, outcome });
  }

  public shutdown(observer: string): Promise<void> {
    return this.call({ op: 'shutdown', observer });
  }

  /** Stops the process and removes the bundle. */
  public async close(): Promise<void> {
    if (!this.exited) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private call<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.exited) return Promise.reject(new Error('driver exited'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin!.write(JSON.stringify({ id, ...msg }) + '\n');
    });
  }
}
