/** Mutual stage: both branches supervised by the labels and by each other, with the mutual EMA between the general and the medical encoder. */
import type { Run, StageOutcome } from './run.js';
import { ignoresDisagreement, stageLr, type StageSchedule } from '../plan.js';
import { mutualTask } from '../tasks.js';
import { segBatch } from './sampling.js';
import type { StageName } from './types.js';

export async function mutualStage(run: Run): Promise<StageOutcome> {
  const sched = run.plan.schedule.mutual;
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.mutual.steps is 0' };
  await trainMutual(run, 'mutual', sched);
  return { steps: sched.steps };
}

/** Both branches on the pseudo labels, mutual supervision and mutual EMA (mutual task). */
export async function trainMutual(run: Run, stage: StageName, sched: StageSchedule): Promise<void> {
  const p = run.plan;
  const t = mutualTask(run.args, run.grid, {
    dice: p.loss.dice,
    crossEntropy: p.loss.crossEntropy,
    mutual: p.loss.mutual,
    ignoreEmptyTarget: ignoresDisagreement(p),
  });
  await run.trainStage({
    stage,
    task: t,
    emaAlpha: p.schedule.mutual.emaAlpha,
    steps: sched.steps,
    lr: stageLr(sched),
    batch: (rng) => segBatch(run, rng),
  });
}
