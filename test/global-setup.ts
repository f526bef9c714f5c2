import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { bundleWithEsbuild } from '../src/local/proxy-bundle';

/**
 * Bundles the executables that the tests start as real processes (the sidecar and the
 * local runner) once per jest run, with the options the local runner uses, so each test
 * spawns plain `node <bundle>` instead of paying ts-node's start-up for every process.
 */
export default function globalSetup(): void {
  const root = path.resolve(__dirname, '..');
  const bundles: Array<[string, string]> = [
    ['src/proxy-image/main.ts', 'dist/proxy/typemesh-proxy.js'],
    ['src/local/cli.ts', 'dist/local/typemesh.js'],
  ];
  for (const [entry, out] of bundles) {
    if (existsSync(path.join(root, entry))) bundleWithEsbuild(root, entry, out);
  }
}
