/**
 * Normalizes an inbound request-target once, before authorization and before forwarding,
 * so that the path the authorizer judges is byte for byte the path the app receives.
 * Without this, `/public/../admin` or `/%2e%2e/admin` pass an ALLOW rule on `/public/*`
 * and the app resolves them to `/admin` (the class of Istio's CVE-2021-31920 and
 * CVE-2021-39156). docs/security.md describes the rules and why each exists.
 */

/** How a path is normalized (inbound.pathNormalization in the sidecar config). */
export interface PathNormalizationOptions {
  /**
   * Merge runs of '/' into one ("//admin" becomes "/admin"), as most web frameworks and
   * file systems do, so that a rule on "/admin" cannot be skipped with "//admin".
   * @default true (in the sidecar config)
   */
  readonly mergeSlashes: boolean;
  /**
   * Refuse %2F, %5C and raw backslashes instead of passing them on: apps disagree on
   * whether they separate segments, so no single normalized form is safe to authorize.
   * @default true (in the sidecar config)
   */
  readonly rejectEncodedSlashes: boolean;
  /**
   * DENY rules also match the path as an app that folds paths reads it ({@link foldPathForDeny}):
   * `/ADMIN`, `/admin;x`, `/admin.` and `/admin%20` are denied by a rule on `/admin`.
   * @default true (in the sidecar config)
   */
  readonly foldForDenyRules?: boolean;
}

/**
 * Percent-encoded whitespace (normalizePath has upper-cased the hex): space, tab, LF, VT, FF, CR.
 * Apps that trim segments (Java's String.trim, IIS) drop them.
 */
const ENCODED_WHITESPACE = /%(?:20|09|0A|0B|0C|0D)/g;
const TRAILING_DOTS_AND_SPACE = /[.\s]+$/;

/**
 * The form an app that folds paths would read a normalized path as, for DENY rules
 * (inbound.pathNormalization.foldForDenyRules): each segment loses its `;params` (Tomcat,
 * Spring), surrounding whitespace and trailing dots (IIS, Windows file names), and is
 * lower-cased (case-insensitive servers); then slashes are merged and dot-segments removed
 * again (`/x/..;/admin` is `/admin`). Only ever used to make a DENY match more, never an ALLOW,
 * so it cannot widen what is allowed. Returns the path itself when there is nothing to fold.
 */
export function foldPathForDeny(path: string): string {
  let needsWork = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || c === 0x3b /* ; */ || c === PERCENT || c === 0x20 || (c === DOT && (i + 1 === path.length || path.charCodeAt(i + 1) === SLASH))) {
      needsWork = true;
      break;
    }
  }
  if (!needsWork) return path;
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    let s = segments[i];
    const semi = s.indexOf(';');
    if (semi >= 0) s = s.slice(0, semi);
    if (s.includes('%')) s = s.replace(ENCODED_WHITESPACE, ' ');
    s = s.trim();
    if (s !== '.' && s !== '..') s = s.replace(TRAILING_DOTS_AND_SPACE, '');
    segments[i] = s.toLowerCase();
  }
  return removeDotSegments(segments.join('/'), true);
}

/** The result of normalizePath: the normalized request-target, or why it was refused. */
export type NormalizedPath = { ok: true; path: string } | { ok: false; reason: string };

/**
 * The codes a refusal's reason starts with ("<code>: <detail>"). The proxy answers every
 * refusal with 400 Bad Request; docs/security.md lists what each code means.
 */
export const PATH_REFUSAL_CODES = [
  'not-origin-form',
  'control-character',
  'fragment',
  'bad-percent-encoding',
  'encoded-nul',
  'encoded-slash',
  'backslash',
] as const;

/** One of PATH_REFUSAL_CODES. */
export type PathRefusalCode = (typeof PATH_REFUSAL_CODES)[number];

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const QUESTION = 0x3f;
const HASH = 0x23;
const DEL = 0x7f;

// Shared refusal results: a refusal allocates nothing.
const refusals: Record<PathRefusalCode, { ok: false; reason: string }> = {
  'not-origin-form': refusal('not-origin-form', "the request-target must be a path starting with '/'"),
  'control-character': refusal('control-character', 'the request-target contains a NUL or control character'),
  'fragment': refusal('fragment', "the request-target contains '#' (a fragment is never sent to a server)"),
  'bad-percent-encoding': refusal('bad-percent-encoding', "'%' is not followed by two hexadecimal digits"),
  'encoded-nul': refusal('encoded-nul', 'the path contains %00'),
  'encoded-slash': refusal('encoded-slash', 'the path contains %2F or %5C (inbound.pathNormalization.rejectEncodedSlashes is true)'),
  'backslash': refusal('backslash', "the path contains '\\' (inbound.pathNormalization.rejectEncodedSlashes is true)"),
};

function refusal(code: PathRefusalCode, detail: string): { ok: false; reason: string } {
  return Object.freeze({ ok: false as const, reason: `${code}: ${detail}` });
}

/**
 * Normalizes a request-target as received (origin-form: a path, optionally '?' and a
 * query). The query is kept exactly as received; only the path is normalized:
 *
 * 1. refuse a target that does not start with '/', has a control character, or a '#';
 * 2. decode percent-encoded unreserved characters (ALPHA DIGIT - . _ ~), so `%2e%2e` is
 *    `..` BEFORE dot-segments are removed; upper-case the hex of every other encoding;
 *    refuse a '%' without two hex digits and %00; refuse %2F / %5C / '\' when
 *    rejectEncodedSlashes (when it is false, %2F and %5C stay encoded, '\' becomes '/');
 * 3. merge runs of '/' when mergeSlashes (before step 4, so `..` climbs the same segments a
 *    file system would: `/a//../b` is `/b`);
 * 4. remove dot-segments (RFC 3986 section 5.2.4); `..` above the root stays at the root
 *    (`/../admin` is `/admin`), as RFC 3986 and Envoy do.
 *
 * Fast path: a path without '%', '\', a segment starting with '.', or '//' (when merging) is
 * returned as is after one scan.
 */
export function normalizePath(rawPath: string, opts: PathNormalizationOptions): NormalizedPath {
  const len = rawPath.length;
  if (len === 0 || rawPath.charCodeAt(0) !== SLASH) return refusals['not-origin-form'];

  // One scan: find the end of the path, refuse what is never valid, and note whether the
  // path needs the slow path at all.
  let pathEnd = len;
  let needsWork = false;
  let prev = 0;
  for (let i = 0; i < len; i++) {
    const c = rawPath.charCodeAt(i);
    if (c < 0x20 || c === DEL) return refusals['control-character'];
    if (c === HASH) return refusals.fragment;
    if (pathEnd !== len) continue; // in the query: only the checks above apply
    if (c === QUESTION) {
      pathEnd = i;
    } else if (c === PERCENT || c === BACKSLASH) {
      needsWork = true;
    } else if (prev === SLASH && (c === DOT || (c === SLASH && opts.mergeSlashes))) {
      needsWork = true;
    }
    prev = c;
  }
  if (!needsWork) return { ok: true, path: rawPath };

  const decoded = decodePath(rawPath, pathEnd, opts.rejectEncodedSlashes);
  if (typeof decoded !== 'string') return decoded;
  const path = removeDotSegments(decoded, opts.mergeSlashes);
  return { ok: true, path: pathEnd === len ? path : path + rawPath.slice(pathEnd) };
}

/**
 * Percent-decodes unreserved characters of rawPath[0, end), upper-cases the hex of the
 * others, and handles backslashes. Returns the refusal when the path must be refused.
 */
function decodePath(rawPath: string, end: number, rejectEncodedSlashes: boolean): string | { ok: false; reason: string } {
  let out = '';
  let copiedUpTo = 0;
  for (let i = 0; i < end; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === BACKSLASH) {
      if (rejectEncodedSlashes) return refusals.backslash;
      // Kept paths must not let '\' act as a separator in the app after we judged it as
      // part of a segment, so it becomes the '/' that Envoy and browsers make of it.
      out += rawPath.slice(copiedUpTo, i) + '/';
      copiedUpTo = i + 1;
      continue;
    }
    if (c !== PERCENT) continue;
    const hi = hexValue(i + 1 < end ? rawPath.charCodeAt(i + 1) : -1);
    const lo = hexValue(i + 2 < end ? rawPath.charCodeAt(i + 2) : -1);
    if (hi < 0 || lo < 0) return refusals['bad-percent-encoding'];
    const byte = hi * 16 + lo;
    if (byte === 0) return refusals['encoded-nul'];
    if ((byte === SLASH || byte === BACKSLASH) && rejectEncodedSlashes) return refusals['encoded-slash'];
    out += rawPath.slice(copiedUpTo, i) + (isUnreserved(byte) ? String.fromCharCode(byte) : '%' + HEX[hi] + HEX[lo]);
    copiedUpTo = i + 3;
    i += 2;
  }
  return copiedUpTo === 0 ? rawPath.slice(0, end) : out + rawPath.slice(copiedUpTo, end);
}

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39)
    || b === 0x2d || b === DOT || b === 0x5f || b === 0x7e;
}

/**
 * RFC 3986 5.2.4 on an absolute path, written over segments: '.' is dropped, '..' drops the
 * previous segment (never climbing above the root), and a path ending in '.' or '..' keeps
 * a trailing '/'. With mergeSlashes, empty segments (from '//') are dropped first, except
 * the trailing one that a final '/' makes.
 */
function removeDotSegments(path: string, mergeSlashes: boolean): string {
  const input = path.split('/'); // input[0] is '' (the path starts with '/')
  const out: string[] = [];
  const last = input.length - 1;
  let trailingSlash = false;
  for (let i = 1; i <= last; i++) {
    const seg = input[i];
    trailingSlash = false;
    if (seg === '.') {
      trailingSlash = i === last;
    } else if (seg === '..') {
      out.pop();
      trailingSlash = i === last;
    } else if (seg === '' && mergeSlashes && i !== last) {
      // '//' merged: an empty segment in the middle is dropped.
    } else {
      out.push(seg);
    }
  }
  if (trailingSlash && out.length > 0 && out[out.length - 1] !== '') out.push('');
  return '/' + out.join('/');
}
