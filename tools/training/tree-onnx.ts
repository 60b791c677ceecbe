/**
 * Writes any `ai.onnx.ml` TreeEnsembleClassifier or TreeEnsembleRegressor as ONNX, node by node: every
 * node mode ONNX defines, missing values tracking the true branch, votes on either class, any base
 * values, post_transform, node and tree ids in any order, and an optional Sigmoid after the ensemble.
 *
 * Why: the explainer must read the layouts other tools write (skl2onnx, onnxmltools for XGBoost and
 * LightGBM), not only the one `npm run train` writes. The tests and the benchmark build such models
 * here, with no Python, and check that the service's tree reader agrees with onnxruntime on each.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const AttributeType = onnx.AttributeProto.AttributeType;

export type NodeMode = 'BRANCH_LEQ' | 'BRANCH_LT' | 'BRANCH_GTE' | 'BRANCH_GT' | 'BRANCH_EQ' | 'BRANCH_NEQ';

/** A branch: `x[feature] <mode> threshold` (or a missing value that tracks true) goes to `yes`. */
export interface RawBranch {
  mode: NodeMode;
  feature: number;
  threshold: number;
  /** Node ids (the `nodes_nodeids` of the same tree). */
  yes: number;
  no: number;
  missingTracksTrue?: boolean;
}

/** A leaf and its votes: for a classifier, class index → weight; for a regressor, target 0. */
export interface RawLeaf {
  votes: readonly { id: number; weight: number }[];
}

export type RawNode = (RawBranch | RawLeaf) & { id: number };

export interface RawEnsemble {
  op: 'classifier' | 'regressor';
  /** Tree id → its nodes (onnxruntime starts each tree at its first node stored). */
  trees: readonly { id: number; nodes: readonly RawNode[] }[];
  featureCount: number;
  baseValues?: readonly number[];
  postTransform?: 'NONE' | 'LOGISTIC';
  /** Regressor only. Default SUM. */
  aggregate?: 'SUM' | 'AVERAGE';
  /** Classifier only. Default [0, 1]. */
  classLabels?: readonly number[];
  /** Store thresholds, weights and base values as tensor attributes (`*_as_tensor`, raw float32). */
  asTensor?: boolean;
  /** Apply a Sigmoid node to the ensemble's output. */
  sigmoid?: boolean;
  /** Round the output through float16 (Cast, Cast): a lossy export the loader must catch. */
  castThroughHalf?: boolean;
  inputName?: string;
  outputName?: string;
}

export function isRawLeaf(node: RawBranch | RawLeaf): node is RawLeaf {
  return 'votes' in node;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A float tensor attribute (onnxruntime wants the tensor's type to be the input's: float32 here). */
function floatTensor(name: string, values: readonly number[]): onnxProto.onnx.IAttributeProto {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return {
    name,
    type: AttributeType.TENSOR,
    t: { dims: [values.length], dataType: onnx.TensorProto.DataType.FLOAT, rawData: raw },
  };
}

/** Encodes the ensemble; the output tensor is `[N, classes]` for a classifier, `[N, 1]` for a regressor. */
export function rawEnsembleToOnnx(e: RawEnsemble): Uint8Array {
  const inputName = e.inputName ?? 'features';
  const outputName = e.outputName ?? 'probability';
  const n = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    featureIds: [] as number[],
    values: [] as number[],
    modes: [] as string[],
    yes: [] as number[],
    no: [] as number[],
    missing: [] as number[],
  };
  const votes = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    ids: [] as number[],
    weights: [] as number[],
  };
  for (const tree of e.trees) {
    for (const node of tree.nodes) {
      n.treeIds.push(tree.id);
      n.nodeIds.push(node.id);
      if (isRawLeaf(node)) {
        n.featureIds.push(0);
        n.values.push(0);
        n.modes.push('LEAF');
        n.yes.push(0);
        n.no.push(0);
        n.missing.push(0);
        for (const v of node.votes) {
          votes.treeIds.push(tree.id);
          votes.nodeIds.push(node.id);
          votes.ids.push(v.id);
          votes.weights.push(v.weight);
        }
      } else {
        n.featureIds.push(node.feature);
        n.values.push(node.threshold);
        n.modes.push(node.mode);
        n.yes.push(node.yes);
        n.no.push(node.no);
        n.missing.push(node.missingTracksTrue ? 1 : 0);
      }
    }
  }
  const floats = (name: string, values: readonly number[]): onnxProto.onnx.IAttributeProto =>
    e.asTensor
      ? floatTensor(`${name}_as_tensor`, values)
      : { name, type: AttributeType.FLOATS, floats: values.map((v) => Math.fround(v)) };
  const ints = (name: string, values: readonly number[]): onnxProto.onnx.IAttributeProto => ({
    name,
    type: AttributeType.INTS,
    ints: [...values],
  });
  const prefix = e.op === 'classifier' ? 'class' : 'target';
  const attributes: onnxProto.onnx.IAttributeProto[] = [
    ...(e.baseValues ? [floats('base_values', e.baseValues)] : []),
    ints(`${prefix}_ids`, votes.ids),
    ints(`${prefix}_nodeids`, votes.nodeIds),
    ints(`${prefix}_treeids`, votes.treeIds),
    floats(`${prefix}_weights`, votes.weights),
    ints('nodes_falsenodeids', n.no),
    ints('nodes_featureids', n.featureIds),
    ints('nodes_missing_value_tracks_true', n.missing),
    { name: 'nodes_modes', type: AttributeType.STRINGS, strings: n.modes.map(utf8) },
    ints('nodes_nodeids', n.nodeIds),
    ints('nodes_treeids', n.treeIds),
    ints('nodes_truenodeids', n.yes),
    floats('nodes_values', n.values),
    { name: 'post_transform', type: AttributeType.STRING, s: utf8(e.postTransform ?? 'NONE') },
  ];
  const classes = e.classLabels ?? [0, 1];
  if (e.op === 'classifier') attributes.push(ints('classlabels_int64s', classes));
  else {
    attributes.push({ name: 'n_targets', type: AttributeType.INT, i: 1 });
    attributes.push({
      name: 'aggregate_function',
      type: AttributeType.STRING,
      s: utf8(e.aggregate ?? 'SUM'),
    });
  }
  const treeOut = e.sigmoid || e.castThroughHalf ? 'margin' : outputName;
  const width = e.op === 'classifier' ? classes.length : 1;
  const nodes: onnxProto.onnx.INodeProto[] = [
    {
      name: 'trees',
      opType: e.op === 'classifier' ? 'TreeEnsembleClassifier' : 'TreeEnsembleRegressor',
      domain: 'ai.onnx.ml',
      input: [inputName],
      output: e.op === 'classifier' ? ['label', treeOut] : [treeOut],
      attribute: attributes,
    },
  ];
  if (e.sigmoid) nodes.push({ name: 'sigmoid', opType: 'Sigmoid', input: [treeOut], output: [outputName] });
  else if (e.castThroughHalf) {
    const cast = (name: string, input: string, output: string, to: number): onnxProto.onnx.INodeProto => ({
      name,
      opType: 'Cast',
      input: [input],
      output: [output],
      attribute: [{ name: 'to', type: AttributeType.INT, i: to }],
    });
    nodes.push(
      cast('to_half', treeOut, 'half', onnx.TensorProto.DataType.FLOAT16),
      cast('to_float', 'half', outputName, onnx.TensorProto.DataType.FLOAT),
    );
  }
  const info = (name: string, elemType: number, dims: (number | 'N')[]): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (d === 'N' ? { dimParam: 'N' } : { dimValue: d })) },
      },
    },
  });
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const graph: onnxProto.onnx.IGraphProto = {
    name: 'raw_tree_ensemble',
    node: nodes,
    input: [info(inputName, FLOAT, ['N', e.featureCount])],
    output: [
      ...(e.op === 'classifier' ? [info('label', onnx.TensorProto.DataType.INT64, ['N'])] : []),
      info(outputName, FLOAT, ['N', width]),
    ],
  };
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [
        { domain: '', version: 13 },
        { domain: 'ai.onnx.ml', version: 3 },
      ],
      producerName: 'explainable-cds-hooks tree-onnx',
      producerVersion: '1',
      graph,
    }),
  ).finish();
}

/** Options of {@link randomRawEnsemble}. */
export interface RandomEnsembleOptions {
  trees: number;
  /** Maximum depth; a branch stops early with probability `earlyLeaf` (depth-1 trees always split). */
  depth: number;
  featureCount: number;
  /** Modes drawn for the branches; default every mode ONNX defines. */
  modes?: readonly NodeMode[];
  /** Share of branches whose missing values track true. */
  missingTrue?: number;
  earlyLeaf?: number;
  /** Thresholds are drawn from this grid so that BRANCH_EQ / BRANCH_NEQ are met by the data. */
  grid?: readonly number[];
  /** Reverse node ids and order, and number trees downwards, so readers cannot rely on their order. */
  scrambleIds?: boolean;
}

/** The modes ONNX defines for branches. */
export const ALL_MODES: readonly NodeMode[] = [
  'BRANCH_LEQ',
  'BRANCH_LT',
  'BRANCH_GTE',
  'BRANCH_GT',
  'BRANCH_EQ',
  'BRANCH_NEQ',
];

/** Random trees (leaf votes on class / target 0, normal(0, 0.5)), for tests and the benchmark. */
export function randomRawTrees(
  rng: { next(): number; int(min: number, max: number): number; normal(m?: number, s?: number): number },
  o: RandomEnsembleOptions,
): { id: number; nodes: RawNode[] }[] {
  const modes = o.modes ?? ALL_MODES;
  const grid = o.grid ?? [-2, -1, -0.5, 0, 0.5, 1, 2];
  return Array.from({ length: o.trees }, (_, t) => {
    const nodes: RawNode[] = [];
    const grow = (level: number): number => {
      const index = nodes.length;
      const id = index;
      if (level === o.depth || (level > 0 && rng.next() < (o.earlyLeaf ?? 0.15))) {
        nodes.push({ id, votes: [{ id: 0, weight: rng.normal(0, 0.5) }] });
        return id;
      }
      const branch: RawNode = {
        id,
        mode: modes[rng.int(0, modes.length - 1)]!,
        feature: rng.int(0, o.featureCount - 1),
        threshold: grid[rng.int(0, grid.length - 1)]!,
        yes: 0,
        no: 0,
        missingTracksTrue: rng.next() < (o.missingTrue ?? 0),
      };
      nodes.push(branch);
      branch.yes = grow(level + 1);
      branch.no = grow(level + 1);
      return id;
    };
    grow(0);
    if (!o.scrambleIds) return { id: t, nodes };
    // Ids reversed (onnxruntime wants 0..n−1 in each tree, and starts at the first node stored): the
    // root is the first node, not node id 0.
    const last = nodes.length - 1;
    const renamed = nodes.map((n): RawNode =>
      'votes' in n
        ? { ...n, id: last - n.id }
        : { ...n, id: last - n.id, yes: last - n.yes, no: last - n.no },
    );
    return { id: 50 - t, nodes: renamed };
  });
}

/**
 * P(class 1) of a one-column-of-votes ensemble (votes on class 0, base value, LOGISTIC), read straight
 * from the node lists with float32 comparisons as onnxruntime makes them: the "source framework" of the
 * benchmark's conversion-check examples, independent of the service's tree reader.
 */
export function rawProbability(e: RawEnsemble, x: readonly number[]): number {
  let margin = e.baseValues?.[0] ?? 0;
  for (const tree of e.trees) {
    const byId = new Map(tree.nodes.map((n) => [n.id, n]));
    let node = tree.nodes[0]!;
    while (!isRawLeaf(node)) {
      const v = Math.fround(x[node.feature]!);
      const t = Math.fround(node.threshold);
      const yes = Number.isNaN(v)
        ? node.missingTracksTrue === true || node.mode === 'BRANCH_NEQ'
        : {
            BRANCH_LEQ: v <= t,
            BRANCH_LT: v < t,
            BRANCH_GTE: v >= t,
            BRANCH_GT: v > t,
            BRANCH_EQ: v === t,
            BRANCH_NEQ: v !== t,
          }[node.mode];
      node = byId.get(yes ? node.yes : node.no)!;
    }
    margin += node.votes.find((v) => v.id === 0)?.weight ?? 0;
  }
  return 1 / (1 + Math.exp(-margin));
}
