/**
 * The typemesh-proxy command line: --help, --version, --check, and refusing a bad config at
 * start with a message that names the field.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { cleanup, freePort, ORDER_ID, PROXY_BUNDLE, sidecarPorts, spawnSidecar, tempDir, TestPki, workloadConfig } from './harness';

const run = promisify(execFile);
jest.setTimeout(20_000);
afterAll(cleanup);

async function proxy(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [PROXY_BUNDLE, ...args], { timeout: 10_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('typemesh-proxy CLI', () => {
  let dir: string;
  let validFile: string;
  let config: ReturnType<typeof workloadConfig>;
  beforeAll(async () => {
    dir = tempDir();
    const pki = await TestPki.create(dir);
    const files = await pki.workload('order', ORDER_ID);
    config = workloadConfig({ name: 'order', identity: ORDER_ID, ports: await sidecarPorts(), tls: files, appPort: await freePort() });
    validFile = path.join(dir, 'valid.json');
    writeFileSync(validFile, JSON.stringify(config));
  });

  test('--help and --version', async () => {
    const help = await proxy(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: typemesh-proxy --config <file>');
    const version = await proxy(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^typemesh-proxy \d+\.\d+\.\d+/) });
  });

  test('usage errors exit 2', async () => {
    expect((await proxy([])).code).toBe(2);
    const unknown = await proxy(['--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown argument "--bogus"');
  });

  test('--check accepts a valid config', async () => {
    const r = await proxy(['--config', validFile, '--check']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('is valid');
  });

  test('--check and start refuse an invalid config, naming the field', async () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, JSON.stringify({ ...config, drainTimeoutMs: -5, listeners: { ...config.listeners, adminPort: 70000 } }));
    for (const args of [['--config', bad, '--check'], ['--config', bad]]) {
      const r = await proxy(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('drainTimeoutMs');
      expect(r.stderr).toContain('listeners.adminPort');
    }
  });

  test('a config file that is not YAML, or missing, is refused', async () => {
    const junk = path.join(dir, 'junk.yaml');
    writeFileSync(junk, 'a: [unclosed');
    expect(await proxy(['--config', junk])).toMatchObject({ code: 1, stderr: expect.stringContaining('not valid YAML or JSON') });
    expect(await proxy(['--config', path.join(dir, 'missing.yaml')])).toMatchObject({ code: 1, stderr: expect.stringContaining('missing.yaml') });
  });

  test('missing certificate files: the process exits 1 saying so', async () => {
    const file = path.join(dir, 'nocert.json');
    writeFileSync(file, JSON.stringify({ ...config, tls: { certFile: '/nonexistent/cert.pem', keyFile: '/nonexistent/key.pem', caFile: '/nonexistent/ca.pem' } }));
    const p = spawnSidecar(file, { outbound: 0, inbound: 0, admin: 0 });
    p.expectFailure = true;
    expect(await p.exited).toBe(1);
    expect(p.stderr.join('\n')).toContain('/nonexistent/');
  });
});
