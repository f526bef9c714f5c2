/**
 * Where the sidecar gets its telemetry observer. The telemetry module replaces the body of
 * createObserver with its own implementation; until then telemetry is off (no-op).
 */
import type { SidecarConfig } from '../config';
import { NoopObserver, ProxyObserver } from './observer';
import { TelemetryObserver } from './telemetry/telemetry-observer';

/** Creates the observer the proxy reports to. */
export function createObserver(config: SidecarConfig): ProxyObserver {
  const t = config.telemetry;
  // Telemetry off costs nothing: the no-op observer, not a TelemetryObserver with nothing in it.
  if (!t.metrics.enabled && !t.tracing.enabled && !t.accessLog.enabled) return new NoopObserver();
  return TelemetryObserver.fromConfig(config);
}
