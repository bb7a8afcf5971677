/** The pipeline's stages, inputs, progress, records and results: the types every stage shares. */
import type { TrainingProgress } from '@rrl/core/api.js';
import type { ProviderSetting } from '../../engine/runtime/providers.js';
import type { RrlModelInfo } from '../export.js';
import { crossFitFoldCount, relabelSteps, type RrlPlan } from '../plan.js';

export type PipelineStage =
  | 'registration'
  | 'pseudo-labels'
  | 'distill-sam'
  | 'distill-task'
  | 'joint'
  | 'mutual'
  | 'decoder'
  | 'self-training'
  | 'self-training-decoder'
  | 'export';

/** The stages in order ('pseudo-labels' is the second phase of 'registration'). */
export const PIPELINE_STAGES = Object.freeze([
  'registration',
  'distill-sam',
  'distill-task',
  'joint',
  'mutual',
  'decoder',
  'self-training',
  'self-training-decoder',
  'export',
] as const);
export type StageName = (typeof PIPELINE_STAGES)[number];

export const NO_TEACHER_NOTICE =
  'No teacher: stage 1 (SAM distillation) skipped — import a SAM, MedSAM or MobileSAM checkpoint and choose it to distil from SAM';

export interface PipelineInput {
  plan: RrlPlan;
  outDir: string;
  /** On the plan grid [D, H, W] (x fastest), normalised; labels are class indices 0..classes−1. */
  atlas: { image: Float32Array; labels: Uint8Array };
  unlabeled: { id: string; image: Float32Array }[];
  /** Names, labels, modalities, provenance … for metadata.json (intensity is taken from the plan). */
  info: RrlModelInfo;
  provider?: ProviderSetting;
  /** Where imported SAM teachers live (`npm run teacher`): resolves a plan's teacher id and keeps their feature cache. */
  teachersDir?: string;
  onProgress?: (p: PipelineProgress) => void;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /**
   * Profile this many steps of every training stage (after 2 warm-up steps): ORT's per-node
   * profile and the wall time per step, summarised in `<outDir>/profile/<stage>.json` and logged.
   * Training itself is unchanged.
   */
  profileSteps?: number;
  /**
   * Let ORT's intra-op threads spin-wait between kernels (the Trainer's `allowSpinning`): 8–17 %
   * faster training steps when the training has the cores to itself (measured at 48×56×40:
   * registration 190 → 162 ms, segmentation 147 → 122, mutual 271 → 249), slower for everyone
   * when other processes need them. `npm run train` turns it on (the machine is the training's);
   * the server's jobs leave it off (they share the cores with the viewer's proxy). Default off.
   */
  spin?: boolean;
}

/** The pipeline's progress: the training progress record with the stage always named. */
export type PipelineProgress = TrainingProgress & {
  phase: PipelineStage;
  stageIndex: number;
  stageCount: number;
};

export interface StageRecord {
  stage: string;
  steps: number;
  seconds: number;
  firstLoss?: number;
  lastLoss?: number;
  skipped?: string;
}

export interface PipelineResult {
  modelPath: string;
  metadataPath: string;
  evalModelPath: string;
  stages: StageRecord[];
  notices: string[];
  seconds: number;
}

export interface PipelineState {
  formatVersion: 1;
  stages: StageRecord[];
  notices: string[];
  /** Seconds already spent in an interrupted stage. */
  partial?: { stage: string; seconds: number };
  /** The execution provider the run trained on (what "auto" resolved to). */
  provider?: string;
  /** The SAM teacher of stage 1 (variant, source file, hash, input size), or null without one. */
  teacher?: string | null;
}

/**
 * The stages a plan will run, in order, with their training steps (skipped stages left out):
 * what a progress estimate weighs before any duration has been measured.
 */
export function plannedStages(plan: RrlPlan): { stage: StageName; steps: number }[] {
  const sched = plan.schedule;
  const st = plan.selfTraining;
  const steps: Record<StageName, number> = {
    registration: sched.registration.steps,
    'distill-sam': plan.teacher ? sched.distillSam.steps : 0,
    // cross-fitting trains one student per fold (fewer when there are fewer volumes than folds)
    'distill-task': sched.distillTask.steps * crossFitFoldCount(plan),
    // the joint registration's steps, then the relabelling round's students
    joint: sched.joint.steps + relabelSteps(plan) * crossFitFoldCount(plan),
    mutual: sched.mutual.steps,
    decoder: sched.decoder.steps,
    'self-training': st ? st.mutual.steps : 0,
    'self-training-decoder': st ? st.decoder.steps : 0,
    export: 1,
  };
  return PIPELINE_STAGES.filter((s) => steps[s] > 0).map((stage) => ({
    stage,
    steps: steps[stage],
  }));
}

export type Params = Map<string, Float32Array>;

export const OPTIMIZER = {
  type: 'adamw',
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
} as const;

/** What a stage returns: its record without the name and the time the pipeline adds. */
export type StageOutcome = Omit<StageRecord, 'stage' | 'seconds'>;
