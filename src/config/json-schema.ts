import { z } from 'zod';
import { SidecarConfigSchema } from './schema';

/**
 * The sidecar config's JSON Schema (draft 2020-12), generated from the zod schema so that
 * editors and other tools can validate a config. It describes the document as written
 * (fields with defaults are optional). The cross-field rules (weights summing to 100,
 * known subsets) are only enforced by {@link parseSidecarConfig}.
 */
export function sidecarConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(SidecarConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
