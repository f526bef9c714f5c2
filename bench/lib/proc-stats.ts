/**
 * CPU time and peak memory of processes, read from Linux /proc (no sampling, no agents):
 * utime+stime from /proc/<pid>/stat (clock ticks) and VmHWM, the peak resident set, from
 * /proc/<pid>/status. nginx runs a master and workers: a "process group" here is a root pid
 * plus its live children, summed.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ); 100 on every Linux the bench targets. */
const CLOCK_TICKS_PER_SECOND = 100;

interface StatFields {
  readonly ppid: number;
  readonly cpuSeconds: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime field 14, stime field 15.
  const ppid = Number(rest[1]);
  const ticks = Number(rest[11]) + Number(rest[12]);
  return { ppid, cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND };
}

function readPeakRssBytes(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The pid and its live direct children (nginx: master + workers). */
export function processGroup(rootPid: number): number[] {
  const pids = [rootPid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid !== rootPid && readStat(pid)?.ppid === rootPid) pids.push(pid);
  }
  return pids;
}

/** Total CPU seconds (user + system) so far of a process and its live children. */
export function cpuSeconds(rootPid: number): number {
  return processGroup(rootPid).reduce((sum, pid) => sum + (readStat(pid)?.cpuSeconds ?? 0), 0);
}

/** Peak resident set (VmHWM) of a process plus that of each live child, in bytes. */
export function peakRssBytes(rootPid: number): number {
  return processGroup(rootPid).reduce((sum, pid) => sum + readPeakRssBytes(pid), 0);
}

/** Live children only (for reporting how a group is made up). */
export function childPids(rootPid: number): number[] {
  return processGroup(rootPid).slice(1);
}

function readRssAnonBytes(pid: number): number {
  try {
    const m = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Tracks the peak private (anonymous) resident memory of process groups by sampling
 * /proc/<pid>/status RssAnon. The kernel keeps a peak only for the total (VmHWM), which also
 * counts the file-backed pages of the node or nginx binary: those are shared through the page
 * cache by every process that maps the same file, so the anonymous part is what each extra
 * sidecar really adds.
 */
export class AnonPeakSampler {
  private readonly peaks = new Map<number, number>();
  private timer?: NodeJS.Timeout;

  public constructor(private readonly rootPids: readonly number[], private readonly intervalMs = 200) {}

  public start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  public stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  /** Peak RssAnon of the group rooted at pid seen so far, in bytes. */
  public peakBytes(rootPid: number): number {
    return this.peaks.get(rootPid) ?? 0;
  }

  private sample(): void {
    for (const root of this.rootPids) {
      const now = processGroup(root).reduce((sum, pid) => sum + readRssAnonBytes(pid), 0);
      if (now > (this.peaks.get(root) ?? 0)) this.peaks.set(root, now);
    }
  }
}
