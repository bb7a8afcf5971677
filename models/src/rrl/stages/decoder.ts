/** Decoder stage: the auto-prompting decoder alone (everything else frozen). */
import type { Run, StageOutcome } from './run.js';

export async function decoderStage(run: Run): Promise<StageOutcome> {
  const sched = run.plan.schedule.decoder;
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.decoder.steps is 0' };
  await run.trainDecoder('decoder', sched);
  return { steps: sched.steps };
}
