/**
 * Route tables compiled once per config: host lookup is a Map hit, regexes are compiled here
 * (never per request), and weighted destinations become a cumulative array.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { HeaderMatch, OutboundService, RetryPolicyConfig, Route, RouteMatch, StringMatch } from '../config';

/** A compiled string matcher. */
export type StringMatcher = (value: string) => boolean;

/** Compiles a path/header string match; regexes must match the whole value (as in Envoy). */
export function compileStringMatch(m: StringMatch): StringMatcher {
  if ('exact' in m) {
    const v = m.exact;
    return (s) => s === v;
  }
  if ('prefix' in m) {
    const v = m.prefix;
    return (s) => s.startsWith(v);
  }
  const re = new RegExp(`^(?:${m.regex})$`);
  return (s) => re.test(s);
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/** Compiles one header condition. */
export function compileHeaderMatch(h: HeaderMatch): (headers: IncomingHttpHeaders) => boolean {
  const name = h.name;
  if (h.present !== undefined) {
    const want = h.present;
    return (headers) => (headers[name] !== undefined) === want;
  }
  const m = compileStringMatch(h.exact !== undefined ? { exact: h.exact } : h.prefix !== undefined ? { prefix: h.prefix } : { regex: h.regex! });
  return (headers) => {
    const v = headerValue(headers, name);
    return v !== undefined && m(v);
  };
}

/** The parts of a request a route match looks at. */
export interface RouteInput {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

function compileMatch(m: RouteMatch): (r: RouteInput) => boolean {
  const path = m.path ? compileStringMatch(m.path) : undefined;
  const method = m.method;
  const headers = (m.headers ?? []).map(compileHeaderMatch);
  return (r) => {
    if (method !== undefined && r.method !== method) return false;
    if (path && !path(r.path)) return false;
    for (const h of headers) if (!h(r.headers)) return false;
    return true;
  };
}

/** Header rewrites with names lower-cased once. */
export interface CompiledRewrite {
  readonly set: ReadonlyArray<readonly [string, string]>;
  readonly add: ReadonlyArray<readonly [string, string]>;
  readonly remove: readonly string[];
}

function compileRewrite(r: { set?: Record<string, string>; add?: Record<string, string>; remove?: string[] } | undefined): CompiledRewrite | undefined {
  if (!r) return undefined;
  return {
    set: Object.entries(r.set ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
    add: Object.entries(r.add ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const),
    remove: (r.remove ?? []).map((k) => k.toLowerCase()),
  };
}

/** Applies rewrites to a header object in place. */
export function applyRewrite(headers: OutgoingHttpHeaders, rw: CompiledRewrite): void {
  for (const name of rw.remove) delete headers[name];
  for (const [name, value] of rw.set) headers[name] = value;
  for (const [name, value] of rw.add) {
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) headers[name] = [...prev, value];
    else headers[name] = [String(prev), value];
  }
}

/** A route ready for the hot path. */
export interface CompiledRoute {
  readonly name: string;
  readonly config: Route;
  readonly matches: (r: RouteInput) => boolean;
  /** Picks a subset name by weight. */
  readonly pickSubset: () => string;
  readonly retries?: RetryPolicyConfig;
  readonly requestHeaders?: CompiledRewrite;
  readonly responseHeaders?: CompiledRewrite;
}

function compileWeights(route: Route): () => string {
  const dests = route.destinations.filter((d) => d.weight > 0);
  if (dests.length === 1) {
    const only = dests[0].subset;
    return () => only;
  }
  const cumulative: number[] = [];
  let sum = 0;
  for (const d of dests) {
    sum += d.weight;
    cumulative.push(sum);
  }
  const names = dests.map((d) => d.subset);
  return () => {
    const r = Math.random() * sum;
    for (let i = 0; i < cumulative.length; i++) if (r < cumulative[i]) return names[i];
    return names[names.length - 1];
  };
}

/** Compiles a route. */
export function compileRoute(route: Route): CompiledRoute {
  const matchers = route.match.map(compileMatch);
  const matches = matchers.length === 0 ? () => true : (r: RouteInput) => {
    for (const m of matchers) if (m(r)) return true;
    return false;
  };
  return {
    name: route.name,
    config: route,
    matches,
    pickSubset: compileWeights(route),
    retries: route.retries && route.retries.attempts > 0 ? route.retries : undefined,
    requestHeaders: compileRewrite(route.headers?.request),
    responseHeaders: compileRewrite(route.headers?.response),
  };
}

/** The first route of a service that matches, or undefined. */
export function selectRoute(routes: readonly CompiledRoute[], input: RouteInput): CompiledRoute | undefined {
  for (const r of routes) if (r.matches(input)) return r;
  return undefined;
}

/** Lower-cases a Host header and strips its port (and IPv6 brackets' port). */
export function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return (end > 0 ? host.slice(0, end + 1) : host).toLowerCase();
  }
  const colon = host.indexOf(':');
  return (colon >= 0 ? host.slice(0, colon) : host).toLowerCase();
}

/** Builds the host -> service map of the outbound listener. */
export function buildHostTable(services: readonly OutboundService[]): Map<string, OutboundService> {
  const table = new Map<string, OutboundService>();
  for (const svc of services) for (const h of svc.hosts) table.set(hostWithoutPort(h), svc);
  return table;
}
