/**
 * A meshed TCP stream: bytes piped both ways between a downstream socket (the app, or the
 * calling sidecar) and an upstream one, counted as they move, and torn down together.
 */
import type * as net from 'node:net';
import type { TcpStreamObservation } from './observer';

/** How long a closing side may still flush what the other sent before both are destroyed. */
const CLOSE_LINGER_MS = 5000;

/**
 * Pipes `down` <-> `up`. An end (FIN) from one side ends the other once its data is written;
 * an error or a close of one side closes the other; `onClose` runs once both are closed.
 */
export function pipeStream(down: net.Socket, up: net.Socket, obs: TcpStreamObservation | undefined, onClose?: () => void): void {
  down.on('data', (chunk: Buffer) => obs?.bytes(chunk.length, 0));
  up.on('data', (chunk: Buffer) => obs?.bytes(0, chunk.length));
  down.pipe(up);
  up.pipe(down);
  let open = 2;
  const closed = (other: net.Socket): void => {
    // The other side gets what is already queued for it, then goes too.
    other.end();
    setTimeout(() => other.destroy(), CLOSE_LINGER_MS).unref();
    if (--open === 0) {
      obs?.closed();
      onClose?.();
    }
  };
  down.once('close', () => closed(up));
  up.once('close', () => closed(down));
  down.on('error', () => up.destroy());
  up.on('error', () => down.destroy());
  down.resume();
}
