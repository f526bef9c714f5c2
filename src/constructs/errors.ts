import { IConstruct } from 'constructs';
import { DNS_1123_LABEL } from '../config/schema';

/** What is wrong with a construct prop, for {@link MeshValidationError}. */
export interface MeshValidationProblem {
  /** The construct at fault (its construct path is quoted in the message). */
  readonly construct: IConstruct;
  /** The prop at fault, e.g. `versions[1].name` or `perTryTimeout`. */
  readonly prop: string;
  /** The bad value (quoted as JSON in the message). */
  readonly value: unknown;
  /** What is wrong with it. */
  readonly problem: string;
  /** What to change. */
  readonly fix: string;
}

/**
 * A TypeMesh construct was given props that cannot work. The message names the construct
 * path, the prop, the bad value and the fix, so it can be acted on without reading the code.
 */
export class MeshValidationError extends Error {
  /** Construct path of the construct at fault. */
  public readonly constructPath: string;
  /** The prop at fault. */
  public readonly prop: string;
  /** The bad value. */
  public readonly value: unknown;
  /** What to change. */
  public readonly fix: string;

  constructor(p: MeshValidationProblem) {
    super(formatProblem(p));
    this.name = 'MeshValidationError';
    this.constructPath = p.construct.node.path;
    this.prop = p.prop;
    this.value = p.value;
    this.fix = p.fix;
  }
}

/** Formats a problem as one line: `<path>: <prop> = <value>: <problem>. Fix: <fix>`. */
export function formatProblem(p: MeshValidationProblem): string {
  return `${p.construct.node.path}: ${p.prop} = ${quote(p.value)}: ${p.problem}. Fix: ${p.fix}`;
}

function quote(value: unknown): string {
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Throws a {@link MeshValidationError}. */
export function fail(p: MeshValidationProblem): never {
  throw new MeshValidationError(p);
}

/** Fails unless `value` is a DNS-1123 label. */
export function checkDnsLabel(construct: IConstruct, prop: string, value: string, example: string): void {
  if (typeof value !== 'string' || !DNS_1123_LABEL.test(value)) {
    fail({
      construct, prop, value,
      problem: 'must be a DNS-1123 label (lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)',
      fix: `use a name such as "${example}"`,
    });
  }
}

/** Fails unless `value` is an integer in [min, max]. */
export function checkInteger(construct: IConstruct, prop: string, value: number, min: number, max: number, fix?: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail({
      construct, prop, value,
      problem: `must be an integer from ${min} to ${max}`,
      fix: fix ?? `set ${prop} to an integer from ${min} to ${max}`,
    });
  }
}

/** Fails unless `value` is a number in [0, 100]. */
export function checkPercentage(construct: IConstruct, prop: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 100) {
    fail({ construct, prop, value, problem: 'must be a percentage from 0 to 100', fix: `set ${prop} to a number from 0 to 100` });
  }
}
