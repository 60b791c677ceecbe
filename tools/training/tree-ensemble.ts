/**
 * A minimal description of a binary tree ensemble on the log-odds scale, its validation, and a
 * reference evaluator that branches exactly as onnxruntime does.
 *
 * Why: the ONNX contract of the service must accept tree ensembles as well as linear models, and the
 * explanation code (TreeSHAP or exact Shapley values) needs the same trees in a form it can walk. This
 * description is the one both sides share; `treeEnsembleToOnnx` turns it into an `ai.onnx.ml`
 * TreeEnsembleClassifier.
 *
 * Semantics (fixed here, relied on by the writer and by any explainer):
 * - The margin is `baseValue + Σ leaf values reached`, on the log-odds scale; P(y = 1) = σ(margin).
 * - Node 0 is the root of each tree; a split sends x to `left` when `x[feature] ≤ threshold` and to
 *   `right` otherwise (ONNX mode BRANCH_LEQ). A missing value (NaN) fails the comparison and goes right,
 *   as in onnxruntime without `nodes_missing_value_tracks_true`.
 * - onnxruntime compares in float32, so the evaluator rounds both the feature and the threshold with
 *   `Math.fround` before comparing: a value a hair above a threshold in float64 can be equal to it in
 *   float32, and the two must take the same branch. Leaf values are summed in float64 here (onnxruntime
 *   sums in float32; the difference is far below 1e-6 for realistic ensembles).
 */

/** An internal node: `x[feature] ≤ threshold` goes to node index `left`, otherwise to `right`. */
export interface TreeSplit {
  feature: number;
  threshold: number;
  left: number;
  right: number;
}

/** A terminal node and its contribution to the log-odds. */
export interface TreeLeaf {
  leaf: number;
}

export type TreeNode = TreeSplit | TreeLeaf;

/** One tree: `nodes[0]` is the root; `left`/`right` are indices into `nodes`. */
export interface Tree {
  nodes: readonly TreeNode[];
}

/** Trees whose leaf values add up (with `baseValue`, default 0) to the log-odds of the positive class. */
export interface TreeEnsemble {
  trees: readonly Tree[];
  baseValue?: number;
}

export function isLeaf(node: TreeNode): node is TreeLeaf {
  return 'leaf' in node;
}

function checkSplit(node: TreeSplit, where: string, size: number, featureCount: number): void {
  if (!Number.isInteger(node.feature) || node.feature < 0 || node.feature >= featureCount) {
    throw new Error(`${where}: feature ${node.feature} is not in 0..${featureCount - 1}`);
  }
  if (!Number.isFinite(node.threshold) || !Number.isFinite(Math.fround(node.threshold))) {
    throw new Error(`${where}: threshold is not a finite float32`);
  }
  for (const child of [node.left, node.right]) {
    if (!Number.isInteger(child) || child <= 0 || child >= size) {
      throw new Error(`${where}: child ${child} is not a node index in 1..${size - 1}`);
    }
  }
}

function checkTree(tree: Tree, t: number, featureCount: number): void {
  const size = tree.nodes.length;
  if (size === 0) throw new Error(`tree ${t} has no node`);
  const parents = new Array<number>(size).fill(0);
  tree.nodes.forEach((node, n) => {
    const where = `tree ${t} node ${n}`;
    if (isLeaf(node)) {
      if (!Number.isFinite(node.leaf) || !Number.isFinite(Math.fround(node.leaf))) {
        throw new Error(`${where}: leaf value is not a finite float32`);
      }
      return;
    }
    checkSplit(node, where, size, featureCount);
    parents[node.left]!++;
    parents[node.right]!++;
  });
  parents.forEach((count, n) => {
    if (n > 0 && count !== 1) throw new Error(`tree ${t} node ${n} has ${count} parents, expected 1`);
  });
  // With one parent per non-root node and the root parentless, a cycle would leave nodes unreachable.
  const seen = new Set<number>([0]);
  const stack = [0];
  while (stack.length > 0) {
    const node = tree.nodes[stack.pop()!]!;
    if (isLeaf(node)) continue;
    for (const child of [node.left, node.right]) {
      if (!seen.has(child)) {
        seen.add(child);
        stack.push(child);
      }
    }
  }
  if (seen.size !== size) throw new Error(`tree ${t} has nodes unreachable from its root`);
}

/**
 * Throws an `Error` naming the tree and node when the ensemble is not a set of well-formed binary trees
 * over `featureCount` features with finite float32 thresholds and leaf values.
 */
export function validateTreeEnsemble(ensemble: TreeEnsemble, featureCount: number): void {
  if (!Number.isInteger(featureCount) || featureCount < 1) {
    throw new Error(`featureCount must be a positive integer (got ${featureCount})`);
  }
  if (ensemble.trees.length === 0) throw new Error('the ensemble has no tree');
  const base = ensemble.baseValue ?? 0;
  if (!Number.isFinite(base) || !Number.isFinite(Math.fround(base))) {
    throw new Error('baseValue is not a finite float32');
  }
  ensemble.trees.forEach((tree, t) => checkTree(tree, t, featureCount));
}

/** Index of the leaf of `tree` that `x` reaches, branching in float32 as onnxruntime does. */
export function leafIndex(tree: Tree, x: readonly number[]): number {
  let index = 0;
  for (;;) {
    const node = tree.nodes[index]!;
    if (isLeaf(node)) return index;
    index = Math.fround(x[node.feature]!) <= Math.fround(node.threshold) ? node.left : node.right;
  }
}

/** The ensemble's margin (log-odds of the positive class) for one feature vector. */
export function treeEnsembleMargin(ensemble: TreeEnsemble, x: readonly number[]): number {
  let margin = ensemble.baseValue ?? 0;
  for (const tree of ensemble.trees) margin += (tree.nodes[leafIndex(tree, x)] as TreeLeaf).leaf;
  return margin;
}

/** The ensemble's probability of the positive class, σ(margin), for one feature vector. */
export function predictTreeEnsemble(ensemble: TreeEnsemble, x: readonly number[]): number {
  const margin = treeEnsembleMargin(ensemble, x);
  return margin >= 0 ? 1 / (1 + Math.exp(-margin)) : Math.exp(margin) / (1 + Math.exp(margin));
}
