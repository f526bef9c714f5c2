/**
 * Keep-alive pools to the app ports other than the default one (inbound.app.port, whose pool
 * lives in the state): a peer names the port in its SNI (target-port.ts). Pools are made on
 * first use and kept across reloads (an app port's pool depends only on address, port and
 * protocol); idle connections close by themselves, and drain closes them all.
 */
import { createAppPool } from './state';
import type { UpstreamPool } from './upstream-request';

/** The pools of the non-default app ports, by address, port and protocol. */
export class AppPortPools {
  private readonly pools = new Map<string, UpstreamPool>();

  /** The pool to `address:port`, made on first use. */
  public get(address: string, port: number, protocol: string): UpstreamPool {
    const key = `${address}|${port}|${protocol}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = createAppPool(address, port, protocol);
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Closes every pool (drain). */
  public async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }
}

/** The process's pools (one sidecar per process). */
export const appPortPools = new AppPortPools();
