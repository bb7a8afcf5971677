/**
 * The companion server's HTTP API types, one definition for the server (its store keeps these
 * records) and the viewer's client. Isomorphic: types and constants only.
 */

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface SeriesRef {
  studyUID: string;
  seriesUID: string;
}

export interface AtlasRef extends SeriesRef {
  /** The SEG series that labels the atlas series. */
  segSeriesUID: string;
}

export interface TaskLabel {
  value: number;
  name: string;
  color: [number, number, number];
  category?: { value: string; scheme: string; meaning: string };
  type?: { value: string; scheme: string; meaning: string };
  /** SNOMED CT laterality (Left / Right …) of the type, from the atlas SEG. */
  modifier?: { value: string; scheme: string; meaning: string };
}

export interface TaskRecord {
  id: string;
  name: string;
  modality: string;
  atlas: AtlasRef;
  /** The plan's name (models/plans/<name>.json when it was chosen). */
  plan: string;
  /**
   * The plan's content as the task stores it (version `planVersion`): later edits of the plan
   * file do not change the task's trainings.
   */
  planContent?: unknown;
  planVersion?: number;
  /**
   * The SAM teacher of stage 1 (an imported teacher's id, `GET /api/teachers`), or null: stage 1
   * is skipped. Kept in the plan content (`teacher`), so each plan version says which it used.
   */
  teacher?: string | null;
  labels: TaskLabel[];
  createdAt: string;
  /** Archived tasks are hidden from the task list (their models stay published). */
  archivedAt?: string;
  /** The model the viewer uses for this task (the newest is not necessarily the best). */
  defaultModel?: string;
  /** Labelled series (series + SEG, not the atlas) that new models are evaluated on. */
  holdout: AtlasRef[];
}

/** An imported SAM teacher (GET /api/teachers): the card `npm run teacher -- import` writes. */
export interface TeacherCard {
  formatVersion: 1;
  id: string;
  /** e.g. "MedSAM ViT-B", "SAM ViT-H", "MobileSAM TinyViT". */
  variant: string;
  family: 'vit' | 'tiny-vit';
  /** The checkpoint's file name as imported (no folder). */
  sourceFile: string;
  /** SHA-256 of the checkpoint file. */
  sha256: string;
  /** Square input in pixels; the embeddings are [256, size/16, size/16]. */
  inputSize: number;
  embeddingShape: [number, number, number];
  /** Image-encoder parameters. */
  parameters: number;
  importedAt: string;
  conversionSeconds: number;
  /** The checkpoint key prefix in front of `image_encoder.` ('' for the published files). */
  keyPrefix: string;
}

/** One version of a task's plan. */
export interface TaskPlanVersion {
  version: number;
  name: string;
  content: unknown;
  createdAt: string;
}

/**
 * One progress report of a training run, the one record from the training engine's stages up to
 * the panel: the phase (a pipeline stage, or the server's 'fetch' / 'evaluate'), its index among
 * the stages, the step of the phase's total, the loss and its terms.
 */
export interface TrainingProgress {
  phase: string;
  stageIndex?: number;
  stageCount?: number;
  step: number;
  total: number;
  loss?: number;
  metrics?: Record<string, number>;
}

/** A job's progress as the server reports it: the training progress with its time estimate. */
export interface JobProgress extends TrainingProgress {
  /** Seconds left in the whole job (estimate), when known. */
  etaSeconds?: number;
  /** Seconds since this launch of the job started. */
  elapsedSeconds?: number;
  /** Share of the job done (0..1), weighed by the phases' expected durations, when known. */
  fraction?: number;
  time: string;
}

/** A training job (GET /api/jobs/{id}). */
export interface JobRecord {
  id: string;
  taskId: string;
  status: JobStatus;
  /** Queue order (smaller runs first). */
  seq: number;
  /** Unlabelled series to train on (resolved UIDs). */
  series: SeriesRef[];
  /** How the series were chosen (the query, or "uids"). */
  selection: Record<string, unknown>;
  provider: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** Why the job failed or was cancelled, or notes on a resumed run. */
  reason?: string;
  modelId?: string;
  progress?: JobProgress;
  /** How many times the job was started (> 1 after a restart resumed it). */
  attempts: number;
  /** The version of the task's plan the job trains with (fixed when it was queued). */
  planVersion?: number;
}

/** A training plan as GET /api/plans lists it. */
export interface Plan {
  name: string;
  classes: number;
  grid: number[];
  steps: number;
  /** What the plan is for (e.g. a smoke test), when its file says. */
  description?: string;
}

/**
 * The plan a task created with plan "auto" trains (POST /api/plans/derive): grid, spacing and
 * depth derived from the atlas's geometry, and why.
 */
export interface DerivedPlan extends Plan {
  name: 'auto';
  /** Voxel spacing of the grid, mm [x, y, z]. */
  spacing: number[];
  /** One sentence per rule applied, with the numbers. */
  reasons: string[];
}

export interface SeriesQuery {
  modality?: string;
  description?: string;
  from?: string;
  to?: string;
}

export interface SeriesSearch {
  count: number;
  limit: number;
  series: (SeriesRef & {
    modality?: string;
    description?: string;
    studyDate?: string;
    instances?: number;
  })[];
}

export interface LogLine {
  n: number;
  time: string;
  line: string;
}

export interface ModelVersion {
  id: string;
  version: number | string;
  name: string;
  createdAt: string;
  /** The task's default (the model the viewer uses for it). */
  default?: boolean;
  /** Mean Dice on the task's hold-out series, when evaluated. */
  holdoutDice?: number;
  card?: ModelCard | null;
}

/**
 * `model-card.json` beside a published model: how it was trained and evaluated, and why it is or
 * is not its task's default. Written by the server when it publishes; read by the panel.
 */
export interface ModelCard {
  job?: string;
  createdAt?: string;
  trainingData?: {
    atlas?: AtlasRef;
    unlabeledSeries?: SeriesRef[];
    selection?: unknown;
    /** The task's hold-out series the model was evaluated on. */
    holdout?: AtlasRef[];
  };
  parameters?: {
    plan?: string;
    planVersion?: number | null;
    provider?: string;
    providerUsed?: string | null;
    teacher?: string | null;
    planJson?: unknown;
  };
  trainingSeconds?: number | null;
  /** The pipeline's state.json: stages with steps, seconds, losses, skipped reasons; notices. */
  stages?: unknown;
  evaluation?: { meanDice?: number; series?: { seriesUID: string }[] } | null;
  promotion?: {
    promote?: boolean;
    reason?: string;
    candidateDice?: number;
    defaultDice?: number;
    decidedAt?: string;
  } | null;
  notices?: string[];
}

export interface ModelDetails {
  id: string;
  metadata: Record<string, unknown>;
  card: ModelCard | null;
}

/** The viewer's names for the records. */
export type Task = TaskRecord & {
  /** Only in the answer to the creation: labels coded alike, colours changed. */
  warnings?: string[];
};
export type Job = JobRecord;
