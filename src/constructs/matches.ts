import { IConstruct } from 'constructs';
import type { HeaderMatch as HeaderMatchConfig, RouteMatch as RouteMatchConfig, StringMatch } from '../config/schema';
import { fail } from './errors';
import { HTTP_METHODS, HttpMethod } from './values';

function checkRegex(construct: IConstruct, prop: string, regex: string): void {
  try {
    new RegExp(regex);
  } catch (e) {
    fail({ construct, prop, value: regex, problem: `is not a valid regular expression (${(e as Error).message})`, fix: 'fix the pattern, or use PathMatch.prefix / PathMatch.exact' });
  }
}

/** How a request path is matched. */
export class PathMatch {
  /** The path equals `path` exactly (after normalization). */
  public static exact(path: string): PathMatch {
    return new PathMatch({ exact: path });
  }

  /** The path starts with `prefix`. */
  public static prefix(prefix: string): PathMatch {
    return new PathMatch({ prefix });
  }

  /** The whole path matches the regular expression. */
  public static regex(regex: string): PathMatch {
    return new PathMatch({ regex });
  }

  private constructor(private readonly spec: StringMatch) {}

  /** @internal */
  public _toConfig(construct: IConstruct, prop: string): StringMatch {
    const value = Object.values(this.spec)[0] as string;
    if ('regex' in this.spec) checkRegex(construct, prop, value);
    else if (!value.startsWith('/')) fail({ construct, prop, value, problem: 'a path must start with "/"', fix: `use "/${value}"` });
    return this.spec;
  }
}

/** A condition on one request header (names are matched case-insensitively). */
export class HeaderCondition {
  /** The header equals `value`. */
  public static exact(name: string, value: string): HeaderCondition {
    return new HeaderCondition({ name, exact: value });
  }

  /** The header starts with `prefix`. */
  public static prefix(name: string, prefix: string): HeaderCondition {
    return new HeaderCondition({ name, prefix });
  }

  /** The header matches the regular expression. */
  public static regex(name: string, regex: string): HeaderCondition {
    return new HeaderCondition({ name, regex });
  }

  /** The header is present, with any value. */
  public static present(name: string): HeaderCondition {
    return new HeaderCondition({ name, present: true });
  }

  /** The header is absent. */
  public static absent(name: string): HeaderCondition {
    return new HeaderCondition({ name, present: false });
  }

  private constructor(private readonly spec: HeaderMatchConfig) {}

  /** @internal */
  public _toConfig(construct: IConstruct, prop: string): HeaderMatchConfig {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(this.spec.name)) {
      fail({ construct, prop: `${prop}.name`, value: this.spec.name, problem: 'is not a valid HTTP header name', fix: 'use a token such as "x-canary"' });
    }
    if (this.spec.regex !== undefined) checkRegex(construct, `${prop}.regex`, this.spec.regex);
    return { ...this.spec, name: this.spec.name.toLowerCase() };
  }
}

/** Conditions on a request; all given conditions must hold. */
export interface RequestMatch {
  /**
   * The request path.
   * @default - any path
   */
  readonly path?: PathMatch;
  /**
   * The request method.
   * @default - any method
   */
  readonly method?: HttpMethod;
  /**
   * Header conditions; all must hold.
   * @default - no header conditions
   */
  readonly headers?: HeaderCondition[];
}

/** Fails unless `method` is an HTTP method the sidecar knows. */
export function checkMethod(construct: IConstruct, prop: string, method: string): void {
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    fail({ construct, prop, value: method, problem: `is not an HTTP method the sidecar knows (${HTTP_METHODS.join(', ')})`, fix: 'use an upper-case method such as "POST"' });
  }
}

/** @internal Converts a RequestMatch to the config form, validating it. */
export function routeMatchConfig(construct: IConstruct, prop: string, m: RequestMatch): RouteMatchConfig {
  const out: { path?: StringMatch; method?: HttpMethod; headers?: HeaderMatchConfig[] } = {};
  if (m.path) out.path = m.path._toConfig(construct, `${prop}.path`);
  if (m.method !== undefined) {
    checkMethod(construct, `${prop}.method`, m.method);
    out.method = m.method;
  }
  if (m.headers && m.headers.length > 0) out.headers = m.headers.map((h, i) => h._toConfig(construct, `${prop}.headers[${i}]`));
  return out;
}
