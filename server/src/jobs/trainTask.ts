/**
 * The real training job (runs in a worker thread through `workerExecutor`): assembles the atlas
 * (series + SEG → class indices on the series grid) and the unlabelled series from the PACS,
 * validates each series (a bad one is skipped with a reason in the job log), maps them onto the
 * plan grid (contract 1: `planModelGrid`, `prepareModelInput`, `labelsToModelGrid`) and runs the
 * pipeline (contract 2: `runPipeline`) with outDir = the job's work folder, which makes a rerun
 * after a restart resume. Returns the folder holding model.onnx + metadata.json; the runner
 * publishes it.
 */
import path from 'node:path';

import { isProviderSetting } from '@rrl/models/engine/runtime/providerChoice.js';
import type { ModelLabel } from '@rrl/core/format/metadata.js';
import type { RrlModelInfo } from '@rrl/models/rrl/export.js';
import { plannedStages, runPipeline } from '@rrl/models/rrl/pipeline.js';
import { planModelGrid } from '@rrl/models/rrl/plan.js';
import { labelsToModelGrid, prepareModelInput } from '@rrl/core/volume/preprocess.js';
import { DicomWebClient, PacsError } from '../pacs/dicomweb.js';
import { fetchSeriesVolume } from '../pacs/volume.js';
import type { JobRecord, TaskRecord } from '../store/db.js';
import { loadAtlas } from './atlas.js';
import { evaluateOnHoldout } from './evaluate.js';
import { loadPlanOrThrow, planFromContent } from './plans.js';
import { seriesProblem } from './validate.js';
import type { WorkerTaskContext } from './workerExecutor.js';

/**
 * The model's labels: output channels 1..C-1 in the task's order, with the names, colours and
 * codes of the atlas SEG's segments — laterality modifier included, so that a SEG saved with the
 * model tells Left from Right.
 */
export function modelLabelsForTask(task: Pick<TaskRecord, 'labels'>): ModelLabel[] {
  return task.labels.map((l, i) => ({
    value: i + 1,
    name: l.name,
    color: l.color,
    category: l.category ?? { value: '', scheme: '', meaning: '' },
    type: l.type ?? { value: '', scheme: '', meaning: '' },
    ...(l.modifier ? { modifier: l.modifier } : {}),
  }));
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
  // The plan as the task stored it (version fixed when the job was queued); tasks from before
  // plans were stored read the plan file by name.
  const plan =
    task.planContent !== undefined
      ? planFromContent(task.planContent, task.plan)
      : await loadPlanOrThrow(task.plan);
  if (plan.classes !== task.labels.length + 1) {
    throw new Error(
      `Plan ${task.plan} trains ${plan.classes - 1} labels but task ${task.id} has ${task.labels.length}; ` +
        'choose a plan with classes = labels + 1.',
    );
  }
  const grid = planModelGrid(plan);

  ctx.progress({
    phase: 'fetch',
    step: 0,
    total: job.series.length + 1,
    planned: [
      { phase: 'fetch', steps: job.series.length + 1 },
      ...plannedStages(plan).map((s) => ({ phase: s.stage, steps: s.steps })),
      ...(task.holdout.length ? [{ phase: 'evaluate', steps: task.holdout.length }] : []),
    ],
  });
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
  for (let i = 0; i < classes.length; i++) classes[i] = lut[atlas.labelmap[i]!]!;
  const aDims = atlas.volume.geometry.dims;
  const aSpacing = atlas.volume.geometry.spacing;
  const atlasImage = prepareModelInput(atlas.volume.voxels, aDims, grid, aSpacing);
  const atlasLabels = labelsToModelGrid(classes, aDims, grid, aSpacing);

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
        image: prepareModelInput(v.voxels, v.geometry.dims, grid, v.geometry.spacing),
      });
    } catch (e) {
      // A PACS that stops answering is not a bad series: stop the job with a clear reason instead
      // of training on whatever was fetched so far (nothing is published; start the job again
      // when the PACS is back).
      if (isPacsOutage(e)) {
        throw new Error(
          `The PACS stopped answering while series ${s.seriesUID} was fetched (${k} of ${job.series.length} fetched): ${(e as Error).message} ` +
            'The job stopped before training and published nothing; start it again when the PACS is reachable.',
        );
      }
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
  // The model's label values are its output channels 1..C-1 (core/src/format); names, colours
  // and codes come from the atlas SEG's segments in the task's order.
  const labels = modelLabelsForTask(task);
  const info: RrlModelInfo = {
    id: `${task.id}@pending`,
    name: task.name,
    version: '0',
    task: task.id,
    modalities: [task.modality],
    intensity: grid.intensity,
    labels,
    provenance: {
      createdAt: new Date().toISOString(),
      trainer: 'rrl-medsam companion server',
      trainingData: `atlas ${task.atlas.seriesUID} + ${unlabeled.length} unlabelled series (job ${job.id})`,
    },
    changelog: [],
  };
  const result = await runPipeline({
    plan,
    outDir: ctx.workDir,
    atlas: { image: atlasImage, labels: atlasLabels },
    unlabeled,
    info,
    provider: isProviderSetting(ctx.provider) ? ctx.provider : 'auto',
    ...(ctx.teachersDir !== undefined ? { teachersDir: ctx.teachersDir } : {}),
    signal: ctx.signal,
    log: ctx.log,
    onProgress: (p) => ctx.progress(p),
  });
  for (const n of result.notices) ctx.log(`notice: ${n}`);
  const modelDir = path.dirname(result.modelPath);
  if (task.holdout.length > 0) {
    ctx.progress({ phase: 'evaluate', step: 0, total: task.holdout.length });
    await evaluateOnHoldout({ client, task, modelDir, signal: ctx.signal, log: ctx.log });
    ctx.progress({ phase: 'evaluate', step: task.holdout.length, total: task.holdout.length });
  }
  return { modelDir };
}

/** Connection failures, timeouts, 5xx and refused credentials: the PACS, not the series, is the problem. */
export function isPacsOutage(e: unknown): boolean {
  return (
    e instanceof PacsError &&
    (e.kind === 'unreachable' ||
      e.kind === 'server' ||
      e.kind === 'unauthorized' ||
      e.kind === 'forbidden')
  );
}
