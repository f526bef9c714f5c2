import { normalizePath, PATH_REFUSAL_CODES, PathRefusalCode } from '../../src/proxy-image/authz/path';

const DEFAULTS = { mergeSlashes: true, rejectEncodedSlashes: true };
const NO_MERGE = { mergeSlashes: false, rejectEncodedSlashes: true };
const KEEP_SLASHES = { mergeSlashes: true, rejectEncodedSlashes: false };

describe('normalizePath with the defaults (merge slashes, reject encoded slashes)', () => {
  // [raw request-target, normalized]
  const normalized: Array<[string, string]> = [
    ['/', '/'],
    ['/process', '/process'],
    ['/index.html', '/index.html'],
    ['/a.b/c.d', '/a.b/c.d'],
    ['/process/../admin', '/admin'],
    ['/process/..', '/'],
    ['/process/../', '/'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/c/./../../g', '/a/g'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/a/./b', '/a/b'],
    ['/./a', '/a'],
    ['/.', '/'],
    ['/..', '/'],
    ['/../admin', '/admin'],
    ['/../../../admin', '/admin'],
    ['/%2e%2e/admin', '/admin'],
    ['/%2e%2E/', '/'],
    ['/%2E%2e/admin', '/admin'],
    ['/.%2e/admin', '/admin'],
    ['/process/%2e%2e/admin', '/admin'],
    ['/process/%2e/admin', '/process/admin'],
    ['/%2e/admin', '/admin'],
    ['//admin', '/admin'],
    ['///admin', '/admin'],
    ['/a//b', '/a/b'],
    ['/a///b//', '/a/b/'],
    ['//', '/'],
    ['/a//../b', '/b'],
    ['/%41', '/A'],
    ['/%61%62c', '/abc'],
    ['/%30%39', '/09'],
    ['/%2d%5f%7e', '/-_~'],
    ['/%7E', '/~'],
    ['/a%20b', '/a%20b'],
    ['/a%3fb', '/a%3Fb'],
    ['/a%3Fb', '/a%3Fb'],
    ['/%e2%82%ac', '/%E2%82%AC'],
    ['/%252e%252e/admin', '/%252e%252e/admin'], // decoded once: %25 stays %25
    ['/%25', '/%25'],
    ['/..%2eadmin', '/...admin'], // "...admin" is a name, not a dot-segment
    ['/...', '/...'],
    ['/..a/b', '/..a/b'],
    ['/.well-known/x', '/.well-known/x'],
    ['/a?x=../y', '/a?x=../y'],
    ['/a/../b?x=../y', '/b?x=../y'],
    ['/a/../b?x=%2e%2e&y=%2F', '/b?x=%2e%2e&y=%2F'],
    ['/?', '/?'],
    ['/a?', '/a?'],
    ['/a//b?q=//', '/a/b?q=//'],
    ['/caf\u00e9', '/caf\u00e9'],
  ];
  it.each(normalized)('%s -> %s', (raw, expected) => {
    expect(normalizePath(raw, DEFAULTS)).toEqual({ ok: true, path: expected });
  });

  // [raw request-target, refusal code]
  const refused: Array<[string, PathRefusalCode]> = [
    ['', 'not-origin-form'],
    ['admin', 'not-origin-form'],
    ['*', 'not-origin-form'],
    ['http://evil/admin', 'not-origin-form'],
    ['?x=1', 'not-origin-form'],
    ['/a/%2F/b', 'encoded-slash'],
    ['/a/%2f/b', 'encoded-slash'],
    ['/a%2fb', 'encoded-slash'],
    ['/a%5cb', 'encoded-slash'],
    ['/a%5Cb', 'encoded-slash'],
    ['/process/..%2fadmin', 'encoded-slash'],
    ['/a\\b', 'backslash'],
    ['/process\\..\\admin', 'backslash'],
    ['/a\u0000b', 'control-character'],
    ['/a\nb', 'control-character'],
    ['/a\rb', 'control-character'],
    ['/a\tb', 'control-character'],
    ['/a\u007fb', 'control-character'],
    ['/a?x=\u0001', 'control-character'],
    ['/a#frag', 'fragment'],
    ['/a?x=1#frag', 'fragment'],
    ['/a%', 'bad-percent-encoding'],
    ['/a%2', 'bad-percent-encoding'],
    ['/a%zz', 'bad-percent-encoding'],
    ['/a%2?x', 'bad-percent-encoding'],
    ['/a%00b', 'encoded-nul'],
  ];
  it.each(refused)('%j is refused (%s)', (raw, code) => {
    const result = normalizePath(raw, DEFAULTS);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason.startsWith(`${code}: `)).toBe(true);
  });

  it('lists every refusal code it can return', () => {
    const seen = new Set(refused.map(([, code]) => code));
    expect([...seen].sort()).toEqual([...PATH_REFUSAL_CODES].sort());
  });

  it('returns the input string itself on the fast path', () => {
    const raw = '/api/v1/orders?id=42&x=a.b';
    const result = normalizePath(raw, DEFAULTS);
    expect(result.ok && result.path).toBe(raw);
  });

  it('is idempotent: normalizing a normalized path changes nothing', () => {
    for (const [raw] of normalized) {
      const once = normalizePath(raw, DEFAULTS);
      if (!once.ok) throw new Error(`${raw} was refused`);
      expect(normalizePath(once.path, DEFAULTS)).toEqual(once);
    }
  });
});

describe('normalizePath without merging slashes', () => {
  const cases: Array<[string, string]> = [
    ['//admin', '//admin'],
    ['/a//b', '/a//b'],
    ['/a//../b', '/a/b'], // RFC 3986: the empty segment is a segment
    ['/process/../admin', '/admin'],
    ['/%2e%2e/admin', '/admin'],
    ['//..', '/'],
  ];
  it.each(cases)('%s -> %s', (raw, expected) => {
    expect(normalizePath(raw, NO_MERGE)).toEqual({ ok: true, path: expected });
  });
});

describe('normalizePath keeping encoded slashes (rejectEncodedSlashes false)', () => {
  const cases: Array<[string, string]> = [
    ['/a/%2f/b', '/a/%2F/b'],
    ['/a%5cb', '/a%5Cb'],
    ['/process/..%2fadmin', '/process/..%2Fadmin'], // one segment: not a dot-segment
    ['/a\\b', '/a/b'],
    ['/process\\..\\admin', '/admin'],
  ];
  it.each(cases)('%s -> %s', (raw, expected) => {
    expect(normalizePath(raw, KEEP_SLASHES)).toEqual({ ok: true, path: expected });
  });
});
