/**
 * Inbound authorization with Istio's AuthorizationPolicy semantics: DENY rules first (any
 * match denies), then, when at least one ALLOW rule exists, the request must match one
 * (deny by default once a policy selects the workload); with no rules at all, allow.
 * Everything is compiled in the constructor so that decide(), on the hot path of every
 * inbound request, only does Set look-ups, prefix compares and precompiled RegExp tests,
 * and returns a precomputed, frozen decision (no allocation).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { namespaceOfSpiffeId } from '../../config/identity';
import type { AuthorizationRule, HeaderMatch } from '../../config/schema';
import { foldPathForDeny } from './path';

/** What the authorizer looks at. */
export interface AuthorizationRequest {
  /** The peer's SPIFFE ID from its mTLS certificate; undefined for plaintext (PERMISSIVE). */
  readonly principal?: string;
  /** The method as received (HTTP methods are case-sensitive: "get" is not "GET"). */
  readonly method: string;
  /** The path as returned by normalizePath; a query string, if present, is ignored. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

/** The decision: allowed or not, the rule that decided (if one did), and why. */
export interface AuthorizationDecision {
  allowed: boolean;
  rule?: string;
  reason: string;
}

/** A list condition compiled to exact values plus prefixes (items ending in '*'). */
interface CompiledStringSet {
  readonly any: boolean;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

interface CompiledHeaderMatch {
  readonly name: string;
  readonly kind: 'exact' | 'prefix' | 'regex' | 'present';
  readonly value: string;
  readonly regex?: RegExp;
  readonly present: boolean;
}

interface CompiledRule {
  readonly name: string;
  /** Set when the rule lists principals; '*' compiles to any authenticated peer. */
  readonly principals?: CompiledStringSet;
  readonly namespaces?: ReadonlySet<string>;
  readonly methods?: ReadonlySet<string>;
  readonly paths?: CompiledStringSet;
  /** DENY rules: the paths folded as {@link foldPathForDeny} folds a request's path. */
  readonly foldedPaths?: CompiledStringSet;
  readonly headers?: readonly CompiledHeaderMatch[];
  /** The decision returned when this rule decides. */
  readonly decision: Readonly<AuthorizationDecision>;
}

const ALLOW_NO_RULES: Readonly<AuthorizationDecision> = Object.freeze({ allowed: true, reason: 'no authorization rules: allowed' });
const ALLOW_NO_RULES_MATCHING_DENY: Readonly<AuthorizationDecision> = Object.freeze({ allowed: true, reason: 'no DENY rule matched and there are no ALLOW rules: allowed' });
const DENY_NO_ALLOW_MATCH: Readonly<AuthorizationDecision> = Object.freeze({ allowed: false, reason: 'no ALLOW rule matched (deny by default)' });

/** Decides whether an inbound request may reach the app. */
export class Authorizer {
  private readonly denyRules: readonly CompiledRule[];
  private readonly allowRules: readonly CompiledRule[];
  private readonly foldForDeny: boolean;

  /**
   * @param rules the workload's rules (inbound.authorization.rules), already validated by
   * the config schema. Throws, naming the rule and field, on a rule that cannot be
   * compiled: an empty list (ambiguous: Istio reads it as "any", which would silently widen
   * an ALLOW rule) or an invalid regex.
   * @param options.foldForDenyRules DENY rules on paths also match the request's folded path
   * (inbound.pathNormalization.foldForDenyRules). @default false
   */
  constructor(rules: readonly AuthorizationRule[], options: { readonly foldForDenyRules?: boolean } = {}) {
    this.foldForDeny = options.foldForDenyRules === true;
    const deny: CompiledRule[] = [];
    const allow: CompiledRule[] = [];
    rules.forEach((rule, index) => {
      const compiled = compileRule(rule, index, rule.action === 'DENY' && options.foldForDenyRules === true);
      (rule.action === 'DENY' ? deny : allow).push(compiled);
    });
    this.denyRules = deny;
    this.allowRules = allow;
  }

  /** The decision for one request. Never throws; returns a shared frozen object. */
  decide(req: AuthorizationRequest): AuthorizationDecision {
    if (this.denyRules.length === 0 && this.allowRules.length === 0) return ALLOW_NO_RULES;
    const path = pathOnly(req.path);
    // The namespace is read lazily: only rules with `namespaces` need it.
    let namespace: string | undefined | null = null;
    let folded: string | undefined;
    for (const rule of this.denyRules) {
      if (rule.namespaces !== undefined && namespace === null) namespace = req.principal === undefined ? undefined : namespaceOfSpiffeId(req.principal);
      if (matches(rule, req, path, namespace ?? undefined, rule.paths)) return rule.decision;
      if (this.foldForDeny && rule.foldedPaths !== undefined) {
        if (folded === undefined) folded = foldPathForDeny(path);
        if (folded !== path && matches(rule, req, folded, namespace ?? undefined, rule.foldedPaths)) return rule.decision;
      }
    }
    if (this.allowRules.length === 0) return ALLOW_NO_RULES_MATCHING_DENY;
    for (const rule of this.allowRules) {
      if (rule.namespaces !== undefined && namespace === null) namespace = req.principal === undefined ? undefined : namespaceOfSpiffeId(req.principal);
      if (matches(rule, req, path, namespace ?? undefined, rule.paths)) return rule.decision;
    }
    return DENY_NO_ALLOW_MATCH;
  }
}

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

function matches(rule: CompiledRule, req: AuthorizationRequest, path: string, namespace: string | undefined, paths: CompiledStringSet | undefined): boolean {
  if (rule.principals !== undefined) {
    // A request without a principal (plaintext) never matches a rule on principals.
    if (req.principal === undefined || !matchesSet(rule.principals, req.principal)) return false;
  }
  if (rule.namespaces !== undefined) {
    if (namespace === undefined || !rule.namespaces.has(namespace)) return false;
  }
  if (rule.methods !== undefined && !rule.methods.has(req.method)) return false;
  if (paths !== undefined && !matchesSet(paths, path)) return false;
  if (rule.headers !== undefined) {
    for (const h of rule.headers) {
      if (!matchesHeader(h, req.headers[h.name])) return false;
    }
  }
  return true;
}

function matchesSet(set: CompiledStringSet, value: string): boolean {
  if (set.any || set.exact.has(value)) return true;
  for (const p of set.prefixes) {
    if (value.startsWith(p)) return true;
  }
  return false;
}

function matchesHeader(h: CompiledHeaderMatch, raw: string | string[] | undefined): boolean {
  if (h.kind === 'present') return (raw !== undefined) === h.present;
  if (raw === undefined) return false;
  // Node joins repeated headers with ", " except set-cookie (an array); join that the same
  // way so one value form is matched whatever the header.
  const value = typeof raw === 'string' ? raw : raw.join(', ');
  switch (h.kind) {
    case 'exact': return value === h.value;
    case 'prefix': return value.startsWith(h.value);
    case 'regex': return h.regex!.test(value);
  }
}

function compileRule(rule: AuthorizationRule, index: number, fold: boolean): CompiledRule {
  const where = `inbound.authorization.rules[${index}] ("${rule.name}")`;
  const nonEmpty = <T>(field: string, list: readonly T[] | undefined): readonly T[] | undefined => {
    if (list !== undefined && list.length === 0) {
      throw new Error(`${where}.${field} is an empty list: omit ${field} to match any value, or list at least one value`);
    }
    return list;
  };
  const principals = nonEmpty('principals', rule.principals);
  const namespaces = nonEmpty('namespaces', rule.namespaces);
  const methods = nonEmpty('methods', rule.methods);
  const paths = nonEmpty('paths', rule.paths);
  const headers = nonEmpty('headers', rule.headers);
  const allowed = rule.action === 'ALLOW';
  return {
    name: rule.name,
    principals: principals && compileStringSet(principals),
    namespaces: namespaces && new Set(namespaces),
    methods: methods && new Set(methods),
    paths: paths && compileStringSet(paths),
    foldedPaths: paths && fold ? compileStringSet(paths.map(foldPattern)) : undefined,
    headers: headers?.map((h, hi) => compileHeader(h, `${where}.headers[${hi}]`)),
    decision: Object.freeze({
      allowed,
      rule: rule.name,
      reason: allowed ? `allowed by rule "${rule.name}"` : `denied by rule "${rule.name}"`,
    }),
  };
}

/** A rule path folded like a request path ('*' and a prefix's trailing '*' kept). */
function foldPattern(p: string): string {
  if (p === '*') return p;
  return p.endsWith('*') ? foldPathForDeny(p.slice(0, -1)) + '*' : foldPathForDeny(p);
}

/**
 * '*' alone matches any value; an item ending in '*' is a prefix (as in Istio, for paths
 * and principals: "spiffe://td/ns/shop/sa/*" is every account of namespace shop); any
 * other item is exact.
 */
function compileStringSet(items: readonly string[]): CompiledStringSet {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  let any = false;
  for (const item of items) {
    if (item === '*') any = true;
    else if (item.endsWith('*')) prefixes.push(item.slice(0, -1));
    else exact.add(item);
  }
  return { any, exact, prefixes };
}

function compileHeader(h: HeaderMatch, where: string): CompiledHeaderMatch {
  const name = h.name.toLowerCase();
  if (h.exact !== undefined) return { name, kind: 'exact', value: h.exact, present: true };
  if (h.prefix !== undefined) return { name, kind: 'prefix', value: h.prefix, present: true };
  if (h.regex !== undefined) {
    let regex: RegExp;
    try {
      // Whole-value match, as Envoy's safe_regex: "v1" does not match "v10".
      regex = new RegExp(`^(?:${h.regex})$`);
    } catch (e) {
      throw new Error(`${where}.regex "${h.regex}" is not a valid regular expression: ${(e as Error).message}`);
    }
    return { name, kind: 'regex', value: h.regex, regex, present: true };
  }
  if (h.present !== undefined) return { name, kind: 'present', value: '', present: h.present };
  throw new Error(`${where} needs exactly one of exact, prefix, regex or present`);
}
