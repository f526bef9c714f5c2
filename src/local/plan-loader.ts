/**
 * Loads a local plan module given on the command line. TypeScript modules are loaded
 * through ts-node's transpile-only register (resolved from the working directory, so the
 * bundled CLI does not carry ts-node inside it).
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { LocalPlan } from './plan';

/** Loads `file` and returns its plan: the default export, an export named `plan`, or the module itself. */
export function loadLocalPlan(file: string): LocalPlan {
  const abs = path.resolve(file);
  const req = createRequire(path.join(process.cwd(), 'noop.js'));
  if (/\.[cm]?tsx?$/.test(abs)) {
    const tsNode = req('ts-node') as { register(opts: object): void };
    tsNode.register({ transpileOnly: true, compilerOptions: { module: 'commonjs' } });
  }
  const mod = req(abs) as { default?: LocalPlan; plan?: LocalPlan } & Partial<LocalPlan>;
  const plan = mod.default ?? mod.plan ?? (mod as LocalPlan);
  if (typeof plan.chart !== 'function' || typeof plan.processes !== 'object') {
    throw new Error(`${file} does not export a local plan: export default defineLocalPlan({ chart: () => buildChart(), processes: { '<workload>/<version>': { command, args } } })`);
  }
  return plan;
}
