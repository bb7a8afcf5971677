/**
 * Stage-1 distillation plumbing (SAM teacher → E_g): the teacher's slice-wise feature volume is
 * resampled onto the grid of one E_g scale, and a training task matches E_g's features there
 * through a 1×1×1 projection to the teacher's channels (MSE). E_g's parameters keep the names of
 * the inference network (`eg.…`), so the trained weights carry over.
 */
import { Graph, type Value } from '../engine/graph/graph.js';
import { mseLoss } from '../engine/losses/losses.js';
import type { FeatureVolume } from './teacher.js';
import { distillProjection, rrlEncoder, type RrlNetArgs } from './networks.js';

function axisWeights(n: number, m: number): { i0: Int32Array; i1: Int32Array; t: Float32Array } {
  const i0 = new Int32Array(m);
  const i1 = new Int32Array(m);
  const t = new Float32Array(m);
  for (let j = 0; j < m; j++) {
    const f = Math.min(Math.max((j + 0.5) * (n / m) - 0.5, 0), n - 1);
    i0[j] = Math.floor(f);
    i1[j] = Math.min(i0[j]! + 1, n - 1);
    t[j] = f - i0[j]!;
  }
  return { i0, i1, t };
}

/**
 * Trilinear (half-pixel) resampling of the valid part of a teacher feature volume
 * ([C, S, 64, 64], rows `valid[0]`, columns `valid[1]`) to [C, d, h, w]: slices → d (volume D),
 * embedding rows → h (volume H), columns → w (volume W). Returns [1, C, d, h, w] data.
 */
export function resampleFeatureVolume(
  fv: FeatureVolume,
  out: readonly [number, number, number],
): Float32Array {
  const [C, S, EH, EW] = fv.dims;
  const [vh, vw] = [Math.max(1, Math.min(fv.valid[0], EH)), Math.max(1, Math.min(fv.valid[1], EW))];
  const [d, h, w] = out;
  const az = axisWeights(S, d);
  const ay = axisWeights(vh, h);
  const ax = axisWeights(vw, w);
  const res = new Float32Array(C * d * h * w);
  const at = (c: number, s: number, y: number, x: number): number =>
    fv.data[((c * S + s) * EH + y) * EW + x]!;
  let o = 0;
  for (let c = 0; c < C; c++) {
    for (let z = 0; z < d; z++) {
      const [z0, z1, tz] = [az.i0[z]!, az.i1[z]!, az.t[z]!];
      for (let y = 0; y < h; y++) {
        const [y0, y1, ty] = [ay.i0[y]!, ay.i1[y]!, ay.t[y]!];
        for (let x = 0; x < w; x++) {
          const [x0, x1, tx] = [ax.i0[x]!, ax.i1[x]!, ax.t[x]!];
          const lerp2 = (s: number): number =>
            (at(c, s, y0, x0) * (1 - tx) + at(c, s, y0, x1) * tx) * (1 - ty) +
            (at(c, s, y1, x0) * (1 - tx) + at(c, s, y1, x1) * tx) * ty;
          res[o++] = lerp2(z0) * (1 - tz) + lerp2(z1) * tz;
        }
      }
    }
  }
  return res;
}

export interface DistillationTask {
  graph: Graph;
  image: Value; // [1, inChannels, D, H, W]
  /** Teacher features on the grid of encoder scale `scale`: [1, teacherChannels, D/2^s, H/2^s, W/2^s]. */
  target: Value;
  student: Value;
  loss: Value;
  scale: number;
}

/**
 * Training graph of stage 1: E_g (`eg.`) on `image`, its features at `scale` (default the deepest)
 * → 1×1×1 projection (`eg_distill.`) to the teacher's channels; loss = weight · MSE(student, target).
 */
export function distillationTask(
  args: RrlNetArgs,
  grid: readonly [number, number, number],
  o: { scale?: number; weight?: number } = {},
): DistillationTask {
  const scale = o.scale ?? args.channels.length - 1;
  if (!Number.isInteger(scale) || scale < 0 || scale >= args.channels.length) {
    throw new Error(
      `distillationTask: scale ${scale} is not one of the encoder's scales 0..${args.channels.length - 1}`,
    );
  }
  const div = 2 ** (args.channels.length - 1);
  if (grid.some((s) => s % div !== 0)) {
    throw new Error(`distillationTask: grid [${grid.join(', ')}] must be divisible by ${div}`);
  }
  const g = new Graph();
  const image = g.input('image', [1, args.inChannels, ...grid]);
  const target = g.input('target', [1, args.teacherChannels, ...grid.map((s) => s / 2 ** scale)]);
  const feats = rrlEncoder(g, 'eg', image, args);
  const student = distillProjection(g, 'eg_distill', feats[scale]!, args);
  const loss = g.mul(mseLoss(g, student, target), o.weight ?? 1);
  return { graph: g, image, target, student, loss, scale };
}
