/**
 * The real training job (runs in a worker thread through `workerExecutor`): assembles the atlas
 * (series + SEG → class indices on the series grid) and the unlabelled series from the PACS,
 * validates each series (a bad one is skipped with a reason in the job log), maps them onto the
 * plan grid (contract 1: `planModelGrid`, `prepareModelInput`, `labelsToModelGrid`) and runs the
 * pipeline (contract 2: `runPipeline`) with outDir = the job's work folder, which makes a rerun
 * after a restart resume. Returns the folder holding model.onnx + metadata.json; the runner
 * publishes it.
 *
 * The contract modules are imported at run time by path (`CONTRACTS`), typed here by their agreed
 * signatures, so the server compiles before the pipeline lands.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { REPO_ROOT } from '../config.js';
import { DicomWebClient } from '../pacs/dicomweb.js';
import { fetchSeriesVolume } from '../pacs/volume.js';
import type { JobRecord, TaskRecord } from '../store/db.js';
import { loadAtlas } from './atlas.js';
import { seriesProblem } from './validate.js';
import type { WorkerTaskContext } from './workerExecutor.js';

type Dims = [number, number, number];
interface GridAndIntensity {
  grid: { size: Dims; spacing: Dims; resample: string };
  intensity: unknown;
}
interface PlanModule {
  parsePlan(input: unknown): { grid: Dims; classes: number } & Record<string, unknown>;
  planModelGrid(plan: unknown): GridAndIntensity;
}
interface PreprocessModule {
  prepareModelInput(
    voxels: ArrayLike<number>,
    srcDims: Dims,
    meta: GridAndIntensity,
    srcSpacing?: readonly number[],
  ): Float32Array;
  labelsToModelGrid(
    labels: Uint8Array,
    srcDims: Dims,
    meta: Pick<GridAndIntensity, 'grid'>,
    srcSpacing?: readonly number[],
  ): Uint8Array;
}
interface PipelineModule {
  runPipeline(input: {
    plan: unknown;
    outDir: string;
    atlas: { image: Float32Array; labels: Uint8Array };
    unlabeled: { id: string; image: Float32Array }[];
    info: Record<string, unknown>;
    provider?: string;
    onProgress?: (p: {
      stage: string;
      stageIndex: number;
      stageCount: number;
      step: number;
      total: number;
      loss?: number;
      metrics?: Record<string, number>;
    }) => void;
    signal?: AbortSignal;
    log?: (line: string) => void;
  }): Promise<{ modelPath: string; metadataPath: string; seconds: number; notices: string[] }>;
}

/** Where the contract modules live (relative to the repository root). */
export const CONTRACTS = {
  plan: 'models/src/rrl/plan.ts',
  preprocess: 'models/src/volume/preprocess.ts',
  pipeline: 'models/src/rrl/pipeline.ts',
  plansDir: 'models/plans',
} as const;

async function importContract<T>(rel: string): Promise<T> {
  const file = path.join(REPO_ROOT, rel);
  try {
    return (await import(file)) as T;
  } catch (e) {
    throw new Error(
      `The training pipeline module ${rel} could not be loaded (${(e as Error).message}); ` +
        'this server build cannot train yet.',
    );
  }
}

export async function loadTaskPlan(planName: string): Promise<unknown> {
  const planMod = await importContract<PlanModule>(CONTRACTS.plan);
  const file = path.join(REPO_ROOT, CONTRACTS.plansDir, `${planName}.json`);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(
      `The task's plan ${planName} cannot be read from ${file}: ${(e as Error).message}`,
    );
  }
  return planMod.parsePlan(raw);
}

/** The worker task: PACS → plan grid → runPipeline → model folder. */
export async function pacsTrainingTask(
  job: JobRecord,
  ctx: WorkerTaskContext,
): Promise<{ modelDir: string }> {
  const task: TaskRecord = ctx.task;
  const client = new DicomWebClient({
    root: ctx.pacs.dicomWebRoot,
    ...(ctx.pacs.username !== undefined ? { username: ctx.pacs.username } : {}),
    ...(ctx.pacs.password !== undefined ? { password: ctx.pacs.password } : {}),
  });
  const planMod = await importContract<PlanModule>(CONTRACTS.plan);
  const pre = await importContract<PreprocessModule>(CONTRACTS.preprocess);
  const pipeline = await importContract<PipelineModule>(CONTRACTS.pipeline);
  const plan = await loadTaskPlan(task.plan);
  const grid = planMod.planModelGrid(plan);

  ctx.progress({ phase: 'fetch', step: 0, total: job.series.length + 1 });
  ctx.log(`reading the atlas: series ${task.atlas.seriesUID}, SEG ${task.atlas.segSeriesUID}`);
  const atlas = await loadAtlas(client, task.atlas);
  const atlasProblem = seriesProblem(
    {
      seriesUID: atlas.volume.seriesUID,
      modality: atlas.volume.modality,
      geometry: atlas.volume.geometry,
    },
    task.modality,
  );
  if (atlasProblem)
    throw new Error(`The atlas series ${task.atlas.seriesUID} cannot be used: ${atlasProblem}.`);
  // SEG label values → class indices 1..C-1 in the task's label order.
  const lut = new Uint8Array(256);
  task.labels.forEach((l, i) => {
    lut[l.value] = i + 1;
  });
  const classes = new Uint8Array(atlas.labelmap.length);
  for (let i = 0; i < classes.length; i++) classes[i] = lut[atlas.labelmap[i]];
  const aDims = atlas.volume.geometry.dims;
  const aSpacing = atlas.volume.geometry.spacing;
  const atlasImage = pre.prepareModelInput(atlas.volume.voxels, aDims, grid, aSpacing);
  const atlasLabels = pre.labelsToModelGrid(classes, aDims, grid, aSpacing);

  const unlabeled: { id: string; image: Float32Array }[] = [];
  const skipped: { seriesUID: string; reason: string }[] = [];
  for (const [k, s] of job.series.entries()) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    ctx.progress({ phase: 'fetch', step: k + 1, total: job.series.length + 1 });
    try {
      const v = await fetchSeriesVolume(client, s.studyUID, s.seriesUID);
      const problem = seriesProblem(
        { seriesUID: s.seriesUID, modality: v.modality, geometry: v.geometry },
        task.modality,
      );
      if (problem) {
        skipped.push({ seriesUID: s.seriesUID, reason: problem });
        ctx.log(`skipped series ${s.seriesUID}: ${problem}`);
        continue;
      }
      unlabeled.push({
        id: s.seriesUID,
        image: pre.prepareModelInput(v.voxels, v.geometry.dims, grid, v.geometry.spacing),
      });
    } catch (e) {
      const reason = (e as Error).message;
      skipped.push({ seriesUID: s.seriesUID, reason });
      ctx.log(`skipped series ${s.seriesUID}: ${reason}`);
    }
  }
  if (unlabeled.length === 0) {
    throw new Error(
      `None of the ${job.series.length} unlabelled series could be used (see the job log); choose other series.`,
    );
  }
  ctx.log(`training on the atlas and ${unlabeled.length} series (${skipped.length} skipped)`);
  const info = {
    id: `${task.id}@pending`,
    name: task.name,
    version: '0',
    task: task.id,
    modalities: [task.modality],
    intensity: grid.intensity,
    labels: task.labels,
    provenance: {
      createdAt: new Date().toISOString(),
      trainer: 'rrl-medsam companion server',
      trainingData: `atlas ${task.atlas.seriesUID} + ${unlabeled.length} unlabelled series (job ${job.id})`,
    },
    changelog: [],
  };
  const result = await pipeline.runPipeline({
    plan,
    outDir: ctx.workDir,
    atlas: { image: atlasImage, labels: atlasLabels },
    unlabeled,
    info,
    provider: ctx.provider,
    signal: ctx.signal,
    log: ctx.log,
    onProgress: (p) =>
      ctx.progress({
        phase: p.stage,
        stageIndex: p.stageIndex,
        stageCount: p.stageCount,
        step: p.step,
        total: p.total,
        ...(p.loss !== undefined ? { loss: p.loss } : {}),
        ...(p.metrics ? { metrics: p.metrics } : {}),
      }),
  });
  for (const n of result.notices) ctx.log(`notice: ${n}`);
  return { modelDir: path.dirname(result.modelPath) };
}
