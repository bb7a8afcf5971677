/**
 * The operations an exported inference graph may use so that onnxruntime-web runs it entirely on
 * its WebGPU provider (the viewer's worker disables the CPU fallback: one unsupported node sends
 * the whole model to wasm). Each entry is an op at a tensor rank (the largest rank among the
 * node's inputs and outputs: kernels differ by rank, e.g. 3-D pooling). Every entry is proven by
 * an end-to-end test that runs a probe graph of it on Chromium's WebGPU adapter with CPU fallback
 * off and compares it with wasm (test/e2e/webgpu.test.ts, probes in
 * test/fixtures/webgpu-op-probes.ts): add an op here only together with its probe.
 */
import { dependencies } from '../autodiff/training.js';
import type { Graph, Value } from '../graph/graph.js';

export interface WebGpuOp {
  op: string;
  rank: number;
  /** What our networks use it for. */
  use: string;
}

export const WEBGPU_OPS: readonly WebGpuOp[] = [
  { op: 'Conv', rank: 5, use: '3-D convolutions (3³ and 1³ kernels, zero padding, bias)' },
  { op: 'InstanceNormalization', rank: 5, use: 'instance norm after every convolution' },
  { op: 'LeakyRelu', rank: 5, use: 'activations' },
  { op: 'MaxPool', rank: 5, use: '3-D down-sampling (2³ windows, stride 2)' },
  { op: 'AveragePool', rank: 5, use: '3-D average pooling of the prompt features' },
  { op: 'Reshape', rank: 6, use: 'nearest ×2 up-sampling (with Expand)' },
  { op: 'Expand', rank: 6, use: 'nearest ×2 up-sampling (with Reshape)' },
  { op: 'MatMul', rank: 5, use: 'nearest ×2 up-sampling of the last axis (5-D × 0/1 matrix)' },
  { op: 'Concat', rank: 5, use: 'skip connections and branch fusion (channel axis)' },
  { op: 'Add', rank: 5, use: 'residual sums' },
  { op: 'Sub', rank: 5, use: 'softmax (minus the max)' },
  { op: 'Div', rank: 5, use: 'softmax (normalisation)' },
  { op: 'Exp', rank: 5, use: 'softmax' },
  { op: 'ReduceMax', rank: 5, use: 'softmax (channel max, axes as input)' },
  { op: 'ReduceSum', rank: 5, use: 'softmax (channel sum, axes as input)' },
  { op: 'Identity', rank: 5, use: 'stop-gradient marks (the softmax max, the warp indices)' },
  // warp3d: the registration fallback's atlas labels warped by the predicted displacement
  { op: 'Slice', rank: 5, use: 'warp3d: one displacement component' },
  { op: 'Clip', rank: 5, use: 'warp3d: sampling positions clamped to the volume' },
  { op: 'Floor', rank: 5, use: 'warp3d: the lower corner of each sampling position' },
  { op: 'Mul', rank: 5, use: 'warp3d: linear indices and trilinear weights' },
  { op: 'Reshape', rank: 5, use: 'warp3d: volumes flattened for the gather and back' },
  { op: 'Expand', rank: 3, use: 'warp3d: one index per channel' },
  {
    op: 'Cast',
    rank: 3,
    use: 'warp3d: float indices to int32 (a Cast to int64 has no WebGPU kernel)',
  },
  { op: 'GatherElements', rank: 3, use: 'warp3d: the eight corner samples' },
];

export interface OpSignature {
  op: string;
  rank: number;
  /** The first node with this signature. */
  node: string;
}

/** The distinct (op, rank) of the nodes `outputs` depend on, in graph order. */
export function opSignatures(g: Graph, outputs: readonly Value[]): OpSignature[] {
  const deps = dependencies(g, outputs);
  const seen = new Map<string, OpSignature>();
  for (const n of g.nodes) {
    if (!n.outputs.some((o) => deps.has(o))) continue;
    const ranks = [...n.inputs, ...n.outputs]
      .filter((v) => v !== '' && g.values.has(v))
      .map((v) => g.values.get(v)!.shape.length);
    const rank = Math.max(0, ...ranks);
    // WebGPU has no 64-bit integers: a Cast to int64 sends the model to wasm (measured), so it is
    // its own signature, never listed.
    const op =
      n.op === 'Cast' && g.values.get(n.outputs[0] ?? '')?.dtype === 'int64'
        ? 'Cast to int64'
        : n.op;
    const key = `${op}@${rank}`;
    if (!seen.has(key)) seen.set(key, { op, rank, node: n.name });
  }
  return [...seen.values()];
}

export class WebGpuOpError extends Error {
  constructor(readonly missing: readonly OpSignature[]) {
    super(
      `The exported model uses ${missing
        .map((m) => `${m.op} on rank-${m.rank} tensors (node ${m.node})`)
        .join(
          ', ',
        )}, not on the list of operations proven to run on onnxruntime-web's WebGPU provider (models/src/engine/export/webgpuOps.ts). The viewer would run the whole model on wasm. Build the network from listed operations, or add the operation with a probe that proves it in test/e2e/webgpu.test.ts.`,
    );
    this.name = 'WebGpuOpError';
  }
}

/** Throws WebGpuOpError naming every (op, rank) of the graph that is not in WEBGPU_OPS. */
export function checkWebGpuOps(g: Graph, outputs: readonly Value[]): void {
  const listed = new Set(WEBGPU_OPS.map((o) => `${o.op}@${o.rank}`));
  const missing = opSignatures(g, outputs).filter((s) => !listed.has(`${s.op}@${s.rank}`));
  if (missing.length > 0) throw new WebGpuOpError(missing);
}
