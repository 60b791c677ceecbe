/**
 * FHIRPath compiled into JavaScript closures, for the subset the bundled services and model manifests
 * use; fhirpath.js stays the interpreter for anything else and the oracle the compiled form is tested
 * against (test/rules/fhirpath-compiled.test.ts).
 *
 * How it stays exact. The compiler reads fhirpath.js's own parse tree (`parse`), so the grammar is not
 * re-implemented, and turns each node into a closure that does what fhirpath.js's evaluator
 * (`engine.doEval` in fhirpath/src/fhirpath.js) does for that node, calling the *same* functions
 * fhirpath.js calls: member access through its `util.makeChildResNodes` and `ResourceNode` (choice
 * types such as `value` → `valueQuantity` resolved by the R4 model, FHIR primitives as its typed nodes),
 * operators and functions through the implementations of its invocation table (`equality.equal`,
 * `filtering.whereMacro`, `math.minus` on its `FP_DateTime` and `FP_Quantity`, …), parameters typed and
 * checked as its `makeParam` does (empty propagation of `nullable` operators, singleton errors,
 * `$this` and `$index` set for each parameter), and the result prepared as its `prepareEvalResult` does
 * (plain JSON, or its typed nodes for `keepTypes`, `__path__` metadata included). Those functions are
 * loaded from fhirpath.js's CommonJS sources: the wrapper (`fhirpath.ts`) uses the same CommonJS entry,
 * so the classes are the same on both sides and a value produced by one can be read by the other (a
 * `define` compiled here, a rule left to fhirpath.js reading it).
 *
 * A few of those functions are rewritten here as plain loops, step for step, where their generic form
 * cost most at call time (the profile of the server under load): member access (`makeChildResNodes` with
 * its model lookups made once per parent path), where/select/exists/all (no per-item arrays, closures or
 * flattening), `ofType()` (its answer remembered per FHIR type name), a union with one item between its
 * sides, `=`/`!=`/`in`/`contains` when deepEqual comes down to two strings, unions of string literals and
 * clock arithmetic (`today() - 45 years`) computed once. Anything else they meet goes to fhirpath.js's own
 * function, and test/rules/fhirpath-compiled.test.ts compares each of them with fhirpath.js.
 *
 * What it saves is the interpretation: the per-node dispatch by type name, the evaluation of identifier
 * nodes, the lookup of each function and its arity at every call, the parameter lists rebuilt at each
 * call. Anything outside the subset (an unknown node type or function, a wrong number of arguments, an
 * invalid type name, a user function other than `today()`/`now()`) makes `compileExpression` return
 * undefined, and the whole expression is left to fhirpath.js, which then reports the error exactly as it
 * always has.
 */
import { createRequire } from 'node:module';
import type { AstNode } from './narrow.js';

const require = createRequire(import.meta.url);

/** A FHIRPath collection as fhirpath.js's evaluator passes it around. */
type Coll = unknown[];

/** fhirpath.js's evaluation context (`applyParsedPath`), with the fields the compiled closures read. */
interface Ctx {
  $this?: Coll;
  $index?: number;
  $total?: unknown;
  dataRoot: Coll;
  vars: Record<string, unknown>;
  processedVars: Record<string, unknown>;
  processedUserVarNames: Set<string>;
  definedVars?: Record<string, unknown>;
  model: unknown;
  getDecimal: (value: unknown) => unknown;
  [key: string]: unknown;
}

type Ev = (ctx: Ctx, data: Coll) => Coll;
type Impl = (this: Ctx, ...args: unknown[]) => unknown;

interface PathInfo {
  ctx: unknown;
  path: string;
  fhirNodeDataType: string | null;
  parentResNode: unknown;
  propName: string | null;
  index: number | null;
}

interface ResourceNodeLike {
  ctx: unknown;
  data: unknown;
  path: string | null;
  fhirNodeDataType: string | null;
  parentResNode: unknown;
  propName: string | null;
  index: number | null;
  getTypeInfo(): { is(other: unknown, model: unknown): boolean };
}

interface ResourceNodeClass {
  new (...args: unknown[]): ResourceNodeLike;
  makeResNode(...args: unknown[]): ResourceNodeLike;
}

interface TypeInfoLike {
  isValid(model: unknown): boolean;
  isConvertibleTo(other: TypeInfoLike, model: unknown): boolean;
}

interface Types {
  ResourceNode: ResourceNodeClass;
  TypeInfo: {
    new (spec: { namespace?: string; name: string }): TypeInfoLike;
    FHIR: string;
    typeToClassWithCheckString: Record<string, unknown>;
    fromValue(value: unknown): TypeInfoLike;
  };
  FP_Type: abstract new (...args: never[]) => { toJSON(): unknown };
  FP_Quantity: new (ctx: unknown, value: unknown, unit: string) => unknown;
  FP_Date: { checkString(ctx: unknown, text: string): unknown };
  FP_DateTime: { checkString(ctx: unknown, text: string): unknown };
  FP_Time: { checkString(ctx: unknown, text: string): unknown };
  FP_Decimal_Native: { getDecimal(value: unknown): unknown };
}

interface Util {
  arraify(x: unknown): Coll;
  isEmpty(x: unknown): boolean;
  isTrue(x: unknown): boolean;
  valData(x: unknown): unknown;
  pushFn(target: Coll, items: Coll): void;
  makeChildResNodes(ctx: Ctx, node: ResourceNodeLike, key: string, model: unknown): Coll;
}

type Module = Record<string, Impl>;

const types = require('fhirpath/src/types.js') as Types;
const util = require('fhirpath/src/utilities.js') as Util;
const Factory = require('fhirpath/src/factory.js') as unknown;
const existence = require('fhirpath/src/existence.js') as Module;
const filtering = require('fhirpath/src/filtering.js') as Module;
const aggregate = require('fhirpath/src/aggregate.js') as Module;
const combining = require('fhirpath/src/combining.js') as Module;
const misc = require('fhirpath/src/misc.js') as Module & { singleton(coll: Coll, type: string): unknown };
const equality = require('fhirpath/src/equality.js') as Module;
const collections = require('fhirpath/src/collections.js') as Module;
const math = require('fhirpath/src/math.js') as Module;
const strings = require('fhirpath/src/strings.js') as Module;
const datetime = require('fhirpath/src/datetime.js') as Module;
const logic = require('fhirpath/src/logic.js') as Module;
const { deepEqual } = require('fhirpath/src/deep-equal.js') as {
  deepEqual(ctx: unknown, a: unknown, b: unknown): boolean | undefined;
};

const { ResourceNode, TypeInfo, FP_Type, FP_Quantity, FP_Date, FP_DateTime, FP_Time } = types;
/** `is()`/`as()` and their operators: functions of the types module. */
const typeFns = types as unknown as { isFn: Impl; asFn: Impl };
const makeResNode = ResourceNode.makeResNode.bind(ResourceNode);
const FHIR_NAMESPACE = TypeInfo.FHIR;
const fromValue = TypeInfo.fromValue.bind(TypeInfo);

/**
 * `combineFns.union`: the distinct items of both collections. Two collections of one item between them
 * are their concatenation (distinctFn keeps a lone item as it is), without its type checks and deep
 * comparisons; `a | b` of two optional elements, the most common union, is that case.
 */
function union(this: Ctx, a: unknown, b: unknown): unknown {
  const first = a as Coll;
  const second = b as Coll;
  if (first.length + second.length <= 1) return first.concat(second);
  return combining.union!.call(this, first, second);
}

/** A parameter type of fhirpath.js's invocation table: a name, or `[name]` for "this type or empty". */
type ParamType = string | [string];

interface Invocation {
  fn: Impl;
  /** Parameter types by number of parameters; absent: the function takes none. */
  arity?: Record<number, ParamType[]>;
  nullable?: boolean;
}

/**
 * The part of fhirpath.js's `engine.invocationTable` (fhirpath/src/fhirpath.js) the compiler handles:
 * the same implementations with the same signatures. Functions that reach outside the data
 * (`resolve`, `memberOf` with a terminology server), keep state across parameters (`defineVariable`,
 * `aggregate`, `repeat`), log (`trace`) or evaluate lazily (`coalesce`) are left to fhirpath.js.
 */
const INVOCATIONS: Record<string, Invocation> = {
  empty: { fn: existence.emptyFn! },
  not: { fn: existence.notFn! },
  exists: { fn: existence.existsMacro!, arity: { 0: [], 1: ['Expr'] } },
  all: { fn: existence.allMacro!, arity: { 1: ['Expr'] } },
  allTrue: { fn: existence.allTrueFn! },
  anyTrue: { fn: existence.anyTrueFn! },
  allFalse: { fn: existence.allFalseFn! },
  anyFalse: { fn: existence.anyFalseFn! },
  isDistinct: { fn: existence.isDistinctFn! },
  distinct: { fn: filtering.distinctFn! },
  count: { fn: aggregate.countFn! },
  sum: { fn: aggregate.sumFn! },
  min: { fn: aggregate.minFn! },
  max: { fn: aggregate.maxFn! },
  where: { fn: filtering.whereMacro!, arity: { 1: ['Expr'] } },
  select: { fn: filtering.selectMacro!, arity: { 1: ['Expr'] } },
  single: { fn: filtering.singleFn! },
  first: { fn: filtering.firstFn! },
  last: { fn: filtering.lastFn! },
  tail: { fn: filtering.tailFn! },
  take: { fn: filtering.takeFn!, arity: { 1: ['Integer'] } },
  skip: { fn: filtering.skipFn!, arity: { 1: ['Integer'] } },
  ofType: { fn: filtering.ofTypeFn!, arity: { 1: ['TypeSpecifier'] } },
  is: { fn: typeFns.isFn, arity: { 1: ['TypeSpecifier'] } },
  as: { fn: typeFns.asFn, arity: { 1: ['TypeSpecifier'] } },
  combine: { fn: combining.combineFn!, arity: { 1: ['AnyAtRoot'] } },
  union: { fn: union, arity: { 1: ['AnyAtRoot'] } },
  intersect: { fn: combining.intersect!, arity: { 1: ['AnyAtRoot'] } },
  exclude: { fn: combining.exclude!, arity: { 1: ['AnyAtRoot'] } },
  iif: { fn: misc.iifMacro!, arity: { 2: ['Expr', 'Expr'], 3: ['Expr', 'Expr', 'Expr'] } },
  toInteger: { fn: misc.toInteger! },
  toDecimal: { fn: misc.toDecimal! },
  toString: { fn: misc.toString! },
  toDate: { fn: misc.toDate! },
  toDateTime: { fn: misc.toDateTime! },
  toBoolean: { fn: misc.toBoolean! },
  hasValue: { fn: misc.hasValueFn! },
  indexOf: { fn: strings.indexOf!, arity: { 1: ['String'] } },
  substring: { fn: strings.substring!, arity: { 1: ['Integer'], 2: ['Integer', 'Integer'] } },
  startsWith: { fn: strings.startsWith!, arity: { 1: ['String'] } },
  endsWith: { fn: strings.endsWith!, arity: { 1: ['String'] } },
  contains: { fn: strings.containsFn!, arity: { 1: ['String'] } },
  upper: { fn: strings.upper! },
  lower: { fn: strings.lower! },
  length: { fn: strings.length! },
  join: { fn: strings.joinFn!, arity: { 0: [], 1: ['String'] } },
  trim: { fn: strings.trimFn! },
  abs: { fn: math.abs! },
  ceiling: { fn: math.ceiling! },
  floor: { fn: math.floor! },
  round: { fn: math.round!, arity: { 0: [], 1: ['Integer'] } },
  truncate: { fn: math.truncate! },
  yearOf: { fn: datetime.yearOf! },
  monthOf: { fn: datetime.monthOf! },
  dayOf: { fn: datetime.dayOf! },
  '|': { fn: union, arity: { 2: ['Any', 'Any'] } },
  '=': { fn: equality.equal!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '!=': { fn: equality.unequal!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '~': { fn: equality.equival!, arity: { 2: ['Any', 'Any'] } },
  '!~': { fn: equality.unequival!, arity: { 2: ['Any', 'Any'] } },
  '<': { fn: equality.lt!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '>': { fn: equality.gt!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '<=': { fn: equality.lte!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '>=': { fn: equality.gte!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  containsOp: { fn: collections.contains!, arity: { 2: ['Any', 'Any'] } },
  inOp: { fn: collections.in!, arity: { 2: ['Any', 'Any'] } },
  isOp: { fn: typeFns.isFn, arity: { 2: ['Any', 'TypeSpecifier'] } },
  asOp: { fn: typeFns.asFn, arity: { 2: ['Any', 'TypeSpecifier'] } },
  '&': { fn: math.amp!, arity: { 2: ['String', 'String'] } },
  '+': { fn: math.plus!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '-': { fn: math.minus!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '*': { fn: math.mul!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  '/': { fn: math.div!, arity: { 2: ['Any', 'Any'] }, nullable: true },
  mod: { fn: math.mod!, arity: { 2: ['Number', 'Number'] }, nullable: true },
  div: { fn: math.intdiv!, arity: { 2: ['Number', 'Number'] }, nullable: true },
  or: { fn: logic.orOp!, arity: { 2: [['Boolean'], ['Boolean']] } },
  and: { fn: logic.andOp!, arity: { 2: [['Boolean'], ['Boolean']] } },
  xor: { fn: logic.xorOp!, arity: { 2: [['Boolean'], ['Boolean']] } },
  implies: { fn: logic.impliesOp!, arity: { 2: [['Boolean'], ['Boolean']] } },
};

for (const [name, invocation] of Object.entries(INVOCATIONS)) {
  if (typeof invocation.fn !== 'function') throw new Error(`fhirpath.js has no implementation of ${name}`);
}

/** Operators by parse-tree node type; `is`/`as`/`in`/`contains` are renamed as fhirpath.js does. */
const OPERATOR_NODES = new Set([
  'EqualityExpression',
  'InequalityExpression',
  'AdditiveExpression',
  'MultiplicativeExpression',
  'OrExpression',
  'ImpliesExpression',
  'AndExpression',
  'XorExpression',
]);
const ALIASES: Record<string, Record<string, string>> = {
  MembershipExpression: { contains: 'containsOp', in: 'inOp' },
  TypeExpression: { is: 'isOp', as: 'asOp' },
};

/** Nodes that only pass their single child through. */
const PASS_THROUGH = new Set(['EntireExpression', 'TermExpression', 'InvocationTerm', 'ParenthesizedTerm']);

/** Thrown inside the compiler for a node outside the subset; never escapes `compileExpression`. */
class OutsideSubset extends Error {}

const outside = (what: string): never => {
  throw new OutsideSubset(what);
};

/** `handleStringEscapes` and the literal/identifier unquoting of fhirpath/src/fhirpath.js. */
function handleStringEscapes(text: string): string {
  return text.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (match, sub: string) => {
    switch (match) {
      case '\\r':
        return '\r';
      case '\\n':
        return '\n';
      case '\\t':
        return '\t';
      case '\\f':
        return '\f';
      default:
        return sub.length > 1 ? String.fromCharCode(parseInt(sub.slice(1), 16)) : sub;
    }
  });
}
const stringLiteral = (text: string | undefined): string | undefined =>
  text && text.startsWith("'") && text.endsWith("'") ? handleStringEscapes(text.slice(1, -1)) : text;
const identifier = (text: string | undefined): string | undefined =>
  text && text.startsWith('`') && text.endsWith('`') ? handleStringEscapes(text.slice(1, -1)) : text;

const isNullable = (x: unknown) => x === null || x === undefined || util.isEmpty(x);

/**
 * Evaluates a parameter with `$this` set, as fhirpath.js does on a copy of the context (`cloneCtx`), but
 * on the context itself, its `$this` and `$index` put back afterwards. The same thing as far as anything
 * can see: the functions of the subset only ever write `$index` on the context they are called with
 * (where, select, all, exists set it before each call of their expression), and only the compiled nodes
 * read `$this`/`$index`, during the evaluation of the parameter; what a copy would hide from the caller
 * afterwards is restored here. (`defineVariable`, which copies `definedVars`, is not in the subset.)
 */
function withThis(ctx: Ctx, $this: Coll, ev: Ev): Coll {
  const savedThis = ctx.$this;
  const savedIndex = ctx.$index;
  ctx.$this = $this;
  try {
    return ev(ctx, $this);
  } finally {
    ctx.$this = savedThis;
    ctx.$index = savedIndex;
  }
}

/** The values the wrapper answers `today()` and `now()` with (the injected clock). */
export interface ClockFunctions {
  today(): unknown;
  now(): unknown;
}

type Param = (ctx: Ctx, data: Coll) => unknown;

interface Compiler {
  clock: ClockFunctions;
  model: unknown;
  user: Readonly<Record<string, Invocation>>;
}

function child(node: AstNode, index = 0): AstNode {
  return node.children?.[index] ?? outside(`${node.type} without child ${index}`);
}

function compileNode(c: Compiler, node: AstNode): Ev {
  if (PASS_THROUGH.has(node.type)) {
    if (node.children?.length !== 1) outside(`${node.type} with ${node.children?.length} children`);
    return compileNode(c, child(node));
  }
  if (node.type === 'AdditiveExpression' || node.type === 'MultiplicativeExpression') {
    const uses = clockUse(node);
    if (uses) return compileConstant(c, uses, compileInfix(c, node.text ?? '', node));
  }
  if (OPERATOR_NODES.has(node.type)) return compileInfix(c, node.text ?? '', node);
  const alias = ALIASES[node.type];
  if (alias) return compileInfix(c, alias[node.text ?? ''] ?? outside(`operator ${node.text}`), node);
  switch (node.type) {
    case 'UnionExpression':
      return compileInfix(c, '|', node);
    case 'InvocationExpression': {
      const steps = (node.children ?? []).map((n) => compileNode(c, n));
      if (steps.length === 2) {
        const [first, second] = steps as [Ev, Ev];
        return (ctx, data) => second(ctx, first(ctx, data));
      }
      return (ctx, data) => {
        let acc = data;
        for (let i = 0; i < steps.length; i++) acc = steps[i]!(ctx, acc);
        return acc;
      };
    }
    case 'LiteralTerm': {
      if (!node.children?.length) {
        const text = node.text;
        return () => [text];
      }
      return compileNode(c, child(node));
    }
    case 'StringLiteral': {
      const value = stringLiteral(node.text);
      return () => [value];
    }
    case 'BooleanLiteral': {
      const value = node.text === 'true';
      return () => [value];
    }
    case 'NumberLiteral': {
      const text = node.text;
      return (ctx) => [ctx.getDecimal(text)];
    }
    case 'QuantityLiteral': {
      const { value, unit } = node as AstNode & { value?: unknown; unit?: string };
      if (value === undefined || typeof unit !== 'string') outside('quantity literal');
      return (ctx) => [new FP_Quantity(ctx, ctx.getDecimal(value), unit!)];
    }
    case 'DateLiteral':
    case 'DateTimeLiteral':
    case 'TimeLiteral': {
      const text = node.text ?? '';
      const cls = { DateLiteral: FP_Date, DateTimeLiteral: FP_DateTime, TimeLiteral: FP_Time }[node.type]!;
      // An invalid literal is fhirpath.js's error to raise.
      if (!cls.checkString({ model: c.model }, text.slice(1))) outside(`invalid literal ${text}`);
      return (ctx) => [cls.checkString(ctx, text.slice(1))];
    }
    case 'NullLiteral':
      return () => [];
    case 'ThisInvocation':
      return (ctx) => ctx.$this ?? ctx.dataRoot;
    case 'IndexInvocation':
      return (ctx) => util.arraify(ctx.$index);
    case 'TotalInvocation':
      return (ctx) => util.arraify(ctx.$total);
    case 'ExternalConstantTerm':
      return compileVariable(node);
    case 'MemberInvocation':
      return compileMember(node);
    case 'IndexerExpression':
      return compileIndexer(c, node);
    case 'PolarityExpression':
      return compilePolarity(c, node);
    case 'FunctionInvocation':
      return compileFunction(c, node);
    default:
      return outside(`node ${node.type}`);
  }
}

/** Node types of literals: their value is in the tree. */
const LITERALS = new Set([
  'StringLiteral',
  'NumberLiteral',
  'QuantityLiteral',
  'DateLiteral',
  'DateTimeLiteral',
  'TimeLiteral',
  'BooleanLiteral',
  'NullLiteral',
]);

/**
 * Whether a subtree reads nothing but literals and the clock (`today() - 45 years`, `now() - 90 days`),
 * and which clock functions it reads; undefined when it reads anything else (the input, a variable,
 * `$this`, a function other than today()/now()).
 */
function clockUse(node: AstNode): { today: boolean; now: boolean } | undefined {
  if (PASS_THROUGH.has(node.type) || node.type === 'LiteralTerm' || node.type === 'PolarityExpression') {
    if (node.type === 'LiteralTerm' && !node.children?.length) return { today: false, now: false };
    return node.children?.length === 1 ? clockUse(node.children[0]!) : undefined;
  }
  if (LITERALS.has(node.type)) return { today: false, now: false };
  if (node.type === 'FunctionInvocation') {
    const functn = node.children?.[0];
    const name = identifier(functn?.text);
    const [id, list] = functn?.children ?? [];
    if (functn?.type !== 'Functn' || id?.type !== 'Identifier' || list?.children?.length) return undefined;
    return name === 'today' || name === 'now' ? { today: name === 'today', now: name === 'now' } : undefined;
  }
  if (node.type === 'AdditiveExpression' || node.type === 'MultiplicativeExpression') {
    const [left, right] = node.children ?? [];
    const a = left && clockUse(left);
    const b = right && node.children?.length === 2 ? clockUse(right) : undefined;
    return a && b ? { today: a.today || b.today, now: a.now || b.now } : undefined;
  }
  return undefined;
}

/**
 * A subtree of literals and clock readings (`today() - 45 years`), computed once per clock value
 * rather than at every evaluation (inside a `where`, once per item): the date arithmetic of fhirpath.js
 * is a good part of such a criterion's time. The clock functions give the same value object for the same
 * reading, so that object decides whether the remembered result still holds. The result is computed in
 * a context of its own (literals and the clock read only its decimal factory and model, the same as any
 * evaluation's), so it keeps no evaluation's input alive; each caller gets its own copy of the
 * collection. An error is not remembered: it is raised again at the next evaluation, as before.
 */
function compileConstant(c: Compiler, uses: { today: boolean; now: boolean }, ev: Ev): Ev {
  const constantCtx = {
    $this: undefined,
    $index: undefined,
    dataRoot: [],
    vars: {},
    processedVars: {},
    processedUserVarNames: new Set<string>(),
    model: c.model,
    getDecimal: types.FP_Decimal_Native.getDecimal,
  } as unknown as Ctx;
  let memo: { today: unknown; now: unknown; value: Coll } | undefined;
  return () => {
    const today = uses.today ? c.clock.today() : undefined;
    const now = uses.now ? c.clock.now() : undefined;
    if (!memo || memo.today !== today || memo.now !== now) {
      memo = { today, now, value: ev(constantCtx, constantCtx.dataRoot) };
    }
    return memo.value.slice();
  };
}

/** `engine.ExternalConstantTerm`. */
function compileVariable(node: AstNode): Ev {
  const name = node.delimitedText ? stringLiteral(node.delimitedText)! : (node.text ?? '');
  return (ctx) => {
    let value: unknown;
    if (name in ctx.vars && !ctx.processedUserVarNames.has(name)) {
      const restore = (i: unknown): unknown => {
        const item = i as { __path__?: PathInfo; resourceType?: unknown } | null | undefined;
        const info = item?.__path__;
        return info
          ? makeResNode(info.ctx, item, info.parentResNode, info.path, null, info.fhirNodeDataType)
          : item?.resourceType
            ? makeResNode(ctx, item, null, null, null, null)
            : item;
      };
      value = ctx.vars[name];
      value = Array.isArray(value) ? value.map(restore) : restore(value);
      ctx.processedVars[name] = value;
      ctx.processedUserVarNames.add(name);
    } else if (name in ctx.processedVars) {
      value = ctx.processedVars[name];
    } else if (ctx.definedVars && name in ctx.definedVars) {
      value = ctx.definedVars[name];
    } else {
      throw new Error(`Attempting to access an undefined environment variable: ${name}`);
    }
    return value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
  };
}

/** Paths of a member's child nodes under one parent path, as `util.makeChildResNodes` resolves them. */
interface ChildPaths {
  /** The child's path before a choice type's suffix (`pathsDefinedElsewhere` applied). */
  base: string;
  /** The type suffixes of a choice element (`value` → `Quantity`, `String`, …), or undefined. */
  choices: string[] | undefined;
  /** The final path and FHIR type by the path it was resolved from (one entry, or one per choice). */
  resolved: Map<string, { path: string; type: string | undefined }>;
}

interface ModelMaps {
  pathsDefinedElsewhere: Record<string, string | undefined>;
  choiceTypePaths: Record<string, string[] | undefined>;
  path2Type: Record<string, string | undefined>;
  path2TypeWithoutElements: Record<string, string | undefined>;
}

/**
 * Parent paths one member access remembers: the model's paths are a few hundred, but a resource's own
 * `resourceType` becomes a path too, and input data may hold any; past the bound paths are resolved
 * each time, as fhirpath.js does.
 */
const MAX_PARENT_PATHS = 256;

/**
 * `util.makeChildResNodes` of fhirpath.js, step for step, appending to `out`, with the model lookups of
 * each parent path (string concatenation and four dictionary reads per node) made once per member
 * access and parent path instead of once per node: the same paths and types, so the same nodes.
 */
function appendChildNodes(
  out: Coll,
  ctx: Ctx,
  parent: ResourceNodeLike & { _data: unknown },
  key: string,
  model: ModelMaps | null | undefined,
  paths: Map<string, ChildPaths>,
): void {
  const parentPath = parent.path;
  const data = parent.data as Record<string, unknown> | null | undefined;
  let childPath: string | null = null;
  let fhirNodeDataType: string | null | undefined = null;
  let toAdd: unknown;
  let _toAdd: unknown;
  if (parentPath) {
    let entry = paths.get(parentPath);
    if (!entry) {
      let base = parentPath + '.' + key;
      if (model) base = model.pathsDefinedElsewhere[base] || base;
      entry = { base, choices: (model && model.choiceTypePaths[base]) || undefined, resolved: new Map() };
      if (paths.size < MAX_PARENT_PATHS) paths.set(parentPath, entry);
    }
    childPath = entry.base;
    if (entry.choices) {
      for (const t of entry.choices) {
        const field = key + t;
        toAdd = data?.[field];
        _toAdd = data?.['_' + field];
        if (toAdd !== undefined || _toAdd !== undefined) {
          childPath += t;
          break;
        }
      }
    } else {
      toAdd = data?.[key];
      _toAdd = data?.['_' + key];
      if (toAdd === undefined && _toAdd === undefined) {
        toAdd = (parent._data as Record<string, unknown> | null | undefined)?.[key];
      }
      if (key === 'extension') childPath = 'Extension';
    }
    if (model) {
      let resolved = entry.resolved.get(childPath);
      if (!resolved) {
        resolved = {
          type: model.path2Type[childPath],
          path: model.path2TypeWithoutElements[childPath] || childPath,
        };
        entry.resolved.set(childPath, resolved);
      }
      fhirNodeDataType = resolved.type;
      childPath = resolved.path;
    }
  } else {
    toAdd = data?.[key];
    _toAdd = data?.['_' + key];
    if (toAdd === undefined && _toAdd === undefined) {
      toAdd = (parent._data as Record<string, unknown> | null | undefined)?.[key];
    }
  }
  if (util.isEmpty(toAdd) && util.isEmpty(_toAdd)) return;
  const extra = _toAdd as unknown[] | null | undefined;
  if (Array.isArray(toAdd)) {
    for (let i = 0; i < toAdd.length; i++) {
      out.push(makeResNode(ctx, toAdd[i], parent, childPath, extra && extra[i], fhirNodeDataType, key, i));
    }
    // Items with no value but associated data (extensions, ids) come last.
    const extraLength = extra?.length || 0;
    for (let i = toAdd.length; i < extraLength; ++i) {
      out.push(makeResNode(ctx, null, parent, childPath, extra![i], fhirNodeDataType, key, i));
    }
    return;
  }
  if (toAdd == null && Array.isArray(extra)) {
    for (let i = 0; i < extra.length; i++) {
      out.push(makeResNode(ctx, null, parent, childPath, extra[i], fhirNodeDataType, key, i));
    }
    return;
  }
  out.push(makeResNode(ctx, toAdd, parent, childPath, _toAdd, fhirNodeDataType, key));
}

/** `engine.MemberInvocation`. */
function compileMember(node: AstNode): Ev {
  const keyNode = child(node);
  if (keyNode.type !== 'Identifier') outside(`member ${keyNode.type}`);
  const key = identifier(keyNode.text) ?? outside('member without name');
  const atRoot = (node as AstNode & { atRoot?: number }).atRoot;
  const possibleTypeInfo = atRoot ? new TypeInfo({ name: key }) : undefined;
  // Each closure's own: the model is the compiled expression's (`ctx.model` is always that one).
  const paths = new Map<string, ChildPaths>();
  return (ctx, parentData) => {
    if (!parentData) return [];
    const model = ctx.model as ModelMaps | null | undefined;
    const result: Coll = [];
    for (let i = 0; i < parentData.length; i++) {
      const item = parentData[i] as { __path__?: PathInfo } | null | undefined;
      const info = item?.__path__;
      const res = makeResNode(ctx, item, null, info?.path, null, info?.fhirNodeDataType);
      if ((res.data as { resourceType?: unknown } | null)?.resourceType === key) {
        result.push(res);
      } else if (
        (atRoot === 1 ||
          (atRoot === 2 &&
            (ctx.$index !== undefined
              ? ctx.dataRoot[ctx.$index] === ctx.$this![0]
              : ctx.dataRoot === ctx.$this))) &&
        res.getTypeInfo().is(possibleTypeInfo, model)
      ) {
        result.push(res);
      } else {
        appendChildNodes(result, ctx, res as ResourceNodeLike & { _data: unknown }, key, model, paths);
      }
    }
    return result;
  };
}

/** `engine.IndexerExpression`. */
function compileIndexer(c: Compiler, node: AstNode): Ev {
  const coll = compileNode(c, child(node, 0));
  const index = compileNode(c, child(node, 1));
  return (ctx, data) => {
    const items = coll(ctx, data);
    const idx = index(ctx, data);
    if (util.isEmpty(idx)) return [];
    // parseInt as fhirpath.js calls it: on the value as it is (a decimal object), with no radix.
    const n = parseInt(idx[0] as string);
    return items && items.length > n && n >= 0 ? [items[n]] : [];
  };
}

/** `engine.PolarityExpression`. */
function compilePolarity(c: Compiler, node: AstNode): Ev {
  const sign = node.text;
  const { start } = node as AstNode & { start?: { line: number; column: number } };
  const at = start ? ` (at ${start.line}:${start.column})` : '';
  const operand = compileNode(c, child(node));
  return (ctx, data) => {
    const rtn = operand(ctx, data);
    if (rtn.length !== 1)
      throw new Error(`Unary ${sign} can only be applied to an individual number or Quantity.`);
    const value = rtn[0];
    if (typeof value === 'bigint' || (typeof value === 'number' && !Number.isNaN(value))) {
      if (sign === '-') rtn[0] = -value;
    } else if (value instanceof FP_Type) {
      if (sign === '-') rtn[0] = (value as unknown as { negate(): unknown }).negate();
    } else {
      throw new Error(`Unary ${sign} can only be applied to a number or Quantity.${at}`);
    }
    return rtn;
  };
}

/** `makeParam` of fhirpath.js, with the parameter's node compiled. */
function compileParam(c: Compiler, type: ParamType, raw: AstNode): Param {
  if (type === 'Expr') {
    const ev = compileNode(c, raw);
    return (ctx) => (data: unknown) => withThis(ctx, util.arraify(data), ev);
  }
  if (type === 'TypeSpecifier') {
    const identifiers = (raw.text ?? '').split('.').map((t) => identifier(t)!);
    if (identifiers.length < 1 || identifiers.length > 2) outside(`type specifier ${raw.text}`);
    const [namespace, name] = identifiers.length === 2 ? identifiers : [undefined, identifiers[0]!];
    const typeInfo = new TypeInfo(namespace === undefined ? { name: name! } : { namespace, name: name! });
    // An unknown type is fhirpath.js's error to raise, at evaluation.
    if (!typeInfo.isValid(c.model)) outside(`type ${raw.text}`);
    return () => typeInfo;
  }
  if (type === 'SortArgument') {
    if (raw.type !== 'SortDirectionArgument' && raw.type !== 'SortArgument') outside('sort argument');
    const ev = compileNode(c, child(raw));
    const direction = (raw as AstNode & { direction?: string }).direction || 'asc';
    return (ctx) => ({
      expr: (data: unknown) => {
        const clone: Ctx = { ...ctx };
        if (ctx.definedVars) clone.definedVars = { ...ctx.definedVars };
        clone.$index = undefined;
        clone.$this = data as Coll;
        return ev(clone, util.arraify(data));
      },
      direction,
    });
  }
  // A sort direction outside sort() is unwrapped (`normalizeSortParamNode`).
  const node =
    (raw.type === 'SortDirectionArgument' || raw.type === 'SortArgument') && raw.children?.[0]
      ? raw.children[0]
      : raw;
  const ev = compileNode(c, node);
  if (type === 'Any' || type === 'AnyAtRoot') {
    return (ctx) => withThis(ctx, ctx.$this || ctx.dataRoot, ev);
  }
  if (Array.isArray(type)) {
    const [single] = type;
    return (ctx) => {
      const res = withThis(ctx, ctx.$this || ctx.dataRoot, ev);
      return res.length === 0 ? [] : misc.singleton(res, single);
    };
  }
  if (!['String', 'Integer', 'Number', 'Boolean'].includes(type)) outside(`parameter type ${type}`);
  return (ctx) => misc.singleton(withThis(ctx, ctx.$this || ctx.dataRoot, ev), type);
}

/** A union of string literals only (`'a' | 'b' | 'c'`, in parentheses or not). */
function isConstantStrings(node: AstNode): boolean {
  if (PASS_THROUGH.has(node.type) || node.type === 'LiteralTerm') {
    return node.children?.length === 1 && isConstantStrings(node.children[0]!);
  }
  if (node.type === 'StringLiteral') return true;
  return (
    node.type === 'UnionExpression' &&
    node.children?.length === 2 &&
    node.children.every((n) => isConstantStrings(n))
  );
}

/**
 * `deepEqual` of fhirpath.js on two items when it comes down to comparing two strings: a string (a
 * literal) with a string or with a node holding a string of a type it does not convert (`code`, `uri`,
 * `string`: not a date or time); undefined for anything else (two nodes, whose extensions are compared
 * too; numbers; dates), which is then left to deepEqual.
 */
function stringEqual(x: unknown, y: unknown): boolean | undefined {
  const a = typeof x === 'string' ? x : unconvertedString(x);
  if (a === undefined) return undefined;
  const b = typeof y === 'string' ? y : unconvertedString(y);
  if (b === undefined || (typeof x !== 'string' && typeof y !== 'string')) return undefined;
  return a === b;
}

/** The string a node holds when `convertData` leaves it a string; undefined otherwise. */
function unconvertedString(x: unknown): string | undefined {
  if (!(x instanceof ResourceNode)) return undefined;
  const data = x.data;
  if (typeof data !== 'string') return undefined;
  // A date, dateTime, instant or time is parsed (and compared) as such; a Quantity is never a string.
  if (TypeInfo.typeToClassWithCheckString[x.path as string] !== undefined) return undefined;
  return data;
}

/** `infixInvoke` of fhirpath.js. */
function compileInfix(c: Compiler, op: string, node: AstNode): Ev {
  const invocation = INVOCATIONS[op] ?? outside(`operator ${op}`);
  const raw = node.children ?? [];
  const types = invocation.arity?.[2];
  if (raw.length !== 2 || !types) outside(`operator ${op} with ${raw.length} operands`);
  const [left, right] = [compileParam(c, types![0]!, raw[0]!), compileParam(c, types![1]!, raw[1]!)];
  const { fn, nullable } = invocation;
  if (op === '|' && isConstantStrings(node)) {
    // `('final' | 'amended')`: the same distinct strings at every evaluation, computed once (a copy
    // each time: a caller may change the collection it is given).
    // Computed at compile time, in a context of its own (string literals read nothing of it).
    const constant = { dataRoot: [], vars: {}, processedVars: {} } as unknown as Ctx;
    const value = util.arraify(fn.call(constant, left(constant, []), right(constant, [])));
    return () => value.slice();
  }
  if (op === '=' || op === '!=') {
    const negate = op === '!=';
    return (ctx, data) => {
      const a = left(ctx, data) as Coll;
      const b = right(ctx, data) as Coll;
      if (isNullable(a) || isNullable(b)) return [];
      if (a.length === 1 && b.length === 1) {
        const same = stringEqual(a[0], b[0]);
        if (same !== undefined) return [negate ? !same : same];
      }
      return util.arraify(fn.call(ctx, a, b));
    };
  }
  if (op === 'inOp' || op === 'containsOp') {
    const isIn = op === 'inOp';
    return (ctx, data) => {
      const a = left(ctx, data) as Coll;
      const b = right(ctx, data) as Coll;
      const [items, one] = isIn ? [b, a] : [a, b];
      // `engine.in` / `engine.contains` with each comparison's deepEqual on strings done directly.
      if (util.isEmpty(one) || util.isEmpty(items) || one.length > 1) {
        return util.arraify(fn.call(ctx, a, b));
      }
      for (let i = 0; i < items.length; i++) {
        const same = stringEqual(items[i], one[0]);
        if (same ?? deepEqual(ctx, items[i], one[0])) return [true];
      }
      return [false];
    };
  }
  return (ctx, data) => {
    const a = left(ctx, data);
    const b = right(ctx, data);
    if (nullable && (isNullable(a) || isNullable(b))) return [];
    return util.arraify(fn.call(ctx, a, b));
  };
}

/** `engine.FunctionInvocation` and `doInvoke` of fhirpath.js. */
function compileFunction(c: Compiler, node: AstNode): Ev {
  const functn = child(node);
  if (functn.type !== 'Functn') outside(`function node ${functn.type}`);
  const name = identifier(functn.text) ?? outside('function without name');
  let raw: AstNode[] | undefined;
  if (name === 'sort') {
    raw = functn.children ?? [];
  } else {
    const [id, list] = functn.children ?? [];
    if (id?.type !== 'Identifier') outside('function without identifier');
    raw = list?.children;
  }
  // today() and now() are the wrapper's (the injected clock), as in its userInvocationTable.
  if (name === 'today' || name === 'now') {
    if (raw && raw.length > 0) outside(`${name} with arguments`);
    const read = name === 'today' ? c.clock.today : c.clock.now;
    return () => util.arraify(read());
  }
  if (name === 'sort') return compileSort(c, raw ?? []);
  // The wrapper's own functions come first, as fhirpath.js looks in its userInvocationTable first.
  // (Own properties only: `toString` must not find Object.prototype's.)
  const invocation =
    (Object.hasOwn(c.user, name) ? c.user[name] : undefined) ??
    INVOCATIONS[name] ??
    outside(`function ${name}`);
  const iterating = ITERATING.get(invocation);
  if (iterating && raw?.length === 1) return iterating(compileNode(c, raw[0]!));
  if (invocation === INVOCATIONS.ofType && raw?.length === 1) {
    return compileOfType((compileParam(c, 'TypeSpecifier', raw[0]!) as () => TypeInfoLike)());
  }
  const { fn, arity, nullable } = invocation;
  if (!arity) {
    if (raw) outside(`${name} takes no parameters`);
    return (ctx, data) => util.arraify(fn.call(ctx, data));
  }
  const types = arity[raw?.length ?? 0] ?? outside(`${name} with ${raw?.length ?? 0} parameters`);
  const params = (raw ?? []).map((p, i) => compileParam(c, types[i]!, p));
  if (params.length === 0) return (ctx, data) => util.arraify(fn.call(ctx, data));
  if (params.length === 1) {
    const [param] = params as [Param];
    return (ctx, data) => {
      const p = param(ctx, data);
      // doInvoke tests the input collection too.
      if (nullable && (isNullable(data) || isNullable(p))) return [];
      return util.arraify(fn.call(ctx, data, p));
    };
  }
  return (ctx, data) => {
    const values = params.map((param) => param(ctx, data));
    if (nullable && (isNullable(data) || values.some(isNullable))) return [];
    return util.arraify(fn.call(ctx, data, ...values));
  };
}

/**
 * The criterion of where/select/exists/all on one item: the `Expr` parameter of fhirpath.js
 * (`makeParam`), `$this` the item, `$index` as the caller set it.
 */
const criterion = (ctx: Ctx, ev: Ev, item: unknown): Coll => withThis(ctx, util.arraify(item), ev);

/** `util.flatten` of one item (`[].concat`): an array item gives its elements. */
function pushFlat(out: Coll, item: unknown): void {
  if (Array.isArray(item)) {
    for (let i = 0; i < item.length; i++) out.push(item[i]);
  } else {
    out.push(item);
  }
}

/** `engine.whereMacro`, as a loop: no per-item arrays, closures or flattening. */
function compileWhere(ev: Ev): Ev {
  return (ctx, data) => {
    const out: Coll = [];
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      // Set on the context itself and left at the last index afterwards, as the macro does.
      ctx.$index = i;
      if (criterion(ctx, ev, x)[0]) pushFlat(out, x);
    }
    return out;
  };
}

/**
 * The functions whose parameter is an expression evaluated on each item, run as loops rather than
 * through fhirpath.js's macros, with the same effects: `$index` set on the context before each item
 * (and left at the last one), every item evaluated (an error on any item is raised as the macro raises
 * it; `exists` does not stop at the first match, `all` stops at the first item not true, as they do).
 */
const ITERATING = new Map<Invocation, (ev: Ev) => Ev>([
  [INVOCATIONS.where!, compileWhere],
  [
    INVOCATIONS.select!,
    (ev) => (ctx, data) => {
      const out: Coll = [];
      for (let i = 0; i < data.length; i++) {
        ctx.$index = i;
        const result = criterion(ctx, ev, data[i]);
        for (let j = 0; j < result.length; j++) out.push(result[j]);
      }
      return out;
    },
  ],
  [
    INVOCATIONS.exists!,
    (ev) => {
      const where = compileWhere(ev);
      return (ctx, data) => [where(ctx, data).length > 0];
    },
  ],
  [
    INVOCATIONS.all!,
    (ev) => (ctx, data) => {
      for (let i = 0; i < data.length; i++) {
        ctx.$index = i;
        if (!util.isTrue(criterion(ctx, ev, data[i]))) return [false];
      }
      return [true];
    },
  ],
]);

/** Types a compiled `ofType()` remembers the answer for (the model's are a few hundred). */
const MAX_OFTYPE_TYPES = 256;

/**
 * `engine.ofTypeFn`: the items whose type is (or converts to) the given one. fhirpath.js builds a
 * TypeInfo for each item; for a node of a FHIR type (`fhirNodeDataType` not `System.…`) that TypeInfo
 * holds only the namespace and that name as far as `isConvertibleTo` reads it, so the answer is
 * remembered per type name, per compiled `ofType()`. Any other item is asked as fhirpath.js asks it.
 */
function compileOfType(typeInfo: TypeInfoLike): Ev {
  const byType = new Map<string, boolean>();
  return (ctx, data) => {
    const out: Coll = [];
    for (let i = 0; i < data.length; i++) {
      const value = data[i];
      let keep: boolean | undefined;
      if (value instanceof ResourceNode) {
        const type = value.fhirNodeDataType;
        if (type && !type.startsWith('System')) {
          keep = byType.get(type);
          if (keep === undefined) {
            keep = new TypeInfo({ namespace: FHIR_NAMESPACE, name: type }).isConvertibleTo(
              typeInfo,
              ctx.model,
            );
            if (byType.size < MAX_OFTYPE_TYPES) byType.set(type, keep);
          }
        }
      }
      if (keep === undefined) keep = fromValue(value).isConvertibleTo(typeInfo, ctx.model);
      if (keep) out.push(value);
    }
    return out;
  };
}

/** sort(): a variadic function of sort arguments. */
function compileSort(c: Compiler, raw: AstNode[]): Ev {
  const params = raw.map((p) => compileParam(c, 'SortArgument', p));
  const fn = filtering.sort!;
  return (ctx, data) => util.arraify(fn.call(ctx, data, ...params.map((param) => param(ctx, data))));
}

/** A compiled expression: the same call shape as the function `fhirpath.compile` returns. */
export type CompiledFunction = (input: unknown, env: Record<string, unknown>) => unknown[];

export interface CompileOptions {
  /** The model (R4) the expression is evaluated against. */
  model: unknown;
  clock: ClockFunctions;
  /** fhirpath.js's typed nodes in the result, as its `resolveInternalTypes: false`. */
  keepTypes: boolean;
  /**
   * Functions of the wrapper's userInvocationTable that take fhirpath.js's internal structures
   * (`internalStructures: true`, so fhirpath.js hands them its values unchanged, as the compiled code
   * does); any other user function leaves the expression to fhirpath.js.
   */
  userFunctions?: Readonly<
    Record<string, { fn: unknown; arity?: Record<number, readonly string[]>; internalStructures?: boolean }>
  >;
}

/**
 * Compiles a parse tree (`fhirpath.parse`), or returns undefined when some node lies outside the
 * subset: the caller then keeps fhirpath.js for the whole expression.
 */
export function compileExpression(tree: AstNode, options: CompileOptions): CompiledFunction | undefined {
  let body: Ev;
  try {
    body = compileNode(
      {
        clock: options.clock,
        model: options.model,
        user: Object.fromEntries(
          Object.entries(options.userFunctions ?? {}).filter(([, f]) => f.internalStructures === true),
        ) as Record<string, Invocation>,
      },
      tree.children?.[0] ?? outside('empty'),
    );
  } catch (error) {
    if (error instanceof OutsideSubset) return undefined;
    throw error;
  }
  const { model, keepTypes } = options;
  return (input, env) => {
    // `applyParsedPath` of fhirpath.js, less `constants.reset()`: its constants serve only fhirpath.js's
    // own today()/now()/timeOfDay(), which the subset answers from the clock or leaves out.
    const ctx = {
      $this: undefined,
      $index: undefined,
      processedUserVarNames: new Set<string>(),
      vars: env ?? {},
      instanceSelectorTypeByData: null,
      model,
    } as unknown as Ctx;
    const dataRoot = util.arraify(input).map((i) => {
      const item = i as { __path__?: PathInfo; resourceType?: unknown } | null | undefined;
      const info = item?.__path__;
      return info
        ? makeResNode(
            info.ctx,
            item,
            info.parentResNode,
            info.path,
            null,
            info.fhirNodeDataType,
            info.propName,
            info.index,
          )
        : item?.resourceType
          ? makeResNode(ctx, item, null, null, null, null)
          : item;
    });
    ctx.dataRoot = dataRoot;
    ctx.processedVars = { ucum: 'http://unitsofmeasure.org', context: dataRoot, factory: Factory };
    ctx.getDecimal = types.FP_Decimal_Native.getDecimal;
    return prepareResult(ctx, body(ctx, dataRoot), keepTypes);
  };
}

/** `prepareEvalResult` of fhirpath.js (no instance selectors in the subset). */
function prepareResult(defaultCtx: Ctx, result: Coll, keepTypes: boolean): unknown[] {
  const out: unknown[] = [];
  for (let n of result) {
    if (n instanceof ResourceNode && keepTypes) {
      out.push(n);
      continue;
    }
    let info: PathInfo | undefined;
    if (n instanceof ResourceNode) {
      const node = n as ResourceNodeLike;
      info = {
        ctx: node.ctx || defaultCtx,
        path: node.path!,
        fhirNodeDataType: node.fhirNodeDataType,
        parentResNode: node.parentResNode,
        propName: node.propName,
        index: node.index,
      };
    }
    n = util.valData(n);
    if (n instanceof FP_Type) {
      if (!keepTypes) n = n.toJSON();
    } else if (typeof n === 'bigint') {
      if (!keepTypes) n = n.toString();
    }
    if (n != null) {
      if (info?.path && typeof n === 'object' && !(n as { __path__?: unknown }).__path__) {
        Object.defineProperty(n, '__path__', { value: info });
      }
      out.push(n);
    }
  }
  return out;
}
