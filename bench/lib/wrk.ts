/**
 * Maximum throughput, closed loop: wrk (C, one thread, event loop) keeps a fixed number of
 * keep-alive connections busy for a short time. Closed-loop latency is not reported as a
 * latency figure (it suffers coordinated omission by construction); only the rate is used.
 */
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ProcessRegistry, sleep } from './processes';

export const WRK_BINARY = '/usr/bin/wrk';

export function wrkAvailable(): boolean {
  return existsSync(WRK_BINARY);
}

/** What one wrk run reports. */
export interface WrkResult {
  readonly requestsPerSecond: number;
  readonly requests: number;
  /** Non-2xx responses plus socket errors (connect, read, write, timeout). */
  readonly errors: number;
}

/** Writes the Lua script that makes wrk send the same 1 KiB POST as the fixed-rate generator. */
export function writeWrkScript(dir: string, requestBytes: number, host?: string): string {
  const file = path.join(dir, `wrk-post-${requestBytes}${host ? '-host' : ''}.lua`);
  writeFileSync(file, [
    'wrk.method = "POST"',
    `wrk.body = string.rep("q", ${requestBytes})`,
    'wrk.headers["Content-Type"] = "application/octet-stream"',
    host ? `wrk.headers["Host"] = "${host}"` : '',
    '',
  ].join('\n'));
  return file;
}

/** Parses wrk's text output. */
export function parseWrkOutput(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const total = /(\d+) requests in/.exec(text);
  if (!rps || !total) throw new Error(`unexpected wrk output:\n${text}`);
  let errors = 0;
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  if (non2xx) errors += Number(non2xx[1]);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (socket) errors += socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  return { requestsPerSecond: Number(rps[1]), requests: Number(total[1]), errors };
}

/** Runs wrk against url for durationSeconds with a fixed number of connections. */
export async function runWrk(registry: ProcessRegistry, url: string, script: string, connections: number, durationSeconds: number): Promise<WrkResult> {
  const wrk = registry.start('wrk', WRK_BINARY, ['-t1', `-c${connections}`, `-d${durationSeconds}s`, '--timeout', '5s', '-s', script, url]);
  wrk.child.stdin?.end();
  const code = await Promise.race([wrk.exited, sleep((durationSeconds + 15) * 1000).then(() => 'timeout' as const)]);
  if (code !== 0) {
    wrk.child.kill('SIGKILL');
    throw new Error(`wrk did not finish cleanly (${code}): ${wrk.describe()}`);
  }
  return parseWrkOutput(wrk.stdout);
}
