/**
 * The benchmark's plain upstream: a Node HTTP/1.1 server on loopback that reads the request
 * body and answers 200 with a fixed body. It runs as its own process (bundled by bench/run.ts)
 * so that its CPU is measured separately from the proxies and the load generator.
 *
 * Usage: node bench-upstream.js '{"responseBytes":1024}'
 * GET /__bench/stats answers {"connections":N,"requests":N} (connections accepted so far).
 * Prints one JSON line {"port":N} on stdout when listening; exits when stdin closes, so it
 * never outlives the harness even if the harness is killed with SIGKILL.
 */
import * as http from 'node:http';

interface UpstreamOptions {
  /** Bytes of the response body. @default 1024 */
  readonly responseBytes?: number;
}

const options: UpstreamOptions = JSON.parse(process.argv[2] ?? '{}');
const body = Buffer.alloc(options.responseBytes ?? 1024, 'u');
const headers = { 'content-type': 'application/octet-stream', 'content-length': String(body.length) };

/** Path that answers the counters instead of the payload (the harness checks keep-alive with it). */
const STATS_PATH = '/__bench/stats';
let connections = 0;
let requests = 0;

const server = http.createServer((req, res) => {
  if (req.url === STATS_PATH) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ connections, requests }));
    return;
  }
  requests++;
  // Drain the request body before answering, as a real service would read it.
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, headers);
    res.end(body);
  });
});
// Every TCP connection, so the harness can tell whether the proxies reuse their upstream connections.
server.on('connection', () => connections++);
// Longer than any proxy's idle timeout: the upstream never closes a pooled connection mid-run.
server.keepAliveTimeout = 300_000;
server.headersTimeout = 301_000;
server.requestTimeout = 0;

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

// Parent-death watchdog: the harness holds our stdin open.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
