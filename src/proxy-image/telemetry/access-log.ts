/**
 * The sidecar's access log: one line per request on stdout, JSON or an Envoy-like text line.
 * Writes go to an asynchronous pino destination (SonicBoom), so logging never blocks the event
 * loop on a slow stdout; {@link AccessLog.close} writes what is buffered before the process
 * exits. The JSON line is built with JSON.stringify rather than a pino logger: the entry is
 * flat and complete, and a pino logger would add a level key (pino 10 writes a malformed line
 * when the level formatter returns nothing).
 */
import pino from 'pino';
import type { Direction } from '../observer';

/** One access log entry. Field names are the JSON keys. */
export interface AccessLogEntry {
  /** Start of the request, ISO 8601. */
  readonly time: string;
  readonly direction: Direction;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  /** Status sent to the client; 0 when none was sent. */
  readonly status: number;
  /** Milliseconds from arrival to the end of the response. */
  readonly duration_ms: number;
  readonly request_bytes: number;
  readonly response_bytes: number;
  /** host:port that served the last try, or '-' when there was none. */
  readonly upstream_host: string;
  /** Outbound: the destination service; inbound: this workload. */
  readonly destination_service: string;
  readonly retries: number;
  /** Envoy-style response flags joined with ',', or '-'. */
  readonly response_flags: string;
  /** The peer's identity: the caller's principal on inbound, the destination's on outbound; '-' when unknown. */
  readonly principal: string;
  readonly request_id: string;
  /** '-' when the request is not traced. */
  readonly trace_id: string;
}

/** A SonicBoom-like destination (what pino.destination returns). */
export type AccessLogDestination = ReturnType<typeof pino.destination>;

/** Options of {@link AccessLog}. */
export interface AccessLogOptions {
  /** 'json': one JSON object per line; 'text': an Envoy-like line. */
  readonly format: 'json' | 'text';
  /**
   * Where lines go.
   * @default an asynchronous pino destination on stdout (fd 1)
   */
  readonly destination?: AccessLogDestination;
}

/** Access log bytes buffered before a write(2) (SonicBoom requires less than its maxWrite, 16 KiB). */
const BATCH_BYTES = 8192;
/** Longest time an access log line waits in the buffer. */
const FLUSH_INTERVAL_MS = 100;

/** Writes access log lines. */
export class AccessLog {
  private readonly destination: AccessLogDestination;
  private readonly format: (entry: AccessLogEntry) => string;
  private closed = false;

  public constructor(options: AccessLogOptions) {
    this.destination = options.destination ?? pino.destination({
      dest: 1,
      sync: false,
      // Batched: with minLength 0 SonicBoom makes one write(2) per line, 11-14% of a
      // sidecar's profile at 1,000 rps and about two thirds of what telemetry added to its
      // CPU. Lines now wait until BATCH_BYTES are buffered, or at most FLUSH_INTERVAL_MS (an
      // unref'd timer, so it never holds the process open); close() still writes everything
      // buffered. The cost: a crash loses at most that much of the log.
      minLength: BATCH_BYTES,
      periodicFlush: FLUSH_INTERVAL_MS,
    });
    this.format = options.format === 'json' ? formatJson : formatText;
  }

  /** Writes one entry; never throws. */
  public write(entry: AccessLogEntry): void {
    if (this.closed) return;
    try {
      this.destination.write(this.format(entry));
    } catch {
      // A broken stdout must not break the request path.
    }
  }

  /** Writes everything buffered and stops (stdout itself stays open). */
  public close(timeoutMs = 2000): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.destination.once('close', done);
      this.destination.once('error', done);
      try {
        this.destination.end();
      } catch {
        done();
      }
    });
  }
}

/** One JSON object per line, keys in the order of {@link AccessLogEntry}. */
export function formatJson(e: AccessLogEntry): string {
  return JSON.stringify(e) + '\n';
}

/**
 * `[time] "METHOD path" status flags request_bytes response_bytes duration_ms "upstream"
 * "authority" "request_id" "trace_id" direction destination_service retries "principal"`,
 * the order of Envoy's default format with TypeMesh's fields after it. Quoted fields are
 * JSON string literals, so a quote or backslash sent by a client cannot forge a field.
 */
export function formatText(e: AccessLogEntry): string {
  const q = JSON.stringify;
  return `[${e.time}] ${q(`${e.method} ${e.path}`)} ${e.status} ${e.response_flags} ${e.request_bytes} ${e.response_bytes} ${e.duration_ms} ${q(e.upstream_host)} ${q(e.authority)} ${q(e.request_id)} ${q(e.trace_id)} ${e.direction} ${e.destination_service} ${e.retries} ${q(e.principal)}\n`;
}
