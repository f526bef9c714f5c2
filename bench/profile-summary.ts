/**
 * Summarizes a V8 .cpuprofile of the bundled sidecar (from `npm run bench -- --cpu-prof=DIR`):
 * self time by module (the bundle's `// path` comments that esbuild writes before each
 * module map a line back to its source file) and by function. It answers "what dominates the
 * remaining cost" without a browser.
 *
 * Usage: ts-node --transpile-only bench/profile-summary.ts <file.cpuprofile> [bundle.js] [top]
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Line (0-based) to source module, from esbuild's `// path` comments. */
function moduleIndex(bundle: string): (line: number) => string {
  const starts: Array<[number, string]> = [];
  readFileSync(bundle, 'utf8').split('\n').forEach((text, i) => {
    const m = /^\/\/ ((?:node_modules|src)\/\S+)$/.exec(text);
    if (m) starts.push([i, m[1]]);
  });
  return (line: number): string => {
    let lo = 0;
    let hi = starts.length - 1;
    let found = '(bundle prelude)';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid][0] <= line) {
        found = starts[mid][1];
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  };
}

/** Groups a module path: a package under node_modules, or the source file. */
function group(module: string): string {
  const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(module);
  return m ? m[1] : module;
}

/** Native StreamBase write entry points ('writeString' is fs: the access log). */
const SOCKET_WRITES = new Set(['writev', 'writeBuffer', 'writeLatin1String', 'writeUtf8String', 'writeAsciiString', 'writeUcs2String']);

/** Coarse areas of a sidecar's CPU time, for "what dominates" (docs/performance.md). */
export function areaOf(module: string): string {
  // Stream writes of node:net/tls: writev (corked) or one of the single-buffer writes.
  if (SOCKET_WRITES.has(module)) return 'socket writes (native: TLS + system call)';
  if (module.startsWith('src/proxy-image/http1')) return 'TypeMesh HTTP/1.1 client (incl. native llhttp parsing)';
  if (module === 'writeString' || module === 'sonic-boom' || module.includes('telemetry/access-log')) return 'access log';
  if (module.includes('src/proxy-image/telemetry') || module === 'prom-client' || module === 'tdigest' || module === 'bintrees') return 'metrics and observer';
  if (module === 'undici' || module.startsWith('wasm://')) return 'undici (upstream HTTP client)';
  if (module.startsWith('src/proxy-image')) return 'TypeMesh proxy code';
  if (module.includes('modules/cjs') || module === 'readFileUtf8' || module === '(bundle prelude)' || module === 'zod' || module === 'yaml') return 'start-up and config';
  if (module.startsWith('node:')) return 'Node core (http server, net, tls, streams, events)';
  if (module === '(garbage collector)') return 'garbage collection';
  if (module === '(program)') return '(program: native, unattributed)';
  return 'other';
}

export function summarizeProfile(profileFile: string, bundle: string, top = 25): string {
  const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const moduleOf = moduleIndex(bundle);
  const bundleUrl = `file://${path.resolve(bundle)}`;
  const where = (f: CallFrame): string => {
    if (f.url === bundleUrl) return group(moduleOf(f.lineNumber));
    if (f.url.startsWith('node:')) return f.url;
    return f.url || f.functionName; // (garbage collector), (program), (idle)
  };
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Native frames (socket writes, crypto) have no URL: name the JS caller chain that reached them.
  const callers = (id: number, depth: number): string => {
    const out: string[] = [];
    for (let p = parent.get(id); p !== undefined && out.length < depth; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      if (f.url) out.push(`${f.functionName || '(anonymous)'} [${where(f)}]`);
    }
    return out.join(' <- ');
  };
  const nativeByCaller = new Map<string, number>();
  const byModule = new Map<string, number>();
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const mod = where(f);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
    const area = f.url ? areaOf(mod) : areaOf(f.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    const fn = `${f.functionName || '(anonymous)'} [${mod}]`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    if (!f.url && !f.functionName.startsWith('(')) {
      const key = `${f.functionName.slice(0, 60)} <- ${callers(id, 6)}`;
      nativeByCaller.set(key, (nativeByCaller.get(key) ?? 0) + us);
    }
  }
  const rows = (m: Map<string, number>): string[] => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  return [
    `${path.basename(profileFile)}: ${(total / 1000).toFixed(0)} ms on CPU, ${(idle / 1000).toFixed(0)} ms idle`,
    'Self time by area:', ...rows(byArea),
    'Self time by module:', ...rows(byModule),
    'Self time by function:', ...rows(byFunction),
    'Native self time by JS caller chain:', ...rows(nativeByCaller).slice(0, 12),
  ].join('\n');
}

if (require.main === module) {
  const [file, bundle, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: ts-node --transpile-only bench/profile-summary.ts <file.cpuprofile> [bundle.js] [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${summarizeProfile(file, bundle ?? path.join(__dirname, '..', 'dist/proxy/typemesh-proxy.js'), Number(top ?? 25))}\n`);
}
