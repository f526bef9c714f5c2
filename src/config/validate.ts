import { readFileSync } from 'node:fs';
import * as YAML from 'yaml';
import type { z } from 'zod';
import { SidecarConfig, SidecarConfigSchema } from './schema';

/** One problem found in a sidecar config, with the path of the field at fault. */
export interface SidecarConfigIssue {
  /** Dotted path of the field, e.g. `outbound.services[0].routes[1].timeoutMs`. */
  readonly path: string;
  /** What is wrong with it. */
  readonly message: string;
}

/** Thrown when a sidecar config does not validate; the message names every field at fault. */
export class SidecarConfigError extends Error {
  /** Every problem found, each with its field path. */
  public readonly issues: readonly SidecarConfigIssue[];

  constructor(issues: readonly SidecarConfigIssue[], source?: string) {
    const where = source ? ` in ${source}` : '';
    super(`invalid sidecar config${where}:\n` + issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n'));
    this.name = 'SidecarConfigError';
    this.issues = issues;
  }
}

/** Formats a zod issue path as `a.b[0].c`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function toIssues(error: z.ZodError): SidecarConfigIssue[] {
  return error.issues.map((i) => ({ path: formatIssuePath(i.path), message: i.message }));
}

/** Validates a sidecar config document; returns it with defaults filled in, or throws {@link SidecarConfigError}. */
export function parseSidecarConfig(input: unknown, source?: string): SidecarConfig {
  const result = SidecarConfigSchema.safeParse(input);
  if (!result.success) throw new SidecarConfigError(toIssues(result.error), source);
  return result.data;
}

/** Validates a sidecar config document without throwing. */
export function validateSidecarConfig(input: unknown): { ok: true; config: SidecarConfig } | { ok: false; issues: SidecarConfigIssue[] } {
  const result = SidecarConfigSchema.safeParse(input);
  return result.success ? { ok: true, config: result.data } : { ok: false, issues: toIssues(result.error) };
}

/** Parses YAML (a superset of JSON) text of a sidecar config and validates it. */
export function parseSidecarConfigText(text: string, source?: string): SidecarConfig {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new SidecarConfigError([{ path: '', message: `not valid YAML or JSON: ${(e as Error).message}` }], source);
  }
  return parseSidecarConfig(doc, source);
}

/** Reads and validates a sidecar config file (YAML or JSON). */
export function loadSidecarConfigFile(file: string): SidecarConfig {
  return parseSidecarConfigText(readFileSync(file, 'utf8'), file);
}
