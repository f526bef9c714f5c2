/**
 * The parts of a workload's sidecar config that every writer shares (MeshService versions and
 * injected workloads): the telemetry section from the resolved telemetry, the mesh's drain
 * settings, and the final check against the contract, whose failure names the construct.
 */
import { IConstruct } from 'constructs';
import { SidecarConfig, SidecarConfigInput } from '../config/schema';
import { parseSidecarConfig } from '../config/validate';
import { MeshValidationError } from './errors';
import type { ResolvedTelemetry } from './telemetry';
import { AccessLogFormat } from './values';

/** The sidecar config's telemetry section. */
export function telemetryConfig(t: ResolvedTelemetry): NonNullable<SidecarConfigInput['telemetry']> {
  return {
    metrics: { enabled: t.metricsEnabled },
    tracing: t.tracing
      ? { enabled: true, sampleRate: t.tracing.sampleRate, collector: { protocol: t.tracing.collector.protocol, endpoint: t.tracing.collector.endpoint } }
      : { enabled: false, sampleRate: 1 },
    accessLog: t.accessLog === AccessLogFormat.OFF
      ? { enabled: false, format: 'json' }
      : { enabled: true, format: t.accessLog },
  };
}

/**
 * The mesh-wide drain settings (Mesh props sidecarDrainDuration, sidecarDrainTimeout) of the
 * workload's mesh: MeshService and InjectedWorkload both hold theirs as `mesh`. Read here, where
 * both writers pass, so that neither can forget them.
 */
function meshDrainConfig(construct: IConstruct): { readonly drainDurationMs?: number; readonly drainTimeoutMs?: number } {
  const mesh = (construct as { readonly mesh?: { readonly _sidecarDrainConfig?: { drainDurationMs?: number; drainTimeoutMs?: number } } }).mesh;
  return mesh?._sidecarDrainConfig ?? {};
}

/**
 * Validates a workload's sidecar config against the contract; a failure is a
 * MeshValidationError of `construct` naming the fields at fault.
 */
export function checkedSidecarConfig(construct: IConstruct, prop: string, workload: string, input: SidecarConfigInput, fix: string): SidecarConfig {
  try {
    return parseSidecarConfig({ ...meshDrainConfig(construct), ...input }, `the sidecar config of ${workload}`);
  } catch (e) {
    throw new MeshValidationError({ construct, prop, value: workload, problem: (e as Error).message.replace(/\n/g, ' '), fix });
  }
}
