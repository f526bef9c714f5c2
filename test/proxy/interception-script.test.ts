import { SidecarConfigSchema, type SidecarConfigInput } from '../../src/config/schema';
import {
  generateInterceptionScript,
  interceptionArgsFor,
  InterceptionOptionsError,
  parseInterceptionArgs,
  resolveInterceptionOptions,
} from '../../src/proxy-image/interception';

/** The iptables commands of a script (comments, blank lines and cleanup left out). */
function rules(script: string): string[] {
  return script.split('\n').filter((l) => l.startsWith('iptables ') && / -[AN] /.test(l));
}

describe('generateInterceptionScript', () => {
  const script = generateInterceptionScript({
    appPorts: [8443, 8080],
    outboundPorts: [80, 8080, 80],
    excludeInboundPorts: [22],
    excludeOutboundPorts: [5432],
    excludeOutboundCidrs: ['169.254.169.254'],
  });

  it('matches the reviewed snapshot', () => {
    expect(script).toMatchSnapshot();
  });

  it('is a POSIX sh script that stops at the first failing command', () => {
    expect(script.startsWith('#!/bin/sh\n')).toBe(true);
    expect(script).toContain('\nset -e\n');
    expect(script).not.toMatch(/\[\[|\bfunction\b|\$\(\(/); // no bashisms
  });

  it('creates its four chains in the nat table and jumps to them from PREROUTING and OUTPUT', () => {
    const r = rules(script);
    for (const chain of ['TYPEMESH_INBOUND', 'TYPEMESH_REDIRECT', 'TYPEMESH_IN_REDIRECT', 'TYPEMESH_OUTPUT']) {
      expect(r).toContain(`iptables -w -t nat -N ${chain}`);
    }
    expect(r).toContain('iptables -w -t nat -A PREROUTING -p tcp -j TYPEMESH_INBOUND');
    expect(r).toContain('iptables -w -t nat -A OUTPUT -p tcp -j TYPEMESH_OUTPUT');
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001');
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006');
    expect(r.every((l) => l.startsWith('iptables -w -t nat '))).toBe(true);
  });

  it('never captures the proxy uid or 127.0.0.1, and checks them before any redirect', () => {
    const out = rules(script).filter((l) => l.includes('-A TYPEMESH_OUTPUT'));
    expect(out[0]).toBe('iptables -w -t nat -A TYPEMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN');
    expect(out[1]).toBe('iptables -w -t nat -A TYPEMESH_OUTPUT -d 127.0.0.1/32 -j RETURN');
    const firstRedirect = out.findIndex((l) => l.endsWith('-j TYPEMESH_REDIRECT'));
    const lastReturn = out.map((l) => l.endsWith('-j RETURN')).lastIndexOf(true);
    expect(lastReturn).toBeLessThan(firstRedirect);
    expect(out).toContain('iptables -w -t nat -A TYPEMESH_OUTPUT -d 169.254.169.254/32 -j RETURN');
    expect(out).toContain('iptables -w -t nat -A TYPEMESH_OUTPUT -p tcp --dport 5432 -j RETURN');
  });

  it('captures outbound only to the listed ports, each once, in order', () => {
    const redirects = rules(script).filter((l) => l.endsWith('-j TYPEMESH_REDIRECT'));
    expect(redirects).toEqual([
      'iptables -w -t nat -A TYPEMESH_OUTPUT -p tcp --dport 80 -j TYPEMESH_REDIRECT',
      'iptables -w -t nat -A TYPEMESH_OUTPUT -p tcp --dport 8080 -j TYPEMESH_REDIRECT',
    ]);
  });

  it('captures every inbound port but the admin port, the inbound port and the excluded ones', () => {
    const inbound = rules(script).filter((l) => l.includes('-A TYPEMESH_INBOUND'));
    expect(inbound).toEqual([
      'iptables -w -t nat -A TYPEMESH_INBOUND -p tcp --dport 15020 -j RETURN',
      'iptables -w -t nat -A TYPEMESH_INBOUND -p tcp --dport 15006 -j RETURN',
      'iptables -w -t nat -A TYPEMESH_INBOUND -p tcp --dport 22 -j RETURN',
      // Undeclared app ports (9999, say) are captured too: nothing reaches the app directly.
      'iptables -w -t nat -A TYPEMESH_INBOUND -p tcp -j TYPEMESH_IN_REDIRECT',
    ]);
  });

  it('never returns inbound traffic to the outbound port: from outside it lands on the mTLS listener', () => {
    for (const opts of [{}, { appPorts: [8080] }, { outboundPort: 16001, excludeInboundPorts: [22] }]) {
      const text = generateInterceptionScript(opts);
      const outboundPort = (opts as { outboundPort?: number }).outboundPort ?? 15001;
      expect(text).not.toContain(`--dport ${outboundPort} -j RETURN`);
      expect(text).toContain('-A TYPEMESH_INBOUND -p tcp -j TYPEMESH_IN_REDIRECT');
    }
  });

  it('writes the same chains for IPv6 with ip6tables, required where the kernel has IPv6', () => {
    const v6 = script.split('\n').filter((l) => l.startsWith('  ip6tables ') && / -[AN] /.test(l)).map((l) => l.trim());
    // Every IPv4 rule has its IPv6 twin, with the IPv6 loopback and only the IPv6 exclusions.
    const expected = rules(script).map((l) => l.replace(/^iptables /, 'ip6tables ').replace('-d 127.0.0.1/32', '-d ::1/128'))
      .filter((l) => !l.includes('169.254.169.254'));
    expect(v6).toEqual(expected);
    const lines = script.split('\n');
    const ifLine = lines.indexOf('if [ -e /proc/net/if_inet6 ]; then');
    expect(ifLine).toBeGreaterThan(0);
    expect(lines.slice(ifLine + 1).every((l) => l === '' || l === 'fi' || l.startsWith('  '))).toBe(true);
    // No "|| true" on an install line: under set -e a failing ip6tables fails the init container.
    expect(lines.slice(ifLine).filter((l) => l.includes('|| true'))).toEqual([]);
  });

  it('puts each excluded CIDR in its own family\'s rules', () => {
    const text = generateInterceptionScript({ excludeOutboundCidrs: ['10.0.0.0/8', 'FD00:EC2::254'] });
    expect(text).toContain('\niptables -w -t nat -A TYPEMESH_OUTPUT -d 10.0.0.0/8 -j RETURN');
    expect(text).toContain('\n  ip6tables -w -t nat -A TYPEMESH_OUTPUT -d fd00:ec2::254/128 -j RETURN');
    expect(text).not.toContain('iptables -w -t nat -A TYPEMESH_OUTPUT -d fd00');
    expect(text).not.toContain('ip6tables -w -t nat -A TYPEMESH_OUTPUT -d 10.');
  });

  it('falls back to a writable lock file for iptables-legacy on a read-only root', () => {
    expect(script).toContain('if [ -z "${XTABLES_LOCKFILE:-}" ] && ! ( : >>/run/xtables.lock ) 2>/dev/null; then');
    expect(script.indexOf('XTABLES_LOCKFILE')).toBeLessThan(script.indexOf('iptables -w'));
  });

  it('captures all TCP when no ports are listed', () => {
    const r = rules(generateInterceptionScript({}));
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_OUTPUT -p tcp -j TYPEMESH_REDIRECT');
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_INBOUND -p tcp -j TYPEMESH_IN_REDIRECT');
  });

  it('leaves outbound alone when outbound capture is off', () => {
    const r = rules(generateInterceptionScript({ appPorts: [8080], captureOutbound: false }));
    expect(r.filter((l) => l.includes('OUTPUT'))).toEqual(['iptables -w -t nat -N TYPEMESH_OUTPUT']);
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_INBOUND -p tcp -j TYPEMESH_IN_REDIRECT');
  });

  it('uses the given uid and ports', () => {
    const r = rules(generateInterceptionScript({ proxyUid: 2000, outboundPort: 16001, inboundPort: 16006, adminPort: 16020, appPorts: [9000] }));
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_OUTPUT -m owner --uid-owner 2000 -j RETURN');
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_REDIRECT -p tcp -j REDIRECT --to-ports 16001');
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006');
    expect(r).toContain('iptables -w -t nat -A TYPEMESH_INBOUND -p tcp --dport 16020 -j RETURN');
  });

  it('removes earlier rules first (idempotent) and only removes them with clean', () => {
    const cleanup = [
      'while iptables -w -t nat -D PREROUTING -p tcp -j TYPEMESH_INBOUND 2>/dev/null; do :; done',
      'while iptables -w -t nat -D OUTPUT -p tcp -j TYPEMESH_OUTPUT 2>/dev/null; do :; done',
      'iptables -w -t nat -X TYPEMESH_OUTPUT 2>/dev/null || true',
      'while ip6tables -w -t nat -D PREROUTING -p tcp -j TYPEMESH_INBOUND 2>/dev/null; do :; done',
      'ip6tables -w -t nat -X TYPEMESH_OUTPUT 2>/dev/null || true',
    ];
    for (const line of cleanup) expect(script).toContain(line);
    const clean = generateInterceptionScript({ appPorts: [8080] }, { clean: true });
    for (const line of cleanup) expect(clean).toContain(line);
    expect(rules(clean)).toEqual([]);
    expect(clean).not.toMatch(/ip6tables -w -t nat -[AN] /);
    // Cleanup runs before the first chain is created.
    expect(script.indexOf(cleanup[0])).toBeLessThan(script.indexOf('-N TYPEMESH_INBOUND'));
  });

  it('is deterministic', () => {
    expect(generateInterceptionScript({ appPorts: [8080, 8443] })).toBe(generateInterceptionScript({ appPorts: [8443, 8080, 8080] }));
  });
});

describe('interception option validation', () => {
  const bad: Array<[string, Parameters<typeof resolveInterceptionOptions>[0], string]> = [
    ['port 0', { appPorts: [0] }, 'appPorts must list integer ports from 1 to 65535, got 0'],
    ['port too high', { outboundPorts: [65536] }, 'outboundPorts must list integer ports from 1 to 65535, got 65536'],
    ['fractional port', { excludeInboundPorts: [80.5] }, 'excludeInboundPorts must list integer ports from 1 to 65535, got 80.5'],
    ['bad listener port', { inboundPort: -1 }, 'inboundPort must be an integer port from 1 to 65535, got -1'],
    ['fractional uid', { proxyUid: 1.5 }, 'proxyUid must be a non-negative integer uid, got 1.5'],
    ['root uid', { proxyUid: 0 }, 'proxyUid must not be 0'],
    ['same listener ports', { inboundPort: 15001 }, 'must be three different ports'],
    ['app port on a proxy port', { appPorts: [15020] }, "appPorts contains 15020, which is the proxy's adminPort"],
    ['app port excluded', { appPorts: [8080], excludeInboundPorts: [8080] }, 'appPorts and excludeInboundPorts both contain 8080'],
    ['outbound port excluded', { outboundPorts: [80], excludeOutboundPorts: [80] }, 'outboundPorts and excludeOutboundPorts both contain 80'],
    ['ports without capture', { outboundPorts: [80], captureOutbound: false }, 'captureOutbound is false but outboundPorts lists 80'],
    ['outbound port excluded inbound', { excludeInboundPorts: [15001] }, "excludeInboundPorts contains 15001, the proxy's outboundPort"],
    ['bad IPv6 cidr', { excludeOutboundCidrs: ['fd00::/129'] }, 'excludeOutboundCidrs contains "fd00::/129", which is not an IPv4 or IPv6 address or CIDR'],
    ['not an IPv6 address', { excludeOutboundCidrs: ['fd00:::1'] }, 'excludeOutboundCidrs contains "fd00:::1"'],
    ['bad octet', { excludeOutboundCidrs: ['10.0.0.256/32'] }, 'excludeOutboundCidrs contains "10.0.0.256/32"'],
    ['bad prefix', { excludeOutboundCidrs: ['10.0.0.0/33'] }, 'excludeOutboundCidrs contains "10.0.0.0/33"'],
    ['shell injection', { excludeOutboundCidrs: ['1.2.3.4; reboot'] }, 'excludeOutboundCidrs contains "1.2.3.4; reboot"'],
  ];
  it.each(bad)('%s', (_title, opts, message) => {
    expect(() => generateInterceptionScript(opts)).toThrow(InterceptionOptionsError);
    expect(() => generateInterceptionScript(opts)).toThrow(message);
  });

  it('reports every problem at once', () => {
    expect(() => resolveInterceptionOptions({ appPorts: [0], proxyUid: -3 })).toThrow(/proxyUid[\s\S]*appPorts/);
  });

  it('fills in defaults and canonicalizes', () => {
    expect(resolveInterceptionOptions({ excludeOutboundCidrs: ['169.254.169.254', '169.254.169.254/32'] })).toEqual({
      proxyUid: 1337, outboundPort: 15001, inboundPort: 15006, adminPort: 15020,
      appPorts: [], outboundPorts: [], captureOutbound: true,
      excludeInboundPorts: [], excludeOutboundPorts: [], excludeOutboundCidrs: ['169.254.169.254/32'], tcpRedirects: [],
    });
  });
});

describe('parseInterceptionArgs', () => {
  it('maps every flag to its option', () => {
    expect(parseInterceptionArgs([
      '--app-ports', '8080,8443', '--outbound-ports', '80, 8080', '--proxy-uid', '1337',
      '--outbound-port', '15001', '--inbound-port', '15006', '--admin-port', '15020',
      '--exclude-inbound-ports', '22', '--exclude-outbound-ports', '5432', '--exclude-outbound-cidrs', '169.254.169.254/32',
      '--dry-run', '--clean',
    ])).toEqual({
      options: {
        appPorts: [8080, 8443], outboundPorts: [80, 8080], captureOutbound: undefined, proxyUid: 1337,
        outboundPort: 15001, inboundPort: 15006, adminPort: 15020,
        excludeInboundPorts: [22], excludeOutboundPorts: [5432], excludeOutboundCidrs: ['169.254.169.254/32'],
      },
      dryRun: true, clean: true, help: false,
    });
    expect(parseInterceptionArgs(['--no-outbound-capture']).options.captureOutbound).toBe(false);
    expect(parseInterceptionArgs(['-h']).help).toBe(true);
  });

  it('refuses unknown flags and non-numbers, naming them', () => {
    expect(() => parseInterceptionArgs(['--app-port', '8080'])).toThrow(/--app-port/);
    expect(() => parseInterceptionArgs(['--app-ports', '80x'])).toThrow('--app-ports expects a number, got "80x"');
    expect(() => parseInterceptionArgs(['--proxy-uid=-1'])).toThrow('--proxy-uid expects a number, got "-1"');
  });
});

describe('interceptionArgsFor', () => {
  const base: SidecarConfigInput = {
    apiVersion: 'typemesh.io/v1alpha1',
    kind: 'SidecarConfig',
    workload: {
      name: 'order', namespace: 'shop', version: 'v1', serviceAccount: 'order',
      identity: 'spiffe://cluster.local/ns/shop/sa/order', trustDomain: 'cluster.local',
      appPorts: [{ name: 'http', port: 8080 }, { name: 'https', port: 8443 }, { name: 'dup', port: 8080 }],
    },
    tls: { certFile: '/var/run/typemesh/tls.crt', keyFile: '/var/run/typemesh/tls.key', caFile: '/var/run/typemesh/ca.crt' },
    inbound: { app: { port: 8080 } },
  };
  const payment = {
    name: 'payment', namespace: 'shop', hosts: ['payment', 'payment.shop.svc.cluster.local'], port: 80,
    subsets: [
      { name: 'v1', identity: 'spiffe://cluster.local/ns/shop/sa/payment', discovery: { type: 'dns', hostname: 'payment-v1.shop.svc.cluster.local', port: 9000 } },
      { name: 'v2', identity: 'spiffe://cluster.local/ns/shop/sa/payment', discovery: { type: 'static', endpoints: [{ address: '127.0.0.5', port: 9001 }, { address: '127.0.0.6', port: 15006 }] } },
    ],
    routes: [{ name: 'default', destinations: [{ subset: 'v1', weight: 50 }, { subset: 'v2', weight: 50 }] }],
  };

  it('captures the app ports inbound and the mesh ports outbound', () => {
    const config = SidecarConfigSchema.parse({ ...base, outbound: { services: [payment] } });
    const args = interceptionArgsFor(config);
    expect(args).toEqual([
      '--proxy-uid', '1337', '--outbound-port', '15001', '--inbound-port', '15006', '--admin-port', '15020',
      '--app-ports', '8080,8443', '--outbound-ports', '80,9000,9001',
    ]);
    // The arguments round-trip through the CLI parser into a valid script.
    const script = generateInterceptionScript(parseInterceptionArgs(args).options);
    expect(script).toContain('-A TYPEMESH_OUTPUT -p tcp --dport 9001 -j TYPEMESH_REDIRECT');
    expect(script).toContain('-A TYPEMESH_INBOUND -p tcp -j TYPEMESH_IN_REDIRECT');
  });

  it('turns outbound capture off for a workload that calls no mesh service', () => {
    const args = interceptionArgsFor(SidecarConfigSchema.parse(base));
    expect(args).toContain('--no-outbound-capture');
    expect(args).not.toContain('--outbound-ports');
  });

  it('uses the listener ports of the config', () => {
    const config = SidecarConfigSchema.parse({ ...base, listeners: { outboundPort: 16001, inboundPort: 16006, adminPort: 16020 } });
    expect(interceptionArgsFor(config).slice(0, 8)).toEqual(['--proxy-uid', '1337', '--outbound-port', '16001', '--inbound-port', '16006', '--admin-port', '16020']);
  });
});
