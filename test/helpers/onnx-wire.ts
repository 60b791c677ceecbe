/**
 * A second ONNX writer, independent of the project's (tools/training/*-onnx.ts use onnx-proto): the
 * protobuf wire format written byte by byte from the field numbers of onnx.proto (ONNX 1.10), with
 * repeated scalars unpacked, as Python's protobuf writes a proto2 file such as onnxmltools' output.
 * Only what a tree-ensemble export needs: ModelProto, GraphProto, NodeProto, AttributeProto,
 * ValueInfoProto, OperatorSetIdProto.
 */

type Bytes = number[];

function varint(out: Bytes, value: number | bigint): void {
  // Negative int64 are ten-byte two's complement.
  let v = BigInt.asUintN(64, BigInt(value));
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
}

const tag = (out: Bytes, field: number, wire: number) => varint(out, (field << 3) | wire);

/** One message, built field by field. */
export class Message {
  readonly bytes: Bytes = [];
  int(field: number, value: number): this {
    tag(this.bytes, field, 0);
    varint(this.bytes, value);
    return this;
  }
  float(field: number, value: number): this {
    tag(this.bytes, field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.bytes.push(...b);
    return this;
  }
  raw(field: number, value: Uint8Array | Bytes): this {
    tag(this.bytes, field, 2);
    varint(this.bytes, value.length);
    for (const b of value) this.bytes.push(b);
    return this;
  }
  string(field: number, value: string): this {
    return this.raw(field, new TextEncoder().encode(value));
  }
  message(field: number, value: Message): this {
    return this.raw(field, value.bytes);
  }
  toBytes(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

/** AttributeProto.AttributeType */
const TYPE = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

export type AttributeValue =
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { strings: readonly string[] }
  | { int: number }
  | { float: number }
  | { string: string };

/** AttributeProto: name 1, f 2, i 3, s 4, floats 7, ints 8, strings 9, type 20. */
export function attribute(name: string, value: AttributeValue): Message {
  const m = new Message().string(1, name);
  if ('ints' in value) {
    for (const v of value.ints) m.int(8, v);
    return m.int(20, TYPE.INTS);
  }
  if ('floats' in value) {
    for (const v of value.floats) m.float(7, v);
    return m.int(20, TYPE.FLOATS);
  }
  if ('strings' in value) {
    for (const v of value.strings) m.string(9, v);
    return m.int(20, TYPE.STRINGS);
  }
  if ('int' in value) return m.int(3, value.int).int(20, TYPE.INT);
  if ('float' in value) return m.float(2, value.float).int(20, TYPE.FLOAT);
  return m.string(4, value.string).int(20, TYPE.STRING);
}

/** NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7. */
export function node(o: {
  op: string;
  domain?: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: readonly Message[];
}): Message {
  const m = new Message();
  for (const i of o.inputs) m.string(1, i);
  for (const out of o.outputs) m.string(2, out);
  m.string(3, o.name).string(4, o.op);
  for (const a of o.attributes ?? []) m.message(5, a);
  if (o.domain) m.string(7, o.domain);
  return m;
}

/** TensorProto.DataType */
export const ELEM = { FLOAT: 1, INT64: 7, DOUBLE: 11 } as const;

/**
 * ValueInfoProto (name 1, type 2) of a tensor: TypeProto.tensor_type 1 → elem_type 1, shape 2 →
 * dim 1 → dim_value 1 | dim_param 2.
 */
export function tensorInfo(name: string, elem: number, dims: readonly (number | string)[]): Message {
  const shape = new Message();
  for (const d of dims)
    shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensor = new Message().int(1, elem).message(2, shape);
  return new Message().string(1, name).message(2, new Message().message(1, tensor));
}

/**
 * ModelProto: ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8
 * (OperatorSetIdProto: domain 1, version 2). GraphProto: node 1, name 2, input 11, output 12.
 */
export function model(o: {
  irVersion: number;
  producer: { name: string; version: string };
  opsets: readonly { domain: string; version: number }[];
  graph: { name: string; nodes: readonly Message[]; inputs: readonly Message[]; outputs: readonly Message[] };
}): Uint8Array {
  const graph = new Message();
  for (const n of o.graph.nodes) graph.message(1, n);
  graph.string(2, o.graph.name);
  for (const i of o.graph.inputs) graph.message(11, i);
  for (const out of o.graph.outputs) graph.message(12, out);
  const m = new Message()
    .int(1, o.irVersion)
    .string(2, o.producer.name)
    .string(3, o.producer.version)
    .message(7, graph);
  for (const op of o.opsets) m.message(8, new Message().string(1, op.domain).int(2, op.version));
  return m.toBytes();
}
