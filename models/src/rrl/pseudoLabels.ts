/**
 * Pseudo labels for RRL-MedSAM: the atlas labels warped onto a target by a trained registration
 * network (moving = atlas image, fixed = target image). The one-hot atlas labels are warped with
 * the predicted displacement by the engine's trilinear `warp3d` (an ONNX graph run by
 * onnxruntime-node), then the argmax over classes gives the label of every target voxel.
 * `warpLabelsReference` is the same warp in plain TypeScript (for tests).
 */
import type { StepProfiler } from '../engine/runtime/profile.js';
import * as ort from 'onnxruntime-node';
import { Graph } from '../engine/graph/graph.js';
import { emitGraph } from '../engine/graph/emit.js';
import { buildForwardGraph } from '../engine/autodiff/training.js';
import { registrationNet, type RegistrationArgs } from '../engine/nn/registration.js';
import { refineDisplacement } from './instanceOpt.js';
import type { InstanceOptimisation } from './plan.js';
import { argmaxChannels } from '@rrl/core/volume/resample.js';

export type Grid = readonly [number, number, number];

function voxels(grid: Grid): number {
  return grid[0] * grid[1] * grid[2];
}

function checkLength(what: string, arr: ArrayLike<number>, n: number, grid: Grid): void {
  if (arr.length !== n) {
    throw new Error(
      `${what}: expected ${n} values for the plan grid [${grid.join(',')}], found ${arr.length}; ` +
        'resample the volume to the plan grid first',
    );
  }
}

/**
 * Label value of a pseudo-label voxel that no training loss may use (`crossFit.ignoreDisagreement`:
 * the registration and the held-out student disagree there); `oneHot` with `{ ignore }` gives it
 * an all-zero row.
 */
export const IGNORE_LABEL = 255;

/**
 * One-hot encoding [classes, D, H, W] of integer labels 0..classes−1; with `o.ignore`, voxels of
 * that value get an all-zero row.
 */
export function oneHot(
  labels: ArrayLike<number>,
  classes: number,
  o: { ignore?: number } = {},
): Float32Array {
  const m = labels.length;
  const out = new Float32Array(classes * m);
  for (let i = 0; i < m; i++) {
    const l = labels[i]!;
    if (l === o.ignore) continue;
    if (!Number.isInteger(l) || l < 0 || l >= classes) {
      throw new Error(
        `oneHot: label ${l} at voxel ${i} is outside 0..${classes - 1}; ` +
          'check the label volume or the number of classes in the plan',
      );
    }
    out[l * m + i] = 1;
  }
  return out;
}

/** Argmax over the class axis of [classes, M] scores (ties → the lowest class). */
export const argmaxClasses = argmaxChannels;

/**
 * Pure-TypeScript trilinear warp with border clamping, exactly as the engine's `warp3d`:
 * out(c, p) = vol(c, clamp(p + disp(p))). `vol` is [C, D, H, W], `disp` [3, D, H, W] in voxels.
 */
export function warpReference(vol: Float32Array, disp: Float32Array, grid: Grid): Float32Array {
  const [d, h, w] = grid;
  const m = voxels(grid);
  checkLength('warpReference displacement', disp, 3 * m, grid);
  const c = vol.length / m;
  const out = new Float32Array(vol.length);
  const dims = [d, h, w];
  const p = [0, 0, 0];
  const f = [0, 0, 0];
  const f1 = [0, 0, 0];
  const t = [0, 0, 0];
  for (let z = 0; z < d; z++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const i = (z * h + y) * w + x;
        p[0] = z + disp[i]!;
        p[1] = y + disp[m + i]!;
        p[2] = x + disp[2 * m + i]!;
        for (let a = 0; a < 3; a++) {
          const v = Math.min(Math.max(p[a]!, 0), dims[a]! - 1);
          f[a] = Math.floor(v);
          f1[a] = Math.min(f[a]! + 1, dims[a]! - 1);
          t[a] = v - f[a]!;
        }
        for (let k = 0; k < 8; k++) {
          const bz = (k >> 2) & 1;
          const by = (k >> 1) & 1;
          const bx = k & 1;
          const wt = (bz ? t[0]! : 1 - t[0]!) * (by ? t[1]! : 1 - t[1]!) * (bx ? t[2]! : 1 - t[2]!);
          if (wt === 0) continue;
          const j = ((bz ? f1[0]! : f[0]!) * h + (by ? f1[1]! : f[1]!)) * w + (bx ? f1[2]! : f[2]!);
          for (let ch = 0; ch < c; ch++) out[ch * m + i]! += wt * vol[ch * m + j]!;
        }
      }
  return out;
}

/** Reference pseudo labels: one-hot → `warpReference` → argmax. */
export function warpLabelsReference(
  labels: ArrayLike<number>,
  disp: Float32Array,
  grid: Grid,
  classes: number,
): Uint8Array {
  checkLength('warpLabelsReference labels', labels, voxels(grid), grid);
  return argmaxClasses(warpReference(oneHot(labels, classes), disp, grid), classes);
}

/**
 * ORT intra-op threads of the pseudo-label sessions: one, so that pseudo labels are computed
 * several at a time in worker threads (`pseudoLabelPool.ts`) — the refinement's small
 * element-wise kernels barely use a second thread (9.5 vs 10.4 ms per step at 48×56×40), two
 * single-threaded pairs at once do 1.8× the work — and so that every caller, pool or not, gets
 * the same numbers.
 */
export const PSEUDO_LABEL_THREADS = 1;

async function runOnce(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
  output: string,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: PSEUDO_LABEL_THREADS,
  });
  try {
    const out = await session.run(feeds);
    return out[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/**
 * Warps integer labels with a displacement [3, D, H, W] (voxels) in an ONNX graph (engine
 * `warp3d` on the one-hot labels, onnxruntime-node CPU) and takes the argmax.
 */
export async function warpLabels(
  labels: ArrayLike<number>,
  disp: Float32Array,
  grid: Grid,
  classes: number,
): Promise<{ labels: Uint8Array; probabilities: Float32Array }> {
  const m = voxels(grid);
  checkLength('warpLabels labels', labels, m, grid);
  checkLength('warpLabels displacement', disp, 3 * m, grid);
  const g = new Graph();
  const vol = g.input('onehot', [1, classes, ...grid]);
  const dv = g.input('displacement', [1, 3, ...grid]);
  const model = emitGraph(g, { inputs: g.inputs, outputs: [['warped', g.warp3d(vol, dv)]] });
  const probabilities = await runOnce(
    model,
    {
      onehot: new ort.Tensor('float32', oneHot(labels, classes), [1, classes, ...grid]),
      displacement: new ort.Tensor('float32', disp, [1, 3, ...grid]),
    },
    'warped',
  );
  return { labels: argmaxClasses(probabilities, classes), probabilities };
}

/** Displacement [3, D, H, W] (voxels) that the trained registration network predicts for moving → fixed. */
export async function predictDisplacement(
  params: ReadonlyMap<string, Float32Array>,
  args: RegistrationArgs,
  grid: Grid,
  moving: Float32Array,
  fixed: Float32Array,
): Promise<Float32Array> {
  const m = voxels(grid);
  checkLength('predictDisplacement moving image', moving, m, grid);
  checkLength('predictDisplacement fixed image', fixed, m, grid);
  const g = new Graph();
  const mv = g.input('moving', [1, 1, ...grid]);
  const fx = g.input('fixed', [1, 1, ...grid]);
  const { displacement } = registrationNet(g, mv, fx, { ...args, channels: 1 });
  const { model } = buildForwardGraph({ graph: g, outputs: { displacement }, params });
  return runOnce(
    model,
    {
      moving: new ort.Tensor('float32', moving, [1, 1, ...grid]),
      fixed: new ort.Tensor('float32', fixed, [1, 1, ...grid]),
    },
    'displacement',
  );
}

export interface PseudoLabelInput {
  /** Trained registration parameters (names as in `registrationNet`). */
  params: ReadonlyMap<string, Float32Array>;
  args: RegistrationArgs;
  grid: Grid;
  classes: number;
  atlasImage: Float32Array;
  atlasLabels: ArrayLike<number>;
  target: Float32Array;
  /** Instance-specific refinement of the network's displacement (absent or 0 steps = none). */
  refine?: InstanceOptimisation;
  /** Profiles the refinement's first steps (the caller reports it). */
  refineProfiler?: StepProfiler;
  /**
   * A segmentation of the target ([classes, D, H, W] probabilities on the grid) the refinement
   * should agree with, and the weight of that soft-Dice term (`RefineTowards`); needs `refine`.
   */
  refineTowards?: { probabilities: Float32Array; weight: number };
}

/**
 * Pseudo labels of one target: atlas labels warped by the predicted atlas → target displacement,
 * refined for this pair first when `refine` asks for it.
 */
export interface PseudoLabelResult {
  labels: Uint8Array;
  probabilities: Float32Array;
  displacement: Float32Array;
}

export async function pseudoLabels(i: PseudoLabelInput): Promise<PseudoLabelResult> {
  let displacement = await predictDisplacement(i.params, i.args, i.grid, i.atlasImage, i.target);
  if (i.refine) {
    displacement = (
      await refineDisplacement(
        i.atlasImage,
        i.target,
        displacement,
        i.grid,
        i.refine,
        i.refineProfiler,
        PSEUDO_LABEL_THREADS,
        i.refineTowards
          ? {
              ...i.refineTowards,
              atlasOnehot: oneHot(i.atlasLabels, i.classes),
              classes: i.classes,
            }
          : undefined,
      )
    ).displacement;
  }
  const w = await warpLabels(i.atlasLabels, displacement, i.grid, i.classes);
  return { ...w, displacement };
}
