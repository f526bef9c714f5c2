/**
 * `typemesh up` as a user runs it: the bundled CLI (dist/local/typemesh.js, built by
 * test/global-setup.ts) started on examples/shop/local.ts. Ctrl-C must stop everything
 * and remove the temp dir; even a SIGKILLed runner must leave no process behind.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { httpGetText } from '../../src/local';
import { prepareApps } from './mesh-fixtures';
import { alive } from '../process-support';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/local/typemesh.js');

interface Started {
  readonly cli: ChildProcess;
  readonly pids: number[];
  readonly admins: string[];
  readonly workDir: string;
  output(): string;
}

/** Starts `typemesh up` and waits until it prints that every instance is up. */
function startUp(): Promise<Started> {
  const cli = spawn(process.execPath, [CLI, 'up', 'examples/shop/local.ts'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  cli.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  cli.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`typemesh up not ready after 90 s:\n${out}`)), 90_000);
    cli.once('exit', (code) => reject(new Error(`typemesh up exited with ${code}:\n${out}`)));
    const poll = setInterval(() => {
      if (!out.includes('Ctrl-C to stop.')) return;
      clearInterval(poll);
      clearTimeout(timer);
      const pids = [...out.matchAll(/pids (\d+)\/(\d+)/g)].flatMap((m) => [Number(m[1]), Number(m[2])]);
      const admins = [...out.matchAll(/admin (http:\/\/\S+)/g)].map((m) => m[1]);
      const workDir = /logs and configs: (\S+)/.exec(out)![1];
      resolve({ cli, pids, admins, workDir, output: () => out });
    }, 100);
  });
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

let started: Started | undefined;

beforeAll(() => {
  expect(existsSync(CLI)).toBe(true);
  prepareApps();
});

afterEach(() => {
  // Only if a test failed half-way: never leave the runner or its children behind.
  if (started?.cli.exitCode === null) started.cli.kill('SIGKILL');
  for (const pid of started?.pids ?? []) if (alive(pid)) process.kill(pid, 'SIGKILL');
  // A SIGKILLed runner cannot remove its temp dir: the test does.
  if (started) rmSync(started.workDir, { recursive: true, force: true });
  started = undefined;
});

test('typemesh up runs the shop until Ctrl-C, then stops every process and removes its temp dir', async () => {
  started = await startUp();
  // order x2, payment v1 x2 + v2, inventory v1 x2 + v2: 8 instances, an app and a sidecar each.
  expect(started.pids).toHaveLength(16);
  expect(started.pids.every(alive)).toBe(true);
  for (const admin of started.admins) expect((await httpGetText(`${admin}/healthz/ready`, 3000)).status).toBe(200);
  const exited = new Promise<number | null>((r) => started!.cli.once('exit', (code) => r(code)));
  started.cli.kill('SIGINT');
  expect(await exited).toBe(0);
  expect(started.output()).toContain('typemesh: stopped');
  expect(started.pids.filter(alive)).toEqual([]);
  expect(existsSync(started.workDir)).toBe(false);
}, 120_000);

test('a SIGKILLed runner leaves no process behind (parent-death signal)', async () => {
  started = await startUp();
  started.cli.kill('SIGKILL');
  const pids = started.pids;
  expect(await waitUntil(() => pids.every((p) => !alive(p)), 5000)).toBe(true);
}, 120_000);
