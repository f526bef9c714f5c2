/**
 * typemesh-cni's decisions that need no root: what it answers before touching any network
 * namespace (VERSION, malformed input, bad environment, invalid pod flags), which pods it
 * considers meshed, and how CHECK compares rules. cni-plugin.test.ts runs it for real.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CniEnvironment, readCniEnvironment } from '../../src/cni/cni-protocol';
import { savedInterceptionRules, scriptInterceptionRules } from '../../src/cni/netns-rules';
import { INTERCEPTION_ARGS_ANNOTATION, meshedPod, POD_ANNOTATIONS_CAPABILITY } from '../../src/cni/pod-options';
import { runCniPlugin } from '../../src/cni/typemesh-cni';
import { generateInterceptionScript } from '../../src/proxy-image/interception';

const config = (extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'k8s', type: 'typemesh-cni', ...extra });
const env = (args = 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=order-0'): CniEnvironment => readCniEnvironment({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/nonexistent', CNI_ARGS: args });

describe('typemesh-cni without root', () => {
  it('answers VERSION in the caller\'s version when it supports it', () => {
    expect(JSON.parse(runCniPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}').stdout)).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    expect(JSON.parse(runCniPlugin({ CNI_COMMAND: 'VERSION' }, '').stdout).cniVersion).toBe('1.0.0');
  });

  it.each([
    ['no CNI_COMMAND', {}, JSON.stringify(config()), 4],
    ['an unknown CNI_COMMAND', { CNI_COMMAND: 'FROB' }, JSON.stringify(config()), 4],
    ['stdin that is not JSON', { CNI_COMMAND: 'ADD' }, '{', 6],
    ['a config without cniVersion', { CNI_COMMAND: 'ADD' }, '{"name":"k8s"}', 7],
    ['cniVersion 0.3.1 (no CHECK)', { CNI_COMMAND: 'ADD' }, JSON.stringify(config({ cniVersion: '0.3.1' })), 1],
    ['ADD without CNI_NETNS', { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c' }, JSON.stringify(config()), 4],
    ['ADD into a namespace that does not exist', { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_NETNS: '/nonexistent/netns' }, JSON.stringify(config()), 3],
  ])('refuses %s with the CNI error object and exit code 1', (_what, vars, stdin, code) => {
    const out = runCniPlugin(vars, stdin);
    expect(out.exitCode).toBe(1);
    const error = JSON.parse(out.stdout) as { code: number; msg: string };
    expect(error.code).toBe(code);
    expect(error.msg.length).toBeGreaterThan(10);
  });

  it('DEL of a namespace that is gone, STATUS and GC succeed with no output', () => {
    for (const command of ['DEL', 'STATUS', 'GC']) {
      expect(runCniPlugin({ CNI_COMMAND: command, CNI_CONTAINERID: 'c', CNI_NETNS: '/nonexistent/netns' }, JSON.stringify(config()))).toEqual({ stdout: '', exitCode: 0 });
    }
  });

  describe('which pods are meshed', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'tmcni-unit-'));
      mkdirSync(path.join(dir, 'shop'));
      writeFileSync(path.join(dir, 'shop', 'order-0'), '--app-ports 9090\n');
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const annotated = (value: unknown) => config({ runtimeConfig: { [POD_ANNOTATIONS_CAPABILITY]: { [INTERCEPTION_ARGS_ANNOTATION]: value } } });

    it('a pod with the annotation, with its flags', () => {
      const pod = meshedPod(env(), annotated('  --app-ports 8080   --outbound-ports 80,9000 '))!;
      expect(pod.pod).toBe('shop/order-0');
      expect(pod.command.options).toMatchObject({ appPorts: [8080], outboundPorts: [80, 9000] });
    });

    it('the annotation wins over the options file; the file serves when no annotation comes', () => {
      expect(meshedPod(env(), { ...annotated('--app-ports 8080'), podOptionsDir: dir })!.command.options.appPorts).toEqual([8080]);
      expect(meshedPod(env(), config({ podOptionsDir: dir }))!.command.options.appPorts).toEqual([9090]);
      expect(meshedPod(env('K8S_POD_NAMESPACE=shop;K8S_POD_NAME=other'), config({ podOptionsDir: dir }))).toBeUndefined();
    });

    it('no annotation and no file: not meshed', () => {
      expect(meshedPod(env(), config())).toBeUndefined();
      expect(meshedPod(env(), config({ runtimeConfig: { [POD_ANNOTATIONS_CAPABILITY]: { 'x/y': 'z' } } }))).toBeUndefined();
    });

    it.each([
      ['a flag typemesh-init does not know', '--app-port 8080', 'Unknown option'],
      ['an app port that is the proxy\'s', '--app-ports 15006', '15006'],
      ['uid 0 for the proxy', '--proxy-uid 0', 'proxyUid'],
      ['--clean', '--clean', '--clean'],
      ['a number', 8080, 'must be a string'],
    ])('refuses %s, naming the pod and the annotation', (_what, value, problem) => {
      let error: { code: number; message: string; details?: string } | undefined;
      try {
        meshedPod(env(), annotated(value));
      } catch (e) {
        error = e as { code: number; message: string; details?: string };
      }
      expect(error?.code).toBe(100);
      expect(error?.message).toContain('shop/order-0');
      expect(error?.message).toContain(INTERCEPTION_ARGS_ANNOTATION);
      expect(`${error?.message} ${error?.details ?? ''}`).toContain(problem);
    });

    it('refuses a relative podOptionsDir', () => {
      expect(() => meshedPod(env(), config({ podOptionsDir: 'pods' }))).toThrow(/absolute/);
    });
  });

  describe('rules as CHECK compares them', () => {
    const script = generateInterceptionScript({ appPorts: [8080], outboundPorts: [80] });

    it('reads the script\'s IPv4 and IPv6 rules apart, grouped by chain', () => {
      const v4 = scriptInterceptionRules(script, 'ipv4');
      const v6 = scriptInterceptionRules(script, 'ipv6');
      expect(v4).toContain('-A TYPEMESH_OUTPUT -p tcp --dport 80 -j TYPEMESH_REDIRECT');
      expect(v4).toContain('-A TYPEMESH_OUTPUT -d 127.0.0.1/32 -j RETURN');
      expect(v4.some((r) => r.includes('::1'))).toBe(false);
      // Chains sorted by name, each in its own order.
      const chains = v4.map((r) => r.split(' ')[1]);
      expect(chains).toEqual([...chains].sort());
      expect(v6).toContain('-A TYPEMESH_OUTPUT -d ::1/128 -j RETURN');
      expect(v6.some((r) => r.includes('127.0.0.1'))).toBe(false);
    });

    it('matches iptables-save\'s spelling (-m tcp) and ignores other chains\' rules', () => {
      const dump = [
        '*nat', ':PREROUTING ACCEPT [0:0]',
        '-A PREROUTING -p tcp -j TYPEMESH_INBOUND',
        '-A PREROUTING -p udp -j KUBE-SOMETHING',
        '-A TYPEMESH_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
        'COMMIT',
      ].join('\n');
      expect(savedInterceptionRules(dump)).toEqual(['-A PREROUTING -p tcp -j TYPEMESH_INBOUND', '-A TYPEMESH_INBOUND -p tcp --dport 15020 -j RETURN']);
    });
  });
});
