/**
 * The one wrapper over fhirpath.js: expressions are compiled once (at start-up) with the R4 model
 * (without it `ofType()` and choice types such as `value` do not resolve), then evaluated many times.
 *
 * `today()` and `now()` are answered from the injected clock rather than the machine's, so a
 * recommendation can be re-run exactly (audit) and tests are deterministic.
 */
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';
import { type AstNode, narrow, planNarrowing } from './narrow.js';

/** Variables fhirpath.js or the FHIRPath spec define; definitions may use them without declaring them. */
const BUILT_IN_VARIABLES = new Set([
  'ucum',
  'context',
  'resource',
  'rootResource',
  'sct',
  'loinc',
  'factory',
]);

export interface CompiledExpression {
  readonly source: string;
  /** Evaluates on `input` with `%name` variables from `env`; `now` is the clock reading for today()/now(). */
  evaluate(input: unknown, env: Readonly<Record<string, unknown>>, now: Date): unknown[];
}

/** The clock reading of the evaluation under way; evaluation is synchronous, so one slot suffices. */
const clock = { now: new Date(0), today: undefined as unknown, nowValue: undefined as unknown };

function literal(text: string): unknown {
  return (fhirpath.evaluate({}, text, {}, r4, { resolveInternalTypes: false }) as unknown[])[0];
}

const userInvocationTable = {
  today: {
    arity: { 0: [] },
    fn: () => {
      clock.today ??= literal(`@${clock.now.toISOString().slice(0, 10)}`);
      return clock.today;
    },
  },
  now: {
    arity: { 0: [] },
    fn: () => {
      clock.nowValue ??= literal(`@${clock.now.toISOString()}`);
      return clock.nowValue;
    },
  },
};

/** Narrowing on (the default) or off: off only to compare results and timings (tests, benchmark). */
let narrowing = true;

/** Switches narrowing (`narrow.ts`) on or off for every compiled expression. */
export function setNarrowing(enabled: boolean): void {
  narrowing = enabled;
}

/** Names of `%variables` an expression uses, string literals and built-ins left out. */
export function variablesOf(source: string): string[] {
  const withoutStrings = source.replace(/'(?:[^'\\]|\\.)*'/g, "''");
  const names = new Set<string>();
  for (const match of withoutStrings.matchAll(/%(?:`([^`]+)`|([A-Za-z_][A-Za-z0-9_-]*))/g)) {
    const name = match[1] ?? match[2]!;
    if (!BUILT_IN_VARIABLES.has(name) && !name.startsWith('vs-') && !name.startsWith('ext-')) names.add(name);
  }
  return [...names];
}

/**
 * Compiles a FHIRPath expression against the R4 model.
 * @param source the expression
 * @param allowedVariables `%names` the caller will provide; any other name is rejected now rather than
 *   at the first evaluation
 * @param keepTypes return fhirpath.js's typed nodes instead of plain JSON values: for results that are
 *   passed on as variables of other expressions (a date stays a date, not a string)
 * @throws Error with fhirpath.js's parser message or the unknown variable
 */
export function compileExpression(
  source: string,
  allowedVariables: readonly string[],
  keepTypes = false,
): CompiledExpression {
  const unknown = variablesOf(source).filter((name) => !allowedVariables.includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `unknown variable ${unknown.map((n) => `%${n}`).join(', ')} (available: ${allowedVariables.map((n) => `%${n}`).join(', ')})`,
    );
  }
  let compiled: (input: unknown, env: Record<string, unknown>) => unknown;
  try {
    compiled = fhirpath.compile(source, r4, {
      userInvocationTable,
      ...(keepTypes ? { resolveInternalTypes: false } : {}),
    }) as typeof compiled;
  } catch (error) {
    throw new Error(`invalid FHIRPath "${source}": ${(error as Error).message.split('\n')[0]}`);
  }
  // Which collections may be cut down before fhirpath.js walks them (narrow.ts says why it is exact).
  const plan = planNarrowing(fhirpath.parse(source) as AstNode);
  return {
    source,
    evaluate(input, env, now) {
      clock.now = now;
      clock.today = undefined;
      clock.nowValue = undefined;
      const narrowed = narrowing ? narrow(plan, input, env) : { input, env };
      return compiled(narrowed.input, narrowed.env as Record<string, unknown>) as unknown[];
    },
  };
}
