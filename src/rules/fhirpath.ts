/**
 * The one wrapper over fhirpath.js: expressions are compiled once (at start-up) with the R4 model
 * (without it `ofType()` and choice types such as `value` do not resolve), then evaluated many times.
 * An expression within the compiled subset runs as JavaScript closures (`compile.ts`); any other is
 * interpreted by fhirpath.js, as is every expression with `compiled: false`.
 *
 * `today()` and `now()` are answered from the injected clock rather than the machine's, so a
 * recommendation can be re-run exactly (audit) and tests are deterministic.
 *
 * `inValueSet('<id>')` (or the value set's canonical URL) is true when any Coding of its input (Codings or
 * CodeableConcepts) is a member of that value set, as the terminology component decides (`%valueSets`, the
 * service's loaded value sets), and false otherwise, an empty input included: a draft order is matched on
 * any of its codings (RxNorm, ATC, national codes).
 */
import { createRequire } from 'node:module';
import type { ValueSets } from '../services/value-sets.js';
import { type CompiledFunction, compileExpression } from './compile.js';
import { type AstNode, narrow, type NarrowedBundles, type NarrowingPlan, planNarrowing } from './narrow.js';

// fhirpath.js's CommonJS entry, not its bundled ES module: `compile.ts` calls the functions of its
// CommonJS sources, and a value produced by one side (a typed node, a date) must be an instance of the
// same classes on the other.
const require = createRequire(import.meta.url);
const fhirpath = require('fhirpath') as typeof import('fhirpath');
const r4 = require('fhirpath/fhir-context/r4') as typeof import('fhirpath/fhir-context/r4/index.js');

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
  /**
   * The first item `evaluate` gives (undefined when it gives none), for callers that read only that and
   * keep what they read themselves (feature extraction: the date and value of each candidate). Nothing
   * is remembered. A union of paths (`effective.ofType(dateTime) | effective.ofType(Period).start |
   * issued`) runs its branches in order until one gives an item: a union keeps the first occurrence of
   * each item, in order, so its first item is the first item of its first non-empty branch, and the
   * later branches, which would only be compared with it to drop duplicates, are not evaluated.
   */
  first(input: unknown, env: Readonly<Record<string, unknown>>, now: Date): unknown;
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

/** Parse-tree nodes of a path: member access and `ofType(T)`, which cannot fail whatever the data. */
const PATH_NODES = new Set([
  'InvocationExpression',
  'TermExpression',
  'InvocationTerm',
  'MemberInvocation',
  'Identifier',
  'FunctionInvocation',
  'Functn',
  'ParamList',
]);

function isPath(node: AstNode): boolean {
  if (!PATH_NODES.has(node.type)) return false;
  if (node.type === 'FunctionInvocation' && node.text !== 'ofType') return false;
  return (node.children ?? []).every(isPath);
}

/**
 * The branches, left to right, of an expression that is a union of paths (`a | b.ofType(T).c | d`);
 * undefined for any other expression. Only paths: a branch that could fail on some data (a function
 * with a singleton argument, a comparison) is evaluated with the others, as the union does.
 */
function unionOfPaths(tree: AstNode): AstNode[] | undefined {
  let root = tree.children?.[0];
  while (root?.type === 'EntireExpression') root = root.children?.[0];
  if (root?.type !== 'UnionExpression') return undefined;
  const branches: AstNode[] = [];
  const collect = (node: AstNode): boolean => {
    if (node.type === 'UnionExpression') return node.children?.length === 2 && node.children.every(collect);
    if (!isPath(node)) return false;
    branches.push(node);
    return true;
  };
  return collect(root) ? branches : undefined;
}

/** The JSON value of a fhirpath.js node (or the value itself). */
function valueOf(node: unknown): unknown {
  return typeof node === 'object' && node !== null && 'data' in node
    ? (node as { data: unknown }).data
    : node;
}

/** The string system/code pairs of a Coding or of a CodeableConcept's codings. */
function codingsOf(value: unknown): { system: string; code: string }[] {
  if (typeof value !== 'object' || value === null) return [];
  const candidates = Array.isArray((value as { coding?: unknown }).coding)
    ? ((value as { coding: unknown[] }).coding as unknown[])
    : [value];
  return candidates.flatMap((c) => {
    const { system, code } = (c ?? {}) as { system?: unknown; code?: unknown };
    return typeof system === 'string' && typeof code === 'string' ? [{ system, code }] : [];
  });
}

function literal(text: string): unknown {
  return (fhirpath.evaluate({}, text, {}, r4, { resolveInternalTypes: false }) as unknown[])[0];
}

type Compiled = CompiledFunction;

/** Parse trees by exact source text. */
export type ParseTrees = ReadonlyMap<string, AstNode>;

/**
 * fhirpath.js's parse tree of a source text (its ANTLR parser).
 * @throws Error with fhirpath.js's parser message
 */
export function parseFhirPath(source: string): AstNode {
  try {
    return fhirpath.parse(source) as AstNode;
  } catch (error) {
    throw new Error(`invalid FHIRPath "${source}": ${(error as Error).message.split('\n')[0]}`);
  }
}

/** The version of fhirpath.js, from its package.json: a stored tree is its parser's output. */
export const FHIRPATH_VERSION = (require('fhirpath/package.json') as { version: string }).version;

export interface FhirPathOptions {
  /**
   * Narrowing (`narrow.ts`) and remembered results on (the default) or off: off only to compare
   * results and timings with plain fhirpath.js (tests, benchmark).
   */
  shortcuts?: boolean;
  /**
   * Expressions within the compiled subset run as JavaScript closures (`compile.ts`) rather than through
   * fhirpath.js's interpreter (the default); off only to compare results and timings with fhirpath.js.
   */
  compiled?: boolean;
  /**
   * Parse trees by exact source text (`parse-trees.ts`: built with the service, for the bundled
   * sources): a source found here is not parsed again; any other source is. Never changed by the engine.
   */
  trees?: ParseTrees;
}

/** Compiles expressions; each engine has its own clock slot, caches and remembered results. */
export interface FhirPath {
  /**
   * Source texts (with their result kind) compiled to closures, and those left to fhirpath.js; source
   * texts parsed by fhirpath.js, and those whose tree came from `trees`.
   */
  readonly counts: { compiled: number; interpreted: number; parsed: number; stored: number };
  /**
   * Compiles a FHIRPath expression against the R4 model.
   * @param source the expression
   * @param allowedVariables `%names` the caller will provide; any other name is rejected now rather
   *   than at the first evaluation
   * @param keepTypes return fhirpath.js's typed nodes instead of plain JSON values: for results that are
   *   passed on as variables of other expressions (a date stays a date, not a string)
   * @throws Error with fhirpath.js's parser message or the unknown variable
   */
  compile(source: string, allowedVariables: readonly string[], keepTypes?: boolean): CompiledExpression;
}

/**
 * Creates a FHIRPath engine. Whoever builds an app (or a tool) creates one and hands it to the loaders:
 * nothing is kept at module level, so two apps in one process never share a clock or a cache.
 */
export function createFhirPath(options: FhirPathOptions = {}): FhirPath {
  const shortcuts = options.shortcuts ?? true;
  const compiledMode = options.compiled ?? true;
  const counts = { compiled: 0, interpreted: 0, parsed: 0, stored: 0 };
  const stored = options.trees;

  /** The clock reading of the evaluation under way; evaluation is synchronous, so one slot suffices. */
  const clock: { now: Date; today: unknown; nowValue: unknown } = {
    now: new Date(0),
    today: undefined,
    nowValue: undefined,
  };

  /**
   * The last `today()` and `now()` literals parsed, by their text. Parsing one is a whole fhirpath.js
   * parse (ANTLR), and the slot above is emptied for every evaluation: without these, each expression
   * reading the clock parsed its literal again (5% of the pipeline's time on the knee-OA bodies). The
   * same text gives the same value, which nothing changes once made.
   */
  const parsedClock = {
    today: { text: '', value: undefined as unknown },
    now: { text: '', value: undefined as unknown },
  };
  const parsedOnce = (slot: { text: string; value: unknown }, text: string): unknown => {
    if (slot.text !== text) {
      slot.value = literal(text);
      slot.text = text;
    }
    return slot.value;
  };
  const clockFunctions = {
    today: () => (clock.today ??= parsedOnce(parsedClock.today, `@${clock.now.toISOString().slice(0, 10)}`)),
    now: () => (clock.nowValue ??= parsedOnce(parsedClock.now, `@${clock.now.toISOString()}`)),
  };
  const userInvocationTable = {
    inValueSet: {
      arity: { 1: ['String' as const] },
      internalStructures: true,
      fn(this: { vars?: Record<string, unknown> }, input: unknown[], id: string): boolean {
        const valueSets = this.vars?.valueSets as ValueSets | undefined;
        if (!valueSets?.get(id)) throw new Error(`inValueSet: no value set "${id}" is loaded`);
        return input.some((node) =>
          codingsOf(valueOf(node)).some((c) => valueSets.contains(id, c.system, c.code)),
        );
      },
    },
    today: { arity: { 0: [] }, fn: clockFunctions.today },
    now: { arity: { 0: [] }, fn: clockFunctions.now },
  };

  /** One fhirpath.js function and narrowing plan per source text and result kind, however often compiled. */
  const compiledBySource = new Map<
    string,
    { compiled: Compiled; plan: NarrowingPlan; branches: Compiled[] | undefined }
  >();
  /** The parse tree of each source text (shared by both result kinds). */
  const treeBySource = new Map<string, AstNode>();

  /**
   * Results already computed during a call, by variables object, then input object, then compiled
   * function: the same expression on the same resource with the same variables gives the same result
   * (the body-mass-index source of two knee features, the date of each of their candidates). A
   * variables object is built for one call or one subject and never changed afterwards (rules' defines
   * make a new one per step), so a result cannot outlive what it was computed from; the maps are weak.
   */
  const remembered = new WeakMap<object, WeakMap<object, Map<Compiled, { at: number; result: unknown[] }>>>();

  /** Narrowed Bundles of this engine's evaluations (`narrow.ts`). */
  const narrowed: NarrowedBundles = new WeakMap();

  const setClock = (now: Date): void => {
    clock.now = now;
    clock.today = undefined;
    clock.nowValue = undefined;
  };
  const compileOptions = (keepTypes: boolean) => ({
    model: r4,
    clock: clockFunctions,
    keepTypes,
    userFunctions: { inValueSet: userInvocationTable.inValueSet },
  });

  const resultsFor = (env: object, input: object): Map<Compiled, { at: number; result: unknown[] }> => {
    let byInput = remembered.get(env);
    if (!byInput) {
      byInput = new WeakMap();
      remembered.set(env, byInput);
    }
    let results = byInput.get(input);
    if (!results) {
      results = new Map();
      byInput.set(input, results);
    }
    return results;
  };

  const compile = (
    source: string,
    allowedVariables: readonly string[],
    keepTypes = false,
  ): CompiledExpression => {
    const unknown = variablesOf(source).filter((name) => !allowedVariables.includes(name));
    if (unknown.length > 0) {
      throw new Error(
        `unknown variable ${unknown.map((n) => `%${n}`).join(', ')} (available: ${allowedVariables.map((n) => `%${n}`).join(', ')})`,
      );
    }
    const key = `${keepTypes ? 'typed' : 'plain'}:${source}`;
    let entry = compiledBySource.get(key);
    if (!entry) {
      // One parse per source text (fhirpath.js's ANTLR parser is most of the start-up's FHIRPath time):
      // the tree serves the closures, the narrowing plan and both result kinds; fhirpath.js compiles its
      // own function (parsing again) only for an expression outside the subset.
      // A tree stored at build time for this exact text is that parse's result (parse-trees.ts).
      let tree = treeBySource.get(source);
      if (!tree) {
        tree = stored?.get(source);
        if (tree) counts.stored += 1;
        else {
          tree = parseFhirPath(source);
          counts.parsed += 1;
        }
        treeBySource.set(source, tree);
      }
      // Within the subset, closures calling fhirpath.js's own functions; otherwise fhirpath.js.
      const closures = compiledMode ? compileExpression(tree, compileOptions(keepTypes)) : undefined;
      const compiled: Compiled =
        closures ??
        (fhirpath.compile(source, r4, {
          userInvocationTable,
          ...(keepTypes ? { resolveInternalTypes: false } : {}),
        }) as Compiled);
      counts[closures ? 'compiled' : 'interpreted'] += 1;
      // A union of paths: its branches as closures too, for `first` (all of them, or none).
      const paths = closures ? unionOfPaths(tree) : undefined;
      const branchClosures = paths?.map((branch) =>
        compileExpression({ type: 'EntireExpression', children: [branch] }, compileOptions(keepTypes)),
      );
      const branches = branchClosures?.every((b) => b !== undefined) ? branchClosures : undefined;
      // Which collections may be cut down before they are walked (narrow.ts says why it is exact).
      entry = { compiled, plan: planNarrowing(tree), branches };
      compiledBySource.set(key, entry);
    }
    const { compiled, plan, branches } = entry;
    const run = (input: unknown, env: Readonly<Record<string, unknown>>, now: Date): unknown[] => {
      setClock(now);
      if (!shortcuts) return compiled(input, env as Record<string, unknown>) as unknown[];
      const cut = narrow(plan, input, env, narrowed);
      return compiled(cut.input, cut.env as Record<string, unknown>) as unknown[];
    };
    return {
      source,
      evaluate(input, env, now) {
        if (!shortcuts || typeof input !== 'object' || input === null) return run(input, env, now);
        const results = resultsFor(env, input);
        const known = results.get(compiled);
        // A copy: a caller may sort or extend what it is given.
        if (known && known.at === now.getTime()) return known.result.slice();
        const result = run(input, env, now);
        results.set(compiled, { at: now.getTime(), result });
        return result.slice();
      },
      first(input, env, now) {
        if (branches === undefined) return run(input, env, now)[0];
        setClock(now);
        for (const branch of branches) {
          const items = branch(input, env as Record<string, unknown>) as unknown[];
          if (items.length > 0) return items[0];
        }
        return undefined;
      },
    };
  };

  return { compile, counts };
}
