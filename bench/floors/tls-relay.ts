/**
 * Floor: a TLS byte relay pair, no HTTP at all. The outbound side accepts plain TCP and relays
 * it over mTLS to the inbound side, which relays it to the upstream. What it costs is what
 * Node itself costs to move the bytes through TLS and the sockets: no Node proxy can be
 * cheaper than this (`npm run bench -- --floors`).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { exitOnSignals, readFloorConfig } from './floor-config';

const cfg = readFloorConfig();

function relay(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}

if (cfg.role === 'outbound') {
  net.createServer({ noDelay: true }, (client) => {
    const upstream = tls.connect({ host: cfg.target.address, port: cfg.target.port, ...cfg.tls, servername: 'floor', checkServerIdentity: () => undefined });
    upstream.setNoDelay(true);
    relay(client, upstream);
  }).listen(cfg.listenPort, cfg.bindAddress);
} else {
  tls.createServer({ ...cfg.tls, requestCert: true, rejectUnauthorized: true }, (client) => {
    client.setNoDelay(true);
    relay(client, net.connect({ host: cfg.target.address, port: cfg.target.port, noDelay: true }));
  }).listen(cfg.listenPort, cfg.bindAddress);
}
exitOnSignals();
