/**
 * Watches a set of files for changes: fs.watch on their directories (fast, catches the
 * symlink swap Kubernetes does for ConfigMaps and Secrets) plus a periodic stat as a
 * fallback where fs.watch misses events (network file systems, some container runtimes).
 * Only events naming a watched file, or one of the `..`-prefixed entries of a Kubernetes volume
 * (`..data`, `..data_tmp`, `..<timestamp>`), cause a check: other files written in the same
 * directory (logs, editors' swap files) would otherwise cost a stat of every file per write.
 * The callback runs at most once per debounce window and never concurrently with itself.
 */
import { FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import * as path from 'node:path';

/** Options of {@link FileWatcher}. */
export interface FileWatcherOptions {
  /**
   * How often file stats are compared, in ms.
   * @default 1000
   */
  readonly pollIntervalMs?: number;
  /**
   * Quiet time after an fs.watch event before the callback runs, in ms (writers often emit several events).
   * @default 50
   */
  readonly debounceMs?: number;
}

/** Calls `onChange` when any of the files' content may have changed. */
export class FileWatcher {
  private readonly watchers: FSWatcher[] = [];
  private readonly poll: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private lastSignature = '';
  private running = false;
  private rerun = false;
  private closed = false;
  private checks = 0;

  constructor(private readonly files: readonly string[], private readonly onChange: () => Promise<void>, opts: FileWatcherOptions = {}) {
    const debounceMs = opts.debounceMs ?? 50;
    const namesByDir = new Map<string, Set<string>>();
    for (const f of files) {
      const resolved = path.resolve(f);
      const dir = path.dirname(resolved);
      const names = namesByDir.get(dir) ?? new Set<string>();
      names.add(path.basename(resolved));
      namesByDir.set(dir, names);
    }
    for (const [dir, names] of namesByDir) {
      try {
        const w = watch(dir, { persistent: false }, (_event, filename) => {
          if (!isRelevant(filename, names)) return;
          if (this.debounce) clearTimeout(this.debounce);
          this.debounce = setTimeout(() => void this.check(), debounceMs);
          this.debounce.unref();
        });
        w.on('error', () => undefined); // the stat poll still covers this directory
        this.watchers.push(w);
      } catch {
        // Directory not watchable: rely on the poll.
      }
    }
    this.poll = setInterval(() => void this.check(), opts.pollIntervalMs ?? 1000);
    this.poll.unref();
  }

  /** Records the current state as seen, so that only later changes trigger the callback. */
  public async prime(): Promise<void> {
    this.lastSignature = await this.signature();
  }

  private async signature(): Promise<string> {
    const parts = await Promise.all(this.files.map(async (f) => {
      try {
        const s = await stat(f);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'missing';
      }
    }));
    return parts.join('|');
  }

  /** How many times the files' stats were compared (polls, relevant fs.watch events, triggers). */
  public get checkCount(): number {
    return this.checks;
  }

  private async check(): Promise<void> {
    if (this.closed) return;
    this.checks++;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = true;
    try {
      const sig = await this.signature();
      if (sig !== this.lastSignature) {
        const before = this.lastSignature;
        this.lastSignature = sig;
        try {
          await this.onChange();
        } catch {
          // A failed load is retried when the files change again; and, since the writer may
          // still be mid-update, once more at the next poll.
          this.lastSignature = before;
        }
      }
    } finally {
      this.running = false;
      if (this.rerun) {
        this.rerun = false;
        void this.check();
      }
    }
  }

  /** Runs the callback now (e.g. on SIGHUP), regardless of file stats. */
  public async trigger(): Promise<void> {
    this.lastSignature = '';
    await this.check();
  }

  public close(): void {
    this.closed = true;
    clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
    for (const w of this.watchers) w.close();
  }
}

/**
 * Whether an fs.watch event may concern the watched files: it names one of them, or an entry
 * Kubernetes swaps to update a mounted ConfigMap/Secret (the watched name is a symlink through
 * `..data`, which is atomically replaced by renaming `..data_tmp` to point at a new
 * `..<timestamp>` directory; the watched name itself sees no event). No name (some platforms
 * omit it) is treated as relevant.
 */
function isRelevant(filename: string | Buffer | null, names: ReadonlySet<string>): boolean {
  if (filename === null || filename === undefined) return true;
  const name = filename.toString();
  return names.has(name) || name.startsWith('..');
}
