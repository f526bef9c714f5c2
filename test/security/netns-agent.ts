/**
 * A small client that runs INSIDE one of the suite's network namespaces (started by
 * pod-fixture.ts with `ip netns exec`, optionally under another uid) and makes connections
 * on the test's behalf: the jest process itself stays in the host namespace and never
 * touches the pod network. Commands arrive as JSON lines on stdin, answers leave as JSON
 * lines on stdout, matched by id; several commands may run at once.
 *
 * Bundled by esbuild at fixture start-up (no imports beyond Node's own modules).
 */
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as readline from 'node:readline';
import * as tls from 'node:tls';

/** TLS client settings: PEM file paths, read in the namespace (the agent's uid must be able to). */
export interface AgentTls {
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly caFile?: string;
  /** ALPN protocols offered. @default ['http/1.1'] */
  readonly alpn?: readonly string[];
  /** Verify the server's certificate against caFile. @default true when caFile is set */
  readonly verifyServer?: boolean;
  /** The SNI sent. @default the host when it is a name, none for an address */
  readonly servername?: string;
}

/** One piece of what the client sends: bytes (latin1), sent after waiting delayMs. */
export interface AgentChunk {
  readonly data: string;
  readonly delayMs?: number;
}

/** An `exchange`: connect, send the chunks in order, collect what comes back. */
export interface ExchangeRequest {
  readonly host: string;
  readonly port: number;
  readonly tls?: AgentTls;
  readonly chunks: readonly AgentChunk[];
  /** Give up (and report closedBy 'timeout') after this long. */
  readonly timeoutMs: number;
}

/** What an exchange saw. */
export interface ExchangeResult {
  /** Everything received (latin1). */
  readonly data: string;
  /** Who ended it: the server ('peer': FIN or reset), our timeout, or a failed connect. */
  readonly closedBy: 'peer' | 'timeout' | 'connect-error';
  /** The socket or TLS error, if any (ECONNREFUSED, an alert...). */
  readonly error?: string;
  /** True when the TCP connection was established. */
  readonly connected: boolean;
  /** True when the TLS handshake completed from the client's side. */
  readonly secureConnected: boolean;
  /** How many chunks were written before the end. */
  readonly chunksSent: number;
  readonly elapsedMs: number;
}

/** An `h2` request: one HTTP/2 request over TLS (ALPN h2) with the pseudo-headers as given. */
export interface H2Request {
  readonly host: string;
  readonly port: number;
  readonly tls: AgentTls;
  /** Every header, pseudo-headers (:method, :path, :authority, :scheme) included, sent as is. */
  readonly headers: Record<string, string>;
  readonly timeoutMs: number;
}

/** What an h2 request got: the :status, or the error that ended the stream or session. */
export interface H2Result {
  readonly status?: number;
  readonly body: string;
  readonly error?: string;
}

type Command = { readonly id: number; readonly op: 'exchange'; readonly args: ExchangeRequest } | { readonly id: number; readonly op: 'h2'; readonly args: H2Request };

function h2(req: H2Request): Promise<H2Result> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let body = '';
    let done = false;
    const session = http2.connect(`https://${req.host.includes(':') ? `[${req.host}]` : req.host}:${req.port}`, {
      cert: req.tls.certFile ? readFileSync(req.tls.certFile) : undefined,
      key: req.tls.keyFile ? readFileSync(req.tls.keyFile) : undefined,
      ca: req.tls.caFile ? readFileSync(req.tls.caFile) : undefined,
      checkServerIdentity: () => undefined,
    });
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      resolve({ status, body, error });
    };
    const timer = setTimeout(() => finish('timeout'), req.timeoutMs);
    session.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    const stream = session.request(req.headers, { endStream: true });
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (d: Buffer) => (body += d.toString('latin1')));
    stream.on('end', () => finish());
    stream.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

function exchange(req: ExchangeRequest): Promise<ExchangeResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let data = '';
    let chunksSent = 0;
    let secureConnected = false;
    let connected = false;
    let error: string | undefined;
    let finished = false;
    let socket: net.Socket;
    const timers: NodeJS.Timeout[] = [];
    const finish = (closedBy: ExchangeResult['closedBy']): void => {
      if (finished) return;
      finished = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      resolve({ data, closedBy: !connected && closedBy === 'peer' ? 'connect-error' : closedBy, error, connected, secureConnected, chunksSent, elapsedMs: Date.now() - started });
    };
    const writeFrom = (i: number): void => {
      if (finished) return;
      if (i >= req.chunks.length) return;
      const c = req.chunks[i];
      const send = (): void => {
        if (finished || socket.destroyed || !socket.writable) return;
        socket.write(Buffer.from(c.data, 'latin1'), () => undefined);
        chunksSent++;
        writeFrom(i + 1);
      };
      if (c.delayMs) timers.push(setTimeout(send, c.delayMs));
      else send();
    };
    if (req.tls) {
      const t = req.tls;
      const verify = t.verifyServer ?? t.caFile !== undefined;
      socket = tls.connect({
        host: req.host,
        port: req.port,
        cert: t.certFile ? readFileSync(t.certFile) : undefined,
        key: t.keyFile ? readFileSync(t.keyFile) : undefined,
        ca: t.caFile ? readFileSync(t.caFile) : undefined,
        ALPNProtocols: [...(t.alpn ?? ['http/1.1'])],
        rejectUnauthorized: verify,
        // Mesh certificates name a SPIFFE ID, not a host name: only the chain is checked here.
        checkServerIdentity: () => undefined,
        servername: t.servername ?? (net.isIP(req.host) ? undefined : req.host),
      }, () => {
        secureConnected = true;
        writeFrom(0);
      });
      socket.once('connect', () => (connected = true));
    } else {
      socket = net.connect({ host: req.host, port: req.port }, () => {
        connected = true;
        writeFrom(0);
      });
    }
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on('close', () => finish('peer'));
    timers.push(setTimeout(() => finish('timeout'), req.timeoutMs));
  });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line) as Command;
  (cmd.op === 'h2' ? h2(cmd.args) : exchange(cmd.args)).then(
    (result) => process.stdout.write(JSON.stringify({ id: cmd.id, result }) + '\n'),
    (e: Error) => process.stdout.write(JSON.stringify({ id: cmd.id, error: e.message }) + '\n'),
  );
});
// The parent going away closes stdin: leave with it.
rl.on('close', () => process.exit(0));
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
