/**
 * The shop: order-service calls payment-service (v1 and v2, an 80/20 canary) and
 * inventory-service (v1 and v2, a 90/10 canary). Every seed example of the design brief
 * appears here as a few lines of TypeScript.
 */
import { App, Chart, Duration } from 'cdk8s';
import {
  Canary, CircuitBreaker, Mesh, MeshGateway, MeshService, RetryOn, RetryPolicy, StrictMtls, Timeout,
} from '../../src';

/** The image tag of the shop's apps (the same image, told which app to run by its args). */
export const SHOP_IMAGE = 'ghcr.io/typemesh/examples-shop:0.1.0';
/** Every shop app listens on this port. */
export const SHOP_APP_PORT = 8080;
/** The shop's public host name: the gateway routes it to order-service. */
export const SHOP_HOST = 'shop.example.com';

/** What {@link buildShopChart} returns. */
export interface ShopChart {
  readonly app: App;
  readonly chart: Chart;
  readonly mesh: Mesh;
  readonly gateway: MeshGateway;
  readonly services: {
    readonly order: MeshService;
    readonly payment: MeshService;
    readonly inventory: MeshService;
  };
}

function version(name: string, app: string, replicas: number, env: Record<string, string> = {}) {
  return {
    name,
    image: SHOP_IMAGE,
    args: [app],
    replicas,
    env: { VERSION: name, PORT: String(SHOP_APP_PORT), ...env },
    liveness: { path: '/healthz' },
    readiness: { path: '/healthz' },
  };
}

/** Builds the shop chart in `app` (a new App writing to dist/ when omitted). */
export function buildShopChart(app: App = new App({ outdir: 'dist' })): ShopChart {
  const chart = new Chart(app, 'shop');
  const mesh = new Mesh(chart, 'mesh', { namespace: 'shop' });
  const ports = [{ port: 80, targetPort: SHOP_APP_PORT }];

  const payment = new MeshService(chart, 'payment-service', {
    mesh, name: 'payment-service', ports,
    versions: [version('v1', 'payment', 2), version('v2', 'payment', 1)],
  });
  const inventory = new MeshService(chart, 'inventory-service', {
    mesh, name: 'inventory-service', ports,
    versions: [version('v1', 'inventory', 2), version('v2', 'inventory', 1)],
  });
  const order = new MeshService(chart, 'order-service', {
    mesh, name: 'order-service', ports,
    // The apps call the services' ClusterIP names; the sidecar routes by Host header.
    versions: [version('v1', 'order', 2, { PAYMENT_URL: 'http://payment-service', INVENTORY_URL: 'http://inventory-service' })],
  });
  order.callsTo(payment, inventory);

  // Seed: 80/20 traffic split between payment v1 and v2.
  new Canary(chart, 'payment-canary', { service: payment, stable: 'v1', canary: 'v2', canaryWeight: 20 });
  // Seed: 5 s timeout with 3 retries, 2 s per try, on 5xx, reset and connect-failure.
  new Timeout(chart, 'payment-timeout', { service: payment, timeout: Duration.seconds(5) });
  new RetryPolicy(chart, 'payment-retries', {
    service: payment, attempts: 3, perTryTimeout: Duration.seconds(2),
    retryOn: [RetryOn.FIVE_XX, RetryOn.RESET, RetryOn.CONNECT_FAILURE],
    // POST /process is retried like any method. The demo's payment app has no side effects; a
    // real payment API without idempotency keys would set idempotentOnly: true.
  });
  // Seed: circuit breaker.
  new CircuitBreaker(chart, 'payment-circuit-breaker', {
    service: payment, maxConnections: 100, maxPendingRequests: 50, maxRequestsPerConnection: 2,
    outlierDetection: {
      consecutive5xxErrors: 5, interval: Duration.seconds(30), baseEjectionTime: Duration.seconds(30),
      // The cap is per version (subset); as in Envoy one replica can always be ejected and the
      // cap applies beyond it. 50% lets payment v1 (2 replicas) lose a bad one, never both.
      maxEjectionPercent: 50,
    },
  });
  // Seed: only order-service may POST /process on payment-service.
  payment.allowFrom(order, { methods: ['POST'], paths: ['/process'] });
  // Seed: 90/10 canary.
  new Canary(chart, 'inventory-canary', { service: inventory, stable: 'v1', canary: 'v2', canaryWeight: 10 });
  // Seed: STRICT mTLS for the namespace.
  new StrictMtls(chart, 'strict-mtls', { mesh });
  // The way in from outside: customers reach order-service through the gateway, which calls it
  // over mTLS as spiffe://cluster.local/ns/shop/sa/shop-gateway; nothing else may call order.
  const gateway = new MeshGateway(chart, 'gateway', {
    mesh, name: 'shop-gateway',
    routes: [{ hosts: [SHOP_HOST], service: order }],
  });
  order.allowFrom(gateway, { methods: ['GET'], paths: ['/orders'] });

  return { app, chart, mesh, gateway, services: { order, payment, inventory } };
}
