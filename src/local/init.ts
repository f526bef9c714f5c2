/**
 * `typemesh init`: writes a small working infra repo into a directory — a chart (main.ts)
 * that `cdk8s synth` runs, a local plan (local.ts) that `typemesh up` runs, and the two
 * demo apps (app.js) — so a user starts from files that work with the installed package.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/** What an infra repo needs beside typemesh at run time. */
export const INFRA_DEPENDENCIES: readonly string[] = ['cdk8s@^2.70.0', 'constructs@^10.4.2'];
/**
 * The tested build tool set: `cdk8s synth` runs main.ts with ts-node 10, which crashes on
 * TypeScript 7 (what a bare `npm i typescript` brings), hence TypeScript 5.9.
 */
export const INFRA_DEV_DEPENDENCIES: readonly string[] = ['cdk8s-cli@^2.200.0', 'ts-node@^10.9.2', 'typescript@~5.9', '@types/node@^20'];

const MAIN_TS = `// The mesh chart: \`npx cdk8s synth\` runs this file (cdk8s.yaml) and writes dist/*.k8s.yaml.
// Two services; only front may call back. Replace the images with yours.
import { App, Chart } from 'cdk8s';
import { Mesh, MeshService } from 'typemesh';

export function buildChart(app: App = new App()): Chart {
  const chart = new Chart(app, 'infra');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'infra' });
  const back = new MeshService(chart, 'back', { mesh, name: 'back', versions: [{ name: 'v1', image: 'example.com/back:1', args: ['back'] }] });
  const front = new MeshService(chart, 'front', {
    mesh, name: 'front',
    versions: [{ name: 'v1', image: 'example.com/front:1', args: ['front'], env: { BACK_URL: 'http://back' } }],
  });
  back.allowFrom(front);
  return chart;
}

if (require.main === module) {
  const app = new App();
  buildChart(app);
  app.synth();
}
`;

const LOCAL_TS = `// The local plan: \`npx typemesh up local.ts\` runs the same chart on this machine, each
// workload version as \`node app.js <role>\` beside its sidecar, with real mTLS.
import * as path from 'node:path';
import { defineLocalPlan, LocalProcessSpec } from 'typemesh';
import { buildChart } from './main';

const app = (role: string): LocalProcessSpec => ({ command: process.execPath, args: [path.join(__dirname, 'app.js'), role] });

export default defineLocalPlan({
  chart: () => buildChart(),
  processes: { 'front/v1': app('front'), 'back/v1': app('back') },
});
`;

const APP_JS = `// The apps: back answers with its pod name; front calls back by its service name through
// its sidecar (HTTP_PROXY, an absolute-form request as curl sends) and wraps the answer.
const http = require('node:http');

const role = process.argv[2];
http.createServer((req, res) => {
  if (role === 'back') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ pod: process.env.POD_NAME, path: req.url }));
    return;
  }
  const proxy = new URL(process.env.HTTP_PROXY);
  const back = new URL('/hello', process.env.BACK_URL);
  const out = http.request({ host: proxy.hostname, port: proxy.port, path: back.href, headers: { host: back.host } }, (answer) => {
    let body = '';
    answer.setEncoding('utf8');
    answer.on('data', (c) => { body += c; });
    answer.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ pod: process.env.POD_NAME, back: { status: answer.statusCode, body } }));
    });
  });
  out.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
  out.end();
}).listen(Number(process.env.PORT), process.env.HOST);
`;

const CDK8S_YAML = `language: typescript
app: npx ts-node main.ts
`;

const TSCONFIG_JSON = `${JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'commonjs', lib: ['es2022'], strict: true, esModuleInterop: true, types: ['node'] },
  include: ['*.ts'],
}, null, 2)}
`;

/** The files `typemesh init` writes, by name. */
export const INFRA_REPO_FILES: Readonly<Record<string, string>> = {
  'main.ts': MAIN_TS,
  'local.ts': LOCAL_TS,
  'app.js': APP_JS,
  'cdk8s.yaml': CDK8S_YAML,
  'tsconfig.json': TSCONFIG_JSON,
};

/**
 * Writes the infra repo's files into `dir` (created when missing) and returns their names.
 * Refuses, writing nothing, when any of them exists.
 */
export function writeInfraRepo(dir: string): string[] {
  const names = Object.keys(INFRA_REPO_FILES);
  const taken = names.filter((n) => existsSync(path.join(dir, n)));
  if (taken.length > 0) {
    throw new Error(`${path.resolve(dir)} already has ${taken.join(', ')}: typemesh init writes ${names.join(', ')} and overwrites nothing; run it in an empty directory or move those away`);
  }
  mkdirSync(dir, { recursive: true });
  for (const n of names) writeFileSync(path.join(dir, n), INFRA_REPO_FILES[n]);
  return names;
}

/** What to run next, for the CLI to print. */
export function infraRepoNextSteps(dir: string): string {
  return [
    `Wrote ${Object.keys(INFRA_REPO_FILES).join(', ')} in ${path.resolve(dir)}. Next:`,
    `  npm install ${INFRA_DEPENDENCIES.join(' ')}`,
    `  npm install --save-dev ${INFRA_DEV_DEPENDENCIES.join(' ')}`,
    '  npx cdk8s synth --no-check-upgrade     # writes dist/infra.k8s.yaml',
    '  npx typemesh up local.ts               # runs it here until Ctrl-C',
  ].join('\n');
}
