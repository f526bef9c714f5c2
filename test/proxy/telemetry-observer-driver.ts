/**
 * Runs telemetry observers in a plain Node.js process, driven by JSON lines on stdin, for the
 * tracing tests. Why a separate process: the OTLP/HTTP exporter loads `http` with a dynamic
 * `import()`, which jest's CommonJS sandbox cannot execute, so inside jest the exporter would
 * silently send nothing. Bundled with esbuild (as the sidecar is), the exporter runs exactly as
 * it does in the real proxy.
 *
 * Protocol: each input line is {id, op, ...}; each output line is {id, result} or {id, error}.
 *   create   {name, config, spanExportDelayMillis?}   builds TelemetryObserver.fromConfig(config)
 *   start    {observer, info}                         -> {handle, requestId, traceId, propagationHeaders}
 *   end      {handle, outcome}
 *   shutdown {observer}                               flushes and stops the observer
 */
import { createInterface } from 'node:readline';
import { SidecarConfigSchema } from '../../src/config/schema';
import type { RequestInfo, RequestObservation, RequestOutcome } from '../../src/proxy-image/observer';
import { TelemetryObserver } from '../../src/proxy-image/telemetry/telemetry-observer';

const observers = new Map<string, TelemetryObserver>();
const observations = new Map<number, RequestObservation>();
let nextHandle = 1;

async function handle(msg: any): Promise<unknown> {
  switch (msg.op) {
    case 'create':
      observers.set(msg.name, TelemetryObserver.fromConfig(SidecarConfigSchema.parse(msg.config), { spanExportDelayMillis: msg.spanExportDelayMillis }));
      return null;
    case 'start': {
      const observation = observerOf(msg.observer).requestStarted(msg.info as RequestInfo);
      const handleId = nextHandle++;
      observations.set(handleId, observation);
      return { handle: handleId, requestId: observation.requestId, traceId: observation.traceId, propagationHeaders: observation.propagationHeaders };
    }
    case 'end':
      observations.get(msg.handle)!.end(msg.outcome as RequestOutcome);
      observations.delete(msg.handle);
      return null;
    case 'shutdown':
      await observerOf(msg.observer).shutdown();
      return null;
    default:
      throw new Error(`unknown op ${msg.op}`);
  }
}

function observerOf(name: string): TelemetryObserver {
  const observer = observers.get(name);
  if (!observer) throw new Error(`no observer named ${name}`);
  return observer;
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line);
  handle(msg).then(
    (result) => process.stdout.write(JSON.stringify({ id: msg.id, result }) + '\n'),
    (e: unknown) => process.stdout.write(JSON.stringify({ id: msg.id, error: e instanceof Error ? e.message : String(e) }) + '\n'),
  );
}).on('close', () => process.exit(0));
