/**
 * The benchmark networks: the engine's own reference networks (models/src/engine/nn), with
 * deterministic synthetic data. `scripts/device/torch_reference.py` mirrors them layer for layer in
 * PyTorch; change both together.
 *
 * - Reference U-Net (`referenceUNetArgs(base)`): 4 scales with widths base·2^l, one block
 *   per level [Conv 3³ (bias, pad 1) → InstanceNorm (affine) → LeakyReLU 0.01], MaxPool 2 down,
 *   nearest ×2 up, Concat([skip, up]), head Conv 1×1×1 → 3 classes; loss: soft Dice (foreground
 *   classes, softmax, ε = 1e-5).
 * - Registration network (`registrationTask`, voxelmorph size): the same U-Net shape over
 *   Concat([moving, fixed]) with base 16, LeakyReLU 0.2, a 16-channel output → LeakyReLU → Conv
 *   1×1×1 → 3-channel displacement (init N(0, 1e-5)); trilinear warp of the moving image; loss
 *   −LNCC (9³ window, average pools) + 1·‖∇φ‖².
 */
import type { Graph, Value } from '../graph/graph.js';
import { referenceUNetArgs, segmentationTask } from './unet.js';
import { registrationTask } from './registration.js';

export interface BenchNetwork {
  graph: Graph;
  /** Data inputs and how to fill them (value i of n). */
  inputs: { value: Value; fill: (i: number, n: number) => number }[];
  /** Output of the forward (inference) graph. */
  output: Value;
  loss: Value;
  description: string;
}

function smoothVolume(i: number, dims: readonly number[], phase: number): number {
  const [, , d, h, w] = dims as [number, number, number, number, number];
  const x = i % w;
  const y = Math.floor(i / w) % h;
  const z = Math.floor(i / (w * h)) % d;
  return (
    Math.sin((x / w) * 6.1 + phase) * Math.cos((y / h) * 4.3) + Math.sin((z / d) * 5.2 - phase)
  );
}

export function segmentationNetwork(base: number, size: number, classes = 3): BenchNetwork {
  const task = segmentationTask(referenceUNetArgs(base, classes), [size, size, size]);
  const dims = task.image.shape;
  const m = size * size * size;
  const a = task.args;
  return {
    graph: task.graph,
    inputs: [
      { value: task.image, fill: (i) => smoothVolume(i, dims, 0) },
      {
        value: task.target,
        fill: (i) => {
          const c = Math.floor(i / m);
          const v = smoothVolume(i % m, dims, 0);
          const label = v < -0.5 ? 1 : v > 0.5 ? 2 : 0;
          return label === c ? 1 : 0;
        },
      },
    ],
    output: task.logits,
    loss: task.loss,
    description:
      `reference U-Net base ${a.base}, ${a.depth} scales ` +
      `(${Array.from({ length: a.depth }, (_, l) => a.base * 2 ** l).join('-')}), ${a.convsPerLevel} conv/level, ` +
      `${classes} classes, ${size}³, soft Dice`,
  };
}

export function registrationNetwork(size: number): BenchNetwork {
  const task = registrationTask({}, [size, size, size]);
  const dims = task.moving.shape;
  const a = task.args;
  return {
    graph: task.graph,
    inputs: [
      { value: task.moving, fill: (i) => smoothVolume(i, dims, 0) },
      { value: task.fixed, fill: (i) => smoothVolume(i, dims, 0.3) },
    ],
    output: task.displacement,
    loss: task.loss,
    description:
      `registration net base ${a.base}, ${a.depth} scales, on 2×${size}³ → displacement, warp, ` +
      `−LNCC(${a.window}³) + ${a.smoothness}·‖∇φ‖²`,
  };
}

export const BENCH_CONFIGS = Object.freeze({
  'unet-b8-64': () => segmentationNetwork(8, 64),
  'unet-b16-128': () => segmentationNetwork(16, 128),
  'reg-64': () => registrationNetwork(64),
  'reg-128': () => registrationNetwork(128),
  // small, for smoke tests of the benchmark itself
  'unet-b4-16': () => segmentationNetwork(4, 16),
  'reg-16': () => registrationNetwork(16),
});
export type BenchConfig = keyof typeof BENCH_CONFIGS;
