import { DependencyType, javascript, typescript } from 'projen';

/**
 * TypeMesh project definition. package.json, tsconfig*.json and the jest
 * config are generated from this file: edit here, then run `npx projen`.
 */
const project = new typescript.TypeScriptProject({
  name: 'typemesh',
  description: 'A service mesh written in TypeScript end to end: cdk8s constructs, a Node.js sidecar and a local runner.',
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  license: 'Apache-2.0',
  copyrightOwner: 'TypeMesh authors',
  minNodeVersion: '20.0.0',

  // A plain TypeScript project (not jsii): the Pulumi adapter exposes @pulumi/pulumi types.
  // TypeScript 7.x is outside @pulumi/pulumi's peer range and spins npm's resolver: pin 5.9.
  typescriptVersion: '~5.9',
  github: false,
  release: false,
  buildWorkflow: false,
  pullRequestTemplate: false,
  depsUpgrade: false,
  eslint: false,
  sampleCode: false,
  // `files` in package.json (below) is the one list of what the package ships.
  npmignoreEnabled: false,
  // npm 11 here skips install scripts unless approved; nothing needs them.

  deps: [
    'cdk8s@^2.70.0',
    'cdk8s-plus-28@^2.5.6',
    'constructs@^10.4.2',
    'yaml@^2.8.0',
    'zod@^4.1.0',
    'undici@^7.16.0',
    'prom-client@^15.1.3',
    'pino@^10.0.0',
    '@opentelemetry/api@^1.9.0',
    '@opentelemetry/core@~2.12.0',
    '@opentelemetry/resources@~2.12.0',
    '@opentelemetry/sdk-trace-base@~2.12.0',
    '@opentelemetry/exporter-trace-otlp-http@~0.223.1',
    '@opentelemetry/exporter-zipkin@~2.12.0',
    '@opentelemetry/propagator-b3@~2.12.0',
    '@opentelemetry/semantic-conventions@^1.34.0',
    '@peculiar/x509@^2.2.0',
    // tsyringe (used by @peculiar/x509) requires a Reflect metadata polyfill.
    'reflect-metadata@^0.2.2',
  ],
  peerDependencyOptions: { pinnedDevDependency: false },
  peerDeps: [
    '@pulumi/pulumi@^3.100.0',
    '@pulumi/kubernetes@^4.0.0',
    // A user's infra repo compiles its chart and TypeMesh's declarations with its own
    // TypeScript, usually through ts-node (`cdk8s synth`), and ts-node 10 crashes on
    // TypeScript 7. Declared (optional) so npm refuses a TypeScript outside the range
    // instead of the synth failing later; the README shows the tested set.
    'typescript@>=5.0 <6',
  ],
  devDeps: [
    '@types/node@^20',
    '@pulumi/pulumi@^3.200.0',
    '@pulumi/kubernetes@^4.20.0',
    'ts-node@^10.9.2',
    'kubernetes-models@^4.5.0',
    '@kubernetes-models/cert-manager@^4.4.4',
    'typedoc@^0.28.0',
    'typedoc-plugin-markdown@^4.6.0',
    'esbuild@^0.25.0',
    // Strict validation of synthesized objects against the vendored Kubernetes/CRD schemas (test/constructs/k8s-schemas.ts).
    'ajv@^8.17.0',
  ],

  jestOptions: {
    jestVersion: '^29',
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    junitReporting: false,
    jestConfig: {
      collectCoverage: false,
      testTimeout: 30_000,
      maxWorkers: 2,
      globalSetup: '<rootDir>/test/global-setup.ts',
      testPathIgnorePatterns: ['/node_modules/', '/lib/', '/dist/'],
    },
  },
  tsconfig: {
    compilerOptions: {
      lib: ['es2022'],
      target: 'ES2022',
      skipLibCheck: true,
    },
  },
  tsconfigDev: {
    compilerOptions: {
      // Type checking is done once by `tsc` in the test task; ts-jest only transpiles.
      isolatedModules: true,
      lib: ['es2022'],
      target: 'ES2022',
      skipLibCheck: true,
    },
    // test/tsconfig.json lives in test/: these paths are relative to it.
    include: ['../src/**/*.ts', '../examples/**/*.ts', '../bench/**/*.ts', '../scripts/**/*.ts'],
  },
  gitignore: ['/bench/results/*.tmp', '*.pem', '*.key', '/.tmp/'],
});

// ts-node: version 10 (the project runs examples and scripts with it).
project.deps.removeDependency('ts-node');
project.deps.addDependency('ts-node@^10.9.2', DependencyType.BUILD);
project.deps.removeDependency('ts-jest');
project.deps.addDependency('ts-jest@^29.4.0', DependencyType.BUILD);
project.deps.removeDependency('@types/jest');
project.deps.addDependency('@types/jest@^29.5.0', DependencyType.BUILD);

// Synthesize examples/shop into dist/ (the README's main command until the demo exists).
project.addTask('synth', {
  description: 'Synthesize examples/shop into dist/',
  exec: 'ts-node --transpile-only examples/shop/main.ts',
});

// The local demo: examples/shop on loopback with real mTLS, ~20 s of traffic, a stat table.
project.addTask('demo', {
  description: 'Run examples/shop locally, drive traffic and print the stat table',
  exec: 'ts-node --transpile-only src/local/cli.ts demo examples/shop/local.ts',
  receiveArgs: true,
});
project.addTask('up', {
  description: 'Start a mesh plan locally until Ctrl-C: npm run up -- <plan module>',
  exec: 'ts-node --transpile-only src/local/cli.ts up',
  receiveArgs: true,
});

// The benchmark: direct vs the sidecar pair vs an nginx pair, on loopback.
project.addTask('bench', {
  description: 'Benchmark the sidecar pair against direct calls and nginx (bench/results/latest.json)',
  exec: 'ts-node --transpile-only bench/run.ts',
  receiveArgs: true,
});

// Bundle the sidecar into one file, as the image's Dockerfile does.
project.addTask('bundle:proxy', {
  description: 'Bundle the sidecar into dist/proxy/typemesh-proxy.js (esbuild)',
  exec: 'esbuild src/proxy-image/main.ts --bundle --platform=node --target=node20 --minify-whitespace --outfile=dist/proxy/typemesh-proxy.js --log-level=warning',
});

// The contract's JSON Schema, generated from the zod schema in src/config.
project.addTask('schema', {
  description: 'Write src/config/sidecar-config.schema.json from the zod schema',
  exec: 'ts-node --transpile-only scripts/write-json-schema.ts',
});

// API.md is generated from doc comments, never edited by hand.
project.addTask('docgen', {
  description: 'Generate API.md from the doc comments (typedoc + typedoc-plugin-markdown)',
  exec: 'typedoc',
});
const apiCheck = project.addTask('docgen:check', {
  description: 'Fail when API.md is stale',
  exec: 'ts-node --transpile-only scripts/check-api-md.ts',
});
project.testTask.prependExec('tsc --noEmit -p test/tsconfig.json', { name: 'typecheck' });
project.testTask.spawn(apiCheck);

// Two entry points: the Pulumi component lives apart because @pulumi/* are optional peers.
project.package.addField('exports', {
  '.': { types: './lib/index.d.ts', default: './lib/index.js' },
  './pulumi': { types: './lib/pulumi/index.d.ts', default: './lib/pulumi/index.js' },
  './package.json': './package.json',
});
// For TypeScript's older `node` module resolution, which ignores `exports`.
project.package.addField('typesVersions', { '*': { pulumi: ['lib/pulumi/index.d.ts'] } });
project.package.addField('peerDependenciesMeta', {
  '@pulumi/pulumi': { optional: true },
  '@pulumi/kubernetes': { optional: true },
  // Optional: plain JavaScript users need no TypeScript at all.
  'typescript': { optional: true },
});

// `typemesh up|demo <plan>`: the local runner's CLI.
project.package.addBin({ typemesh: 'lib/local/cli.js' });

// What `npm pack` ships, as an allow-list: the compiled library with its declarations, the
// CLI, and the sidecar bundle `typemesh up` runs (an installed package has no sources to
// bundle). npm adds package.json, README.md and LICENSE itself. Nothing else (bench/,
// scripts/, examples/, test/, .ci/) reaches a user. The test/install test checks the list.
project.package.addField('files', [
  'lib/**/*.js',
  'lib/**/*.d.ts',
  'dist/proxy/typemesh-proxy.js',
  'API.md',
]);
// `npm pack` / `npm publish` on a fresh clone compile and bundle first: lib/ and dist/ are not
// committed. lib/ is emptied first so that the output of a deleted source file never ships.
project.addTask('prepack', {
  description: 'Compile and bundle the sidecar before npm packs the package',
  steps: [{ exec: 'rm -rf lib' }, { spawn: 'compile' }, { spawn: 'bundle:proxy' }, { exec: 'chmod +x lib/local/cli.js' }],
});

// The sidecar image tag defaults to this version (ghcr.io/typemesh/proxy:<version>).
project.package.addVersion('0.1.0');

project.synth();
