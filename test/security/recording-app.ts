/**
 * The app of the attacked pod (and of the peer pod): a plain node:http server that records
 * every TCP connection and every request it receives as a JSON line on stdout, so a test can
 * prove that an attack never reached it. It binds 0.0.0.0 and :: on each port (as a
 * container's app usually does) and has no 'upgrade' handler, so, like most apps, it answers
 * an Upgrade request as plain HTTP and keeps reading HTTP on that connection.
 *
 * argv[2]: JSON list of ports. Bundled by esbuild at fixture start-up.
 */
import * as http from 'node:http';
import * as net from 'node:net';

const ports = JSON.parse(process.argv[2] ?? '[8080]') as number[];

function record(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function familyOf(socket: net.Socket): string {
  // An IPv4 client of the :: socket would be ::ffff:a.b.c.d; the IPv6 socket is v6-only here.
  return socket.localAddress?.includes(':') ? 'IPv6' : 'IPv4';
}

let listening = 0;
for (const port of ports) {
  for (const host of ['0.0.0.0', '::']) {
    const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      // Recorded as soon as the head arrives: a request whose body is cut off still reached the app.
      const seen = { port, family: familyOf(req.socket), remote: req.socket.remoteAddress, method: req.method, url: req.url, headers: req.headers };
      record({ type: 'request', ...seen });
      req.resume();
      req.on('end', () => {
        // ...and again once its body is complete: what an app would act on.
        record({ type: 'complete', ...seen });
        const body = req.method === 'POST' && req.url === '/process' ? 'paid' : `app saw ${req.method} ${req.url}`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    server.on('connection', (s: net.Socket) => record({ type: 'connection', port, family: familyOf(s), remote: s.remoteAddress }));
    server.on('clientError', (_err, socket) => socket.destroy());
    server.listen({ port, host, ipv6Only: host === '::' }, () => {
      if (++listening === ports.length * 2) record({ type: 'ready' });
    });
  }
}
// Never outlive the suite, whatever happens to the parent.
setTimeout(() => process.exit(0), 15 * 60_000).unref();
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
