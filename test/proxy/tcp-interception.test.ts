/**
 * typemesh-init's part of meshed TCP: outbound TCP to a TCP service's port is redirected to that
 * service's own proxy listener (the proxy cannot read SO_ORIGINAL_DST, so the listener names the
 * service), ahead of the HTTP catch-all and after the proxy's own and loopback traffic.
 */
import { generateInterceptionScript, InterceptionOptionsError, parseInterceptionArgs, resolveInterceptionOptions } from '../../src/proxy-image/interception';

/** The OUTPUT-side rules of the IPv4 part, in order. */
function outputRules(script: string): string[] {
  return script.split('\n').filter((l) => l.startsWith('iptables ') && l.includes(' -A TYPEMESH_OUTPUT '));
}

describe('TCP service redirects', () => {
  test('each TCP service port goes to its own listener, after the uid and loopback returns and before the catch-all', () => {
    const rules = outputRules(generateInterceptionScript({ tcpRedirects: [{ port: 6379, listenerPort: 15102 }, { port: 5432, listenerPort: 15101 }] }));
    const at = (needle: string): number => rules.findIndex((r) => r.includes(needle));
    expect(rules).toContain('iptables -w -t nat -A TYPEMESH_OUTPUT -p tcp --dport 5432 -j REDIRECT --to-ports 15101');
    expect(rules).toContain('iptables -w -t nat -A TYPEMESH_OUTPUT -p tcp --dport 6379 -j REDIRECT --to-ports 15102');
    expect(at('--uid-owner')).toBeLessThan(at('--dport 5432'));
    expect(at('-d 127.0.0.1/32') >= 0 ? at('-d 127.0.0.1/32') : at('-d 127.')).toBeLessThan(at('--dport 5432'));
    expect(at('--dport 6379')).toBeLessThan(at('-j TYPEMESH_REDIRECT'));
  });

  test('IPv6 gets the same redirects', () => {
    const script = generateInterceptionScript({ tcpRedirects: [{ port: 5432, listenerPort: 15101 }] });
    expect(script.split('\n').some((l) => l.trim().startsWith('ip6tables ') && l.includes('--dport 5432 -j REDIRECT --to-ports 15101'))).toBe(true);
  });

  test('--tcp-redirects parses PORT:LISTENER pairs and refuses anything else, naming the flag', () => {
    expect(parseInterceptionArgs(['--tcp-redirects', '5432:15101, 6379:15102']).options.tcpRedirects).toEqual([{ port: 5432, listenerPort: 15101 }, { port: 6379, listenerPort: 15102 }]);
    expect(() => parseInterceptionArgs(['--tcp-redirects', '5432'])).toThrow(/--tcp-redirects expects PORT:LISTENER pairs such as 5432:15101, got "5432"/);
  });

  test('a redirect to a proxy port, of an excluded port, or of one port to two listeners is refused', () => {
    const problems = (tcpRedirects: Array<{ port: number; listenerPort: number }>, extra: object = {}): string => {
      try {
        resolveInterceptionOptions({ tcpRedirects, ...extra });
      } catch (e) {
        expect(e).toBeInstanceOf(InterceptionOptionsError);
        return (e as Error).message;
      }
      return '';
    };
    expect(problems([{ port: 5432, listenerPort: 15001 }])).toMatch(/sends port 5432 to 15001, which is the proxy's outboundPort/);
    expect(problems([{ port: 5432, listenerPort: 15101 }], { excludeOutboundPorts: [5432] })).toMatch(/tcpRedirects and excludeOutboundPorts both contain 5432/);
    expect(problems([{ port: 5432, listenerPort: 15101 }, { port: 5432, listenerPort: 15102 }])).toMatch(/sends port 5432 to both 15101 and 15102/);
    expect(problems([{ port: 5432, listenerPort: 15101 }], { captureOutbound: false })).toMatch(/captureOutbound is false but tcpRedirects lists port 5432/);
    expect(problems([{ port: 5432, listenerPort: 15101 }])).toBe('');
  });
});
