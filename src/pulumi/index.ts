/**
 * Deploy TypeMesh (or any cdk8s) charts with Pulumi. A separate entry point, `typemesh/pulumi`,
 * because @pulumi/pulumi and @pulumi/kubernetes are optional peer dependencies: importing
 * `typemesh` itself never loads them.
 *
 * @packageDocumentation
 */
export { MeshChart, MESH_CHART_TYPE } from './mesh-chart';
export type { ChartBuilder, MeshChartArgs, MeshChartService } from './mesh-chart';
export { MeshChartInputError } from './manifest';
