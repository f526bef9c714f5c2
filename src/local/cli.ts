#!/usr/bin/env node
/**
 * The local runner's command line:
 *   typemesh up <plan module> [--netns]      run the mesh until Ctrl-C
 *   typemesh demo <plan module> [options]    run it, drive traffic, print the table, exit 0/1
 *   typemesh init [dir]                      write a small working infra repo (chart + plan)
 * Ctrl-C (SIGINT) or SIGTERM stops everything cleanly: sidecars drain, apps stop, the temp
 * directory is removed, and no process is left behind.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { runDemo } from './demo';
import { INFRA_DEV_DEPENDENCIES, infraRepoNextSteps, writeInfraRepo } from './init';
import { LocalMesh } from './local-mesh';
import { loadLocalPlan } from './plan-loader';
import { findProjectRoot } from './proxy-bundle';
import { workloadsFromChart } from './topology';

const USAGE = `Usage:
  typemesh up <plan module> [--netns]
      Start every workload version of the plan's chart with its sidecar until Ctrl-C.
      --netns   run every instance in its own network namespace with transparent interception (root)
  typemesh demo <plan module> [--netns] [--duration <s>] [--concurrency <n>] [--min-success <0..1>] [--max-split-deviation <points>]
      Start the mesh, drive traffic (default 20 s), print the stat table; exit 1 if the mesh misbehaved.
  typemesh init [dir]
      Write a small working infra repo into dir (default .): main.ts (the chart cdk8s synth runs),
      local.ts (a plan for typemesh up), app.js, cdk8s.yaml, tsconfig.json. Overwrites nothing.

A plan module exports defineLocalPlan({ chart, processes, traffic }) (see docs/local.md).`;

function number(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got "${value}"`);
  return n;
}

/**
 * A TypeScript plan is loaded with ts-node 10, which crashes on TypeScript 7 with `Cannot read
 * properties of undefined (reading 'fileExists')`; that is what `npm i typescript` installs
 * today. Says so, naming the range package.json declares (peerDependencies.typescript) and the
 * fix, before ts-node gets the chance. A missing TypeScript is left to the loader's message.
 */
export function checkPlanTypeScript(planFile: string, cwd: string = process.cwd()): void {
  if (!/\.[cm]?tsx?$/.test(planFile)) return;
  let installed: string;
  try {
    installed = (createRequire(path.join(cwd, 'noop.js'))('typescript/package.json') as { version: string }).version;
  } catch {
    return;
  }
  const manifest = JSON.parse(readFileSync(path.join(findProjectRoot(__dirname), 'package.json'), 'utf8')) as { peerDependencies?: Record<string, string> };
  const range = manifest.peerDependencies?.typescript ?? '';
  const below = /<\s*(\d+)/.exec(range);
  if (below && Number(installed.split('.')[0]) >= Number(below[1])) {
    throw new Error(`${planFile} is loaded with ts-node, which cannot run the TypeScript ${installed} installed in ${cwd}; `
      + `typemesh supports typescript ${range}: run \`npm install --save-dev ${INFRA_DEV_DEPENDENCIES.find((d) => d.startsWith('typescript@'))}\``);
  }
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      'netns': { type: 'boolean' },
      'duration': { type: 'string' },
      'concurrency': { type: 'string' },
      'min-success': { type: 'string' },
      'max-split-deviation': { type: 'string' },
      'help': { type: 'boolean', short: 'h' },
    },
  });
  const [command, planFile] = positionals;
  if (command === 'init' && !values.help) {
    const dir = planFile ?? '.';
    writeInfraRepo(dir);
    process.stdout.write(`${infraRepoNextSteps(dir)}\n`);
    return 0;
  }
  if (values.help || !command || !planFile || !['up', 'demo'].includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  checkPlanTypeScript(planFile);
  const plan = loadLocalPlan(planFile);
  const abort = new AbortController();
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (abort.signal.aborted) {
      process.stderr.write(`typemesh: ${signal} again, killing everything now\n`);
      process.exit(130); // the exit hook SIGKILLs every process group still alive
    }
    process.stderr.write(`\ntypemesh: ${signal}, stopping\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  if (command === 'demo') {
    const durationS = number('duration', values.duration as string | undefined);
    return runDemo(plan, {
      durationMs: durationS !== undefined ? durationS * 1000 : undefined,
      concurrency: number('concurrency', values.concurrency as string | undefined),
      minSuccessRate: number('min-success', values['min-success'] as string | undefined),
      maxSplitDeviation: number('max-split-deviation', values['max-split-deviation'] as string | undefined),
      netns: values.netns === true,
      signal: abort.signal,
    });
  }

  await plan.prepare?.();
  const workloads = workloadsFromChart(plan.chart());
  const mesh = await LocalMesh.start({
    workloads, processes: plan.processes, externalEndpoints: plan.externalEndpoints, netns: values.netns ? 'all' : undefined,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  for (const i of mesh.instances) {
    process.stdout.write(`${i.id.padEnd(28)} ${i.address.padEnd(15)} outbound :${i.ports.outbound}  inbound :${i.ports.inbound} (mTLS)  admin http://${i.address}:${i.ports.admin}  app :${i.ports.app}  pids ${i.app?.pid ?? '-'}/${i.sidecar.pid}\n`);
  }
  process.stdout.write(`logs and configs: ${mesh.workDir}\nCtrl-C to stop.\n`);
  await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
  stopping = mesh.stop();
  await stopping;
  process.stdout.write('typemesh: stopped\n');
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: Error) => {
    process.stderr.write(`typemesh: ${e.message}\n`);
    process.exit(1);
  });
}
