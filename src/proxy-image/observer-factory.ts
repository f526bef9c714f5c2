/**
 * Where the sidecar gets its telemetry observer: the no-op observer when every telemetry
 * feature is off, else a TelemetryObserver.
 */
import type { SidecarConfig } from '../config';
import { NoopObserver, ProxyObserver } from './observer';
import type * as TelemetryModule from './telemetry/telemetry-observer';

/** Creates the observer the proxy reports to. */
export function createObserver(config: SidecarConfig): ProxyObserver {
  const t = config.telemetry;
  // Telemetry off costs nothing: the no-op observer, not a TelemetryObserver with nothing in it.
  if (!t.metrics.enabled && !t.tracing.enabled && !t.accessLog.enabled) return new NoopObserver();
  // Loaded on demand (esbuild keeps a required module lazy in the bundle): with telemetry off,
  // prom-client, pino and OpenTelemetry are never evaluated, which saves their start-up time
  // and their share of the heap and RSS.
  const telemetry = require('./telemetry/telemetry-observer') as typeof TelemetryModule;
  return telemetry.TelemetryObserver.fromConfig(config);
}
