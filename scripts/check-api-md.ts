/**
 * Fails when API.md is stale: regenerates it with typedoc into a temporary folder and
 * compares it byte for byte with the committed file. API.md is generated from the
 * sources' doc comments and never edited by hand; run `npx projen docgen` to refresh it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const out = mkdtempSync(path.join(tmpdir(), 'typemesh-api-'));
try {
  execFileSync(path.join(root, 'node_modules/.bin/typedoc'), ['--out', out, '--logLevel', 'Warn'], {
    cwd: root,
    stdio: 'inherit',
  });
  const fresh = readFileSync(path.join(out, 'API.md'), 'utf8');
  const committed = readFileSync(path.join(root, 'API.md'), 'utf8');
  if (fresh !== committed) {
    console.error('API.md is stale: run `npx projen docgen` and commit the result.');
    // exitCode, not exit(): exit() would skip the finally below and leave the temp folder.
    process.exitCode = 1;
  } else {
    console.log('API.md is current.');
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
