/**
 * Exact interventional TreeSHAP (Lundberg et al. 2020, "From local explanations to global understanding
 * with explainable AI for trees"): the Shapley values of the game
 *
 *     v(S) = (1/N) Σ_z margin(x_S, z_rest)          (z over the N rows of the background sample)
 *
 * for an ensemble whose margin is a sum of trees. The background is summarised per leaf once, at load,
 * so that the cost of a call does not grow with N (the decomposition of Laberge & Pequignot 2022,
 * "Understanding interventional TreeSHAP: a theoretical framework for local and global explanations"):
 *
 * A leaf of value w is reached by a row when, for each feature k tested on its path, the row's value
 * of k takes the path's branch at every node testing k. For one foreground row x and one background
 * row z, only the path's features matter, and each is in one of four states: both rows take the
 * path (k is a null player), neither does (the leaf is never reached: nothing to share), only x does
 * (k ∈ A) or only z does (k ∈ B). The hybrid row reaches the leaf iff S ⊇ A and S ∩ B = ∅, so
 *
 *     φ_k += w · (|A|−1)! |B|! / (|A|+|B|)!    for k ∈ A,
 *     φ_k −= w · |A|! (|B|−1)! / (|A|+|B|)!    for k ∈ B.
 *
 * This depends on x and z only through which path features each satisfies: two bit masks over the
 * leaf's d distinct features. So the background is reduced to a count per mask, and for every possible
 * mask of x the leaf's whole contribution vector is tabulated at load (2^d × d numbers, d ≤ depth).
 * A call then computes x's branch at each node once, x's mask at each leaf, and adds one table row:
 * O(nodes + leaves × depth) per tree, independent of N. Leaves whose table would be too large (a deep
 * path, or a model over the memory budget) keep the mask counts and are computed at call time.
 *
 * Efficiency: per leaf and background row the shares add up to w·[x reaches] − w·[z reaches], so
 * baseline + Σ φ = margin(x) exactly (to float64 rounding), with baseline = mean margin of the sample.
 */
import { LEAF, takesYes, type TreeModel } from '../scoring/trees.js';

export interface TreeExplanation {
  /** margin(x): offset + the leaf values x reaches. */
  margin: number;
  /** One Shapley value per input feature, on the margin scale. */
  phi: Float64Array;
}

export interface TreeExplainer {
  /** Mean margin over the background sample: what the contributions are measured from. */
  readonly baseline: number;
  readonly backgroundSize: number;
  /** Numbers held for the per-leaf tables (memory: 8 bytes each). */
  readonly tableSize: number;
  explain(row: ArrayLike<number>): TreeExplanation;
}

/** Largest number of distinct features on a path whose leaf gets a table (2^12 × 12 numbers). */
const MAX_TABLE_DEPTH = 12;
/**
 * Default budget of tabulated numbers for one model (64 MB); leaves beyond it are computed at call
 * time from their background mask counts.
 */
const TABLE_BUDGET = 8_000_000;

function factorials(n: number): Float64Array {
  const f = new Float64Array(n + 1);
  f[0] = 1;
  for (let i = 1; i <= n; i += 1) f[i] = f[i - 1]! * i;
  return f;
}

function popcount(v: number): number {
  let n = 0;
  for (let m = v; m; m &= m - 1) n += 1;
  return n;
}

interface Leaf {
  value: number;
  /** Global node index (over all trees) of each path node, the branch the path takes, its feature slot. */
  pathNodes: number[];
  pathYes: number[];
  pathSlot: number[];
  /** The distinct features of the path, by slot. */
  features: number[];
  /** Distinct background masks and their counts. */
  masks: number[];
  counts: number[];
}

/**
 * Adds to `out` (length d) a leaf's contributions for x's mask, from the background mask counts,
 * scaled by `scale` (w / N).
 */
function leafShares(
  masks: readonly number[],
  counts: readonly number[],
  d: number,
  px: number,
  scale: number,
  fact: Float64Array,
  out: Float64Array,
  at: number,
): void {
  const full = (1 << d) - 1;
  for (let k = 0; k < masks.length; k += 1) {
    const pz = masks[k]!;
    if ((px | pz) !== full) continue;
    const a = px & ~pz;
    const b = pz & ~px;
    const na = popcount(a);
    const nb = popcount(b);
    if (na + nb === 0) continue;
    const c = counts[k]! * scale;
    const wa = na > 0 ? (c * fact[na - 1]! * fact[nb]!) / fact[na + nb]! : 0;
    const wb = nb > 0 ? (c * fact[na]! * fact[nb - 1]!) / fact[na + nb]! : 0;
    for (let j = 0; j < d; j += 1) {
      const bit = 1 << j;
      if (a & bit) out[at + j]! += wa;
      else if (b & bit) out[at + j]! -= wb;
    }
  }
}

/**
 * Summarises the background per leaf and returns the explainer.
 * @param background rows of feature values (NaN for a missing value), at least one
 */
export function treeExplainer(
  model: TreeModel,
  background: readonly (readonly number[])[],
  options: { tableBudget?: number } = {},
): TreeExplainer {
  const budget = options.tableBudget ?? TABLE_BUDGET;
  const n = background.length;
  if (n === 0) throw new Error('the background sample is empty');
  const F = model.featureCount;
  // Global node numbering over all trees.
  const treeStart: number[] = [];
  let nodeCount = 0;
  for (const tree of model.trees) {
    treeStart.push(nodeCount);
    nodeCount += tree.mode.length;
  }
  const nodeTree = new Int32Array(nodeCount);
  const nodeLocal = new Int32Array(nodeCount);
  model.trees.forEach((tree, t) => {
    for (let i = 0; i < tree.mode.length; i += 1) {
      nodeTree[treeStart[t]! + i] = t;
      nodeLocal[treeStart[t]! + i] = i;
    }
  });
  const leaves: Leaf[] = [];
  model.trees.forEach((tree, t) => {
    const walk = (node: number, nodes: number[], yes: number[]): void => {
      if (tree.mode[node] === LEAF) {
        const features: number[] = [];
        const pathSlot = nodes.map((g) => {
          const f = tree.feature[nodeLocal[g]!]!;
          let slot = features.indexOf(f);
          if (slot < 0) slot = features.push(f) - 1;
          return slot;
        });
        leaves.push({
          value: tree.value[node]!,
          pathNodes: nodes,
          pathYes: yes,
          pathSlot,
          features,
          masks: [],
          counts: [],
        });
        return;
      }
      const g = treeStart[t]! + node;
      walk(tree.yes[node]!, [...nodes, g], [...yes, 1]);
      walk(tree.no[node]!, [...nodes, g], [...yes, 0]);
    };
    walk(tree.root, [], []);
  });
  // Branch of every background row at every node, then its mask at every leaf.
  const decisions = new Uint8Array(nodeCount);
  const decide = (x: Float32Array): void => {
    for (let g = 0; g < nodeCount; g += 1) {
      const tree = model.trees[nodeTree[g]!]!;
      const i = nodeLocal[g]!;
      decisions[g] = tree.mode[i] === LEAF ? 0 : takesYes(tree, i, x[tree.feature[i]!]!) ? 1 : 0;
    }
  };
  const maskOf = (leaf: Leaf): number => {
    let mask = (1 << leaf.features.length) - 1;
    for (let p = 0; p < leaf.pathNodes.length; p += 1) {
      if (decisions[leaf.pathNodes[p]!] !== leaf.pathYes[p]) mask &= ~(1 << leaf.pathSlot[p]!);
    }
    return mask;
  };
  const countMaps = leaves.map(() => new Map<number, number>());
  let baseline = model.offset;
  for (const row of background) {
    if (row.length !== F) throw new Error(`a background row has ${row.length} values for ${F} features`);
    decide(Float32Array.from(row));
    leaves.forEach((leaf, l) => {
      const mask = maskOf(leaf);
      const map = countMaps[l]!;
      map.set(mask, (map.get(mask) ?? 0) + 1);
      if (mask === (1 << leaf.features.length) - 1) baseline += leaf.value / n;
    });
  }
  const maxDepth = Math.max(0, ...leaves.map((l) => l.features.length));
  const maxPath = Math.max(0, ...leaves.map((l) => l.pathNodes.length));
  if (maxDepth > 30) throw new Error(`a path tests ${maxDepth} distinct features (at most 30 are explained)`);
  const fact = factorials(2 * maxDepth + 2);
  // Tables: for every mask of x, the leaf's contribution per path feature.
  const tableAt = new Int32Array(leaves.length).fill(-1);
  let tableSize = 0;
  leaves.forEach((leaf, l) => {
    const map = countMaps[l]!;
    leaf.masks = [...map.keys()];
    leaf.counts = [...map.values()];
    const d = leaf.features.length;
    const size = d * (1 << d);
    if (d > 0 && d <= MAX_TABLE_DEPTH && tableSize + size <= budget) {
      tableAt[l] = tableSize;
      tableSize += size;
    }
  });
  const tables = new Float64Array(tableSize);
  // One bit per table row, numbered from `rowStart` of its leaf: most masks of x share nothing (no
  // background row completes them; about 3 in 4 of the rows a call reaches in the benchmark's model).
  // The bits fit in a core's cache where the tables do not, so a call reads only the rows that count.
  const rowStart = new Int32Array(leaves.length);
  let rows = 0;
  leaves.forEach((leaf, l) => {
    rowStart[l] = rows;
    if (tableAt[l]! >= 0) rows += 1 << leaf.features.length;
  });
  const nonZero = new Int32Array((rows + 31) >>> 5);
  leaves.forEach((leaf, l) => {
    const at = tableAt[l]!;
    if (at < 0) return;
    const d = leaf.features.length;
    for (let px = 0; px < 1 << d; px += 1) {
      const row = at + px * d;
      leafShares(leaf.masks, leaf.counts, d, px, leaf.value / n, fact, tables, row);
      const bit = rowStart[l]! + px;
      for (let j = 0; j < d; j += 1) if (tables[row + j] !== 0) nonZero[bit >>> 5]! |= 1 << (bit & 31);
    }
  });
  // Flat per-leaf arrays for the call.
  const pathStart = new Int32Array(leaves.length + 1);
  leaves.forEach((leaf, l) => (pathStart[l + 1] = pathStart[l]! + leaf.pathNodes.length));
  const pathNode = new Int32Array(pathStart[leaves.length]!);
  const pathYes = new Uint8Array(pathNode.length);
  const pathSlot = new Uint8Array(pathNode.length);
  const featStart = new Int32Array(leaves.length + 1);
  leaves.forEach((leaf, l) => {
    pathNode.set(leaf.pathNodes, pathStart[l]!);
    pathYes.set(leaf.pathYes, pathStart[l]!);
    pathSlot.set(leaf.pathSlot, pathStart[l]!);
    featStart[l + 1] = featStart[l]! + leaf.features.length;
  });
  // Leaves are in depth-first order: each shares a prefix of its path with the one before, whose
  // masks (a path node's feature has the same slot in every leaf below it) need not be recomputed.
  const shared = Int32Array.from(leaves, (leaf, l) => {
    const before = leaves[l - 1];
    let k = 0;
    while (
      before &&
      k < leaf.pathNodes.length &&
      k < before.pathNodes.length &&
      leaf.pathNodes[k] === before.pathNodes[k] &&
      leaf.pathYes[k] === before.pathYes[k]
    )
      k += 1;
    return k;
  });
  const prefixMasks = new Int32Array(maxPath + 1);
  const featList = new Int32Array(featStart[leaves.length]!);
  leaves.forEach((leaf, l) => featList.set(leaf.features, featStart[l]!));
  const leafValue = Float64Array.from(leaves.map((l) => l.value));
  const scratch = new Float64Array(maxDepth);
  // The trees' internal nodes as flat arrays, for the decisions of a call.
  const internal: number[] = [];
  for (let g = 0; g < nodeCount; g += 1) {
    if (model.trees[nodeTree[g]!]!.mode[nodeLocal[g]!] !== LEAF) internal.push(g);
  }
  const internalNodes = Int32Array.from(internal);
  const nodeFeature = Int32Array.from(internal, (g) => model.trees[nodeTree[g]!]!.feature[nodeLocal[g]!]!);
  const nodeMode = Uint8Array.from(internal, (g) => model.trees[nodeTree[g]!]!.mode[nodeLocal[g]!]!);
  const nodeThreshold = Float64Array.from(
    internal,
    (g) => model.trees[nodeTree[g]!]!.threshold[nodeLocal[g]!]!,
  );
  const nodeMissingYes = Uint8Array.from(internal, (g) => {
    const tree = model.trees[nodeTree[g]!]!;
    const i = nodeLocal[g]!;
    return tree.missingYes[i] === 1 || tree.mode[i] === 5 ? 1 : 0;
  });

  return {
    baseline,
    backgroundSize: n,
    tableSize,
    explain(row: ArrayLike<number>): TreeExplanation {
      if (row.length !== F) throw new Error(`the row has ${row.length} values for ${F} features`);
      const x = Float32Array.from(row as ArrayLike<number>);
      // Each internal node's branch for x, as takesYes decides it (inlined: this is the hot loop).
      for (let k = 0; k < internalNodes.length; k += 1) {
        const v = x[nodeFeature[k]!]!;
        const t = nodeThreshold[k]!;
        const mode = nodeMode[k]!;
        let yes: boolean;
        if (v !== v) yes = nodeMissingYes[k] === 1;
        else if (mode === 0) yes = v <= t;
        else if (mode === 1) yes = v < t;
        else if (mode === 2) yes = v >= t;
        else if (mode === 3) yes = v > t;
        else if (mode === 4) yes = v === t;
        else yes = v !== t;
        decisions[internalNodes[k]!] = yes ? 1 : 0;
      }
      const phi = new Float64Array(F);
      let margin = model.offset;
      prefixMasks[0] = -1;
      for (let l = 0; l < leafValue.length; l += 1) {
        const from = pathStart[l]!;
        const length = pathStart[l + 1]! - from;
        const f0 = featStart[l]!;
        const d = featStart[l + 1]! - f0;
        for (let p = shared[l]!; p < length; p += 1) {
          const q = from + p;
          prefixMasks[p + 1] =
            decisions[pathNode[q]!] === pathYes[q] ? prefixMasks[p]! : prefixMasks[p]! & ~(1 << pathSlot[q]!);
        }
        const full = (1 << d) - 1;
        const mask = prefixMasks[length]! & full;
        if (mask === full) margin += leafValue[l]!;
        if (d === 0) continue;
        const at = tableAt[l]!;
        if (at >= 0) {
          const bit = rowStart[l]! + mask;
          if ((nonZero[bit >>> 5]! & (1 << (bit & 31))) === 0) continue;
          const rowAt = at + mask * d;
          for (let j = 0; j < d; j += 1) phi[featList[f0 + j]!]! += tables[rowAt + j]!;
        } else {
          scratch.fill(0, 0, d);
          const leaf = leaves[l]!;
          leafShares(leaf.masks, leaf.counts, d, mask, leafValue[l]! / n, fact, scratch, 0);
          for (let j = 0; j < d; j += 1) phi[featList[f0 + j]!]! += scratch[j]!;
        }
      }
      return { margin, phi };
    },
  };
}
