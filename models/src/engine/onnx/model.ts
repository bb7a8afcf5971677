/**
 * ONNX ModelProto encoding (and a small decoder for initializers / structure) from a plain
 * description. Field numbers follow onnx/onnx.proto (IR version 8, default domain opset 18).
 */
import { PbWriter, pbDecode, pbPackedVarints, pbString, type PbField } from './protobuf.js';

export type DType = 'float32' | 'int64' | 'int32' | 'bool' | 'uint8' | 'float64';

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array | Float64Array;

const DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};
const CODE_DTYPE = new Map<number, DType>(
  Object.entries(DTYPE_CODE).map(([k, v]) => [v, k as DType]),
);

export interface OnnxTensor {
  name: string;
  dtype: DType;
  dims: readonly number[];
  data: TensorData;
}

export type OnnxAttr =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'float'; value: number }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: OnnxTensor };

export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  domain?: string;
  attrs?: Readonly<Record<string, OnnxAttr>>;
}

export interface OnnxValueInfo {
  name: string;
  dtype: DType;
  dims: readonly number[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers: readonly OnnxTensor[];
  valueInfo?: readonly OnnxValueInfo[];
  docString?: string;
}

/**
 * Initializers kept outside the protobuf (ONNX external data), for models whose weights pass the
 * 2 GB protobuf limit: every tensor of at least `minBytes` is handed to `append`, which stores it
 * in the file `location` (beside the model) and returns its offset there.
 */
export interface ExternalData {
  location: string;
  minBytes: number;
  append: (bytes: Uint8Array) => number;
}

export interface EncodeOptions {
  externalData?: ExternalData;
  opset?: number;
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
}

export function dtypeCode(d: DType): number {
  return DTYPE_CODE[d];
}

function tensorBytes(t: OnnxTensor): Uint8Array {
  const d = t.data;
  const expectedCtor: Record<DType, string> = {
    float32: 'Float32Array',
    int64: 'BigInt64Array',
    int32: 'Int32Array',
    bool: 'Uint8Array',
    uint8: 'Uint8Array',
    float64: 'Float64Array',
  };
  if (d.constructor.name !== expectedCtor[t.dtype]) {
    throw new Error(
      `tensor ${t.name}: dtype ${t.dtype} expects ${expectedCtor[t.dtype]}, got ${d.constructor.name}`,
    );
  }
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (d.length !== n) {
    throw new Error(
      `tensor ${t.name}: dims [${t.dims.join(',')}] need ${n} values, got ${d.length}`,
    );
  }
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

function encodeTensor(t: OnnxTensor, ext?: ExternalData): PbWriter {
  const w = new PbWriter();
  if (t.dims.length > 0) w.packedVarints(1, t.dims);
  w.varint(2, DTYPE_CODE[t.dtype]);
  w.string(8, t.name);
  const bytes = tensorBytes(t);
  if (ext && bytes.byteLength >= ext.minBytes) {
    const offset = ext.append(bytes);
    const entry = (k: string, v: string): PbWriter => new PbWriter().string(1, k).string(2, v);
    w.message(13, entry('location', ext.location));
    w.message(13, entry('offset', String(offset)));
    w.message(13, entry('length', String(bytes.byteLength)));
    w.varint(14, 1);
  } else w.bytes(9, bytes);
  return w;
}

function encodeAttr(name: string, a: OnnxAttr): PbWriter {
  const w = new PbWriter();
  w.string(1, name);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value);
      w.varint(20, 1);
      break;
    case 'int':
      w.varint(3, a.value);
      w.varint(20, 2);
      break;
    case 'string':
      w.string(4, a.value);
      w.varint(20, 3);
      break;
    case 'tensor':
      w.message(5, encodeTensor(a.value));
      w.varint(20, 4);
      break;
    case 'floats':
      for (const v of a.value) w.float(7, v);
      w.varint(20, 6);
      break;
    case 'ints':
      for (const v of a.value) w.varint(8, v);
      w.varint(20, 7);
      break;
  }
  return w;
}

function encodeNode(n: OnnxNode, index: number): PbWriter {
  const w = new PbWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name ?? `${n.opType}_${index}`);
  w.string(4, n.opType);
  for (const [k, a] of Object.entries(n.attrs ?? {})) w.message(5, encodeAttr(k, a));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function encodeValueInfo(v: OnnxValueInfo): PbWriter {
  const shape = new PbWriter();
  for (const d of v.dims) shape.message(1, new PbWriter().varint(1, d));
  const tensorType = new PbWriter().varint(1, DTYPE_CODE[v.dtype]).message(2, shape);
  const type = new PbWriter().message(1, tensorType);
  return new PbWriter().string(1, v.name).message(2, type);
}

export function encodeModel(g: OnnxGraph, opts: EncodeOptions = {}): Uint8Array {
  const gw = new PbWriter();
  g.nodes.forEach((n, i) => gw.message(1, encodeNode(n, i)));
  gw.string(2, g.name);
  for (const t of g.initializers) gw.message(5, encodeTensor(t, opts.externalData));
  if (g.docString) gw.string(10, g.docString);
  for (const v of g.inputs) gw.message(11, encodeValueInfo(v));
  for (const v of g.outputs) gw.message(12, encodeValueInfo(v));
  for (const v of g.valueInfo ?? []) gw.message(13, encodeValueInfo(v));

  const mw = new PbWriter();
  mw.varint(1, opts.irVersion ?? 8);
  mw.string(2, opts.producerName ?? 'rrl-medsam-engine');
  mw.string(3, opts.producerVersion ?? '0.1.0');
  if (opts.docString) mw.string(6, opts.docString);
  mw.message(7, gw);
  mw.message(8, new PbWriter().string(1, '').varint(2, opts.opset ?? 18));
  return mw.finish();
}

// ---------------------------------------------------------------- decoding (tests, checkpoints)

function copyTyped(dtype: DType, raw: Uint8Array): TensorData {
  const buf = raw.slice().buffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf);
    case 'int64':
      return new BigInt64Array(buf);
    case 'int32':
      return new Int32Array(buf);
    case 'float64':
      return new Float64Array(buf);
    default:
      return new Uint8Array(buf);
  }
}

function decodeTensor(bytes: Uint8Array): OnnxTensor {
  let dims: number[] = [];
  let dtype: DType = 'float32';
  let name = '';
  let raw: Uint8Array = new Uint8Array(0);
  const floats: number[] = [];
  for (const f of pbDecode(bytes)) {
    if (f.field === 1) dims = dims.concat(pbPackedVarints(f).map(Number));
    else if (f.field === 2) {
      const d = CODE_DTYPE.get(Number(f.varint));
      if (!d) throw new Error(`ONNX tensor: unsupported data_type ${f.varint}`);
      dtype = d;
    } else if (f.field === 8) name = pbString(f.data);
    else if (f.field === 9) raw = f.data!;
    else if (f.field === 4) {
      if (f.wire === 5)
        floats.push(new DataView(f.data!.buffer, f.data!.byteOffset, 4).getFloat32(0, true));
      else {
        const d = f.data!;
        const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
        for (let i = 0; i + 4 <= d.byteLength; i += 4) floats.push(dv.getFloat32(i, true));
      }
    }
  }
  const data = floats.length > 0 ? Float32Array.from(floats) : copyTyped(dtype, raw);
  return { name, dtype, dims, data };
}

function decodeAttr(bytes: Uint8Array): [string, OnnxAttr] {
  const fields = pbDecode(bytes);
  const name = pbString(fields.find((f) => f.field === 1)?.data);
  const type = Number(fields.find((f) => f.field === 20)?.varint ?? 0n);
  const f32 = (f: PbField): number =>
    new DataView(f.data!.buffer, f.data!.byteOffset, 4).getFloat32(0, true);
  const i64 = (v: bigint): number => Number(BigInt.asIntN(64, v));
  switch (type) {
    case 1:
      return [name, { kind: 'float', value: f32(fields.find((f) => f.field === 2)!) }];
    case 2:
      return [name, { kind: 'int', value: i64(fields.find((f) => f.field === 3)!.varint!) }];
    case 3:
      return [name, { kind: 'string', value: pbString(fields.find((f) => f.field === 4)!.data) }];
    case 4:
      return [
        name,
        { kind: 'tensor', value: decodeTensor(fields.find((f) => f.field === 5)!.data!) },
      ];
    case 6:
      return [name, { kind: 'floats', value: fields.filter((f) => f.field === 7).map(f32) }];
    case 7:
      return [
        name,
        {
          kind: 'ints',
          value: fields.filter((f) => f.field === 8).flatMap((f) => pbPackedVarints(f).map(i64)),
        },
      ];
    default:
      throw new Error(`ONNX attribute ${name}: unsupported type ${type}`);
  }
}

function decodeValueInfo(bytes: Uint8Array): OnnxValueInfo {
  const fields = pbDecode(bytes);
  const name = pbString(fields.find((f) => f.field === 1)?.data);
  let dtype: DType = 'float32';
  const dims: number[] = [];
  const type = fields.find((f) => f.field === 2);
  const tensorType = type ? pbDecode(type.data!).find((f) => f.field === 1) : undefined;
  if (tensorType) {
    for (const f of pbDecode(tensorType.data!)) {
      if (f.field === 1) dtype = CODE_DTYPE.get(Number(f.varint)) ?? 'float32';
      if (f.field === 2) {
        for (const d of pbDecode(f.data!)) {
          const dv = pbDecode(d.data!).find((x) => x.field === 1);
          dims.push(dv ? Number(dv.varint) : -1);
        }
      }
    }
  }
  return { name, dtype, dims };
}

export interface DecodedModel {
  opset: number;
  irVersion: number;
  graph: OnnxGraph;
}

export function decodeModel(bytes: Uint8Array): DecodedModel {
  let opset = 0;
  let irVersion = 0;
  let graph: OnnxGraph | undefined;
  for (const f of pbDecode(bytes)) {
    if (f.field === 1) irVersion = Number(f.varint);
    else if (f.field === 8) {
      const o = pbDecode(f.data!);
      const dom = pbString(o.find((x) => x.field === 1)?.data);
      if (dom === '') opset = Number(o.find((x) => x.field === 2)?.varint ?? 0n);
    } else if (f.field === 7) {
      const nodes: OnnxNode[] = [];
      const inputs: OnnxValueInfo[] = [];
      const outputs: OnnxValueInfo[] = [];
      const initializers: OnnxTensor[] = [];
      let name = '';
      for (const g of pbDecode(f.data!)) {
        if (g.field === 1) {
          const nf = pbDecode(g.data!);
          const attrs: Record<string, OnnxAttr> = {};
          for (const a of nf.filter((x) => x.field === 5)) {
            const [k, v] = decodeAttr(a.data!);
            attrs[k] = v;
          }
          nodes.push({
            inputs: nf.filter((x) => x.field === 1).map((x) => pbString(x.data)),
            outputs: nf.filter((x) => x.field === 2).map((x) => pbString(x.data)),
            name: pbString(nf.find((x) => x.field === 3)?.data),
            opType: pbString(nf.find((x) => x.field === 4)?.data),
            domain: pbString(nf.find((x) => x.field === 7)?.data),
            attrs,
          });
        } else if (g.field === 2) name = pbString(g.data);
        else if (g.field === 5) initializers.push(decodeTensor(g.data!));
        else if (g.field === 11) inputs.push(decodeValueInfo(g.data!));
        else if (g.field === 12) outputs.push(decodeValueInfo(g.data!));
      }
      graph = { name, nodes, inputs, outputs, initializers };
    }
  }
  if (!graph) throw new Error('ONNX model: no graph found (is this an ONNX file?)');
  return { opset, irVersion, graph };
}
