/**
 * A pipeline run: the typed context every stage works in — the inputs (plan, atlas, unlabelled
 * volumes on the plan grid), the parameter store and checkpoints in the run's folder, the progress
 * sink and log, the abort signal — and training one stage's graph. What stages share beyond it
 * has a file each: training samples (`sampling.ts`), the registration's artefacts
 * (`registrationFiles.ts`), the pseudo labels and predictions (`pseudoLabelFiles.ts`). The stages
 * are in this folder, one file each; `../pipeline.ts` runs them in order.
 */
import { existsSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildTrainingGraph, type TrainingGraphOptions } from '../../engine/autodiff/training.js';
import { type Provider } from '../../engine/runtime/providers.js';
import { describeProfile, StepProfiler } from '../../engine/runtime/profile.js';
import type { SeededRng } from '../../engine/runtime/rng.js';
import { Trainer, type Batch } from '../../engine/runtime/trainer.js';
import { rrlNetArgsFromPlan, type RrlNetArgs } from '../networks.js';
import type { RrlPlan } from '../plan.js';
import { EG_REFERENCE } from '../tasks.js';
import { StageAbortedError } from './abort.js';
import {
  atomicWrite,
  checkInput,
  lossSummary,
  pipelinePaths,
  saveParams,
  type PipelinePaths,
} from './files.js';
import { loadFields } from './registrationFiles.js';
import {
  OPTIMIZER,
  PIPELINE_STAGES,
  type Params,
  type PipelineInput,
  type PipelineProgress,
  type PipelineStage,
  type PipelineState,
  type StageName,
  type StageRecord,
} from './types.js';

// The stages import the shared types and file helpers from here too.
export * from './files.js';
export * from './types.js';

export class Run {
  readonly paths: PipelinePaths;
  readonly args: RrlNetArgs;
  readonly grid: [number, number, number];
  readonly voxels: number;
  state: PipelineState = { formatVersion: 1, stages: [], notices: [] };
  provider: Provider = 'cpu';
  params: Params = new Map();
  pseudo: Uint8Array[] = [];
  /** Atlas → volume displacements for synthesis (loaded by `loadFields`). */
  fields: Float32Array[] | undefined;
  /** Atlas image + one-hot labels, the source of synthetic samples (built by `loadFields`). */
  atlasStack: Float32Array | undefined;
  private logQueue: Promise<void> = Promise.resolve();

  constructor(readonly input: PipelineInput) {
    this.voxels = checkInput(input);
    this.paths = pipelinePaths(input.outDir);
    this.args = rrlNetArgsFromPlan(input.plan);
    this.grid = [...input.plan.grid];
  }

  get plan(): RrlPlan {
    return this.input.plan;
  }

  stageIndex(stage: StageName): number {
    return PIPELINE_STAGES.indexOf(stage);
  }

  say(line: string): void {
    this.input.log?.(line);
  }

  progress(
    stage: PipelineStage,
    p: Omit<PipelineProgress, 'phase' | 'stageIndex' | 'stageCount'>,
    of?: StageName,
  ): void {
    const stageIndex = this.stageIndex(
      of ?? (stage === 'pseudo-labels' ? 'registration' : (stage as StageName)),
    );
    this.input.onProgress?.({ phase: stage, stageIndex, stageCount: PIPELINE_STAGES.length, ...p });
    const rec = { time: new Date().toISOString(), stage, ...p };
    const line = `${JSON.stringify(rec)}\n`;
    this.logQueue = this.logQueue.then(() => appendFile(this.paths.log, line));
  }

  async flushLog(): Promise<void> {
    await this.logQueue;
  }

  async saveState(): Promise<void> {
    await atomicWrite(this.paths.state, `${JSON.stringify(this.state, null, 2)}\n`);
  }

  done(stage: StageName): StageRecord | undefined {
    return this.state.stages.find((s) => s.stage === stage);
  }

  checkAbort(stage: StageName, step = 0, total = 0): void {
    if (this.input.signal?.aborted) throw new StageAbortedError(stage, step, total);
  }

  async finish(
    stage: StageName,
    rec: Omit<StageRecord, 'stage' | 'seconds'>,
    t0: number,
  ): Promise<void> {
    await this.flushLog();
    const before = this.state.partial?.stage === stage ? this.state.partial.seconds : 0;
    const seconds = before + (performance.now() - t0) / 1000;
    const loss = rec.skipped ? {} : await lossSummary(this.paths.log, stage);
    const full: StageRecord = { stage, seconds: Math.round(seconds * 100) / 100, ...loss, ...rec };
    this.state.stages.push(full);
    delete this.state.partial;
    if (stage !== 'registration' && stage !== 'export' && !rec.skipped) {
      await saveParams(join(this.paths.checkpoints, `after-${stage}.params`), this.params);
    }
    await this.saveState();
    this.say(
      rec.skipped
        ? `[${stage}] skipped: ${rec.skipped}`
        : `[${stage}] done: ${full.steps} steps in ${full.seconds.toFixed(1)} s` +
            (full.firstLoss !== undefined
              ? `, loss ${full.firstLoss.toFixed(4)} → ${full.lastLoss!.toFixed(4)}`
              : ''),
    );
  }

  async interrupted(stage: StageName, t0: number): Promise<void> {
    await this.flushLog();
    const before = this.state.partial?.stage === stage ? this.state.partial.seconds : 0;
    this.state.partial = { stage, seconds: before + (performance.now() - t0) / 1000 };
    await this.saveState();
  }

  /** A profiler for one trainer of this run when `profileSteps` asks for it (else undefined). */
  profiler(name: string): StepProfiler | undefined {
    const steps = this.input.profileSteps;
    if (!steps) return undefined;
    return new StepProfiler(name, join(this.paths.profile, `${name}.json`), steps);
  }

  /** Writes a profiler's summary and logs its line. */
  async reportProfile(profiler: StepProfiler | undefined): Promise<void> {
    if (profiler) this.say(describeProfile(await profiler.finish()));
  }

  /**
   * Trains one stage's graph on the engine Trainer: initial values from the parameter store
   * (by name; `extra` overrides), resumed from `checkpoints/<stage>.ckpt` when it exists; on
   * cancellation the checkpoint is written and StageAbortedError thrown. The trained parameters
   * whose names the inference net uses go back into the store. `emaAlpha` applies the task's
   * mutual EMA pairs after each optimiser step. `part` trains one of several graphs of a stage
   * (a cross-fitting fold): its own checkpoint `<stage>-<name>.ckpt` and data seed, progress
   * counted over all parts.
   */
  async trainStage(o: {
    stage: StageName;
    task: Pick<TrainingGraphOptions, 'graph' | 'loss' | 'metrics'> & {
      emaPairs?: readonly (readonly [string, string])[];
    };
    emaAlpha?: number;
    steps: number;
    /** A constant rate or one per (1-based) step: `stageLr(schedule)`. */
    lr: number | ((step: number) => number);
    batch: (rng: SeededRng) => Batch;
    extra?: ReadonlyMap<string, Float32Array>;
    part?: { name: string; index: number; count: number };
    /** Progress of a stage that does other work too: steps done before the parts, and its total. */
    progress?: { before: number; total: number };
  }): Promise<void> {
    const { graph, loss, metrics, emaPairs } = o.task;
    if (o.stage !== 'distill-sam') await loadFields(this);
    const built = buildTrainingGraph({
      graph,
      loss,
      ...(metrics ? { metrics } : {}),
      optimizer: OPTIMIZER,
      ...(emaPairs && o.emaAlpha !== undefined
        ? { ema: { pairs: emaPairs, alpha: o.emaAlpha } }
        : {}),
    });
    const init = graph.initialParams(this.plan.seeds.init);
    for (const [k, v] of this.params) if (init.has(k)) init.set(k, v);
    for (const [k, v] of o.extra ?? []) if (init.has(k)) init.set(k, v);
    const part = o.part;
    const ckpt = join(this.paths.checkpoints, `${o.stage}${part ? `-${part.name}` : ''}.ckpt`);
    const profiler = this.profiler(part ? `${o.stage}-${part.name}` : o.stage);
    const trainer = await Trainer.create(built, {
      provider: this.provider,
      seed: this.plan.seeds.data + this.stageIndex(o.stage) + 100 * (part?.index ?? 0),
      initialState: init,
      intraOpNumThreads: 2,
      allowSpinning: this.input.spin ?? false,
      ...profiler?.trainerOptions(),
    });
    profiler?.attach(trainer);
    const batch = (_step: number, rng: SeededRng): Batch => o.batch(rng);
    try {
      if (existsSync(ckpt)) {
        await trainer.loadCheckpoint(ckpt);
        this.say(
          `[${o.stage}${part ? ` ${part.name}` : ''}] resuming from step ${trainer.stepsCompleted} of ${o.steps}`,
        );
      }
      await trainer.train({
        steps: Math.max(0, o.steps - trainer.stepsCompleted),
        lr: o.lr,
        batch: profiler ? profiler.batch(batch) : batch,
        checkpoint: { path: ckpt, every: Math.max(1, Math.min(50, Math.ceil(o.steps / 4))) },
        signal: this.input.signal,
        onStep: (r) => {
          this.progress(o.stage, {
            step: (o.progress?.before ?? 0) + (part?.index ?? 0) * o.steps + r.step,
            total: o.progress?.total ?? (part?.count ?? 1) * o.steps,
            loss: r.loss,
            metrics: r.metrics,
          });
          profiler?.step(r);
        },
      });
      await this.reportProfile(profiler);
      if (trainer.stepsCompleted < o.steps) {
        await trainer.saveCheckpoint(ckpt);
        throw new StageAbortedError(o.stage, trainer.stepsCompleted, o.steps, ckpt);
      }
      for (const [k, v] of await trainer.readParams()) {
        if (!k.startsWith(`${EG_REFERENCE}.`)) this.params.set(k, v.data);
      }
    } finally {
      await trainer.dispose();
    }
  }
}
