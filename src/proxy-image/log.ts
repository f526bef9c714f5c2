/**
 * Operational log lines of the sidecar (not the access log, which telemetry writes): one
 * JSON object per line on stderr, so a log pipeline can parse them and stdout stays free
 * for the access log.
 */

/** Severity of a log line. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold = ORDER[(process.env.TYPEMESH_LOG_LEVEL as LogLevel) ?? 'info'] ?? ORDER.info;

/** Sets the lowest level that is written. */
export function setLogLevel(level: LogLevel): void {
  threshold = ORDER[level];
}

/** Writes one JSON log line to stderr. */
export function log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < threshold) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, logger: 'typemesh-proxy', msg, ...fields });
  process.stderr.write(line + '\n');
}

/** The message of an unknown thrown value. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
