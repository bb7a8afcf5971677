/** Mutual stage: both branches supervised by the labels and by each other, with the mutual EMA between the general and the medical encoder. */
import type { Run, StageOutcome } from './run.js';

export async function mutualStage(run: Run): Promise<StageOutcome> {
  const sched = run.plan.schedule.mutual;
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.mutual.steps is 0' };
  await run.trainMutual('mutual', sched);
  return { steps: sched.steps };
}
