/**
 * The few lines every shop app shares: a plain node:http server that answers JSON, bound
 * to HOST:PORT from the environment (as a container would be configured), and that closes
 * cleanly on SIGTERM.
 */
import * as http from 'node:http';

/** What a handler returns: a status and a JSON body. */
export interface JsonResponse {
  readonly status: number;
  readonly body: unknown;
}

/** A request as the handlers see it. */
export interface JsonRequest {
  readonly method: string;
  readonly url: URL;
  readonly body: unknown;
  readonly headers: http.IncomingHttpHeaders;
}

/** Starts the app's server; handler errors become 500 replies. */
export function serveJson(name: string, handler: (req: JsonRequest) => Promise<JsonResponse> | JsonResponse): http.Server {
  const port = Number(process.env.PORT ?? 8080);
  const host = process.env.HOST ?? '0.0.0.0';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: unknown;
      try {
        body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      } catch {
        body = undefined;
      }
      const url = new URL(req.url ?? '/', 'http://local');
      Promise.resolve()
        .then(() => handler({ method: req.method ?? 'GET', url, body, headers: req.headers }))
        .catch((e: Error) => ({ status: 500, body: { error: e.message } }))
        .then((out) => {
          const text = JSON.stringify(out.body ?? {});
          res.writeHead(out.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(text);
        });
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(port, host, () => {
    process.stdout.write(`${name} listening on ${host}:${port}\n`);
  });
  const stop = (): void => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}
