/**
 * The shop on one machine: `typemesh up examples/shop/local.ts` or `npm run demo`. The
 * chart is the one `cdk8s synth` sees; this plan only says how each workload version's
 * app runs here (the Deployments' images cannot): one bundled Node.js file told which app
 * to run, as the image is. Versions and service URLs come from the chart's env.
 */
import * as path from 'node:path';
import { bundleWithEsbuild, defineLocalPlan, DemoTrafficSpec, findProjectRoot, isFresh, LocalProcessSpec } from '../../src/local';
import { buildShopChart, SHOP_HOST } from './chart';

const root = findProjectRoot(__dirname);
/** The shop apps' bundle. */
export const SHOP_APPS_BUNDLE = path.join(root, 'dist/shop-apps/shop.js');

function shopApp(app: 'order' | 'payment' | 'inventory', env: Record<string, string> = {}): LocalProcessSpec {
  return { command: process.execPath, args: [SHOP_APPS_BUNDLE, app], env };
}

/** Bundles the apps unless the bundle is newer than their sources (start-up speed matters). */
export function bundleShopApps(): void {
  if (!isFresh(root, 'dist/shop-apps/shop.js', ['examples/shop/apps'])) {
    bundleWithEsbuild(root, 'examples/shop/apps/main.ts', 'dist/shop-apps/shop.js');
  }
}

/** Where the demo sends its traffic, and the resilience it must show (the run fails without it). */
const traffic: DemoTrafficSpec = {
  entryWorkload: 'order-service',
  // Customers' way in: plain HTTP to the gateway, which calls order-service over mTLS.
  gateway: 'shop-gateway',
  host: SHOP_HOST,
  path: '/orders?item=book',
  legend: [
    'payment-service v1 replica #1 is broken: it answers every /process with 503. order\'s sidecars retry those calls on another replica and, after 5 consecutive 5xx, eject it for 30 s (EJECTED)',
    'payment-service v2 (the canary) fails 1 request in 10 with 503: order\'s sidecars retry them (RETRIES), so customers do not see them',
  ],
  // Payment answers 2.5 s late: each try is cut at the per-try 2 s and retried, and the 5 s
  // route timeout ends the call with 504 (order then answers 502).
  slowCalls: { path: '/orders?item=book&payDelayMs=2500', service: 'payment-service', why: 'payment answers 2.5 s late: each try is cut at the declared 2 s per-try timeout and retried, until the 5 s timeout answers 504' },
  // 60 orders at once, each paid in 10 instalments charged together, and payment holds each
  // charge 0.8 s: about 300 calls at once per order sidecar, beyond the 100 connections and
  // 50 pending requests the CircuitBreaker allows it, so the rest get 503 at once. (The app
  // fans out, so the calls arrive together however busy the machine is.)
  burst: { path: '/orders?item=book&instalments=10&payDelayMs=800', requests: 60, service: 'payment-service', why: 'each order pays in 10 instalments at once and payment holds each charge 0.8 s: up to 300 calls at once per order sidecar, beyond its 100 connections + 50 pending (the CircuitBreaker), so the rest are refused with 503 overflow' },
  versionOf: (body) => (body as { payment?: { version?: string } } | undefined)?.payment?.version,
  splitService: 'payment-service',
  // Only order-service may POST /process on payment-service: anyone else gets 403.
  deniedProbe: { workload: 'payment-service', method: 'POST', path: '/process' },
  // Both payment versions fail some requests on purpose (below): order's sidecars must retry
  // them, and eject the broken v1 replica after 5 consecutive 5xx.
  expectRetries: ['payment-service'],
  expectEjections: ['payment-service/v1'],
};

export default defineLocalPlan({
  chart: () => buildShopChart().chart,
  prepare: bundleShopApps,
  processes: {
    'order-service/v1': shopApp('order'),
    // The second of v1's two replicas is broken: it answers every /process with 503. Each
    // order sidecar retries those tries on another endpoint and, after 5 consecutive 5xx,
    // ejects the replica for 30 s (the chart's maxEjectionPercent 50 allows one of two).
    'payment-service/v1': { ...shopApp('payment'), instanceEnv: (index): Record<string, string> => (index === 1 ? { FAIL_RATE: '1' } : {}) },
    // The canary fails one request in ten (evenly spaced), so the table shows retries at work.
    'payment-service/v2': shopApp('payment', { FAIL_RATE: '0.1' }),
    'inventory-service/v1': shopApp('inventory'),
    'inventory-service/v2': shopApp('inventory'),
  },
  traffic,
});
