/**
 * Instance-specific optimisation of a registration (classic iterative registration on top of the
 * learned network): the displacement that the registration network predicts for atlas → target
 * is refined for one pair by gradient descent on −LNCC(warp(atlas, φ), target) + λ‖∇φ‖², with
 * φ = φ_net + up(r) and r a residual field on a coarser grid (trilinear up-sampling keeps the
 * refinement smooth and the problem small). The optimisation is an engine training graph whose
 * only parameter is r, run by the engine `Trainer` (onnxruntime-node) with Adam.
 *
 * The network is trained on 40-odd pairs and under-fits each of them; a few hundred steps on the
 * pair itself recover part of what it misses (measured in models/reports/, see README).
 */
import { Graph } from '../engine/graph/graph.js';
import { buildTrainingGraph } from '../engine/autodiff/training.js';
import { lnccLoss, probabilityDiceLoss, smoothnessLoss } from '../engine/losses/losses.js';
import type { StepProfiler } from '../engine/runtime/profile.js';
import { Trainer } from '../engine/runtime/trainer.js';
import { trilinear } from './augment.js';
import { INSTANCE_OPT_DEFAULTS, type InstanceOptimisation } from './plan.js';
import type { Grid } from './pseudoLabels.js';

export { INSTANCE_OPT_DEFAULTS, type InstanceOptimisation };

function voxels(grid: Grid): number {
  return grid[0] * grid[1] * grid[2];
}

/**
 * A segmentation the refined registration should agree with: `weight` · (1 − soft Dice(warped
 * one-hot atlas labels, `probabilities`)) joins the refinement's loss (the joint stage's term,
 * per pair). `probabilities` is [classes, D, H, W] on the grid (a segmentation network's softmax
 * of the target), `atlasOnehot` the atlas labels one-hot in the same layout.
 */
export interface RefineTowards {
  atlasOnehot: Float32Array;
  probabilities: Float32Array;
  classes: number;
  weight: number;
}

/**
 * Refines `initial` (displacement [3, D, H, W] in voxels, atlas → target) for one pair, towards
 * `towards` too when given. Returns the refined displacement and the loss of every step (first =
 * the network's own field).
 */
export async function refineDisplacement(
  atlasImage: Float32Array,
  target: Float32Array,
  initial: Float32Array,
  grid: Grid,
  options: Partial<InstanceOptimisation> = {},
  profiler?: StepProfiler,
  threads = 2,
  towards?: RefineTowards,
): Promise<{ displacement: Float32Array; losses: number[] }> {
  const o = { ...INSTANCE_OPT_DEFAULTS, ...options };
  const m = voxels(grid);
  const checks: [string, Float32Array, number][] = [
    ['atlas image', atlasImage, m],
    ['target image', target, m],
    ['initial displacement', initial, 3 * m],
  ];
  if (towards) {
    checks.push(['atlas one-hot labels', towards.atlasOnehot, towards.classes * m]);
    checks.push(['segmentation to agree with', towards.probabilities, towards.classes * m]);
  }
  for (const [what, arr, n] of checks) {
    if (arr.length !== n) {
      throw new Error(
        `refineDisplacement: the ${what} has ${arr.length} values, expected ${n} for the grid [${grid.join(',')}]`,
      );
    }
  }
  if (o.steps <= 0) return { displacement: initial, losses: [] };
  const ds = o.downsample;
  if (![1, 2, 4].includes(ds) || grid.some((d) => d % ds !== 0)) {
    throw new Error(
      `refineDisplacement: downsample ${ds} must be 1, 2 or 4 and divide the grid [${grid.join(',')}]`,
    );
  }
  const g = new Graph();
  const moving = g.input('moving', [1, 1, ...grid]);
  const fixed = g.input('fixed', [1, 1, ...grid]);
  const base = g.input('base', [1, 3, ...grid]);
  const coarse = grid.map((d) => d / ds);
  const r = g.param('io.residual', [1, 3, ...coarse], { kind: 'zeros' });
  const disp = g.add(base, ds === 1 ? r : g.resize(r, ds, 'linear'));
  const warped = g.warp3d(moving, disp);
  const sim = lnccLoss(g, warped, fixed, { window: o.window });
  const smooth = smoothnessLoss(g, disp);
  let loss = g.add(sim, g.mul(smooth, o.smoothness));
  const metrics: Record<string, typeof loss> = { similarity: sim, smoothness: smooth };
  const seg = towards && towards.weight > 0 ? towards : undefined;
  const shape = seg ? [1, seg.classes, ...grid] : [];
  if (seg) {
    const labels = g.warp3d(g.input('atlasOnehot', shape), disp);
    const agree = probabilityDiceLoss(g, labels, g.input('segmentation', shape)).loss;
    metrics['segmentation'] = agree;
    loss = g.add(loss, g.mul(agree, seg.weight));
  }
  // The refined field is what the caller needs; one extra forward graph would recompute it, so
  // the residual is read back and added here instead.
  const built = buildTrainingGraph({
    graph: g,
    loss,
    metrics,
    optimizer: { type: 'adamw', weightDecay: 0 },
  });
  const trainer = await Trainer.create(built, {
    provider: 'cpu',
    seed: 0,
    initialState: g.initialParams(0),
    intraOpNumThreads: threads,
    ...profiler?.trainerOptions(),
  });
  profiler?.attach(trainer);
  const losses: number[] = [];
  let residual: Float32Array;
  try {
    const dims = [1, 1, ...grid];
    const feeds = {
      moving: { data: atlasImage, dims },
      fixed: { data: target, dims },
      base: { data: initial, dims: [1, 3, ...grid] },
      ...(seg
        ? {
            atlasOnehot: { data: seg.atlasOnehot, dims: shape },
            segmentation: { data: seg.probabilities, dims: shape },
          }
        : {}),
    };
    const stop = new AbortController();
    await trainer.train({
      steps: o.steps,
      lr: o.lr,
      batch: () => feeds,
      signal: stop.signal,
      onStep: (s) => {
        losses.push(s.loss);
        profiler?.step(s);
        if (converged(losses, o.tolerance)) stop.abort();
      },
    });
    residual = (await trainer.readParams()).get('io.residual')!.data;
  } finally {
    profiler?.end();
    await trainer.dispose();
  }
  return { displacement: addUpsampled(initial, residual, grid, ds), losses };
}

/** Convergence window and check interval of `InstanceOptimisation.tolerance`, in steps. */
const CONVERGENCE_WINDOW = 10;
const CONVERGENCE_EVERY = 5;

/**
 * Whether a refinement has converged: checked every 5 steps, the loss fell over the last 10 by
 * less than `tolerance` × its fall since the first step (the losses are of a fixed pair, so
 * deterministic; measured on the hippocampus pairs, tolerance 0.002 stops at 98 steps on average
 * of 150, at ≥ 98.8 % of the fall that all 150 reach).
 */
export function converged(losses: readonly number[], tolerance: number): boolean {
  const k = losses.length - 1;
  if (tolerance <= 0 || k < CONVERGENCE_WINDOW || k % CONVERGENCE_EVERY !== 0) return false;
  const fall = losses[0]! - losses[k]!;
  return fall > 0 && losses[k - CONVERGENCE_WINDOW]! - losses[k]! < tolerance * fall;
}

/**
 * base + trilinear ×ds up-sampling of `coarse` (ONNX Resize linear, half_pixel: edges clamp),
 * per channel, in TypeScript (exactly the graph's `add(base, resize(r, ds, 'linear'))`).
 */
export function addUpsampled(
  base: Float32Array,
  coarse: Float32Array,
  grid: Grid,
  ds: number,
): Float32Array {
  const [d, h, w] = grid;
  const cd = d / ds;
  const ch = h / ds;
  const cw = w / ds;
  const out = new Float32Array(base);
  const axis = (i: number, n: number): [number, number, number] => {
    const x = Math.min(Math.max((i + 0.5) / ds - 0.5, 0), n - 1);
    const i0 = Math.floor(x);
    const i1 = Math.min(i0 + 1, n - 1);
    return [i0, i1, x - i0];
  };
  const m = d * h * w;
  const cm = cd * ch * cw;
  for (let c = 0; c < 3; c++) {
    for (let z = 0; z < d; z++) {
      const [z0, z1, fz] = axis(z, cd);
      for (let y = 0; y < h; y++) {
        const [y0, y1, fy] = axis(y, ch);
        for (let x = 0; x < w; x++) {
          const [x0, x1, fx] = axis(x, cw);
          const v = trilinear(coarse, c * cm, ch, cw, z0, z1, fz, y0, y1, fy, x0, x1, fx);
          out[c * m + (z * h + y) * w + x]! += v;
        }
      }
    }
  }
  return out;
}
