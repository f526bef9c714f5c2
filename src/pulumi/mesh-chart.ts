/**
 * `MeshChart`: deploys a cdk8s chart (a TypeMesh chart or any other) with Pulumi. Every object the
 * chart synthesizes becomes a @pulumi/kubernetes resource parented to the component, created after
 * the objects it needs (its Namespace, the Issuer of a Certificate, the ServiceAccount, ConfigMaps and
 * certificate Secrets of a workload). The objects are registered one by one from `chart.toJson()`
 * rather than through `yaml.v2.ConfigGroup`, so each is a typed resource of this program with
 * dependencies Pulumi can see, and the same chart deploys identically with `cdk8s synth`.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { ApiObject, App, Chart } from 'cdk8s';
import { planDependencies } from './dependencies';
import { MeshChartInputError, objectKey, readManifest } from './manifest';
import { createKubernetesResource } from './resource-factory';

/** The Pulumi type token of the component. */
export const MESH_CHART_TYPE = 'typemesh:index:MeshChart';

/** Builds the chart to deploy in the given (fresh) cdk8s App. */
export type ChartBuilder = (app: App) => Chart;

/** Arguments of {@link MeshChart}. */
export interface MeshChartArgs {
  /**
   * The chart to deploy (with any charts nested in it), or a function that builds it. A function
   * receives a fresh cdk8s `App` to build the chart in; it is called once, while the component is
   * constructed.
   */
  readonly chart: Chart | ChartBuilder;
}

/** A Service of the chart, as deployed. */
export interface MeshChartService {
  /** `metadata.name`. */
  readonly name: string;
  /** `metadata.namespace`; undefined when the chart leaves it to the provider's default namespace. */
  readonly namespace?: string;
}

/**
 * A cdk8s chart deployed by Pulumi: one child resource per synthesized object.
 *
 * Child resources are named `<component name>:<kind>/<namespace>/<name>` (lower-case;
 * `<kind>/<name>` without a namespace). The component's name is part of it because Pulumi URNs
 * carry the parent's type but not its name: two MeshCharts in one stack would otherwise collide.
 *
 * Providers: pass `provider` (or `providers`) in the component's options; every child inherits it.
 *
 * @example
 * const mesh = new MeshChart('shop', { chart: (app) => buildShopChart(app).chart }, { provider });
 * export const namespaces = mesh.namespaces;
 */
export class MeshChart extends pulumi.ComponentResource {
  /** The child resources, by object key (`<kind>/<namespace>/<name>`, lower-case). */
  public readonly resources: Readonly<Record<string, pulumi.CustomResource>>;
  /** For each object key, the keys of the objects it was made to wait for (`dependsOn`). */
  public readonly dependencies: ReadonlyMap<string, readonly string[]>;
  /** The names of the Namespaces the chart creates, in chart order. */
  public readonly namespaces: pulumi.Output<string[]>;
  /** The names of the chart's Services, in chart order. */
  public readonly serviceNames: pulumi.Output<string[]>;
  /** The chart's Services with their namespaces, in chart order. */
  public readonly services: pulumi.Output<MeshChartService[]>;

  public constructor(name: string, args: MeshChartArgs, opts?: pulumi.ComponentResourceOptions) {
    super(MESH_CHART_TYPE, name, {}, opts);
    try {
      const chart = resolveChart(args);
      // A chart nested in the chart is part of it (`cdk8s synth` writes it to its own file, and
      // `kubectl apply -f dist/` applies both), so its objects are deployed too.
      const charts = [chart, ...chart.node.findAll().filter((c): c is Chart => c !== chart && Chart.isChart(c))];
      const synthesized: unknown[] = [];
      for (const c of charts) {
        let json: unknown;
        try {
          json = c.toJson();
        } catch (e) {
          throw new MeshChartInputError(`synthesizing chart "${c.node.path}" failed: ${errorMessage(e)}`);
        }
        if (!Array.isArray(json)) {
          throw new MeshChartInputError(`chart "${c.node.path}".toJson() returned ${typeof json}, not an array of objects.`);
        }
        synthesized.push(...json);
      }
      const objects = readManifest(synthesized);
      const plan = planDependencies(objects, charts.flatMap(declaredDependencies));

      const resources: Record<string, pulumi.CustomResource> = {};
      for (const object of plan.order) {
        const dependsOn = plan.dependsOn.get(object.key)!.map((key) => resources[key]);
        resources[object.key] = createKubernetesResource(`${name}:${object.key}`, object, {
          parent: this,
          ...(dependsOn.length > 0 ? { dependsOn } : {}),
        });
      }
      this.resources = resources;
      this.dependencies = plan.dependsOn;

      // The core kinds always get their typed class (resource-factory), hence the casts.
      const inChartOrder = (kind: string) => objects.filter((o) => o.apiVersion === 'v1' && o.kind === kind).map((o) => resources[o.key]);
      // Outputs of the registered resources (not the chart's plain strings), so whatever consumes
      // them also waits for the objects to exist.
      this.namespaces = pulumi.all(inChartOrder('Namespace').map((r) => (r as k8s.core.v1.Namespace).metadata.name));
      this.services = pulumi.all(inChartOrder('Service').map((r) => (r as k8s.core.v1.Service).metadata.apply(
        (m): MeshChartService => (m.namespace === undefined ? { name: m.name } : { name: m.name, namespace: m.namespace }))));
      this.serviceNames = this.services.apply((services) => services.map((s) => s.name));
    } catch (e) {
      if (e instanceof MeshChartInputError) {
        throw new pulumi.ResourceError(`MeshChart "${name}": ${e.message}`, this);
      }
      throw e;
    }
    this.registerOutputs({ namespaces: this.namespaces, serviceNames: this.serviceNames, services: this.services });
  }
}

function resolveChart(args: MeshChartArgs | undefined): Chart {
  const given: unknown = args?.chart;
  if (typeof given === 'function') {
    let built: unknown;
    try {
      built = (given as ChartBuilder)(new App());
    } catch (e) {
      throw new MeshChartInputError(`the chart builder function (args.chart) threw: ${errorMessage(e)}`);
    }
    if (!Chart.isChart(built)) {
      throw new MeshChartInputError(
        `the chart builder function (args.chart) returned ${describe(built)}, not a cdk8s Chart: return the Chart it builds.`);
    }
    return built;
  }
  if (!Chart.isChart(given)) {
    throw new MeshChartInputError(
      `args.chart is ${describe(given)}, not a cdk8s Chart: pass a Chart (e.g. new ShopChart(new App(), 'shop')) ` +
      'or a function (app) => Chart.');
  }
  return given;
}

/**
 * The dependencies declared with cdk8s (`a.node.addDependency(b)`) between ApiObjects of `chart`, as
 * keys. Edges to other charts are left out: cdk8s makes every object of a chart depend on every
 * object of the charts nested in it, which would contradict the reference-based order (a nested
 * workload needs the parent's Namespace) and form cycles.
 */
function declaredDependencies(chart: Chart): Array<[string, string]> {
  const keyOf = (o: ApiObject): string | undefined => {
    const json = o.toJson();
    const name = json?.metadata?.name;
    return typeof json?.kind === 'string' && typeof name === 'string'
      ? objectKey(json.kind, name, json.metadata.namespace)
      : undefined;
  };
  const inChart = (c: unknown): c is ApiObject => ApiObject.isApiObject(c) && Chart.of(c) === chart;
  const pairs: Array<[string, string]> = [];
  for (const construct of chart.node.findAll()) {
    if (!inChart(construct)) continue;
    const targets = construct.node.dependencies.filter(inChart);
    if (targets.length === 0) continue;
    const from = keyOf(construct);
    for (const target of targets) {
      const to = keyOf(target);
      if (from !== undefined && to !== undefined) pairs.push([from, to]);
    }
  }
  return pairs;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value !== 'object') return `a ${typeof value} (${JSON.stringify(value)})`;
  const constructorName = (value as object).constructor?.name;
  return constructorName && constructorName !== 'Object' ? `an instance of ${constructorName}` : 'a plain object';
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
