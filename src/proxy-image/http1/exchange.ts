/**
 * One request/response exchange of the lean HTTP/1.1 client, from dispatch to its single
 * ending (onComplete or onError), wherever it is: queued for a connection or running on one.
 */
import type { Readable } from 'node:stream';
import type { RequestHead } from './request-head';

/**
 * Header lists as the clients deliver them: flat [name, value, ...] arrays (HTTP/1.1; strings
 * here, Buffers from undici) or objects (undici's HTTP/2).
 */
export type RawHeaders = ReadonlyArray<Buffer | string | string[]> | Record<string, string | string[] | undefined> | null | undefined;

/** The subset of undici's (legacy) dispatch handler that the sidecar implements. */
export interface Http1Handler {
  onConnect?(abort: (err?: Error) => void): void;
  onHeaders?(statusCode: number, rawHeaders: RawHeaders, resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(rawTrailers: RawHeaders): void;
  onError?(err: Error): void;
}

/** Where an exchange is. */
export type ExchangeState = 'queued' | 'active' | 'done';

/** Something that can cut a running exchange short (its connection). */
export interface ExchangeRunner {
  abortExchange(ex: Exchange, err: Error): void;
}

/** The error an aborted exchange ends with when the caller gives no reason. */
export class RequestAbortedError extends Error {
  public readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('request aborted');
    this.name = 'RequestAbortedError';
  }
}

export class Exchange {
  public state: ExchangeState = 'queued';
  /** The connection running it, while active. */
  public runner?: ExchangeRunner;
  /** The whole request body has been handed to the socket. */
  public requestDone: boolean;
  /** The final response head arrived. */
  public headersSeen = false;
  /** The upstream allows reusing the connection after this response. */
  public keepAlive = false;
  /** Removes the body stream's listeners (stream bodies only). */
  public detachBody?: () => void;
  /** Called with the exchange once it ends while queued (the pool drops it from its queue). */
  public onDequeue?: (ex: Exchange) => void;
  /** Bound once per exchange: what the handler's onConnect receives. */
  public readonly abort = (err?: Error): void => {
    const reason = err ?? new RequestAbortedError();
    if (this.state === 'queued') {
      this.onDequeue?.(this);
      this.fail(reason);
    } else if (this.state === 'active') {
      this.runner?.abortExchange(this, reason);
    }
  };

  constructor(
    public readonly head: RequestHead,
    public readonly body: Buffer | Readable | null,
    public readonly handler: Http1Handler,
    /** HEAD: the response has no body whatever its headers say. */
    public readonly isHead: boolean,
    /** Close the connection after this exchange. */
    public readonly closeAfter: boolean,
  ) {
    this.requestDone = body === null;
  }

  /** Ends the exchange with an error, once; later calls are ignored. */
  public fail(err: Error): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.runner = undefined;
    this.detachBody?.();
    this.handler.onError?.(err);
  }

  /** Ends the exchange successfully, once. */
  public complete(trailers: string[] | null): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.runner = undefined;
    this.detachBody?.();
    this.handler.onComplete?.(trailers);
  }
}
