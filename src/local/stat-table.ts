/** Renders the per service-and-version figures as a fixed-width table, like `linkerd viz stat`. */
import type { ServiceVersionStats } from './mesh-stats';

function pct(v: number): string {
  return Number.isFinite(v) ? `${(v * 100).toFixed(2)}%` : '-';
}

function ms(v: number): string {
  if (!Number.isFinite(v)) return '-';
  return v < 10 ? `${v.toFixed(1)}ms` : `${Math.round(v)}ms`;
}

function split(observed: number, configured: number): string {
  if (!Number.isFinite(configured)) return '-';
  return `${Number.isFinite(observed) ? observed.toFixed(1) : '-'}/${configured}`;
}

/** Shortens a SPIFFE ID to its service account: spiffe://td/ns/shop/sa/order-service -> shop/order-service. */
export function shortIdentity(id: string): string {
  const m = /\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  return m ? `${m[1]}/${m[2]}` : id;
}

/** The table as text (no trailing newline). */
export function renderStatTable(rows: readonly ServiceVersionStats[]): string {
  const header = ['SERVICE', 'VERSION', 'RPS', 'SUCCESS', 'P50', 'P99', 'SPLIT obs/cfg %', 'RETRIES', 'EJECTED', 'DENIED', 'MTLS IDENTITIES SEEN'];
  const body = rows.map((r) => [
    r.service, r.version, r.requestsPerSecond.toFixed(1), pct(r.successRate), ms(r.p50Ms), ms(r.p99Ms),
    split(r.observedSplit, r.configuredSplit), String(Math.round(r.retries)), String(Math.round(r.ejections)),
    String(Math.round(r.denials)), r.identities.length > 0 ? r.identities.map(shortIdentity).join(',') : '-',
  ]);
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((row) => row[c].length)));
  return all.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}
