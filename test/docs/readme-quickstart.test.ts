/**
 * The README's quickstart must compile and synthesize exactly what examples/quickstart.ts
 * synthesizes (that example is the one the construct tests check in depth). The snippet is
 * extracted from README.md, pointed at ../src instead of the published package name, type
 * checked and run by ts-node in a real process.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'cdk8s';
import { buildQuickstart } from '../../examples/quickstart';

const root = path.resolve(__dirname, '../..');

test('the README quickstart compiles and synthesizes the same YAML as examples/quickstart.ts', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quickstart'));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  expect(match).not.toBeNull();
  const snippet = match![1]
    .replace("from 'typemesh'", "from '../src'")
    .replace('app.synth();', 'process.stdout.write(app.synthYaml());');
  expect(snippet).toContain('new Canary(');
  expect(snippet).toContain('new StrictMtls(');

  const dir = path.join(root, '.tmp');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `readme-quickstart-${process.pid}.ts`);
  writeFileSync(file, snippet);
  try {
    // Type-checked (no --transpile-only): a README that no longer compiles fails here.
    const out = execFileSync(path.join(root, 'node_modules/.bin/ts-node'), ['-P', 'test/tsconfig.json', file], {
      cwd: root, encoding: 'utf8', timeout: 120_000,
    });
    const app = new App();
    buildQuickstart(app);
    expect(out).toBe(app.synthYaml());
  } finally {
    rmSync(file, { force: true });
  }
}, 150_000);
