/**
 * A service's routes as typed objects: each route holds its match and the settings that
 * constructs (TrafficSplit, Timeout, RetryPolicy, FaultInjection, TrafficMirror, addRoute) may
 * set once each, who set them, and its projection into the sidecar contract.
 */
import type { Route, RouteMatch as RouteMatchConfig } from '../config/schema';

/** The default route's name. */
export const DEFAULT_ROUTE = 'default';
/** The whole-request timeout of a route that sets none. */
export const DEFAULT_TIMEOUT_MS = 15000;

/** What a construct may set on a route, once each. */
export interface RouteSettings {
  /** Weighted versions (subsets); none: all to the stable version. */
  readonly split: Array<{ subset: string; weight: number }>;
  /** Whole-request timeout in ms (0 disables); none: DEFAULT_TIMEOUT_MS. */
  readonly timeout: number;
  readonly retries: NonNullable<Route['retries']>;
  readonly fault: NonNullable<Route['fault']>;
  readonly mirror: { subset: string; percentage: number };
}

/** A settable part of a route. */
export type RouteField = keyof RouteSettings;

/** One route of a service: a match, its settings, and the construct path that set each. */
export class MeshRoute {
  private readonly values: Partial<RouteSettings>;
  private readonly setBy = new Map<RouteField, string>();

  constructor(
    /** The route's name (unique in its service). */
    public readonly name: string,
    /** The request conditions, already in the contract's form (none: the catch-all route). */
    public readonly match: readonly RouteMatchConfig[],
    values: Partial<RouteSettings> = {},
  ) {
    this.values = { ...values };
  }

  /** A setting, if set. */
  public get<F extends RouteField>(field: F): RouteSettings[F] | undefined {
    return this.values[field] as RouteSettings[F] | undefined;
  }

  /** The construct path that set a field, if any. */
  public setterOf(field: RouteField): string | undefined {
    return this.setBy.get(field);
  }

  /** This route with one more setting, not yet applied (to check it before changing anything). */
  public with<F extends RouteField>(field: F, value: RouteSettings[F]): MeshRoute {
    return new MeshRoute(this.name, this.match, { ...this.values, [field]: value });
  }

  /** Sets a field, recording who set it. The caller checks that it was not set before. */
  public set<F extends RouteField>(field: F, value: RouteSettings[F], by: string): void {
    (this.values as Record<RouteField, unknown>)[field] = value;
    this.setBy.set(field, by);
  }

  /** The route in the sidecar contract; `stable` gets all traffic unless the route splits it. */
  public toConfig(stable: string): Route {
    const route: Record<string, unknown> = {
      name: this.name,
      match: this.match,
      destinations: this.values.split ?? [{ subset: stable, weight: 100 }],
      timeoutMs: this.values.timeout ?? DEFAULT_TIMEOUT_MS,
    };
    if (this.values.retries) route.retries = this.values.retries;
    if (this.values.fault) route.fault = this.values.fault;
    if (this.values.mirror) route.mirror = this.values.mirror;
    return route as unknown as Route;
  }
}
