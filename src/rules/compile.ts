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

interface Types {
  ResourceNode: ResourceNodeClass;
  TypeInfo: new (spec: { namespace?: string; name: string }) => { isValid(model: unknown): boolean };
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

const { ResourceNode, TypeInfo, FP_Type, FP_Quantity, FP_Date, FP_DateTime, FP_Time } = types;
/** `is()`/`as()` and their operators: functions of the types module. */
const typeFns = types as unknown as { isFn: Impl; asFn: Impl };
const makeResNode = ResourceNode.makeResNode.bind(ResourceNode);

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
  union: { fn: combining.union!, arity: { 1: ['AnyAtRoot'] } },
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
  '|': { fn: combining.union!, arity: { 2: ['Any', 'Any'] } },
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
      return (ctx, data) => steps.reduce((acc, step) => step(ctx, acc), data);
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

/** `engine.MemberInvocation`. */
function compileMember(node: AstNode): Ev {
  const keyNode = child(node);
  if (keyNode.type !== 'Identifier') outside(`member ${keyNode.type}`);
  const key = identifier(keyNode.text) ?? outside('member without name');
  const atRoot = (node as AstNode & { atRoot?: number }).atRoot;
  const possibleTypeInfo = atRoot ? new TypeInfo({ name: key }) : undefined;
  return (ctx, parentData) => {
    if (!parentData) return [];
    const model = ctx.model;
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
        util.pushFn(result, util.makeChildResNodes(ctx, res, key, model));
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

/** `infixInvoke` of fhirpath.js. */
function compileInfix(c: Compiler, op: string, node: AstNode): Ev {
  const invocation = INVOCATIONS[op] ?? outside(`operator ${op}`);
  const raw = node.children ?? [];
  const types = invocation.arity?.[2];
  if (raw.length !== 2 || !types) outside(`operator ${op} with ${raw.length} operands`);
  const [left, right] = [compileParam(c, types![0]!, raw[0]!), compileParam(c, types![1]!, raw[1]!)];
  const { fn, nullable } = invocation;
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
