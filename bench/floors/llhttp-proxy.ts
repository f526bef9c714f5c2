/**
 * Floor: a proxy whose server side, like its client side, sits directly on Node's native
 * llhttp parser: requests parsed from the socket with no IncomingMessage/ServerResponse, sent
 * upstream through the sidecar's own lean client (src/proxy-image/http1). No routing, policy
 * or telemetry, keep-alive only, request bodies buffered: a measurement, not a server. Its
 * cost is what the sidecar would reach with a lean HTTP/1.1 server too
 * (`npm run bench -- --floors`).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { plainConnector } from '../../src/proxy-image/http1/connectors';
import { nativeHttpParser } from '../../src/proxy-image/http1/llhttp';
import { Connector, Http1Pool } from '../../src/proxy-image/http1/pool';
import { exitOnSignals, readFloorConfig } from './floor-config';

const cfg = readFloorConfig();
const Parser = nativeHttpParser!;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const METHODS = (require('_http_common') as { methods: string[] }).methods;

const tlsConnector: Connector = (opts, cb) => {
  const s = tls.connect({ host: opts.hostname, port: Number(opts.port), ...cfg.tls, servername: 'floor', checkServerIdentity: () => undefined });
  s.setNoDelay(true);
  s.once('secureConnect', () => cb(null, s));
  s.once('error', (e) => cb(e, null));
};
const pool = new Http1Pool({ hostname: cfg.target.address, port: cfg.target.port, connect: cfg.role === 'outbound' ? tlsConnector : plainConnector(5000) });

function serve(socket: net.Socket): void {
  socket.setNoDelay(true);
  const parser = new Parser();
  parser.initialize(Parser.REQUEST, {}, 0, 0);
  let method = 'GET';
  let url = '/';
  let headers: Record<string, string> = {};
  let chunks: Buffer[] = [];
  parser[Parser.kOnHeadersComplete] = (_maj: number, _min: number, raw: string[], m: number, u: string): number => {
    method = METHODS[m];
    url = u;
    headers = {};
    chunks = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      if (name !== 'connection' && name !== 'keep-alive' && name !== 'transfer-encoding') headers[name] = raw[i + 1];
    }
    return 0;
  };
  parser[Parser.kOnBody] = (chunk: Buffer): void => {
    chunks.push(Buffer.from(chunk));
  };
  parser[Parser.kOnMessageComplete] = (): void => {
    pool.dispatch({ method, path: url, headers, body: chunks.length ? Buffer.concat(chunks) : null }, {
      onError: () => socket.destroy(),
      onHeaders: (status, raw) => {
        let head = `HTTP/1.1 ${status} OK\r\n`;
        const list = raw as string[];
        for (let i = 0; i < list.length; i += 2) {
          const name = list[i].toLowerCase();
          if (name !== 'connection' && name !== 'keep-alive') head += `${list[i]}: ${list[i + 1]}\r\n`;
        }
        socket.cork();
        socket.write(`${head}\r\n`, 'latin1');
        return true;
      },
      onData: (chunk) => socket.write(chunk) || true,
      onComplete: () => socket.uncork(),
    });
  };
  socket.on('data', (d: Buffer) => {
    if (typeof parser.execute(d) !== 'number') socket.destroy();
  });
  socket.on('error', () => socket.destroy());
}

if (cfg.role === 'outbound') net.createServer(serve).listen(cfg.listenPort, cfg.bindAddress);
else tls.createServer({ ...cfg.tls, requestCert: true, rejectUnauthorized: true }, serve).listen(cfg.listenPort, cfg.bindAddress);
exitOnSignals();
