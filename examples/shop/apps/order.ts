/**
 * order-service: takes an order, checks stock with inventory-service and charges it with
 * payment-service. It calls them by their plain service names over HTTP; how the calls
 * reach a healthy, authorized version over mTLS is the mesh's business, not this code's.
 */
import { requestJson } from './http-client';
import { serveJson } from './json-server';

const pod = process.env.POD_NAME ?? 'order';
const version = process.env.VERSION ?? 'v1';
const paymentUrl = process.env.PAYMENT_URL ?? 'http://payment-service';
const inventoryUrl = process.env.INVENTORY_URL ?? 'http://inventory-service';
const checkInventory = process.env.CHECK_INVENTORY !== 'false';

let orders = 0;

serveJson('order-service', async (req) => {
  if (req.url.pathname === '/healthz') return { status: 200, body: { ok: true } };
  if (req.url.pathname !== '/orders') return { status: 404, body: { error: `no route ${req.url.pathname}` } };
  const id = `${pod}-${++orders}`;
  const item = req.url.searchParams.get('item') ?? 'book';
  let inventory: unknown;
  if (checkInventory) {
    const stock = await requestJson('GET', `${inventoryUrl}/stock/${item}`);
    if (stock.status !== 200) return { status: 502, body: { id, error: 'inventory-service failed', upstream: stock } };
    inventory = stock.body;
  }
  // ?payDelayMs=N asks payment to answer late (the demo's slow calls and burst);
  // ?instalments=K pays in K charges at once (at most 20; the demo's burst).
  const payDelay = req.url.searchParams.get('payDelayMs');
  const instalments = Math.min(20, Math.max(1, Number(req.url.searchParams.get('instalments') ?? 1) || 1));
  const url = `${paymentUrl}/process${payDelay ? `?delayMs=${encodeURIComponent(payDelay)}` : ''}`;
  const payments = await Promise.all(Array.from({ length: instalments }, (_, i) => requestJson('POST', url, { order: id, amount: 42 / instalments, instalment: i + 1 })));
  const failed = payments.find((p) => p.status !== 200);
  if (failed) return { status: 502, body: { id, error: 'payment-service failed', upstream: failed } };
  return { status: 200, body: { id, service: 'order-service', version, pod, inventory, payment: payments[0].body, ...(instalments > 1 ? { instalments } : {}) } };
});
