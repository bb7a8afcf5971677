/** Stage 2 of the distillation: E_g and its head on the task volumes (pseudo labels; the atlas: true labels), with an L1 feature-matching term to the frozen stage-1 E_g when stage 1 ran. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { crossFitFoldCount, relabelSteps, stageLr } from '../plan.js';
import { branchSegmentationTask, EG_REFERENCE, taskDistillationTask } from '../tasks.js';
import type { Run, StageOutcome } from './run.js';
import { type Params, loadParams, saveParams } from './run.js';
import { segBatch } from './sampling.js';

/**
 * What an E_g student trains: E_g + head with Dice + cross-entropy on the (pseudo) labels, and
 * when stage 1 ran the L1 term to the frozen stage-1 E_g (`extra`: its parameters).
 */
export async function studentTask(
  run: Run,
): Promise<{ task: ReturnType<typeof branchSegmentationTask>; extra?: Params }> {
  const p = run.plan;
  const w = { dice: p.loss.dice, crossEntropy: p.loss.crossEntropy };
  const stage1 = run.done('distill-sam');
  if (stage1 === undefined || stage1.skipped) {
    return { task: branchSegmentationTask(run.args, run.grid, 'eg', w) };
  }
  const task = taskDistillationTask(run.args, run.grid, {
    ...w,
    featureWeight: p.loss.distillation,
  });
  const snap = await loadParams(join(run.paths.checkpoints, 'after-distill-sam.params'));
  const extra = new Map(
    [...snap]
      .filter(([k]) => k.startsWith('eg.'))
      .map(([k, v]) => [`${EG_REFERENCE}.${k.slice(3)}`, v]),
  );
  return { task, extra };
}

export async function distillTaskStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const sched = p.schedule.distillTask;
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.distillTask.steps is 0' };
  const { task: t, extra } = await studentTask(run);
  const folds = crossFitFolds(run);
  if (folds.length === 0 && run.plan.crossFit) {
    run.say(
      run.plan.schedule.joint.steps === 0
        ? '[distill-task] cross-fitting serves the joint stage, which this plan skips (schedule.joint.steps 0): one student on all volumes'
        : `[distill-task] cross-fitting needs at least 2 unlabelled volumes (${run.input.unlabeled.length} given): one student on all of them`,
    );
  }
  if (folds.length === 0) {
    await run.trainStage({
      stage: 'distill-task',
      task: t,
      steps: sched.steps,
      lr: stageLr(sched),
      batch: (rng) => segBatch(run, rng),
      ...(extra ? { extra } : {}),
    });
    return { steps: sched.steps };
  }
  // Cross-fitting: one student per fold, trained without the fold's volumes; each is saved for
  // the joint stage's predictions, and the first one goes on to the mutual stage.
  const before = new Map(run.params);
  let first: Params | undefined;
  for (const [f, held] of folds.entries()) {
    const file = crossFitParamsFile(run, f);
    if (!existsSync(file)) {
      run.params = new Map(before);
      const volumes = run.input.unlabeled.map((_, k) => k).filter((k) => !held.includes(k));
      run.say(
        `[distill-task] cross-fitting student ${f + 1} of ${folds.length}: ${volumes.length} volumes, ${held.length} held out`,
      );
      await run.trainStage({
        stage: 'distill-task',
        task: t,
        steps: sched.steps,
        lr: stageLr(sched),
        batch: (rng) => segBatch(run, rng, volumes),
        ...(extra ? { extra } : {}),
        part: { name: `fold${f}`, index: f, count: folds.length },
      });
      await saveParams(file, run.params);
    }
    if (f === 0) first = await loadParams(file);
  }
  run.params = first!;
  return { steps: sched.steps * folds.length };
}

/**
 * The cross-fitting folds of a run (plan.crossFit; none without it, or when the plan skips the
 * joint stage that uses them): fold f holds the unlabelled volumes k with k mod folds = f. Never
 * more folds than volumes.
 */
export function crossFitFolds(run: Run): number[][] {
  const n = run.input.unlabeled.length;
  const k = Math.min(crossFitFoldCount(run.plan), n);
  if (k < 2) return [];
  return Array.from({ length: k }, (_, f) =>
    run.input.unlabeled.map((_, i) => i).filter((i) => i % k === f),
  );
}

/**
 * Steps per student of the joint stage's relabelling round in this run (`crossFit.relabelSteps`;
 * 0 when the run has no cross-fitting folds).
 */
export function relabelRoundSteps(run: Run): number {
  return crossFitFolds(run).length > 0 ? relabelSteps(run.plan) : 0;
}

/** Parameters of cross-fitting student `f` (E_g and its head), kept for the joint stage. */
export function crossFitParamsFile(run: Run, f: number): string {
  return join(run.paths.checkpoints, `distill-task-fold${f}.params`);
}
