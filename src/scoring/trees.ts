/**
 * Reads an `ai.onnx.ml` tree ensemble out of an ONNX file, so that TreeSHAP can walk the very trees
 * onnxruntime runs. Accepted: a TreeEnsembleClassifier with two classes or a TreeEnsembleRegressor with
 * one target (SUM or AVERAGE), `post_transform` NONE or LOGISTIC, optionally followed by Identity, Cast
 * or one Sigmoid on the way to the manifest's output. Thresholds, weights and base values may be float
 * attributes or double `*_as_tensor` ones. Every node mode ONNX defines is read (BRANCH_LEQ, BRANCH_LT,
 * BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ, LEAF) with `nodes_missing_value_tracks_true`.
 *
 * The result is the ensemble's **margin** for the manifest's output column — offset + Σ one leaf value
 * per tree — and the link that turns it into that column: `logistic` (the margin is the log-odds) or
 * `identity` (the column is the margin itself, e.g. a random forest's averaged class probability).
 * The layouts the converters write:
 * - one column of votes (class_ids all 0), one or no base value: skl2onnx's gradient boosting, and
 *   onnxmltools' XGBoost and LightGBM binary classifiers. With LOGISTIC, onnxruntime outputs
 *   [σ(−s), σ(s)], s = base + Σ votes: column 1 has margin s, column 0 margin −s.
 * - votes on both classes without base values (skl2onnx's random forest): column k = post(Σ votes on k).
 * - a regressor: margin = base + Σ (or mean of) the leaf values; a following Sigmoid makes it log-odds.
 * Anything else (several classes, two base values with one column of votes, votes on both classes with
 * base values — the layout in which onnxruntime ignores base_values[0] and gives class 1 the class-0
 * sum —, MIN/MAX aggregation) is refused with the reason. The loader also checks, on every background
 * row, that link(margin) equals what onnxruntime outputs, so a misread layout can never explain a score.
 *
 * Comparisons are made as onnxruntime makes them: the input is float32, float thresholds are float32
 * (double ones stay double); NaN takes the true branch only where missing values track true, except
 * BRANCH_NEQ where NaN ≠ t is true anyway.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const BRANCH_MODES = [
  'BRANCH_LEQ',
  'BRANCH_LT',
  'BRANCH_GTE',
  'BRANCH_GT',
  'BRANCH_EQ',
  'BRANCH_NEQ',
] as const;
/** Mode code of a leaf (branch modes are their index in {@link BRANCH_MODES}). */
export const LEAF = 6;

/** One tree, node-indexed from 0 in attribute order (the root is `root`). */
export interface FlatTree {
  readonly root: number;
  readonly feature: Int32Array;
  readonly threshold: Float64Array;
  /** 0–5: index in BRANCH_MODES; 6: leaf. */
  readonly mode: Uint8Array;
  readonly yes: Int32Array;
  readonly no: Int32Array;
  readonly missingYes: Uint8Array;
  /** Leaf value on the margin scale (0 on branches). */
  readonly value: Float64Array;
}

export interface TreeModel {
  readonly featureCount: number;
  readonly trees: readonly FlatTree[];
  /** margin = offset + Σ the value of the leaf reached in each tree. */
  readonly offset: number;
  /** The manifest's output column = link(margin). */
  readonly link: 'logistic' | 'identity';
  /** What was read, in plain words (for errors and the model CLI). */
  readonly layout: string;
}

type Attribute = onnxProto.onnx.IAttributeProto;

function num(v: number | { toString(): string } | null | undefined): number {
  return typeof v === 'number' ? v : Number(v?.toString() ?? Number.NaN);
}

class Attributes {
  private readonly byName = new Map<string, Attribute>();
  constructor(node: onnxProto.onnx.INodeProto) {
    for (const a of node.attribute ?? []) if (a.name) this.byName.set(a.name, a);
  }
  ints(name: string): number[] {
    return (this.byName.get(name)?.ints ?? []).map(num);
  }
  int(name: string, fallback: number): number {
    const a = this.byName.get(name);
    return a ? num(a.i) : fallback;
  }
  string(name: string, fallback: string): string {
    const a = this.byName.get(name);
    return a?.s ? new TextDecoder().decode(a.s) : fallback;
  }
  strings(name: string): string[] {
    return (this.byName.get(name)?.strings ?? []).map((s) => new TextDecoder().decode(s));
  }
  /** A float list, or its double `_as_tensor` twin; `double` tells which (comparisons differ). */
  reals(name: string): { values: number[]; double: boolean } {
    const tensor = this.byName.get(`${name}_as_tensor`)?.t;
    if (tensor)
      return {
        values: tensorValues(tensor, name),
        double: tensor.dataType === onnx.TensorProto.DataType.DOUBLE,
      };
    return { values: (this.byName.get(name)?.floats ?? []).map(Number), double: false };
  }
}

function tensorValues(t: onnxProto.onnx.ITensorProto, name: string): number[] {
  const type = t.dataType ?? 0;
  const DOUBLE = onnx.TensorProto.DataType.DOUBLE;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  if (type === DOUBLE && t.doubleData && t.doubleData.length > 0) return t.doubleData.map(Number);
  if (type === FLOAT && t.floatData && t.floatData.length > 0) return t.floatData.map(Number);
  const raw = t.rawData;
  if (raw && (type === DOUBLE || type === FLOAT)) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const size = type === DOUBLE ? 8 : 4;
    return Array.from({ length: raw.byteLength / size }, (_, i) =>
      size === 8 ? view.getFloat64(i * 8, true) : view.getFloat32(i * 4, true),
    );
  }
  if (type !== DOUBLE && type !== FLOAT) throw new Error(`${name}_as_tensor is not a float or double tensor`);
  return [];
}

/** Whether `x` (already float32) takes the true branch of node `n`. */
export function takesYes(tree: FlatTree, n: number, x: number): boolean {
  const t = tree.threshold[n]!;
  if (x !== x) return tree.missingYes[n] === 1 || tree.mode[n] === 5;
  const mode = tree.mode[n]!;
  if (mode === 0) return x <= t;
  if (mode === 1) return x < t;
  if (mode === 2) return x >= t;
  if (mode === 3) return x > t;
  if (mode === 4) return x === t;
  return x !== t;
}

/** Index of the leaf `x` (float32 values) reaches. */
export function leafOf(tree: FlatTree, x: ArrayLike<number>): number {
  let n = tree.root;
  while (tree.mode[n] !== LEAF) n = takesYes(tree, n, x[tree.feature[n]!]!) ? tree.yes[n]! : tree.no[n]!;
  return n;
}

/** The margin of one row (rounded to float32 first, as the model sees it). */
export function treeMargin(model: TreeModel, row: ArrayLike<number>): number {
  const x = Float32Array.from(row as ArrayLike<number>);
  let margin = model.offset;
  for (const tree of model.trees) margin += tree.value[leafOf(tree, x)]!;
  return margin;
}

/** link(margin): what the manifest's output column holds. */
export function applyLink(model: TreeModel, margin: number): number {
  return model.link === 'identity' ? margin : 1 / (1 + Math.exp(-margin));
}

interface Layout {
  /** Per class (or target) index: the factor of its vote sum in the margin. */
  coefficients: Map<number, number>;
  offset: number;
  link: 'logistic' | 'identity';
  layout: string;
}

function classifierLayout(a: Attributes, column: number): Layout {
  const labels = Math.max(a.ints('classlabels_int64s').length, a.strings('classlabels_strings').length);
  if (labels !== 2)
    throw new Error(`a tree classifier with ${labels} classes (only binary ones are explained)`);
  if (column > 1) throw new Error(`a binary tree classifier has no output column ${column}`);
  const post = a.string('post_transform', 'NONE');
  if (post !== 'NONE' && post !== 'LOGISTIC') throw new Error(`post_transform ${post} is not explained`);
  const ids = new Set(a.ints('class_ids'));
  const base = a.reals('base_values').values;
  const link = post === 'LOGISTIC' ? 'logistic' : 'identity';
  if (ids.size === 1 && ids.has(0)) {
    if (base.length > 1)
      throw new Error('votes on one class with two base values (onnxruntime scores the classes apart)');
    if (post !== 'LOGISTIC')
      throw new Error(
        'votes on one class without LOGISTIC: onnxruntime signs the output by the winning class',
      );
    const sign = column === 1 ? 1 : -1;
    return {
      coefficients: new Map([[0, sign]]),
      offset: sign * (base[0] ?? 0),
      link,
      layout: `binary TreeEnsembleClassifier, one column of votes, base ${base[0] ?? 0}, LOGISTIC`,
    };
  }
  if (base.length > 0)
    throw new Error(
      'votes on both classes with base values (onnxruntime then ignores base_values[0] and gives class 1 the class-0 sum)',
    );
  return {
    coefficients: new Map([[column, 1]]),
    offset: 0,
    link,
    layout: `binary TreeEnsembleClassifier, votes on both classes, column ${column}, ${post}`,
  };
}

function regressorLayout(a: Attributes, trees: number): Layout {
  const targets = a.int('n_targets', 1);
  if (targets !== 1) throw new Error(`a tree regressor with ${targets} targets (only one is explained)`);
  const post = a.string('post_transform', 'NONE');
  if (post !== 'NONE') throw new Error(`a tree regressor with post_transform ${post}`);
  const aggregate = a.string('aggregate_function', 'SUM');
  if (aggregate !== 'SUM' && aggregate !== 'AVERAGE')
    throw new Error(`aggregate_function ${aggregate} is not a sum of trees`);
  const base = a.reals('base_values').values;
  return {
    coefficients: new Map([[0, aggregate === 'AVERAGE' ? 1 / trees : 1]]),
    offset: base[0] ?? 0,
    link: 'identity',
    layout: `TreeEnsembleRegressor (${aggregate}, base ${base[0] ?? 0})`,
  };
}

/** Follows the output back through Identity, Cast and at most one Sigmoid to the node computing it. */
function producer(graph: onnxProto.onnx.IGraphProto, output: string) {
  const nodes = graph.node ?? [];
  let name = output;
  let sigmoid = false;
  for (;;) {
    const index = nodes.findIndex((n) => (n.output ?? []).includes(name));
    if (index < 0) throw new Error(`no node computes "${name}"`);
    const node = nodes[index]!;
    const op = node.opType ?? '';
    if (op === 'TreeEnsembleClassifier' || op === 'TreeEnsembleRegressor') {
      const at = (node.output ?? []).indexOf(name);
      if (op === 'TreeEnsembleClassifier' && at !== 1)
        throw new Error(`"${name}" is the classifier's label, not its scores`);
      return { node, sigmoid };
    }
    if (op === 'Sigmoid' && !sigmoid) sigmoid = true;
    else if (op !== 'Identity' && op !== 'Cast')
      throw new Error(`"${name}" is computed by ${op}, not by a tree ensemble`);
    name = node.input?.[0] ?? '';
  }
}

/**
 * Reads the tree ensemble computing the output column the manifest names.
 * @throws Error saying, in plain words, what is not a tree ensemble the explainer can read
 */
export function readTreeModel(
  bytes: Uint8Array,
  output: { name: string; column?: number },
  featureCount: number,
): TreeModel {
  const graph = onnx.ModelProto.decode(bytes).graph;
  if (!graph) throw new Error('the ONNX file has no graph');
  const { node, sigmoid } = producer(graph, output.name);
  const a = new Attributes(node);
  const treeIds = a.ints('nodes_treeids');
  const nodeIds = a.ints('nodes_nodeids');
  const size = treeIds.length;
  const thresholds = a.reals('nodes_values');
  const modes = a.strings('nodes_modes');
  const features = a.ints('nodes_featureids');
  const yesIds = a.ints('nodes_truenodeids');
  const noIds = a.ints('nodes_falsenodeids');
  const missing = a.ints('nodes_missing_value_tracks_true');
  for (const [what, list] of [
    ['nodes_nodeids', nodeIds],
    ['nodes_modes', modes],
    ['nodes_featureids', features],
    ['nodes_values', thresholds.values],
    ['nodes_truenodeids', yesIds],
    ['nodes_falsenodeids', noIds],
  ] as const) {
    if (list.length !== size) throw new Error(`${what} has ${list.length} entries for ${size} nodes`);
  }
  if (missing.length !== 0 && missing.length !== size)
    throw new Error(`nodes_missing_value_tracks_true has ${missing.length} entries for ${size} nodes`);
  // Group nodes by tree, in order of first appearance.
  const byTree = new Map<number, number[]>();
  treeIds.forEach((t, i) => {
    const list = byTree.get(t);
    if (list) list.push(i);
    else byTree.set(t, [i]);
  });
  const classifier = node.opType === 'TreeEnsembleClassifier';
  const layout = classifier ? classifierLayout(a, output.column ?? 0) : regressorLayout(a, byTree.size);
  const prefix = classifier ? 'class' : 'target';
  const voteTrees = a.ints(`${prefix}_treeids`);
  const voteNodes = a.ints(`${prefix}_nodeids`);
  const voteIds = a.ints(`${prefix}_ids`);
  const weights = a.reals(`${prefix}_weights`).values;
  if (
    voteNodes.length !== voteTrees.length ||
    voteIds.length !== voteTrees.length ||
    weights.length !== voteTrees.length
  )
    throw new Error(`the ${prefix}_* attributes differ in length`);
  const key = (t: number, n: number) => `${t}:${n}`;
  const leafValue = new Map<string, number>();
  voteTrees.forEach((t, i) => {
    const factor = layout.coefficients.get(voteIds[i]!) ?? 0;
    leafValue.set(key(t, voteNodes[i]!), (leafValue.get(key(t, voteNodes[i]!)) ?? 0) + factor * weights[i]!);
  });
  const trees: FlatTree[] = [];
  for (const [treeId, members] of byTree) {
    const local = new Map<number, number>();
    members.forEach((g, i) => {
      if (local.has(nodeIds[g]!)) throw new Error(`tree ${treeId} has node id ${nodeIds[g]} twice`);
      local.set(nodeIds[g]!, i);
    });
    const count = members.length;
    const tree = {
      root: -1,
      feature: new Int32Array(count),
      threshold: new Float64Array(count),
      mode: new Uint8Array(count),
      yes: new Int32Array(count),
      no: new Int32Array(count),
      missingYes: new Uint8Array(count),
      value: new Float64Array(count),
    };
    members.forEach((g, i) => {
      const mode = modes[g]!;
      if (mode === 'LEAF') {
        tree.mode[i] = LEAF;
        tree.value[i] = leafValue.get(key(treeId, nodeIds[g]!)) ?? 0;
        return;
      }
      const code = (BRANCH_MODES as readonly string[]).indexOf(mode);
      if (code < 0) throw new Error(`tree ${treeId} node ${nodeIds[g]}: mode ${mode} is not explained`);
      const feature = features[g]!;
      if (feature < 0 || feature >= featureCount)
        throw new Error(
          `tree ${treeId} node ${nodeIds[g]}: feature ${feature} is not one of the ${featureCount} inputs`,
        );
      const yes = local.get(yesIds[g]!);
      const no = local.get(noIds[g]!);
      if (yes === undefined || no === undefined)
        throw new Error(`tree ${treeId} node ${nodeIds[g]}: a child is not a node of the tree`);
      tree.mode[i] = code;
      tree.feature[i] = feature;
      const t = thresholds.values[g]!;
      tree.threshold[i] = thresholds.double ? t : Math.fround(t);
      tree.yes[i] = yes;
      tree.no[i] = no;
      tree.missingYes[i] = missing[g] === 1 ? 1 : 0;
    });
    // onnxruntime starts each tree at its first node in attribute order, whatever its id.
    tree.root = 0;
    checkAcyclic(tree, treeId);
    trees.push(tree);
  }
  if (trees.length === 0) throw new Error('the ensemble has no tree');
  let link = layout.link;
  if (sigmoid) {
    if (link === 'logistic') throw new Error('a Sigmoid after a LOGISTIC ensemble');
    link = 'logistic';
  }
  return {
    featureCount,
    trees,
    offset: layout.offset,
    link,
    layout: `${layout.layout}${sigmoid ? ', then Sigmoid' : ''}; ${trees.length} trees`,
  };
}

function checkAcyclic(tree: FlatTree, id: number): void {
  const seen = new Uint8Array(tree.mode.length);
  const stack = [tree.root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen[n]) throw new Error(`tree ${id} is not a tree (node reached twice)`);
    seen[n] = 1;
    if (tree.mode[n] !== LEAF) stack.push(tree.yes[n]!, tree.no[n]!);
  }
}
