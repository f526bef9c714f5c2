/**
 * Times the synthesis of a chart with many MeshServices in a fresh Node process (bench/synth-chart.ts
 * under ts-node), after the proxies are stopped, so module loading and the proxies' CPU do not
 * blur the figure: the child reports construction and synthesis time separately from its imports.
 */
import * as path from 'node:path';
import { REPO_ROOT } from './bundle';
import { ProcessRegistry } from './processes';
import type { SynthResult } from './report';

export async function timeChartSynthesis(registry: ProcessRegistry, services: number): Promise<SynthResult> {
  const child = registry.start('synth chart', process.execPath,
    ['-r', 'ts-node/register/transpile-only', path.join(REPO_ROOT, 'bench', 'synth-chart.ts'), String(services)], { cwd: REPO_ROOT });
  child.child.stdin?.end();
  try {
    const result = await child.firstJsonLine<SynthResult>(120_000);
    await child.exited;
    return result;
  } catch (e) {
    return { skipped: `synthesis failed: ${(e as Error).message.slice(0, 2000)}` };
  }
}
