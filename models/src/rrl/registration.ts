/**
 * Training the registration network (stage 1 of the method, optionally joint with a segmentation
 * branch): the engine's registration network on atlas → target pairs (moving = atlas image,
 * fixed = a target image chosen by the trainer's seeded RNG each step) with −LNCC + λ‖∇φ‖²
 * (`registrationTask`) on the engine `Trainer`, resumable from its checkpoint file, reporting
 * progress through a callback; then the atlas labels warped onto every target (pseudo labels).
 * `stages/registration.ts` and `stages/joint.ts` run it inside a pipeline run.
 */
import { existsSync } from 'node:fs';
import type { TrainingProgress } from '@rrl/core/api.js';
import type { ProviderSetting } from '../engine/runtime/providerChoice.js';
import { buildTrainingGraph } from '../engine/autodiff/training.js';
import { probabilityDiceLoss } from '../engine/losses/losses.js';
import { registrationTask, type RegistrationArgs } from '../engine/nn/registration.js';
import type { StepProfiler } from '../engine/runtime/profile.js';
import type { SeededRng } from '../engine/runtime/rng.js';
import { Trainer, type Batch } from '../engine/runtime/trainer.js';
import { PrealignedAtlas, type PrealignSpec, type Shift } from './prealign.js';
import { oneHot, pseudoLabels, type Grid } from './pseudoLabels.js';
import { StageAbortedError } from './stages/abort.js';

/** Steps (registration) or targets (pseudo labels) done of their total; loss in the first. */
export type StageProgress = TrainingProgress & { phase: 'registration' | 'pseudo-labels' };

export interface RegistrationStageInput {
  grid: Grid;
  classes: number;
  atlasImage: Float32Array;
  atlasLabels: ArrayLike<number>;
  /** Unlabelled target images, each on the plan grid. */
  targets: readonly Float32Array[];
  /** Registration network (base width, smoothness λ, LNCC window …). */
  args?: RegistrationArgs;
  steps: number;
  /** A constant rate or one per (1-based) step. */
  lr: number | ((step: number) => number);
  seed?: number;
  provider?: ProviderSetting;
  /** Checkpoint file: loaded when it exists (resume), written every `every` steps and at the end. */
  checkpoint?: { path: string; every: number };
  onProgress?: (p: StageProgress) => void;
  signal?: AbortSignal;
  /**
   * Joint registration–segmentation term: `weight` · (1 − soft Dice) between the warped one-hot
   * atlas labels and a segmentation branch's prediction of each target (probabilities
   * [classes, D, H, W], one per target, in order; background excluded from the Dice).
   */
  jointSegmentation?: { weight: number; predictions: readonly Float32Array[] };
  /** Compute the pseudo labels of every target after training (default true). */
  pseudoLabels?: boolean;
  /**
   * Translation pre-alignment: the atlas (image and labels) is shifted by the integer shift
   * maximising the global NCC with each target (`findShift`, cached per target) before the
   * registration net sees it — in training and for the pseudo labels.
   */
  prealign?: PrealignSpec;
  /** Initial registration parameters (fine-tuning); default: the net's seeded initialisation. */
  initialParams?: ReadonlyMap<string, Float32Array>;
  /** Profiles the first steps (the caller reports it). */
  profiler?: StepProfiler;
  /** ORT's intra-op threads spin-wait (`PipelineInput.spin`). */
  spin?: boolean;
}

export interface RegistrationStageResult {
  params: Map<string, Float32Array>;
  args: RegistrationArgs;
  /** Loss of every step trained in this call (not the resumed ones). */
  losses: number[];
  /** Step reached (including resumed steps). */
  step: number;
  /** Pseudo labels (uint8 per voxel) of every target, in order. */
  pseudoLabels: Uint8Array[];
  /** Pre-alignment shift of the atlas for every target (all [0,0,0] without `prealign`). */
  shifts: Shift[];
}

export async function runRegistrationStage(
  i: RegistrationStageInput,
): Promise<RegistrationStageResult> {
  const m = i.grid[0] * i.grid[1] * i.grid[2];
  if (i.targets.length === 0) {
    throw new Error('registration stage: expected at least one target image, found none');
  }
  for (const [name, arr] of [
    ['atlas image', i.atlasImage],
    ['atlas labels', i.atlasLabels],
    ...i.targets.map((t, k) => [`target ${k}`, t] as const),
  ] as const) {
    if (arr.length !== m) {
      throw new Error(
        `registration stage: ${name} has ${arr.length} voxels, expected ${m} (grid ` +
          `[${i.grid.join(',')}]); resample it to the plan grid`,
      );
    }
  }
  const args: RegistrationArgs = { similarity: 'lncc', ...i.args, channels: 1 };
  const task = registrationTask(args, i.grid);
  const joint = i.jointSegmentation;
  let loss = task.loss;
  const metrics = { ...task.metrics };
  const pre = new PrealignedAtlas(i.grid, i.atlasImage, i.atlasLabels, i.targets, i.prealign);
  const onehots = new Map<number, Float32Array>();
  const atlasOnehot = (k: number): Float32Array => {
    let o = onehots.get(k);
    if (!o) {
      o = oneHot(pre.get(k).labels, i.classes);
      onehots.set(k, o);
    }
    return o;
  };
  if (joint) {
    if (joint.predictions.length !== i.targets.length) {
      throw new Error(
        `registration stage: jointSegmentation needs one prediction per target ` +
          `(${i.targets.length}), found ${joint.predictions.length}`,
      );
    }
    for (const [k, p] of joint.predictions.entries()) {
      if (p.length !== i.classes * m) {
        throw new Error(
          `registration stage: segmentation prediction ${k} has ${p.length} values, expected ` +
            `${i.classes * m} (${i.classes} classes × grid [${i.grid.join(',')}])`,
        );
      }
    }
    const g = task.graph;
    const shape = [1, i.classes, ...i.grid];
    const warpedLabels = g.warp3d(g.input('atlasOnehot', shape), task.displacement);
    const seg = g.input('targetSegmentation', shape);
    const segLoss = probabilityDiceLoss(g, warpedLabels, seg).loss;
    metrics['segmentation'] = segLoss;
    loss = g.add(loss, g.mul(segLoss, joint.weight));
  }
  const built = buildTrainingGraph({
    graph: task.graph,
    loss,
    metrics,
    optimizer: { type: 'adamw', weightDecay: 0 },
  });
  const seed = i.seed ?? 0;
  const init = task.graph.initialParams(seed);
  for (const [k, v] of i.initialParams ?? []) if (init.has(k)) init.set(k, v);
  const trainer = await Trainer.create(built, {
    provider: i.provider ?? 'cpu',
    seed,
    initialState: init,
    intraOpNumThreads: 2,
    allowSpinning: i.spin ?? false,
    ...i.profiler?.trainerOptions(),
  });
  i.profiler?.attach(trainer);
  const losses: number[] = [];
  let params: Map<string, Float32Array>;
  try {
    if (i.checkpoint && existsSync(i.checkpoint.path))
      await trainer.loadCheckpoint(i.checkpoint.path);
    const remaining = Math.max(0, i.steps - trainer.stepsCompleted);
    const dims = [1, 1, ...i.grid];
    const batch = (_step: number, rng: SeededRng): Batch => {
      const k = rng.int(i.targets.length);
      const fixed = { data: i.targets[k]!, dims };
      const moving = { data: pre.get(k).image, dims };
      if (!joint) return { moving, fixed };
      const ldims = [1, i.classes, ...i.grid];
      return {
        moving,
        fixed,
        atlasOnehot: { data: atlasOnehot(k), dims: ldims },
        targetSegmentation: { data: joint.predictions[k]!, dims: ldims },
      };
    };
    await trainer.train({
      steps: remaining,
      lr: i.lr,
      batch: i.profiler ? i.profiler.batch(batch) : batch,
      checkpoint: i.checkpoint,
      signal: i.signal,
      onStep: (r) => {
        i.profiler?.step(r);
        losses.push(r.loss);
        i.onProgress?.({
          phase: 'registration',
          step: r.step,
          total: i.steps,
          loss: r.loss,
          metrics: r.metrics,
        });
      },
    });
    if (i.signal?.aborted && trainer.stepsCompleted < i.steps) {
      // Cancelled: keep what was trained (steps are totals, a rerun continues from here).
      if (i.checkpoint) await trainer.saveCheckpoint(i.checkpoint.path);
      throw new StageAbortedError(
        'registration',
        trainer.stepsCompleted,
        i.steps,
        i.checkpoint?.path,
      );
    }
    params = new Map([...(await trainer.readParams())].map(([k, v]) => [k, v.data]));
  } finally {
    i.profiler?.end();
    await trainer.dispose();
  }
  const step = i.steps;
  const labels: Uint8Array[] = [];
  for (const [k, target] of i.pseudoLabels === false ? [] : i.targets.entries()) {
    const r = await pseudoLabels({
      params,
      args,
      grid: i.grid,
      classes: i.classes,
      atlasImage: pre.get(k).image,
      atlasLabels: pre.get(k).labels,
      target,
    });
    labels.push(r.labels);
    i.onProgress?.({ phase: 'pseudo-labels', step: k + 1, total: i.targets.length });
  }
  const shifts = i.targets.map((_, k) => pre.get(k).shift);
  return { params, args, losses, step, pseudoLabels: labels, shifts };
}
