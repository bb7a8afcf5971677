/** Decoder stage: the auto-prompting decoder alone (everything else frozen). */
import type { Run, StageOutcome } from './run.js';
import { ignoresDisagreement, stageLr, type StageSchedule } from '../plan.js';
import { apDecoderTask } from '../tasks.js';
import { segBatch } from './sampling.js';
import type { StageName } from './types.js';

export async function decoderStage(run: Run): Promise<StageOutcome> {
  const sched = run.plan.schedule.decoder;
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.decoder.steps is 0' };
  await trainDecoder(run, 'decoder', sched);
  return { steps: sched.steps };
}

/** The AP decoder alone (everything else frozen) on the pseudo labels. */
export async function trainDecoder(
  run: Run,
  stage: StageName,
  sched: StageSchedule,
): Promise<void> {
  const p = run.plan;
  const t = apDecoderTask(run.args, run.grid, {
    dice: p.loss.dice,
    crossEntropy: p.loss.crossEntropy,
    consistency: p.loss.decoderConsistency,
    ignoreEmptyTarget: ignoresDisagreement(p),
  });
  await run.trainStage({
    stage,
    task: t,
    steps: sched.steps,
    lr: stageLr(sched),
    batch: (rng) => segBatch(run, rng),
  });
}
