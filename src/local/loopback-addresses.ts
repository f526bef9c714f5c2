/**
 * Hands out one loopback address per instance. Every instance listens on the same
 * well-known ports (15001, 15006, 15020 and its app port), so instances are told apart by
 * address, as pods are by IP. Linux routes all of 127.0.0.0/8 to the loopback interface,
 * so any of these addresses can be bound without configuration.
 */
import * as net from 'node:net';

/** Returns true when every port can be bound on the address right now. */
export async function portsFree(address: string, ports: readonly number[]): Promise<boolean> {
  for (const port of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

/** Allocates addresses in one random 127.a.b.0/24 block per run, skipping any whose ports are taken. */
export class LoopbackAddressPool {
  private readonly prefix: string;
  private next = 1;

  /**
   * @param ports the ports each instance binds, checked on every address handed out
   * @param seed picks the /24 block; random by default so parallel runs rarely collide
   */
  constructor(private readonly ports: readonly number[], seed = Math.floor(Math.random() * 60_000)) {
    // 127.0.0.0/16 is avoided: other tools on this machine bind 127.0.0.1 and 127.0.1.1.
    const a = 16 + (seed % 230);
    const b = Math.floor(seed / 230) % 256;
    this.prefix = `127.${a}.${b}`;
  }

  /** The next free address. */
  public async allocate(): Promise<string> {
    while (this.next < 255) {
      const address = `${this.prefix}.${this.next++}`;
      if (await portsFree(address, this.ports)) return address;
    }
    throw new Error(`no free loopback address left in ${this.prefix}.0/24 for ports ${this.ports.join(', ')}`);
  }
}
