/**
 * The TypeMesh API reference. Everything here is imported from `typemesh`, except the
 * Pulumi component (`MeshChart`, `MeshChartArgs`, `MeshChartInputError`, `MESH_CHART_TYPE`,
 * `ChartBuilder`, `MeshChartService`), which is imported from `typemesh/pulumi` because
 * @pulumi/pulumi and @pulumi/kubernetes are optional peer dependencies.
 *
 * (This file is typedoc's single entry point; nothing imports it at run time.)
 *
 * @packageDocumentation
 */
export * from './index';
export * from './pulumi';
