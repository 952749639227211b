/**
 * A small ONNX graph builder over the `onnx-proto` protobuf classes: describe inputs, outputs,
 * initializers and nodes as plain data, get the serialized ModelProto bytes back.
 *
 * The output uses IR version 8 and the default-domain opset 17 unless told otherwise, which
 * onnxruntime-node 1.30 loads. Encoding is deterministic: equal specs give equal bytes.
 */
import onnxProto from 'onnx-proto';
import type { AnyTypedArray, DataType } from '../tensor/datatype.js';

const { onnx } = onnxProto;

export const IR_VERSION = 8;
export const DEFAULT_OPSET = 17;

/** A graph input or output. A string dim (e.g. 'N') is a symbolic, variable dimension. */
export interface ValueSpec {
  name: string;
  elemType: DataType;
  shape: readonly (number | string)[];
}

/** A constant tensor stored in the model; `data` is copied as raw little-endian bytes. */
export interface InitializerSpec {
  name: string;
  datatype: DataType;
  dims: readonly number[];
  data: AnyTypedArray;
}

/** Attribute values are tagged because ONNX distinguishes INT from FLOAT. */
export type AttrValue =
  | { int: number }
  | { float: number }
  | { string: string }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { tensor: InitializerSpec };

export interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Readonly<Record<string, AttrValue>>;
  /** Defaults to `<op>_<index>`. */
  name?: string;
}

export interface ModelSpec {
  inputs: readonly ValueSpec[];
  outputs: readonly ValueSpec[];
  initializers?: readonly InitializerSpec[];
  nodes: readonly NodeSpec[];
  opset?: number;
  graphName?: string;
  docString?: string;
}

/** OIP datatype -> ONNX TensorProto.DataType. */
const ONNX_ELEM_TYPE: Readonly<Record<DataType, number>> = Object.freeze({
  BOOL: onnx.TensorProto.DataType.BOOL,
  UINT8: onnx.TensorProto.DataType.UINT8,
  UINT16: onnx.TensorProto.DataType.UINT16,
  UINT32: onnx.TensorProto.DataType.UINT32,
  UINT64: onnx.TensorProto.DataType.UINT64,
  INT8: onnx.TensorProto.DataType.INT8,
  INT16: onnx.TensorProto.DataType.INT16,
  INT32: onnx.TensorProto.DataType.INT32,
  INT64: onnx.TensorProto.DataType.INT64,
  FP16: onnx.TensorProto.DataType.FLOAT16,
  FP32: onnx.TensorProto.DataType.FLOAT,
  FP64: onnx.TensorProto.DataType.DOUBLE,
  BYTES: onnx.TensorProto.DataType.STRING,
});

export function onnxElemType(dt: DataType): number {
  return ONNX_ELEM_TYPE[dt];
}

function valueInfo(v: ValueSpec): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name: v.name,
    type: {
      tensorType: {
        elemType: ONNX_ELEM_TYPE[v.elemType],
        shape: { dim: v.shape.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

function tensorProto(t: InitializerSpec): InstanceType<typeof onnx.TensorProto> {
  if (t.datatype === 'BYTES') throw new TypeError(`initializer ${t.name}: BYTES tensors are not supported`);
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) {
    throw new RangeError(`initializer ${t.name}: ${t.data.length} elements for dims [${t.dims.join(',')}]`);
  }
  return onnx.TensorProto.create({
    name: t.name,
    dims: [...t.dims],
    dataType: ONNX_ELEM_TYPE[t.datatype],
    rawData: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  });
}

function attribute(name: string, v: AttrValue): InstanceType<typeof onnx.AttributeProto> {
  const T = onnx.AttributeProto.AttributeType;
  if ('int' in v) return onnx.AttributeProto.create({ name, type: T.INT, i: v.int });
  if ('float' in v) return onnx.AttributeProto.create({ name, type: T.FLOAT, f: v.float });
  if ('string' in v) return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(v.string) });
  if ('ints' in v) return onnx.AttributeProto.create({ name, type: T.INTS, ints: [...v.ints] });
  if ('floats' in v) return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: [...v.floats] });
  return onnx.AttributeProto.create({ name, type: T.TENSOR, t: tensorProto(v.tensor) });
}

/**
 * Check that every node input is defined before use (graph input, initializer or an earlier
 * node's output; '' marks an omitted optional input) and that every graph output is produced.
 */
function checkWiring(spec: ModelSpec): void {
  const defined = new Set<string>([...spec.inputs.map((v) => v.name), ...(spec.initializers ?? []).map((t) => t.name)]);
  spec.nodes.forEach((n, i) => {
    for (const input of n.inputs) {
      if (input !== '' && !defined.has(input)) throw new Error(`node ${i} (${n.op}): input '${input}' is not defined before use`);
    }
    for (const output of n.outputs) {
      if (defined.has(output)) throw new Error(`node ${i} (${n.op}): output '${output}' is defined twice`);
      defined.add(output);
    }
  });
  for (const o of spec.outputs) {
    if (!defined.has(o.name)) throw new Error(`graph output '${o.name}' is never produced`);
  }
}

/** Serialize `spec` as an ONNX ModelProto (fresh bytes owned by the caller). Throws on miswired graphs and unsupported initializers. */
export function buildModel(spec: ModelSpec): Uint8Array {
  checkWiring(spec);
  const graph = onnx.GraphProto.create({
    name: spec.graphName ?? 'skiff',
    input: spec.inputs.map(valueInfo),
    output: spec.outputs.map(valueInfo),
    initializer: (spec.initializers ?? []).map(tensorProto),
    node: spec.nodes.map((n, i) =>
      onnx.NodeProto.create({
        name: n.name ?? `${n.op}_${i}`,
        opType: n.op,
        input: [...n.inputs],
        output: [...n.outputs],
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
      }),
    ),
  });
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'skiff-modelgen',
    producerVersion: '1',
    opsetImport: [{ domain: '', version: spec.opset ?? DEFAULT_OPSET }],
    docString: spec.docString ?? '',
    graph,
  });
  // protobufjs hands back a Node Buffer, possibly a slice of a shared pool: copy it out.
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}
