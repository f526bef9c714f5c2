/**
 * The plain-TCP connector of the lean HTTP/1.1 client (the inbound sidecar's connections to
 * its app); mesh upstreams use the mTLS connector of ../upstream-connector.ts.
 */
import * as net from 'node:net';
import { awaitConnection } from '../upstream-connector';
import type { Connector } from './pool';

/** Opens plain TCP connections with Nagle off; a failure or timeout is a ConnectFailure. */
export function plainConnector(timeoutMs: number): Connector {
  return (opts, callback) => {
    awaitConnection(net.connect({ host: opts.hostname, port: Number(opts.port), noDelay: true }), 'connect', timeoutMs, callback);
  };
}
