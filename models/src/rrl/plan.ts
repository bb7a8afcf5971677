import type { GridResample, GridSpec, IntensitySpec } from '@rrl/core/format/metadata.js';
import type { RegistrationArgs } from '../engine/nn/registration.js';

/**
 * The RRL-MedSAM training plan: one JSON file with the grid, the network widths, the loss weights,
 * the schedule of every stage and the seeds. `parsePlan` fills defaults and validates, throwing a
 * `PlanError` that names the field, what was expected and what was found.
 */

/** Instance-specific refinement of a registration (instanceOpt.ts). */
export interface InstanceOptimisation {
  /** Adam steps per pair (0 = off). */
  steps: number;
  /** Learning rate of the residual (voxels per step, roughly). */
  lr: number;
  /** Weight of ‖∇φ‖² on the whole displacement. */
  smoothness: number;
  /** LNCC window edge (odd). */
  window: number;
  /** Residual grid = plan grid / downsample (1, 2 or 4; the grid must divide). */
  downsample: number;
  /**
   * Stop a pair early once converged: when the loss fell by less than `tolerance` × its fall so
   * far over the last 10 steps (checked every 5 steps; `steps` stays the maximum). 0 = always
   * run all `steps`.
   */
  tolerance: number;
}

export const INSTANCE_OPT_DEFAULTS: InstanceOptimisation = {
  steps: 150,
  lr: 0.2,
  smoothness: 4,
  window: 9,
  downsample: 2,
  tolerance: 0,
};

export interface SelfTraining {
  /** Weight of the model's softmax against the registration's, 0..1. */
  fusion: number;
  mutual: StageSchedule;
  decoder: StageSchedule;
}

export interface StageSchedule {
  /** Optimiser steps (0 skips the stage). */
  steps: number;
  /** Learning rate (AdamW); the first step's when `finalLr` is set. */
  lr: number;
  /**
   * The last step's learning rate: the rate falls from `lr` to this along a half cosine over the
   * stage's steps (absent: constant `lr`). 0 < finalLr ≤ lr.
   */
  finalLr?: number;
}

/**
 * The learning rate of a stage's (1-based, absolute) step: `lr`, or with `finalLr` the half cosine
 * finalLr + (lr − finalLr)·(1 + cos(π·(step − 1)/(steps − 1)))/2 — `lr` at step 1, `finalLr` at the
 * last. A function of the step alone, so a resumed stage continues the same curve.
 */
export function stageLr(s: StageSchedule): number | ((step: number) => number) {
  const { lr, finalLr, steps } = s;
  if (finalLr === undefined || finalLr === lr) return lr;
  return (step: number): number => {
    const t = steps > 1 ? Math.min(1, Math.max(0, (step - 1) / (steps - 1))) : 1;
    return finalLr + ((lr - finalLr) * (1 + Math.cos(Math.PI * t))) / 2;
  };
}

/** How a source volume is put on the plan grid (see `core/src/volume`). */
export type ResampleMode = GridResample;

export interface PreprocessSpec {
  /**
   * 'fit-extent': the source extent is scaled onto the grid; 'fixed-spacing': the volume is
   * resampled at `spacing`, centred on the grid.
   */
  resample: ResampleMode;
  /** [x, y, z] mm: the grid spacing (nominal for 'fit-extent'). */
  spacing: [number, number, number];
  /** Per-volume intensity normalisation (written to metadata.intensity). */
  intensity: IntensitySpec;
}

export interface SamplingSpec {
  /** Probability that a training step uses the atlas (true labels) instead of an unlabelled volume. */
  atlasProbability: number;
  /** Augmentation: image · (1 + u·intensityScale) + v·intensityShift, u, v uniform in [−1, 1]. */
  intensityScale: number;
  intensityShift: number;
  /**
   * Spatial augmentation (absent = none): with `probability`, image and labels are resampled
   * together through a random affine about the grid centre — rotation about each axis uniform in
   * ±`rotation` degrees, isotropic scale in 1 ± `scale`, translation in ±`translate` voxels per
   * axis (trilinear for the image, nearest for the labels; see augment.ts).
   */
  spatial?: SpatialAugmentation;
  /**
   * Registration-based synthesis (absent = none): with `probability`, a step that would use an
   * unlabelled volume uses instead the atlas image and labels warped together by that volume's
   * atlas → volume displacement (with `blend`, by a random convex mix of two volumes'
   * displacements) — a new, realistic shape whose labels are exact (see synthesis.ts).
   */
  synthetic?: SyntheticSampling;
  /**
   * Appearance augmentation (absent = none): with `probability`, the image's contrast and
   * shading change as between scanners and sessions — a gamma curve, a smooth multiplicative
   * bias field and Gaussian noise (see augment.ts#applyAppearance); the labels do not change.
   */
  appearance?: AppearanceAugmentation;
}

export interface AppearanceAugmentation {
  probability: number;
  /** Gamma exp(u·ln(1 + gamma)), u ~ U[−1, 1], on the image rescaled to its own [min, max]. */
  gamma: number;
  /** Bias field exp(bias · Σ c_i·P_i / 3), c_i ~ U[−1, 1], P_i the 9 polynomials of degree ≤ 2. */
  bias: number;
  /** Noise standard deviation ~ U[0, noise] × the image's range. */
  noise: number;
}

export interface SyntheticSampling {
  probability: number;
  /** Probability that the displacement is a random mix α·φ_i + (1 − α)·φ_j, α ~ U[0, 1]. */
  blend: number;
}

export interface SpatialAugmentation {
  probability: number;
  rotation: number;
  scale: number;
  translate: number;
}

export interface RrlPlan {
  /** Training grid [D, H, W]; each axis divisible by 2^(scales−1). */
  grid: [number, number, number];
  /** Encoder channels per scale (E_g and E_m share the architecture). */
  channels: number[];
  /** Conv blocks per encoder scale (same length as `channels`). */
  convsPerLevel: number[];
  /** Auto-prompting decoder channels per scale (same length as `channels`). */
  decoderChannels: number[];
  /** Conv blocks per decoder scale (one number for all scales). */
  decoderConvs: number;
  /** Foreground labels + background. */
  classes: number;
  /** Registration network width (engine `registrationNet`). */
  registrationBase: number;
  loss: {
    dice: number;
    crossEntropy: number;
    /** Registration: smoothness of the displacement. */
    smoothness: number;
    /** Registration: weight of the joint segmentation (warped atlas label) term. */
    registrationSegmentation: number;
    /** Distillation (feature matching) weight. */
    distillation: number;
    /** Mutual supervision between the branches. */
    mutual: number;
    /** AP decoder stage: MSE between its softmax and the medical branch's (absent or 0 = off). */
    decoderConsistency?: number;
    /**
     * Joint stage, per-volume refinement (`registrationRefine`): weight of 1 − soft Dice between
     * the warped atlas labels and E_g's (held-out, with `crossFit`) softmax of the volume, added
     * to the refinement's −LNCC + smoothness (absent or 0 = off: the refinement follows the image
     * alone).
     */
    refineSegmentation?: number;
  };
  schedule: {
    registration: StageSchedule;
    distillSam: StageSchedule;
    distillTask: StageSchedule;
    mutual: StageSchedule & { emaAlpha: number };
    decoder: StageSchedule;
    /** Joint registration–segmentation refinement after distill-task (steps 0 = skipped). */
    joint: StageSchedule;
  };
  /** Translation pre-alignment of the atlas before the registration net (absent = none). */
  registrationPrealign?: { maxShift: number };
  /**
   * Instance-specific refinement of every atlas → volume registration (pseudo labels, the joint
   * stage's re-warp and registration-only inference): `steps` Adam steps of −LNCC + smoothness on
   * a residual field at grid / `downsample` (see instanceOpt.ts). Absent = the network's field.
   */
  registrationRefine?: InstanceOptimisation;
  /** Weight of the E_g branch's softmax in the fused pseudo labels of the joint stage, 0..1. */
  jointFusion: number;
  /**
   * Cross-fitted branch predictions for the joint stage (absent = off): distill-task trains
   * `folds` students, each on the atlas and the unlabelled volumes outside its fold, and the
   * joint stage fuses every volume's registration with the prediction of the student that never
   * saw it (instead of a student that learnt that volume's own pseudo labels).
   */
  crossFit?: {
    folds: number;
    /**
     * Relabelling round at the end of the joint stage (absent or 0 = none): each fold's student is
     * fine-tuned this many steps on the joint stage's pseudo labels of the volumes outside its
     * fold, and its prediction of its own held-out volumes becomes their pseudo labels for the
     * mutual and decoder stages.
     */
    relabelSteps?: number;
    /**
     * With the relabelling round (absent or false = off): the voxels where the relabelled label
     * and the joint stage's registration (before its fusion with the student) disagree are marked
     * `IGNORE_LABEL`, and the mutual and decoder stages' losses leave them out — those stages
     * learn from the voxels two independent labellers agree on, and the boundary in between from
     * the atlas's true labels and the image.
     */
    ignoreDisagreement?: boolean;
    /**
     * With the relabelling round (absent or false = off): each student's labels of its held-out
     * volumes are the argmax of its log-softmax plus one offset per class, chosen so that every
     * class's voxels over those volumes add up to the registration's (round 0) labels of the same
     * volumes (`volumeCalibration.ts`): the students' shrinkage of the structures is corrected.
     */
    calibrateVolumes?: boolean;
  };
  /**
   * Multi-atlas fusion of pseudo labels (absent = off): every unlabelled volume's labels are
   * fused by a vote with those of the `neighbours` unlabelled volumes whose images are most like
   * it (global NCC on the grid), each registered onto it by the stage's registration network
   * (refined per pair as `registrationRefine` says). The pseudo-labelled volumes serve as extra
   * atlases whose errors differ from the one atlas's. `stages` (default `['joint']`): after which
   * stage's labels the vote runs — `registration` (the atlas's warped labels, before any network
   * learns from them) and/or `joint` (its last labels; only when the joint stage runs).
   */
  multiAtlas?: { neighbours: number; stages?: MultiAtlasStage[] };
  /**
   * Label-free check at export (absent = the check is reported on the model card but never
   * changes what is published): when the network's mean Dice against the atlas labels, or
   * against the registration's labels of the unlabelled volumes, is below `minDice`, the
   * published model is the registration path instead (`exportRegistrationModel`).
   */
  registrationFallback?: { minDice: number };
  /**
   * Self-training round after the decoder (absent = skipped): the unlabelled volumes are
   * relabelled with argmax((1 − fusion)·registration + fusion·model), the model's softmax being
   * the mean of the medical branch's and the full pipeline's; then both branches are fine-tuned
   * on the new labels with the mutual stage's task and EMA (`mutual`), and the AP decoder after
   * them (`decoder`).
   */
  selfTraining?: SelfTraining;
  seeds: { init: number; data: number };
  /** The SAM teacher: an imported teacher's id (models/src/sam/store.ts) or an image-encoder ONNX file (path or file: URL); absent = stage 1 skipped. */
  teacher?: string;
  /** Slices of the volume given to the teacher: every `teacherSliceStride`-th slice along D. */
  teacherSliceStride: number;
  /** What the plan is for, shown where plans are chosen (e.g. "smoke test: not a usable model"). */
  description?: string;
  /** Resampling and intensity normalisation of every volume onto the grid. */
  preprocess: PreprocessSpec;
  /** Which volume a training step uses, and the light intensity augmentation. */
  sampling: SamplingSpec;
}

/** Students distill-task trains: plan.crossFit's folds when the joint stage runs, else 1. */
export function crossFitFoldCount(plan: RrlPlan): number {
  return plan.crossFit && plan.schedule.joint.steps > 0 ? plan.crossFit.folds : 1;
}

/** The registration network's args for a plan. */
export function registrationArgsFromPlan(p: RrlPlan): RegistrationArgs {
  return {
    base: p.registrationBase,
    smoothness: p.loss.smoothness,
    similarity: 'lncc',
    channels: 1,
  };
}

/**
 * Whether the pseudo labels of the mutual and decoder stages carry `IGNORE_LABEL` voxels
 * (`crossFit.ignoreDisagreement` with a relabelling round that runs).
 */
export function ignoresDisagreement(plan: RrlPlan): boolean {
  return relabelSteps(plan) > 0 && plan.crossFit?.ignoreDisagreement === true;
}

/** The stages after whose pseudo labels `plan.multiAtlas` may run its vote. */
export const MULTI_ATLAS_STAGES = ['registration', 'joint'] as const;
export type MultiAtlasStage = (typeof MULTI_ATLAS_STAGES)[number];

/**
 * Neighbours of the multi-atlas fusion after `stage`'s pseudo labels (0 = none; the joint
 * stage's only when it runs).
 */
export function multiAtlasNeighbours(plan: RrlPlan, stage: MultiAtlasStage = 'joint'): number {
  const m = plan.multiAtlas;
  if (!m || !(m.stages ?? ['joint']).includes(stage)) return 0;
  return stage === 'joint' && plan.schedule.joint.steps === 0 ? 0 : m.neighbours;
}

/** Whether the relabelling round's labels are volume-calibrated (`crossFit.calibrateVolumes`). */
export function calibratesVolumes(plan: RrlPlan): boolean {
  return relabelSteps(plan) > 0 && plan.crossFit?.calibrateVolumes === true;
}

/** Steps of the joint stage's relabelling round per student (0 without cross-fitting). */
export function relabelSteps(plan: RrlPlan): number {
  return crossFitFoldCount(plan) > 1 ? (plan.crossFit?.relabelSteps ?? 0) : 0;
}

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

/** Parameter budget of E_g (about 3 % of SAM ViT-B's image encoder). */
export const ENCODER_PARAM_LIMIT = 2_700_000;

export function defaultPlan(): RrlPlan {
  return {
    grid: [64, 64, 64],
    channels: [32, 64, 128, 256],
    // The deepest scale has one conv block: two would give 3.5M parameters (> 2.7M budget).
    convsPerLevel: [2, 2, 2, 1],
    decoderChannels: [16, 32, 64, 128],
    decoderConvs: 1,
    classes: 3,
    registrationBase: 16,
    loss: {
      dice: 1,
      crossEntropy: 1,
      smoothness: 1,
      registrationSegmentation: 1,
      distillation: 1,
      mutual: 0.5,
    },
    schedule: {
      registration: { steps: 1500, lr: 1e-3 },
      distillSam: { steps: 500, lr: 1e-3 },
      distillTask: { steps: 500, lr: 1e-3 },
      mutual: { steps: 1500, lr: 1e-3, emaAlpha: 0.99 },
      decoder: { steps: 1000, lr: 1e-3 },
      joint: { steps: 0, lr: 1e-3 },
    },
    jointFusion: 0.5,
    seeds: { init: 42, data: 7 },
    teacherSliceStride: 1,
    preprocess: {
      resample: 'fit-extent',
      spacing: [1, 1, 1],
      intensity: { method: 'percentile', low: 1, high: 99 },
    },
    sampling: { atlasProbability: 0.2, intensityScale: 0.1, intensityShift: 0.1 },
  };
}

/**
 * The `{ grid, intensity }` that `prepareModelInput` takes for volumes of this plan: grid size
 * [x, y, z] = [W, H, D] of `plan.grid`, spacing and resampling mode from `plan.preprocess`.
 */
export function planModelGrid(plan: Pick<RrlPlan, 'grid' | 'preprocess'>): {
  grid: GridSpec;
  intensity: IntensitySpec;
} {
  const [D, H, W] = plan.grid;
  return {
    grid: {
      size: [W, H, D],
      spacing: [...plan.preprocess.spacing],
      resample: plan.preprocess.resample,
    },
    intensity: { ...plan.preprocess.intensity },
  };
}

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

type NumOpts = { int?: boolean; min?: number; max?: number; minExclusive?: boolean };

/**
 * An optional object of numbers (absent or null: undefined): each field with its default and
 * bounds; unknown fields and a non-object are errors naming `plan.<field>`.
 */
function numberGroup<K extends string>(
  field: string,
  v: unknown,
  fields: Record<K, [number, NumOpts]>,
): Record<K, number> | undefined {
  if (v === undefined || v === null) return undefined;
  const keys = Object.keys(fields) as K[];
  if (!isObj(v)) {
    throw new PlanError(
      `plan.${field}: expected an object { ${keys.join(', ')} } or no field, found ${describe(v)}.`,
    );
  }
  checkKeys(field, v, keys);
  const out = {} as Record<K, number>;
  for (const k of keys) out[k] = num(`${field}.${k}`, v[k], fields[k][0], fields[k][1]);
  return out;
}

function num(field: string, v: unknown, dflt: number, o: NumOpts = {}): number {
  if (v === undefined) return dflt;
  const kind = o.int ? 'an integer' : 'a number';
  const range =
    o.min !== undefined
      ? ` ${o.minExclusive ? '>' : '≥'} ${o.min}${o.max !== undefined ? ` and ≤ ${o.max}` : ''}`
      : '';
  const bad =
    typeof v !== 'number' ||
    !Number.isFinite(v) ||
    (o.int === true && !Number.isInteger(v)) ||
    (o.min !== undefined && (o.minExclusive ? v <= o.min : v < o.min)) ||
    (o.max !== undefined && v > o.max);
  if (bad) {
    throw new PlanError(
      `plan.${field}: expected ${kind}${range}, found ${describe(v)}. Fix the value in the plan JSON or remove it to use the default (${dflt}).`,
    );
  }
  return v;
}

function intArray(field: string, v: unknown, dflt: readonly number[], min: number): number[] {
  if (v === undefined) return [...dflt];
  if (!Array.isArray(v) || v.length === 0) {
    throw new PlanError(
      `plan.${field}: expected a non-empty array of integers ≥ ${min}, found ${describe(v)}.`,
    );
  }
  return v.map((x, i) => num(`${field}[${i}]`, x, 0, { int: true, min }));
}

function checkKeys(field: string, o: Json, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw new PlanError(
        `plan${field ? `.${field}` : ''}: unknown field "${k}"; expected one of ${allowed.join(', ')}. Check the spelling.`,
      );
    }
  }
}

function stage(field: string, v: unknown, d: StageSchedule): StageSchedule {
  if (v === undefined) return { ...d };
  if (!isObj(v)) throw new PlanError(`plan.${field}: expected an object, found ${describe(v)}.`);
  checkKeys(field, v, ['steps', 'lr', 'finalLr', 'emaAlpha']);
  const out: StageSchedule = {
    steps: num(`${field}.steps`, v.steps, d.steps, { int: true, min: 0 }),
    lr: num(`${field}.lr`, v.lr, d.lr, { min: 0, minExclusive: true, max: 1 }),
  };
  if (v.finalLr !== undefined) {
    out.finalLr = num(`${field}.finalLr`, v.finalLr, out.lr, { min: 0, minExclusive: true });
    if (out.finalLr > out.lr) {
      throw new PlanError(
        `plan.${field}.finalLr: ${out.finalLr} is above the stage's lr ${out.lr}; the rate only falls (finalLr ≤ lr), or leave finalLr out for a constant rate.`,
      );
    }
  }
  return out;
}

/** Fills defaults and validates a plan object (e.g. `JSON.parse` of the plan file). */
export function parsePlan(input: unknown): RrlPlan {
  const d = defaultPlan();
  if (input === undefined) return d;
  if (!isObj(input)) {
    throw new PlanError(`plan: expected a JSON object, found ${describe(input)}.`);
  }
  checkKeys('', input, [
    'grid',
    'channels',
    'convsPerLevel',
    'decoderChannels',
    'decoderConvs',
    'classes',
    'registrationBase',
    'registrationPrealign',
    'registrationRefine',
    'jointFusion',
    'crossFit',
    'registrationFallback',
    'multiAtlas',
    'selfTraining',
    'loss',
    'schedule',
    'seeds',
    'teacher',
    'teacherSliceStride',
    'preprocess',
    'sampling',
    'description',
  ]);
  if (
    input.description !== undefined &&
    (typeof input.description !== 'string' || input.description.length > 200)
  ) {
    throw new PlanError(
      `plan.description: expected a string of at most 200 characters, found ${describe(input.description)}.`,
    );
  }
  const channels = intArray('channels', input.channels, d.channels, 1);
  const convsDefault =
    input.channels === undefined
      ? d.convsPerLevel
      : channels.map((_, i, a) => (i === a.length - 1 ? 1 : 2));
  const convsPerLevel = intArray('convsPerLevel', input.convsPerLevel, convsDefault, 1);
  if (convsPerLevel.length !== channels.length) {
    throw new PlanError(
      `plan.convsPerLevel: expected ${channels.length} entries (one per scale of plan.channels), found ${convsPerLevel.length}.`,
    );
  }
  const decDefault =
    input.channels === undefined ? d.decoderChannels : channels.map((c) => Math.max(1, c >> 1));
  const decoderChannels = intArray('decoderChannels', input.decoderChannels, decDefault, 1);
  if (decoderChannels.length !== channels.length) {
    throw new PlanError(
      `plan.decoderChannels: expected ${channels.length} entries (one per scale of plan.channels), found ${decoderChannels.length}.`,
    );
  }
  const gridArr = intArray('grid', input.grid, d.grid, 1);
  if (gridArr.length !== 3) {
    throw new PlanError(`plan.grid: expected 3 integers [D, H, W], found ${describe(input.grid)}.`);
  }
  const div = 2 ** (channels.length - 1);
  if (gridArr.some((s) => s % div !== 0)) {
    throw new PlanError(
      `plan.grid: [${gridArr.join(', ')}] must be divisible by ${div} on every axis for ${channels.length} scales; use e.g. [${gridArr.map((s) => Math.max(div, Math.round(s / div) * div)).join(', ')}].`,
    );
  }
  const lossIn = input.loss ?? {};
  if (!isObj(lossIn))
    throw new PlanError(`plan.loss: expected an object, found ${describe(lossIn)}.`);
  const optionalLoss = ['decoderConsistency', 'refineSegmentation'] as const;
  checkKeys('loss', lossIn, [...Object.keys(d.loss), ...optionalLoss]);
  const w = (k: Exclude<keyof RrlPlan['loss'], (typeof optionalLoss)[number]>): number =>
    num(`loss.${k}`, lossIn[k], d.loss[k], { min: 0 });
  const loss: RrlPlan['loss'] = {
    dice: w('dice'),
    crossEntropy: w('crossEntropy'),
    smoothness: w('smoothness'),
    registrationSegmentation: w('registrationSegmentation'),
    distillation: w('distillation'),
    mutual: w('mutual'),
  };
  // only when given, so that the plan.json of earlier runs stays the same (resume check)
  for (const k of optionalLoss) {
    if (lossIn[k] !== undefined) loss[k] = num(`loss.${k}`, lossIn[k], 0, { min: 0 });
  }
  if (loss.dice === 0 && loss.crossEntropy === 0) {
    throw new PlanError(
      'plan.loss: dice and crossEntropy are both 0, so the segmentation heads get no training signal; make at least one positive.',
    );
  }
  const schedIn = input.schedule ?? {};
  if (!isObj(schedIn)) {
    throw new PlanError(`plan.schedule: expected an object, found ${describe(schedIn)}.`);
  }
  checkKeys('schedule', schedIn, Object.keys(d.schedule));
  const mutualIn = schedIn.mutual;
  const schedule: RrlPlan['schedule'] = {
    registration: stage('schedule.registration', schedIn.registration, d.schedule.registration),
    distillSam: stage('schedule.distillSam', schedIn.distillSam, d.schedule.distillSam),
    distillTask: stage('schedule.distillTask', schedIn.distillTask, d.schedule.distillTask),
    mutual: {
      ...stage('schedule.mutual', mutualIn, d.schedule.mutual),
      emaAlpha: num(
        'schedule.mutual.emaAlpha',
        isObj(mutualIn) ? mutualIn.emaAlpha : undefined,
        d.schedule.mutual.emaAlpha,
        { min: 0, max: 1 },
      ),
    },
    decoder: stage('schedule.decoder', schedIn.decoder, d.schedule.decoder),
    joint: stage('schedule.joint', schedIn.joint, d.schedule.joint),
  };
  let registrationPrealign: RrlPlan['registrationPrealign'];
  const preIn = input.registrationPrealign;
  if (preIn !== undefined && preIn !== null) {
    if (!isObj(preIn)) {
      throw new PlanError(
        `plan.registrationPrealign: expected an object { maxShift } or no field, found ${describe(preIn)}.`,
      );
    }
    checkKeys('registrationPrealign', preIn, ['maxShift']);
    registrationPrealign = {
      maxShift: num('registrationPrealign.maxShift', preIn.maxShift, 8, {
        int: true,
        min: 0,
        max: 64,
      }),
    };
  }
  let registrationRefine: RrlPlan['registrationRefine'];
  const refIn = input.registrationRefine;
  if (refIn !== undefined && refIn !== null) {
    if (!isObj(refIn)) {
      throw new PlanError(
        `plan.registrationRefine: expected an object { steps, lr, smoothness, window, downsample, tolerance } or no field, found ${describe(refIn)}.`,
      );
    }
    checkKeys('registrationRefine', refIn, [
      'steps',
      'lr',
      'smoothness',
      'window',
      'downsample',
      'tolerance',
    ]);
    const dr = INSTANCE_OPT_DEFAULTS;
    registrationRefine = {
      steps: num('registrationRefine.steps', refIn.steps, dr.steps, { int: true, min: 0 }),
      lr: num('registrationRefine.lr', refIn.lr, dr.lr, { min: 0, minExclusive: true }),
      smoothness: num('registrationRefine.smoothness', refIn.smoothness, dr.smoothness, { min: 0 }),
      window: num('registrationRefine.window', refIn.window, dr.window, { int: true, min: 3 }),
      downsample: num('registrationRefine.downsample', refIn.downsample, dr.downsample, {
        int: true,
        min: 1,
        max: 4,
      }),
      tolerance: num('registrationRefine.tolerance', refIn.tolerance, dr.tolerance, {
        min: 0,
        max: 1,
      }),
    };
    if (registrationRefine.window % 2 === 0 || registrationRefine.downsample === 3) {
      throw new PlanError(
        `plan.registrationRefine: window must be odd and downsample 1, 2 or 4; found window ${registrationRefine.window}, downsample ${registrationRefine.downsample}.`,
      );
    }
  }
  let selfTraining: RrlPlan['selfTraining'];
  const stIn = input.selfTraining;
  if (stIn !== undefined && stIn !== null) {
    if (!isObj(stIn)) {
      throw new PlanError(
        `plan.selfTraining: expected an object { fusion, mutual, decoder } or no field, found ${describe(stIn)}.`,
      );
    }
    checkKeys('selfTraining', stIn, ['fusion', 'mutual', 'decoder']);
    selfTraining = {
      fusion: num('selfTraining.fusion', stIn.fusion, 0.5, { min: 0, max: 1 }),
      mutual: stage('selfTraining.mutual', stIn.mutual, { steps: 300, lr: 5e-4 }),
      decoder: stage('selfTraining.decoder', stIn.decoder, { steps: 300, lr: 1e-3 }),
    };
  }
  const seedsIn = input.seeds ?? {};
  if (!isObj(seedsIn))
    throw new PlanError(`plan.seeds: expected an object, found ${describe(seedsIn)}.`);
  checkKeys('seeds', seedsIn, ['init', 'data']);
  const seeds = {
    init: num('seeds.init', seedsIn.init, d.seeds.init, { int: true, min: 0 }),
    data: num('seeds.data', seedsIn.data, d.seeds.data, { int: true, min: 0 }),
  };
  let teacher: string | undefined;
  if (input.teacher !== undefined && input.teacher !== null) {
    if (typeof input.teacher !== 'string' || input.teacher.trim() === '') {
      throw new PlanError(
        `plan.teacher: expected the id of an imported teacher (npm run teacher -- list) or the path or file: URL of a SAM image-encoder ONNX file, found ${describe(input.teacher)}. Remove the field to skip stage 1 (SAM distillation).`,
      );
    }
    teacher = input.teacher;
  }
  const plan: RrlPlan = {
    grid: [gridArr[0]!, gridArr[1]!, gridArr[2]!],
    channels,
    convsPerLevel,
    decoderChannels,
    decoderConvs: num('decoderConvs', input.decoderConvs, d.decoderConvs, { int: true, min: 1 }),
    classes: num('classes', input.classes, d.classes, { int: true, min: 2 }),
    registrationBase: num('registrationBase', input.registrationBase, d.registrationBase, {
      int: true,
      min: 1,
    }),
    loss,
    schedule,
    jointFusion: num('jointFusion', input.jointFusion, d.jointFusion, { min: 0, max: 1 }),
    seeds,
    teacherSliceStride: num('teacherSliceStride', input.teacherSliceStride, d.teacherSliceStride, {
      int: true,
      min: 1,
    }),
    preprocess: parsePreprocess(input.preprocess, d.preprocess),
    sampling: parseSampling(input.sampling, d.sampling),
  };
  if (teacher !== undefined) plan.teacher = teacher;
  if (registrationPrealign) plan.registrationPrealign = registrationPrealign;
  if (registrationRefine) plan.registrationRefine = registrationRefine;
  if ((loss.refineSegmentation ?? 0) > 0 && !registrationRefine) {
    throw new PlanError(
      'plan.loss.refineSegmentation needs registrationRefine: it weighs a term of the per-volume refinement, which this plan does not run. Add registrationRefine or remove the weight.',
    );
  }
  if (selfTraining) plan.selfTraining = selfTraining;
  // the booleans are checked below, the numbers by numberGroup (which refuses unknown fields)
  const crossFitIn = isObj(input.crossFit) ? input.crossFit : undefined;
  const { ignoreDisagreement, calibrateVolumes, ...crossFitNumbers } = crossFitIn ?? {};
  const crossFit = numberGroup('crossFit', crossFitIn ? crossFitNumbers : input.crossFit, {
    folds: [2, { int: true, min: 2, max: 10 }],
    relabelSteps: [0, { int: true, min: 0 }],
  });
  if (crossFit) {
    // relabelSteps only when given, so that the plan.json of earlier runs stays the same
    const given = crossFitIn?.relabelSteps !== undefined;
    plan.crossFit = given ? crossFit : { folds: crossFit.folds };
    const relabelFlag = (name: string, v: unknown, what: string): boolean | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'boolean') {
        throw new PlanError(`plan.crossFit.${name}: expected true or false, found ${describe(v)}.`);
      }
      if (v && !(crossFit.relabelSteps > 0)) {
        throw new PlanError(
          `plan.crossFit.${name} needs crossFit.relabelSteps > 0: it ${what}. Set relabelSteps or remove the field.`,
        );
      }
      return v;
    };
    const ignore = relabelFlag(
      'ignoreDisagreement',
      ignoreDisagreement,
      'marks the voxels where the relabelling round and the registration disagree',
    );
    if (ignore !== undefined) plan.crossFit.ignoreDisagreement = ignore;
    const calibrate = relabelFlag(
      'calibrateVolumes',
      calibrateVolumes,
      "calibrates the relabelling round's labels",
    );
    if (calibrate !== undefined) plan.crossFit.calibrateVolumes = calibrate;
  }
  // the stages are checked below, the neighbours by numberGroup (which refuses unknown fields)
  const multiAtlasIn = isObj(input.multiAtlas) ? input.multiAtlas : undefined;
  const { stages: multiAtlasStages, ...multiAtlasNumbers } = multiAtlasIn ?? {};
  const multiAtlas: RrlPlan['multiAtlas'] = numberGroup(
    'multiAtlas',
    multiAtlasIn ? multiAtlasNumbers : input.multiAtlas,
    { neighbours: [3, { int: true, min: 1, max: 16 }] },
  );
  if (multiAtlas) {
    if (multiAtlasStages !== undefined) {
      const ok =
        Array.isArray(multiAtlasStages) &&
        multiAtlasStages.length > 0 &&
        multiAtlasStages.every((x) => (MULTI_ATLAS_STAGES as readonly unknown[]).includes(x)) &&
        new Set(multiAtlasStages).size === multiAtlasStages.length;
      if (!ok) {
        throw new PlanError(
          `plan.multiAtlas.stages: expected a list of distinct stages out of ${MULTI_ATLAS_STAGES.map((x) => `"${x}"`).join(', ')}, found ${describe(multiAtlasStages)}.`,
        );
      }
      // in pipeline order, so that a plan's two spellings are one plan
      multiAtlas.stages = MULTI_ATLAS_STAGES.filter((x) =>
        (multiAtlasStages as unknown[]).includes(x),
      );
    }
    if (plan.crossFit?.ignoreDisagreement && (multiAtlas.stages ?? ['joint']).includes('joint')) {
      throw new PlanError(
        'plan.multiAtlas at the joint stage cannot be used with crossFit.ignoreDisagreement: the left-out voxels carry no label to register onto another volume. Remove one of them, or vote after the registration stage only (multiAtlas.stages ["registration"]).',
      );
    }
    plan.multiAtlas = multiAtlas;
  }
  const fallback = numberGroup('registrationFallback', input.registrationFallback, {
    minDice: [0.5, { min: 0, max: 1 }],
  });
  if (fallback) {
    if (plan.registrationPrealign) {
      throw new PlanError(
        'plan.registrationFallback cannot be used with registrationPrealign: the published registration path has no pre-alignment. Remove one of them.',
      );
    }
    plan.registrationFallback = fallback;
  }
  if (typeof input.description === 'string') plan.description = input.description;
  return plan;
}

function parseIntensity(v: unknown, d: IntensitySpec): IntensitySpec {
  const field = 'preprocess.intensity';
  if (v === undefined) return { ...d } as IntensitySpec;
  if (!isObj(v)) throw new PlanError(`plan.${field}: expected an object, found ${describe(v)}.`);
  if (v.method === 'zscore') {
    checkKeys(field, v, ['method', 'clip']);
    if (v.clip === undefined) return { method: 'zscore' };
    const c = v.clip;
    if (
      !Array.isArray(c) ||
      c.length !== 2 ||
      !c.every((x) => typeof x === 'number' && Number.isFinite(x)) ||
      (c[0] as number) >= (c[1] as number)
    ) {
      throw new PlanError(
        `plan.${field}.clip: expected [low, high] with low < high, found ${describe(c)}.`,
      );
    }
    return { method: 'zscore', clip: [c[0] as number, c[1] as number] };
  }
  if (v.method === 'percentile') {
    checkKeys(field, v, ['method', 'low', 'high']);
    const low = num(`${field}.low`, v.low, 1, { min: 0, max: 100 });
    const high = num(`${field}.high`, v.high, 99, { min: 0, max: 100 });
    if (low >= high) {
      throw new PlanError(
        `plan.${field}: expected low < high (percentiles 0..100), found low ${low} and high ${high}.`,
      );
    }
    return { method: 'percentile', low, high };
  }
  throw new PlanError(
    `plan.${field}.method: expected "zscore" or "percentile", found ${describe(v.method)}.`,
  );
}

function parsePreprocess(v: unknown, d: PreprocessSpec): PreprocessSpec {
  if (v === undefined) return { ...d, spacing: [...d.spacing], intensity: { ...d.intensity } };
  if (!isObj(v)) throw new PlanError(`plan.preprocess: expected an object, found ${describe(v)}.`);
  checkKeys('preprocess', v, ['resample', 'spacing', 'intensity']);
  let resample = d.resample;
  if (v.resample !== undefined) {
    if (v.resample !== 'fit-extent' && v.resample !== 'fixed-spacing') {
      throw new PlanError(
        `plan.preprocess.resample: expected "fit-extent" or "fixed-spacing", found ${describe(v.resample)}.`,
      );
    }
    resample = v.resample;
  }
  let spacing: [number, number, number] = [...d.spacing];
  if (v.spacing !== undefined) {
    if (!Array.isArray(v.spacing) || v.spacing.length !== 3) {
      throw new PlanError(
        `plan.preprocess.spacing: expected three positive numbers [x, y, z] in mm, found ${describe(v.spacing)}.`,
      );
    }
    const sp = v.spacing.map((x, i) =>
      num(`preprocess.spacing[${i}]`, x, 1, { min: 0, minExclusive: true }),
    );
    spacing = [sp[0]!, sp[1]!, sp[2]!];
  }
  return { resample, spacing, intensity: parseIntensity(v.intensity, d.intensity) };
}

function parseSampling(v: unknown, d: SamplingSpec): SamplingSpec {
  if (v === undefined) return { ...d };
  if (!isObj(v)) throw new PlanError(`plan.sampling: expected an object, found ${describe(v)}.`);
  checkKeys('sampling', v, [...Object.keys(d), 'spatial', 'synthetic', 'appearance']);
  const out: SamplingSpec = {
    atlasProbability: num('sampling.atlasProbability', v.atlasProbability, d.atlasProbability, {
      min: 0,
      max: 1,
    }),
    intensityScale: num('sampling.intensityScale', v.intensityScale, d.intensityScale, {
      min: 0,
      max: 1,
    }),
    intensityShift: num('sampling.intensityShift', v.intensityShift, d.intensityShift, {
      min: 0,
    }),
  };
  const unit = { min: 0, max: 1 };
  const spatial = numberGroup('sampling.spatial', v.spatial, {
    probability: [0.5, unit],
    rotation: [10, { min: 0, max: 45 }],
    scale: [0.1, { min: 0, max: 0.5 }],
    translate: [2, { min: 0 }],
  });
  if (spatial) out.spatial = spatial;
  const appearance = numberGroup('sampling.appearance', v.appearance, {
    probability: [0.3, unit],
    gamma: [0.4, { min: 0, max: 2 }],
    bias: [0.3, unit],
    noise: [0.03, { min: 0, max: 0.5 }],
  });
  if (appearance) out.appearance = appearance;
  const synthetic = numberGroup('sampling.synthetic', v.synthetic, {
    probability: [0.3, unit],
    blend: [0.5, unit],
  });
  if (synthetic) out.synthetic = synthetic;
  return out;
}
