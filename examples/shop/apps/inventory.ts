/** inventory-service: answers how many of an item are in stock. */
import { serveJson } from './json-server';

const pod = process.env.POD_NAME ?? 'inventory';
const version = process.env.VERSION ?? 'v1';

serveJson('inventory-service', (req) => {
  if (req.url.pathname === '/healthz') return { status: 200, body: { ok: true } };
  const m = /^\/stock\/([A-Za-z0-9-]+)$/.exec(req.url.pathname);
  if (!m) return { status: 404, body: { error: `no route ${req.url.pathname}` } };
  // A stable pseudo stock level per item, so replies are repeatable.
  const available = [...m[1]].reduce((sum, ch) => sum + ch.charCodeAt(0), 0) % 50 + 1;
  return { status: 200, body: { service: 'inventory-service', version, pod, item: m[1], available } };
});
