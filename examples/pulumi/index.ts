/**
 * Deploys the shop example (examples/shop) with `pulumi up`: the same objects `cdk8s synth` writes
 * to dist/shop.k8s.yaml, as Pulumi resources under one MeshChart component. Prerequisites (a
 * cluster, cert-manager) and the commands are in docs/pulumi.md.
 *
 * Outside this repository, import the component from 'typemesh/pulumi'.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { MeshChart } from '../../src/pulumi';
import { buildShopChart } from '../shop/chart';

const config = new pulumi.Config();
// An explicit provider only when a context is configured; otherwise the default provider uses the
// current kubeconfig context.
const kubeContext = config.get('kubeContext');
const provider = kubeContext ? new k8s.Provider('cluster', { context: kubeContext }) : undefined;

const shop = new MeshChart('shop', { chart: (app) => buildShopChart(app).chart }, { provider });

/** The Namespaces the chart creates (["shop"]). */
export const namespaces = shop.namespaces;
/** The shop's Services: order-service, payment-service, inventory-service and their per-version Services. */
export const serviceNames = shop.serviceNames;
