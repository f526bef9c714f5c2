/**
 * The plain-TCP connector of the lean HTTP/1.1 client (the inbound sidecar's connections to
 * its app); mesh upstreams use the mTLS connector of ../upstream-connector.ts.
 */
import * as net from 'node:net';
import { ConnectFailure } from '../upstream-connector';
import type { Connector } from './pool';

/** Opens plain TCP connections with Nagle off; a failure or timeout is a ConnectFailure. */
export function plainConnector(timeoutMs: number): Connector {
  return (opts, callback) => {
    let settled = false;
    const socket = net.connect({ host: opts.hostname, port: Number(opts.port), noDelay: true });
    const timer = setTimeout(() => fail(new ConnectFailure(`connect timeout after ${timeoutMs} ms`, 'CONNECT_TIMEOUT')), timeoutMs);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      callback(err instanceof ConnectFailure ? err : new ConnectFailure(`upstream connect error: ${err.message}`, (err as { code?: string }).code), null);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('error', fail);
      callback(null, socket);
    });
  };
}
