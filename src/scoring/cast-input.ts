/**
 * A float64 input gets a Cast inserted at load. Every model then takes the same float32 rows: the values
 * its graph compares and multiplies are exactly the float32 values the explainers (TreeSHAP, the
 * background, the reference row) are computed on, also for the conversion-check examples and the probe
 * rows, which would otherwise reach a float64 graph unrounded. A tree ensemble with a double input
 * compares a value a hair above a float32 threshold differently from its float32 rounding; with the
 * Cast it cannot disagree with the trees the explainer reads.
 *
 * The file on disk is not changed: its sha256 (the manifest's, the approved list's, the model card's)
 * stays the one of the file the hospital exported. The rewrite is deterministic and made in memory,
 * before the session is created.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const DOUBLE = onnx.TensorProto.DataType.DOUBLE;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** Opset of the default domain added when a graph imports none (Cast-6 exists from it on). */
const CAST_OPSET = 9;

export interface Float32Input {
  /** The bytes onnxruntime loads: the file's, or the file's with the Cast. */
  bytes: Uint8Array;
  /** The element type the file declares for the input. */
  fileInputType: 'float32' | 'float64';
}

/**
 * Makes `inputName` a float32 input: when the file declares it float64, the graph gets a new float32
 * input of the same name and a Cast to double feeding every node that read the old one.
 * @param bytes the ONNX file
 * @param inputName the manifest's `input.name`
 * @throws Error when the bytes are not an ONNX model
 */
export function float32Input(bytes: Uint8Array, inputName: string): Float32Input {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  const input = graph?.input?.find((i) => i.name === inputName);
  const tensor = input?.type?.tensorType;
  if (!graph || !tensor || tensor.elemType !== DOUBLE) return { bytes, fileInputType: 'float32' };
  const names = new Set<string>();
  for (const node of graph.node ?? []) {
    for (const n of [...(node.input ?? []), ...(node.output ?? []), node.name ?? '']) names.add(n);
  }
  let internal = `${inputName}_float64`;
  while (names.has(internal)) internal = `${internal}_`;
  for (const node of graph.node ?? []) {
    node.input = (node.input ?? []).map((n) => (n === inputName ? internal : n));
  }
  tensor.elemType = FLOAT;
  graph.node = [
    {
      name: `${internal}_cast`,
      opType: 'Cast',
      domain: '',
      input: [inputName],
      output: [internal],
      attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DOUBLE }],
    },
    ...(graph.node ?? []),
  ];
  const imports = model.opsetImport ?? [];
  if (!imports.some((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx'))
    model.opsetImport = [...imports, { domain: '', version: CAST_OPSET }];
  return { bytes: onnx.ModelProto.encode(model).finish(), fileInputType: 'float64' };
}
