/**
 * Writes the bundled models as ONNX files from TypeScript, byte for byte reproducibly.
 *
 * Why write ONNX by hand: training lives in the repo, in TypeScript, and must give the same file from the
 * same seed. The protobuf encoding of `onnx-proto` is deterministic for a given message (fields in
 * field-number order, repeated fields in the order given), so the only sources of drift are the ones we
 * control here: no timestamp, no random graph names, metadata sorted by key, tensors stored as
 * little-endian float32 `raw_data` (the byte order ONNX prescribes, whatever the host's).
 *
 * The contract the service relies on (and that any other tool's model must also meet):
 * - ir_version 8, default-domain opset 13 (plus `ai.onnx.ml` opset 3 for tree ensembles);
 * - one input, float32 [N, F], N the symbolic dimension 'N', features in the manifest's order;
 * - logistic model: one output float32 [N, 1], the probability of the positive class;
 * - tree ensemble: a TreeEnsembleClassifier with outputs label int64 [N] and probabilities float32 [N, 2]
 *   whose column 1 is the positive class. post_transform is LOGISTIC (the leaves are log-odds), and the
 *   binary encoding is the one skl2onnx writes for gradient boosting: every leaf votes its value with
 *   class_ids 0, one base value, classlabels [0, 1]; onnxruntime reads that sum as the margin of the
 *   positive class and outputs [σ(−margin), σ(margin)]. The more literal encoding (votes on both classes,
 *   two base values) falls into a branch of onnxruntime that ignores base_values[0] and gives class 1 the
 *   class-0 sum, i.e. flips the sign of every leaf; the tests pin the behaviour we rely on. The label
 *   output is onnxruntime's: 1 when the margin is > 0, except that when no leaf value is negative it
 *   switches to its random-forest rule (margin > 0.5). Read the probabilities, not the label.
 *
 * Coefficients, thresholds and leaf values are rounded to float32 here; the evaluation code must compare
 * with tolerances that allow for it (|Δp| < 1e-6 for realistic models).
 */
import onnxProto from 'onnx-proto';
import { isLeaf, validateTreeEnsemble, type TreeEnsemble } from './tree-ensemble.js';

const { onnx } = onnxProto;

const IR_VERSION = 8;
const OPSET = 13;
const ML_DOMAIN = 'ai.onnx.ml';
const ML_OPSET = 3;

/** Naming and provenance of a written model. */
export interface OnnxWriteOptions {
  /** Name of the float32 [N, F] input tensor. */
  inputName: string;
  /** Name of the probability output (float32 [N, 1] for logistic models, [N, 2] for tree ensembles). */
  outputName: string;
  producerName: string;
  producerVersion: string;
  docString?: string;
  /** Stored as ONNX metadata_props, sorted by key. */
  metadata?: Record<string, string>;
}

/** Options of {@link treeEnsembleToOnnx}. */
export interface TreeEnsembleWriteOptions extends OnnxWriteOptions {
  /** Number of input features F (the trees may use only some of them). */
  featureCount: number;
  /** Name of the int64 [N] label output. Default 'label'. */
  labelName?: string;
}

type Dim = number | 'N';

function tensorInfo(name: string, elemType: number, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (d === 'N' ? { dimParam: 'N' } : { dimValue: d })) },
      },
    },
  };
}

function float32(value: number, what: string): number {
  const f = Math.fround(value);
  if (!Number.isFinite(f)) throw new Error(`${what} is not a finite float32 (got ${value})`);
  return f;
}

function floatTensor(
  name: string,
  dims: readonly number[],
  values: readonly number[],
): onnxProto.onnx.ITensorProto {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, float32(v, `${name}[${i}]`), true));
  return { name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, rawData: bytes };
}

const AttributeType = onnx.AttributeProto.AttributeType;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function ints(name: string, values: readonly number[]): onnxProto.onnx.IAttributeProto {
  return { name, type: AttributeType.INTS, ints: [...values] };
}

function floats(name: string, values: readonly number[]): onnxProto.onnx.IAttributeProto {
  return { name, type: AttributeType.FLOATS, floats: values.map((v, i) => float32(v, `${name}[${i}]`)) };
}

function strings(name: string, values: readonly string[]): onnxProto.onnx.IAttributeProto {
  return { name, type: AttributeType.STRINGS, strings: values.map(utf8) };
}

function checkNames(
  opts: OnnxWriteOptions,
  internal: readonly string[],
  extra: readonly string[] = [],
): void {
  const names = [opts.inputName, opts.outputName, ...extra];
  for (const name of names) if (name.length === 0) throw new Error('tensor names must not be empty');
  const all = [...names, ...internal];
  const duplicate = all.find((name, i) => all.indexOf(name) !== i);
  if (duplicate !== undefined) throw new Error(`tensor name '${duplicate}' is used twice`);
}

function encodeModel(
  graph: onnxProto.onnx.IGraphProto,
  opts: OnnxWriteOptions,
  opsets: onnxProto.onnx.IOperatorSetIdProto[],
): Uint8Array {
  const metadata = Object.entries(opts.metadata ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ key, value }));
  const model: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: opsets,
    producerName: opts.producerName,
    producerVersion: opts.producerVersion,
    docString: opts.docString ?? '',
    graph,
    metadataProps: metadata,
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/**
 * Encodes a logistic model as ONNX: input [N, F] → MatMul W [F, 1] → Add b [1] → Sigmoid → [N, 1].
 *
 * @param fit intercept and F ≥ 1 coefficients (log-odds scale), rounded to float32
 * @returns the serialized ModelProto; the same arguments always give the same bytes
 */
export function logisticToOnnx(
  fit: { intercept: number; coefficients: readonly number[] },
  opts: OnnxWriteOptions,
): Uint8Array {
  const F = fit.coefficients.length;
  if (F === 0) throw new Error('logisticToOnnx: the model needs at least one coefficient');
  const internal = ['coefficients', 'intercept', 'linear', 'logit'];
  checkNames(opts, internal);
  const graph: onnxProto.onnx.IGraphProto = {
    name: 'logistic_regression',
    node: [
      { name: 'matmul', opType: 'MatMul', input: [opts.inputName, 'coefficients'], output: ['linear'] },
      { name: 'add_intercept', opType: 'Add', input: ['linear', 'intercept'], output: ['logit'] },
      { name: 'sigmoid', opType: 'Sigmoid', input: ['logit'], output: [opts.outputName] },
    ],
    initializer: [
      floatTensor('coefficients', [F, 1], fit.coefficients),
      floatTensor('intercept', [1], [fit.intercept]),
    ],
    input: [tensorInfo(opts.inputName, onnx.TensorProto.DataType.FLOAT, ['N', F])],
    output: [tensorInfo(opts.outputName, onnx.TensorProto.DataType.FLOAT, ['N', 1])],
  };
  return encodeModel(graph, opts, [{ domain: '', version: OPSET }]);
}

interface FlatTrees {
  treeIds: number[];
  nodeIds: number[];
  featureIds: number[];
  values: number[];
  modes: string[];
  trueIds: number[];
  falseIds: number[];
  leafTreeIds: number[];
  leafNodeIds: number[];
  leafValues: number[];
}

function flatten(ensemble: TreeEnsemble): FlatTrees {
  const flat: FlatTrees = {
    treeIds: [],
    nodeIds: [],
    featureIds: [],
    values: [],
    modes: [],
    trueIds: [],
    falseIds: [],
    leafTreeIds: [],
    leafNodeIds: [],
    leafValues: [],
  };
  ensemble.trees.forEach((tree, t) => {
    tree.nodes.forEach((node, n) => {
      flat.treeIds.push(t);
      flat.nodeIds.push(n);
      if (isLeaf(node)) {
        flat.featureIds.push(0);
        flat.values.push(0);
        flat.modes.push('LEAF');
        flat.trueIds.push(0);
        flat.falseIds.push(0);
        flat.leafTreeIds.push(t);
        flat.leafNodeIds.push(n);
        flat.leafValues.push(node.leaf);
      } else {
        flat.featureIds.push(node.feature);
        flat.values.push(node.threshold);
        flat.modes.push('BRANCH_LEQ');
        flat.trueIds.push(node.left);
        flat.falseIds.push(node.right);
      }
    });
  });
  return flat;
}

/** Every leaf votes its value for class index 0, the binary convention (see the header). */
function classAttributes(flat: FlatTrees): onnxProto.onnx.IAttributeProto[] {
  return [
    ints(
      'class_ids',
      flat.leafValues.map(() => 0),
    ),
    ints('class_nodeids', flat.leafNodeIds),
    ints('class_treeids', flat.leafTreeIds),
    floats('class_weights', flat.leafValues),
  ];
}

/**
 * Encodes a binary tree ensemble (log-odds leaves) as an `ai.onnx.ml` TreeEnsembleClassifier with
 * post_transform LOGISTIC: outputs `outputName` float32 [N, 2] = [σ(−margin), σ(margin)] and
 * `labelName` int64 [N] (onnxruntime's label; see the header for its rule).
 *
 * @returns the serialized ModelProto; the same arguments always give the same bytes
 */
export function treeEnsembleToOnnx(ensemble: TreeEnsemble, opts: TreeEnsembleWriteOptions): Uint8Array {
  validateTreeEnsemble(ensemble, opts.featureCount);
  const labelName = opts.labelName ?? 'label';
  checkNames(opts, [], [labelName]);
  const flat = flatten(ensemble);
  const base = ensemble.baseValue ?? 0;
  const attributes: onnxProto.onnx.IAttributeProto[] = [
    floats('base_values', [base]),
    ...classAttributes(flat),
    ints('classlabels_int64s', [0, 1]),
    ints('nodes_falsenodeids', flat.falseIds),
    ints('nodes_featureids', flat.featureIds),
    strings('nodes_modes', flat.modes),
    ints('nodes_nodeids', flat.nodeIds),
    ints('nodes_treeids', flat.treeIds),
    ints('nodes_truenodeids', flat.trueIds),
    floats('nodes_values', flat.values),
    { name: 'post_transform', type: AttributeType.STRING, s: utf8('LOGISTIC') },
  ];
  const graph: onnxProto.onnx.IGraphProto = {
    name: 'tree_ensemble',
    node: [
      {
        name: 'tree_ensemble_classifier',
        opType: 'TreeEnsembleClassifier',
        domain: ML_DOMAIN,
        input: [opts.inputName],
        output: [labelName, opts.outputName],
        attribute: attributes,
      },
    ],
    input: [tensorInfo(opts.inputName, onnx.TensorProto.DataType.FLOAT, ['N', opts.featureCount])],
    output: [
      tensorInfo(labelName, onnx.TensorProto.DataType.INT64, ['N']),
      tensorInfo(opts.outputName, onnx.TensorProto.DataType.FLOAT, ['N', 2]),
    ],
  };
  return encodeModel(graph, opts, [
    { domain: '', version: OPSET },
    { domain: ML_DOMAIN, version: ML_OPSET },
  ]);
}
