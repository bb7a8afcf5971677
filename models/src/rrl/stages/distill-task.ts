/** Stage 2 of the distillation: E_g and its head on the task volumes (pseudo labels; the atlas: true labels), with an L1 feature-matching term to the frozen stage-1 E_g when stage 1 ran. */
import { join } from 'node:path';
import { stageLr } from '../plan.js';
import { branchSegmentationTask, EG_REFERENCE, taskDistillationTask } from '../tasks.js';
import type { Run, StageOutcome } from './run.js';
import { type Params, loadParams } from './run.js';
import { segBatch } from './sampling.js';

export async function distillTaskStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const sched = p.schedule.distillTask;
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.distillTask.steps is 0' };
  const w = { dice: p.loss.dice, crossEntropy: p.loss.crossEntropy };
  const stage1 = run.done('distill-sam');
  const withRef = stage1 !== undefined && !stage1.skipped;
  let extra: Params | undefined;
  let t;
  if (withRef) {
    t = taskDistillationTask(run.args, run.grid, { ...w, featureWeight: p.loss.distillation });
    const snap = await loadParams(join(run.paths.checkpoints, 'after-distill-sam.params'));
    extra = new Map(
      [...snap]
        .filter(([k]) => k.startsWith('eg.'))
        .map(([k, v]) => [`${EG_REFERENCE}.${k.slice(3)}`, v]),
    );
  } else {
    t = branchSegmentationTask(run.args, run.grid, 'eg', w);
  }
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
