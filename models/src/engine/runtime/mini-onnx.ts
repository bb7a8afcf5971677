/**
 * Tiny hand-encoded ONNX models that the runtime needs for itself:
 * - `probeModel()`: Y = X * X + X over float32[2, 3], to probe whether an execution provider can
 *   create a session and run;
 * - `identityModel(tensors)`: one Identity per named float32 tensor, to copy tensors that live on
 *   the GPU (WebGPU `gpu-buffer` outputs) back to JavaScript; onnxruntime-node 1.30 has no
 *   `Tensor.getData()` for GPU tensors (it aborts the process), so the copy goes through a session.
 * They are self-contained on purpose: the runtime must not depend on the graph builder, so a
 * broken builder cannot look like a missing GPU.
 */

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

const utf8 = new TextEncoder();

function fieldVarint(field: number, value: number): number[] {
  return [...varint((field << 3) | 0), ...varint(value)];
}

function fieldBytes(field: number, bytes: number[] | Uint8Array): number[] {
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
}

function fieldString(field: number, s: string): number[] {
  return fieldBytes(field, utf8.encode(s));
}

function valueInfo(name: string, dims: readonly number[]): number[] {
  const shape = dims.flatMap((d) => fieldBytes(1, fieldVarint(1, d)));
  const tensorType = [...fieldVarint(1, 1 /* FLOAT */), ...fieldBytes(2, shape)];
  return [...fieldString(1, name), ...fieldBytes(2, fieldBytes(1, tensorType))];
}

function node(op: string, inputs: string[], outputs: string[], name: string): number[] {
  return [
    ...inputs.flatMap((i) => fieldString(1, i)),
    ...outputs.flatMap((o) => fieldString(2, o)),
    ...fieldString(3, name),
    ...fieldString(4, op),
  ];
}

function model(graph: number[]): Uint8Array {
  const opset = [...fieldString(1, ''), ...fieldVarint(2, 17)];
  return Uint8Array.from([
    ...fieldVarint(1, 8 /* IR version */),
    ...fieldString(2, 'rrl-medsam-runtime'),
    ...fieldBytes(7, graph),
    ...fieldBytes(8, opset),
  ]);
}

/** The probe model's input and output: X float32[2,3] → Y = X*X + X. */
export const PROBE_INPUT = { name: 'X', dims: [2, 3] as const };
export const PROBE_OUTPUT = 'Y';
export const PROBE_X = Float32Array.from([1, 2, 3, 4, 5, 6]);
export const PROBE_Y = Float32Array.from([2, 6, 12, 20, 30, 42]);

export function probeModel(): Uint8Array {
  return model([
    ...fieldBytes(1, node('Mul', ['X', 'X'], ['XX'], 'mul')),
    ...fieldBytes(1, node('Add', ['XX', 'X'], ['Y'], 'add')),
    ...fieldString(2, 'probe'),
    ...fieldBytes(11, valueInfo('X', PROBE_INPUT.dims)),
    ...fieldBytes(12, valueInfo('Y', PROBE_INPUT.dims)),
  ]);
}

/** Output name of the identity copy of input `name`. */
export function identityOutputName(name: string): string {
  return `${name}__copy`;
}

/** One Identity node per tensor: input `<name>` → output `<name>__copy`, all float32. */
export function identityModel(
  tensors: readonly { name: string; dims: readonly number[] }[],
): Uint8Array {
  const graph: number[] = [];
  tensors.forEach((t, i) => {
    graph.push(
      ...fieldBytes(1, node('Identity', [t.name], [identityOutputName(t.name)], `copy_${i}`)),
    );
  });
  graph.push(...fieldString(2, 'copy'));
  for (const t of tensors) graph.push(...fieldBytes(11, valueInfo(t.name, t.dims)));
  for (const t of tensors)
    graph.push(...fieldBytes(12, valueInfo(identityOutputName(t.name), t.dims)));
  return model(graph);
}
