/**
 * Narrowing: hands fhirpath.js only the part of a collection that an expression can keep.
 *
 * fhirpath.js walks every element with typed wrappers (about 30 µs per Observation for a
 * `where(code.coding.where(…).exists() and …)` here), so an expression that picks two body-mass-index
 * Observations out of a 200-resource prefetch pays for all 200. Most expressions of the bundled services
 * and models have the same shape: a collection read once and at once filtered by code,
 *
 *     %observations.entry.resource.ofType(Observation).where(code.coding.where(system = 'S' and code = 'C').exists() and …)
 *     component.where(code.coding.where(system = 'S' and code = 'C').exists()).value
 *
 * For such an expression the filter's code test is compiled once, from the expression's own syntax tree,
 * into a plain JavaScript predicate, and at evaluation the collection is cut down to the elements that
 * pass it before fhirpath.js runs. The expression itself is not changed: fhirpath.js still evaluates all
 * of it, on fewer elements.
 *
 * Why the result cannot change. The predicate over-approximates "the code test is true": it is false only
 * where the test is certainly not true (a coding whose `system` is a different string, or is missing), and
 * true for anything it does not understand (an operator other than `=`, `and`, `or`, `startsWith`; a value
 * that is not a string). A `where` keeps an element only when its criterion is true, and `A and B` is true
 * only when A is; so an element the predicate removes is one the `where` would have dropped. Narrowing is
 * planned only when *every* read of the collection in the expression goes through such a filter:
 *
 * - a `%name` variable, when each of its occurrences is `%name.entry.resource[.ofType(T)].where(C)` with a
 *   code test among the top-level `and` terms of C (the Bundle's other members are never read);
 * - the `component` list of the input, when every `component` read in the expression is followed by such a
 *   `where`, and nothing in the expression can reach the input as a whole (no `$this`, `%context`,
 *   `%resource`, `%rootResource`, no type-name path such as `Observation.…`, no function such as `first()`
 *   or `where()` applied to the input): only its components differ, and they are only ever read filtered.
 *
 * Anything else (another use of the variable, a top-level `or`, `!=`, `~`, an unknown function) leaves
 * that collection whole. The rule for each expression is decided once, at compile time;
 * test/rules/narrow.test.ts checks both the analysis and, on generated records, that every bundled
 * expression gives the same result narrowed or not.
 */

/** A node of fhirpath.js's parse tree (`fhirpath.parse`). */
export interface AstNode {
  type: string;
  text?: string;
  delimitedText?: string;
  children?: AstNode[];
}

/** Whether a value (a resource, a component, a coding) may pass the filter. */
type Predicate = (value: unknown) => boolean;

/** A filter's predicate, and its spelling: identical filters share their narrowed collections. */
interface Filter {
  keep: Predicate;
  key: string;
}

export interface NarrowingPlan {
  /** Variables whose Bundle is cut down to the entries whose resource may pass, by name. */
  variables: ReadonlyMap<string, { key: string; keep: Predicate }>;
  /** Names and filter keys of `variables`: plans with the same one narrow a variables object alike. */
  variablesKey: string;
  /** The input's `component` list is cut down to the components that may pass. */
  component: Predicate | undefined;
}

const NO_PLAN: NarrowingPlan = { variables: new Map(), variablesKey: '', component: undefined };

/** fhirpath.js's built-in variables that give the input (or its resource) as a whole. */
const WHOLE_INPUT_VARIABLES = new Set(['context', 'resource', 'rootResource']);

/**
 * Functions that, applied to the input at the start of a path, give back a value computed from it rather
 * than (part of) the input itself. Any other function there (`first()`, `where()`, `select()`, …) could
 * hand the narrowed input on as a whole.
 */
const INPUT_SAFE_FUNCTIONS = new Set(['iif', 'exists', 'empty', 'count', 'not', 'today', 'now', 'hasValue']);

/** Functions whose parameter is a type name, not a path. */
const TYPE_FUNCTIONS = new Set(['ofType', 'is', 'as']);

const kids = (node: AstNode | undefined): AstNode[] => node?.children ?? [];

/** Skips the wrappers that do not change meaning: `TermExpression`, `ParenthesizedTerm`. */
function unwrap(node: AstNode): AstNode {
  let current = node;
  while (
    (current.type === 'TermExpression' || current.type === 'ParenthesizedTerm') &&
    kids(current).length === 1
  ) {
    current = kids(current)[0]!;
  }
  return current;
}

/** One step of a path: the head term, then member or function invocations. */
type Step =
  | { kind: 'member'; name: string }
  | { kind: 'function'; name: string; params: AstNode[] }
  | { kind: 'variable'; name: string }
  | { kind: 'this' }
  | { kind: 'other' };

function stepOf(node: AstNode): Step {
  const n = unwrap(node);
  if (n.type === 'InvocationTerm') return stepOf(kids(n)[0]!);
  if (n.type === 'MemberInvocation') return { kind: 'member', name: n.text ?? '' };
  if (n.type === 'FunctionInvocation') {
    const functn = kids(n)[0];
    const params = kids(kids(functn).find((c) => c.type === 'ParamList'));
    return { kind: 'function', name: functn?.text ?? n.text ?? '', params };
  }
  if (n.type === 'ExternalConstantTerm') {
    const name = n.delimitedText ?? kids(kids(n)[0])[0]?.text ?? n.text ?? '';
    return { kind: 'variable', name };
  }
  if (n.type === 'ThisInvocation') return { kind: 'this' };
  return { kind: 'other' };
}

/** A path `a.b.f(x).c` as its steps, or undefined when the node is not a path. */
function pathOf(node: AstNode): Step[] | undefined {
  const n = unwrap(node);
  if (n.type === 'InvocationExpression') {
    const [left, right] = kids(n);
    const head = left && pathOf(left);
    return head && right ? [...head, stepOf(right)] : undefined;
  }
  if (n.type === 'InvocationTerm' || n.type === 'ExternalConstantTerm') return [stepOf(n)];
  return undefined;
}

function stringLiteral(node: AstNode): string | undefined {
  const n = unwrap(node);
  const literal = n.type === 'LiteralTerm' ? kids(n)[0] : n;
  if (literal?.type !== 'StringLiteral' || literal.text === undefined) return undefined;
  const text = literal.text;
  // Only literals without escapes: their value is the text between the quotes.
  if (!/^'[^'\\]*'$/.test(text)) return undefined;
  return text.slice(1, -1);
}

/** A single member name at the start of a path (`system`, `code`), or undefined. */
function memberName(node: AstNode): string | undefined {
  const path = pathOf(node);
  return path?.length === 1 && path[0]!.kind === 'member' ? path[0]!.name : undefined;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Parsed JSON only: fhirpath.js's own typed nodes (kept-type results passed back in) are left alone. */
const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  isRecord(value) && Object.getPrototypeOf(value) === Object.prototype;

/**
 * The test of a coding, from the criterion of `coding.where(…)`: true unless the coding certainly fails.
 * `key` spells the test, so that identical tests share their narrowed collections.
 */
function codingTest(node: AstNode): Filter {
  const n = unwrap(node);
  const [left, right] = kids(n);
  // `xor` is parsed as an OrExpression too: it falls through to the default below.
  if ((n.type === 'AndExpression' || (n.type === 'OrExpression' && n.text === 'or')) && left && right) {
    const a = codingTest(left);
    const b = codingTest(right);
    return n.type === 'AndExpression'
      ? { keep: (c) => a.keep(c) && b.keep(c), key: `(${a.key}&${b.key})` }
      : { keep: (c) => a.keep(c) || b.keep(c), key: `(${a.key}|${b.key})` };
  }
  if (n.type === 'EqualityExpression' && n.text === '=' && left && right) {
    const leftField = memberName(left);
    const [field, value] =
      leftField !== undefined ? [leftField, stringLiteral(right)] : [memberName(right), stringLiteral(left)];
    if (field !== undefined && value !== undefined) {
      return {
        keep: (c) => {
          if (!isRecord(c)) return true;
          const v = c[field];
          // Missing: `=` is empty, never true. Not a plain string: not understood, kept.
          return v === undefined || v === null ? false : typeof v === 'string' ? v === value : true;
        },
        key: `${field}=${JSON.stringify(value)}`,
      };
    }
  }
  const path = pathOf(n);
  if (path?.length === 2 && path[0]!.kind === 'member' && path[1]!.kind === 'function') {
    const field = path[0]!.name;
    const call = path[1]!;
    const prefix =
      call.name === 'startsWith' && call.params.length === 1 ? stringLiteral(call.params[0]!) : undefined;
    if (prefix !== undefined) {
      return {
        keep: (c) => {
          if (!isRecord(c)) return true;
          const v = c[field];
          return v === undefined || v === null ? false : typeof v === 'string' ? v.startsWith(prefix) : true;
        },
        key: `${field}^=${JSON.stringify(prefix)}`,
      };
    }
  }
  return { keep: () => true, key: '*' };
}

/**
 * Whether `test` holds for one of the values of `name` in `item`, as FHIRPath sees them: each of a
 * list's items (nulls in it included), a single value, none when absent or null or when `item` is not
 * an object. Nothing is allocated: filters run on every entry of a Bundle.
 */
function someMember(item: unknown, name: string, test: Predicate): boolean {
  if (!isRecord(item)) return false;
  const v = item[name];
  if (Array.isArray(v)) {
    for (const member of v) if (test(member)) return true;
    return false;
  }
  return v !== undefined && v !== null && test(v);
}

/** `code.coding.where(K).exists()`: the code test of an element, or undefined when `term` is not one. */
function codeTest(term: AstNode): Filter | undefined {
  const path = pathOf(term);
  if (path?.length !== 4) return undefined;
  const [code, coding, where, exists] = path as [Step, Step, Step, Step];
  if (code.kind !== 'member' || code.name !== 'code' || coding.kind !== 'member' || coding.name !== 'coding')
    return undefined;
  if (where.kind !== 'function' || where.name !== 'where' || where.params.length !== 1) return undefined;
  if (exists.kind !== 'function' || exists.name !== 'exists' || exists.params.length !== 0) return undefined;
  const test = codingTest(where.params[0]!);
  if (test.key === '*') return undefined;
  return {
    keep: (element) => {
      // Anything but objects is left to fhirpath.js.
      if (!isRecord(element)) return true;
      return someMember(element, 'code', (code) => someMember(code, 'coding', test.keep));
    },
    key: `code.coding[${test.key}]`,
  };
}

/** The code test among the top-level `and` terms of a `where` criterion (the first one found). */
function filterOf(criterion: AstNode): Filter | undefined {
  const n = unwrap(criterion);
  if (n.type === 'AndExpression') {
    const [left, right] = kids(n);
    return (left && filterOf(left)) ?? (right && filterOf(right));
  }
  return codeTest(n);
}

/** Every node of the tree, depth first. */
function* walk(node: AstNode): Generator<AstNode> {
  yield node;
  for (const child of kids(node)) yield* walk(child);
}

/**
 * The paths of the tree: each maximal `InvocationExpression` chain and each lone term, then the paths in
 * the parameters of its functions (a type name given to `ofType()`, `is()` or `as()` is not a path).
 */
function* pathsIn(node: AstNode): Generator<Step[]> {
  const steps =
    node.type === 'InvocationExpression' ||
    node.type === 'InvocationTerm' ||
    node.type === 'ExternalConstantTerm'
      ? pathOf(node)
      : undefined;
  if (!steps) {
    for (const child of kids(node)) yield* pathsIn(child);
    return;
  }
  yield steps;
  for (const step of steps) {
    if (step.kind !== 'function' || TYPE_FUNCTIONS.has(step.name)) continue;
    for (const param of step.params) yield* pathsIn(param);
  }
}

/** How each occurrence of a variable reads its Bundle: the entries' resources it may keep. */
function variableRead(steps: Step[]): Filter | undefined {
  const [, entry, resource] = steps;
  if (
    entry?.kind !== 'member' ||
    entry.name !== 'entry' ||
    resource?.kind !== 'member' ||
    resource.name !== 'resource'
  )
    return undefined;
  let next = 3;
  let type: string | undefined;
  const ofType = steps[next];
  if (ofType?.kind === 'function' && ofType.name === 'ofType' && ofType.params.length === 1) {
    const typePath = pathOf(ofType.params[0]!);
    // A plain type name; a qualified one (FHIR.Observation) is not checked here, only the code.
    if (typePath?.length === 1 && typePath[0]!.kind === 'member') type = typePath[0]!.name;
    next += 1;
  }
  const where = steps[next];
  const filter =
    where?.kind === 'function' && where.name === 'where' && where.params.length === 1
      ? filterOf(where.params[0]!)
      : undefined;
  if (!filter && type === undefined) return undefined;
  return {
    keep: (r) =>
      !isRecord(r) ||
      ((type === undefined || r.resourceType === type) && (filter === undefined || filter.keep(r))),
    key: `${type ?? '*'}:${filter?.key ?? '*'}`,
  };
}

/**
 * The narrowing an expression allows, from its parse tree.
 * @param ast what `fhirpath.parse(source)` returns
 */
export function planNarrowing(ast: AstNode): NarrowingPlan {
  const reads = new Map<string, (Filter | undefined)[]>();
  const componentReads: (Filter | undefined)[] = [];
  let inputExposed = false;

  for (const steps of pathsIn(ast)) {
    const head = steps[0]!;
    if (head.kind === 'this') inputExposed = true;
    if (head.kind === 'variable') {
      if (WHOLE_INPUT_VARIABLES.has(head.name)) inputExposed = true;
      const list = reads.get(head.name) ?? [];
      list.push(variableRead(steps));
      reads.set(head.name, list);
    }
    if (head.kind === 'function' && !INPUT_SAFE_FUNCTIONS.has(head.name)) inputExposed = true;
    // A path starting with a type name (`Observation.component`) starts from the input itself.
    if (head.kind === 'member' && /^[A-Z]/.test(head.name)) inputExposed = true;
    if (head.kind === 'other' && steps.length > 1) inputExposed = true;
    steps.forEach((step, i) => {
      if (step.kind !== 'member' || step.name !== 'component') return;
      const where = steps[i + 1];
      componentReads.push(
        where?.kind === 'function' && where.name === 'where' && where.params.length === 1
          ? filterOf(where.params[0]!)
          : undefined,
      );
    });
  }
  // A variable or `component` may also appear where no path was recognised (an operand the walk above
  // does not reach as a path): count every occurrence in the tree, and plan only when all were seen.
  const seen = new Map<string, number>();
  let components = 0;
  for (const node of walk(ast)) {
    const step = node.type === 'ExternalConstantTerm' ? stepOf(node) : undefined;
    if (step?.kind === 'variable') seen.set(step.name, (seen.get(step.name) ?? 0) + 1);
    if (node.type === 'MemberInvocation' && node.text === 'component') components += 1;
  }

  const variables = new Map<string, { key: string; keep: Predicate }>();
  for (const [name, list] of reads) {
    if (list.length !== seen.get(name) || list.some((r) => r === undefined)) continue;
    const tests = list as Filter[];
    const key = [...new Set(tests.map((t) => t.key))].sort().join(' | ');
    variables.set(name, { key, keep: (r) => tests.some((t) => t.keep(r)) });
  }
  const component =
    !inputExposed &&
    componentReads.length > 0 &&
    componentReads.length === components &&
    componentReads.every((r) => r !== undefined)
      ? (c: unknown) => componentReads.some((t) => t!.keep(c))
      : undefined;
  if (variables.size === 0 && component === undefined) return NO_PLAN;
  const variablesKey = [...variables]
    .map(([name, { key }]) => `${name.length}:${name}=${key}`)
    .sort()
    .join('\n');
  return { variables, variablesKey, component };
}

/**
 * Narrowed Bundles, per original Bundle and filter, and narrowed variables objects, per original and
 * `variablesKey` (under `vars:`, a key no filter spells): computed once per call, shared by the
 * expressions. A variables object is never changed once built (fhirpath.ts), so its narrowed copy stays
 * right. The FHIRPath engine that evaluates (fhirpath.ts) owns one, so two engines (two apps) never
 * share it.
 */
export type NarrowedBundles = WeakMap<object, Map<string, object>>;

function narrowBundle(
  narrowedBundles: NarrowedBundles,
  bundle: unknown,
  key: string,
  keep: Predicate,
): unknown {
  if (!isPlainObject(bundle) || bundle.resourceType !== 'Bundle' || !Array.isArray(bundle.entry))
    return bundle;
  let byKey = narrowedBundles.get(bundle);
  if (!byKey) {
    byKey = new Map();
    narrowedBundles.set(bundle, byKey);
  }
  let narrowed = byKey.get(key);
  if (!narrowed) {
    const entry = (bundle.entry as unknown[]).filter(
      (e) => isRecord(e) && e.resource !== undefined && keep(e.resource),
    );
    narrowed = { resourceType: 'Bundle', entry };
    byKey.set(key, narrowed);
  }
  return narrowed;
}

/**
 * The input and variables to evaluate on, narrowed as the plan allows.
 * @param bundles the narrowed Bundles already computed, kept by the caller's engine
 */
export function narrow(
  plan: NarrowingPlan,
  input: unknown,
  env: Readonly<Record<string, unknown>>,
  bundles: NarrowedBundles,
): { input: unknown; env: Readonly<Record<string, unknown>> } {
  if (plan === NO_PLAN) return { input, env };
  let narrowedEnv = env;
  if (plan.variables.size > 0) {
    let byKey = bundles.get(env);
    if (!byKey) {
      byKey = new Map();
      bundles.set(env, byKey);
    }
    const cacheKey = `vars:${plan.variablesKey}`;
    const known = byKey.get(cacheKey) as Readonly<Record<string, unknown>> | undefined;
    if (known) narrowedEnv = known;
    else {
      for (const [name, { key, keep }] of plan.variables) {
        if (!(name in env)) continue;
        const value = env[name];
        const narrowed = narrowBundle(bundles, value, key, keep);
        if (narrowed !== value) {
          if (narrowedEnv === env) narrowedEnv = { ...env };
          (narrowedEnv as Record<string, unknown>)[name] = narrowed;
        }
      }
      byKey.set(cacheKey, narrowedEnv);
    }
  }
  let narrowedInput = input;
  if (plan.component && isPlainObject(input) && Array.isArray(input.component)) {
    const keep = plan.component;
    narrowedInput = { ...input, component: (input.component as unknown[]).filter((c) => keep(c)) };
  }
  return { input: narrowedInput, env: narrowedEnv };
}
