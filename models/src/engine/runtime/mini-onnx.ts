/**
 * Tiny ONNX models that the runtime needs for itself:
 * - `probeModel()`: Y = X * X + X over float32[2, 3], to probe whether an execution provider can
 *   create a session and run;
 * - `identityModel(tensors)`: one Identity per named float32 tensor, to copy tensors that live on
 *   the GPU (WebGPU `gpu-buffer` outputs) back to JavaScript; onnxruntime-node 1.30 has no
 *   `Tensor.getData()` for GPU tensors (it aborts the process), so the copy goes through a session.
 * They are written with the plain ONNX encoder (`../onnx/model.ts`), not the graph builder, so a
 * broken builder cannot look like a missing GPU.
 */
import { encodeModel, type OnnxValueInfo } from '../onnx/model.js';

const OPTIONS = { opset: 17, producerName: 'rrl-medsam-runtime' };

function floatInfo(name: string, dims: readonly number[]): OnnxValueInfo {
  return { name, dtype: 'float32', dims };
}

/** The probe model's input and output: X float32[2,3] → Y = X*X + X. */
export const PROBE_INPUT = { name: 'X', dims: [2, 3] as const };
export const PROBE_OUTPUT = 'Y';
export const PROBE_X = Float32Array.from([1, 2, 3, 4, 5, 6]);
export const PROBE_Y = Float32Array.from([2, 6, 12, 20, 30, 42]);

export function probeModel(): Uint8Array {
  return encodeModel(
    {
      name: 'probe',
      nodes: [
        { opType: 'Mul', inputs: ['X', 'X'], outputs: ['XX'], name: 'mul' },
        { opType: 'Add', inputs: ['XX', 'X'], outputs: ['Y'], name: 'add' },
      ],
      inputs: [floatInfo('X', PROBE_INPUT.dims)],
      outputs: [floatInfo(PROBE_OUTPUT, PROBE_INPUT.dims)],
      initializers: [],
    },
    OPTIONS,
  );
}

/** Output name of the identity copy of input `name`. */
export function identityOutputName(name: string): string {
  return `${name}__copy`;
}

/** One Identity node per tensor: input `<name>` → output `<name>__copy`, all float32. */
export function identityModel(
  tensors: readonly { name: string; dims: readonly number[] }[],
): Uint8Array {
  return encodeModel(
    {
      name: 'copy',
      nodes: tensors.map((t, i) => ({
        opType: 'Identity',
        inputs: [t.name],
        outputs: [identityOutputName(t.name)],
        name: `copy_${i}`,
      })),
      inputs: tensors.map((t) => floatInfo(t.name, t.dims)),
      outputs: tensors.map((t) => floatInfo(identityOutputName(t.name), t.dims)),
      initializers: [],
    },
    OPTIONS,
  );
}
