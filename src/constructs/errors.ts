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

/**
 * The construct metadata type of a TypeMesh synth warning (cdk8s has no warning annotations;
 * this is what aws-cdk's Annotations.addWarning does with `aws:cdk:warning`).
 */
export const MESH_WARNING_METADATA = 'typemesh:warning';

/**
 * Records a declared policy that synthesizes but cannot (fully) take effect, in the same
 * one-line form as an error, and prints it once to stderr, where `cdk8s synth` shows it.
 * Call it from a validation (`node.addValidation`), so it sees the finished app.
 */
export function warn(p: MeshValidationProblem): void {
  const message = formatProblem(p);
  const node = p.construct.node;
  if (node.metadata.some((m) => m.type === MESH_WARNING_METADATA && m.data === message)) return;
  node.addMetadata(MESH_WARNING_METADATA, message);
  process.stderr.write(`Warning: ${message}\n`);
}

/** Every TypeMesh synth warning under `scope` (an App or a Chart), in construct order; synth (or Testing.synth) first. */
export function meshWarnings(scope: IConstruct): string[] {
  return scope.node.findAll().flatMap((c) => c.node.metadata.filter((m) => m.type === MESH_WARNING_METADATA).map((m) => String(m.data)));
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
