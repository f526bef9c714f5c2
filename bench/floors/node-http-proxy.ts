/**
 * Floor: the leanest proxy on node:http (server) and undici (client), the stack TypeMesh's
 * sidecar was first built on, with nothing else: no routing, policy or telemetry. Its cost
 * beside tls-relay's is what Node's HTTP machinery adds per hop (`npm run bench -- --floors`).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { Pool } from 'undici';
import { exitOnSignals, readFloorConfig } from './floor-config';

const cfg = readFloorConfig();

function proxy(pool: Pool): http.RequestListener {
  return (req, res) => {
    pool.dispatch({ method: req.method as 'POST', path: req.url ?? '/', headers: req.headers, body: req }, {
      onConnect: () => undefined,
      onError: () => res.destroy(),
      onHeaders: (status, raw) => {
        const headers: string[] = [];
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i].toString();
          if (name.toLowerCase() !== 'connection' && name.toLowerCase() !== 'keep-alive') headers.push(name, raw[i + 1].toString());
        }
        res.writeHead(status, headers);
        return true;
      },
      onData: (chunk) => res.write(chunk) || true,
      onComplete: () => res.end(),
    });
  };
}

if (cfg.role === 'outbound') {
  const pool = new Pool(`https://${cfg.target.address}:${cfg.target.port}`, { connect: { ...cfg.tls, servername: 'floor', checkServerIdentity: () => undefined } });
  http.createServer(proxy(pool)).listen(cfg.listenPort, cfg.bindAddress);
} else {
  const pool = new Pool(`http://${cfg.target.address}:${cfg.target.port}`);
  https.createServer({ ...cfg.tls, requestCert: true, rejectUnauthorized: true }, proxy(pool)).listen(cfg.listenPort, cfg.bindAddress);
}
exitOnSignals();
