/**
 * RRL-MedSAM training pipeline: one labelled atlas + unlabelled volumes, all already on the plan
 * grid and normalised → a published model (model.onnx + metadata.json) and an evaluation model.
 * The stages run in order, each from its own file in ./stages, each resumable from its own
 * checkpoint under `outDir/checkpoints`; `state.json` records finished stages, so a rerun on the
 * same `outDir` skips them and continues an interrupted stage from its checkpoint.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { selectProvider } from '../engine/runtime/providers.js';
import type { RegistrationArgs } from '../engine/nn/registration.js';
import type { InstanceOptimisation } from './plan.js';
import type { PrealignSpec } from './prealign.js';
import { pseudoLabels } from './pseudoLabels.js';
import { StageAbortedError } from './stages/abort.js';
import { PrealignedAtlas } from './prealign.js';
import {
  PIPELINE_STAGES,
  Run,
  atomicWrite,
  loadParams,
  pipelinePaths,
  type PipelineInput,
  type PipelineResult,
  type PipelineState,
  type StageName,
  type StageOutcome,
} from './stages/run.js';
import { registrationStage } from './stages/registration.js';
import { distillSamStage } from './stages/distill-sam.js';
import { distillTaskStage } from './stages/distill-task.js';
import { jointStage } from './stages/joint.js';
import { mutualStage } from './stages/mutual.js';
import { decoderStage } from './stages/decoder.js';
import { selfTrainingStage } from './stages/self-training.js';
import { selfTrainingDecoderStage } from './stages/self-training-decoder.js';
import { exportStage } from './stages/export.js';
import { loadPseudoLabels } from './stages/pseudoLabelFiles.js';

export { StageAbortedError } from './stages/abort.js';
export {
  NO_TEACHER_NOTICE,
  PIPELINE_STAGES,
  loadParams,
  pipelinePaths,
  plannedStages,
  type PipelineInput,
  type PipelinePaths,
  type PipelineProgress,
  type PipelineResult,
  type PipelineStage,
  type StageRecord,
} from './stages/run.js';

/** The stages, in order: each a function of the run's context. */
const STAGES: Record<StageName, (run: Run) => Promise<StageOutcome>> = {
  registration: registrationStage,
  'distill-sam': distillSamStage,
  'distill-task': distillTaskStage,
  joint: jointStage,
  mutual: mutualStage,
  decoder: decoderStage,
  'self-training': selfTrainingStage,
  'self-training-decoder': selfTrainingDecoderStage,
  export: exportStage,
};

/**
 * Runs (or resumes) the whole training pipeline in `input.outDir`. Rejects with a
 * `StageAbortedError` (name 'AbortError') when `signal` is aborted; its checkpoint is kept.
 */
export async function runPipeline(input: PipelineInput): Promise<PipelineResult> {
  const t0 = performance.now();
  const run = new Run(input);
  const { paths } = run;
  await mkdir(paths.checkpoints, { recursive: true });
  const planJson = `${JSON.stringify(input.plan, null, 2)}\n`;
  if (existsSync(paths.plan)) {
    const old = await readFile(paths.plan, 'utf8');
    if (JSON.stringify(JSON.parse(old)) !== JSON.stringify(input.plan)) {
      throw new Error(
        `runPipeline: ${input.outDir} holds a run of a different plan (plan.json differs); give a new output folder, or rerun with the same plan to resume.`,
      );
    }
  } else {
    await atomicWrite(paths.plan, planJson);
  }
  if (existsSync(paths.state)) {
    run.state = JSON.parse(await readFile(paths.state, 'utf8')) as PipelineState;
  }
  const choice = await selectProvider(input.provider ?? 'auto');
  run.provider = choice.provider;
  run.state.provider = run.provider;
  // Which provider trains, and why the better ones were passed over.
  const passed = choice.probes
    .filter((p) => p.provider !== choice.provider)
    .map((p) => `${p.provider}: ${p.available ? 'software adapter, passed over' : p.reason}`);
  run.say(`training on ${run.provider}${passed.length ? ` (${passed.join('; ')})` : ''}`);
  // The teacher is described exactly by stage 1 once loaded (variant, file, hash, size).
  if (!input.plan.teacher) run.state.teacher = null;
  else if (!run.state.teacher) run.state.teacher = input.plan.teacher.split(/[\\/]/).pop() ?? null;
  // Parameters after the last finished training stage.
  const finished = PIPELINE_STAGES.filter(
    (s) => run.done(s) && !run.done(s)!.skipped && s !== 'export' && s !== 'registration',
  );
  const last = finished[finished.length - 1];
  if (last) run.params = await loadParams(join(paths.checkpoints, `after-${last}.params`));
  if (run.done('registration')) await loadPseudoLabels(run);

  for (const stage of PIPELINE_STAGES) {
    if (run.done(stage)) {
      run.say(`[${stage}] already done`);
      continue;
    }
    run.checkAbort(stage);
    run.say(`[${stage}] starting`);
    const ts = performance.now();
    try {
      const rec = await STAGES[stage](run);
      await run.finish(stage, rec, ts);
    } catch (e) {
      if (e instanceof StageAbortedError) await run.interrupted(stage, ts);
      else await run.flushLog();
      throw e;
    }
  }
  return {
    modelPath: paths.model,
    metadataPath: paths.metadata,
    evalModelPath: paths.evalModel,
    stages: run.state.stages,
    notices: run.state.notices,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Registration saved by a pipeline run ("registration only" evaluation of test volumes). */
export interface SavedRegistration {
  register(
    atlasImage: Float32Array,
    atlasLabels: Uint8Array,
    target: Float32Array,
  ): Promise<{ labels: Uint8Array; probabilities: Float32Array }>;
  release(): Promise<void>;
}

export async function loadRegistration(outDir: string): Promise<SavedRegistration> {
  const dir = pipelinePaths(outDir).registration;
  const metaFile = join(dir, 'registration.json');
  if (!existsSync(metaFile)) {
    throw new Error(
      `loadRegistration: ${metaFile} does not exist; the registration stage of this training folder has not finished. Run (or resume) the training first.`,
    );
  }
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as {
    args: RegistrationArgs;
    grid: [number, number, number];
    classes: number;
    prealign?: PrealignSpec;
    refine?: InstanceOptimisation;
  };
  const params = await loadParams(join(dir, 'params.ckpt'));
  return {
    register: async (atlasImage, atlasLabels, target) => {
      const pre = new PrealignedAtlas(meta.grid, atlasImage, atlasLabels, [target], meta.prealign);
      const r = await pseudoLabels({
        params,
        args: meta.args,
        grid: meta.grid,
        classes: meta.classes,
        atlasImage: pre.get(0).image,
        atlasLabels: pre.get(0).labels,
        target,
        ...(meta.refine ? { refine: meta.refine } : {}),
      });
      return { labels: r.labels, probabilities: r.probabilities };
    },
    release: async () => {},
  };
}
