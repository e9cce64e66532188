/**
 * One message shape for every validation problem:
 * `<kind> '<name>': <problem> (got <value>). <how to fix>.`
 */
export function problem(kind: string, name: string, what: string, got: unknown, fix: string): string {
  const fixed = fix.endsWith('.') ? fix : `${fix}.`;
  return `${kind} '${name}': ${what} (got ${show(got)}). ${fixed}`;
}

/** A problem with the property path it concerns (`ports[1].port`), for pulumi.InputPropertiesError. */
export interface Problem {
  readonly path: string;
  readonly message: string;
}

/** A value already written for a message (shown as is, not quoted). */
export class Shown {
  constructor(public readonly text: string) {}
}

/** Several values shown side by side: `'/app' and '/app/lib'`. */
export function both(a: unknown, b: unknown): Shown {
  return new Shown(`${show(a)} and ${show(b)}`);
}

/** How a value appears in a message: strings quoted, everything else as JSON. */
export function show(value: unknown): string {
  if (value instanceof Shown) return value.text;
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return `'${value}'`;
  return JSON.stringify(value);
}

/** Thrown by entry points that refuse invalid input; carries every problem at once. */
export class ValidationError extends Error {
  public readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ValidationError';
    this.problems = [...problems];
  }
}

/** Throws a ValidationError if there are problems. */
export function assertValid(problems: readonly string[]): void {
  if (problems.length > 0) throw new ValidationError(problems);
}
