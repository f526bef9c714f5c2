/**
 * The legacy sidecar's promise, run for real: the synthesized postStart hook
 * (`typemesh-proxy --wait-ready`) keeps waiting while no proxy is ready and returns 0 once the
 * proxy answers /healthz/ready, which is what holds the app's start; and the liveness endpoint
 * the pod probes stays 200 when readiness is 503 (draining), so the kubelet never restarts a
 * proxy that is only not ready. Runs the bundled sidecar (dist/proxy, built by the jest global
 * setup) in an anonymous network namespace (`unshare --net`), so the pod's fixed port 15020
 * clashes with nothing on the shared machine.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Mesh, MeshService, SidecarMode } from '../../src';
import { find, newChart, synth } from './helpers';

const BUNDLE = path.join(__dirname, '..', '..', 'dist', 'proxy', 'typemesh-proxy.js');

function unavailable(): string | undefined {
  const r = spawnSync('unshare', ['--net', 'true'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `unshare --net failed (needs root): ${r.error?.message ?? r.stderr.trim()}`;
  const c = spawnSync('curl', ['--version']);
  if (c.error) return 'curl is missing';
  return undefined;
}

const reason = unavailable();
const maybe = reason ? test.skip : test;
if (reason) console.warn(`SKIPPED legacy-hold: ${reason}`);

describe('legacy sidecar: the postStart hook holds the app until the proxy is ready', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'h8-legacy-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  maybe('the hook waits with no proxy, returns 0 once it is ready; liveness stays 200 while draining makes readiness 503', () => {
    const chart = newChart();
    const mesh = new Mesh(chart, 'mesh', { namespace: 'shop', sidecarMode: SidecarMode.LEGACY });
    new MeshService(chart, 'api', { mesh, name: 'api', versions: [{ name: 'v1', image: 'x/api:1' }] });
    const objects = synth(chart);
    const pod = find(objects, 'Deployment', 'api-v1').spec.template.spec;
    const proxy = pod.containers.find((c: any) => c.name === 'typemesh-proxy');
    const hook: string[] = proxy.lifecycle.postStart.exec.command;
    expect(hook[0]).toBe('typemesh-proxy');

    // The certificate cert-manager would put in the Secret: a CA and a leaf with the SPIFFE ID.
    const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=ca', '-days', '2']);
    ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=api']);
    writeFileSync(path.join(dir, 'ext'), 'subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/api\nextendedKeyUsage=serverAuth,clientAuth\n');
    ssl(['x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '1', '-extfile', 'ext']);
    const config = find(objects, 'ConfigMap', 'api-v1-sidecar').data['sidecar.yaml'].split('/etc/typemesh/certs').join(dir);
    writeFileSync(path.join(dir, 'sidecar.yaml'), config);

    const node = process.execPath;
    const hookCmd = [node, BUNDLE, ...hook.slice(1)].map((a) => `'${a}'`).join(' ');
    // Bounded waits only: every loop has a fixed number of rounds.
    const script = `
      set -u
      ip link set lo up
      ${hookCmd} & HOOK=$!
      sleep 2
      if kill -0 $HOOK 2>/dev/null; then echo "hook-waiting-without-proxy=yes"; else echo "hook-waiting-without-proxy=no"; fi
      '${node}' '${BUNDLE}' --config '${dir}/sidecar.yaml' > '${dir}/proxy.log' 2>&1 & PROXY=$!
      wait $HOOK; echo "hook-exit=$?"
      echo "ready-after-hook=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/healthz/ready)"
      echo "live=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/healthz/live)"
      kill -TERM $PROXY
      i=0; r=200
      while [ $i -lt 50 ] && [ "$r" = 200 ]; do r=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/healthz/ready); i=$((i+1)); sleep 0.1; done
      echo "ready-draining=$r"
      echo "live-draining=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/healthz/live)"
      kill -KILL $PROXY 2>/dev/null; wait $PROXY 2>/dev/null; true
    `;
    const r = spawnSync('unshare', ['--net', 'sh', '-c', script], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, TYPEMESH_LOG_LEVEL: 'warn' } });
    const out = Object.fromEntries(r.stdout.trim().split('\n').filter((l) => l.includes('=')).map((l) => l.split('=') as [string, string]));
    expect({ out, stderr: r.stderr }).toMatchObject({
      out: {
        'hook-waiting-without-proxy': 'yes',
        'hook-exit': '0',
        'ready-after-hook': '200',
        'live': '200',
        'ready-draining': '503',
        'live-draining': '200',
      },
    });
  }, 150_000);
});
