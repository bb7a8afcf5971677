/** Self-training decoder: the auto-prompting decoder after the self-training round. */
import type { Run, StageOutcome } from './run.js';
import { trainDecoder } from './decoder.js';

export async function selfTrainingDecoderStage(run: Run): Promise<StageOutcome> {
  const st = run.plan.selfTraining;
  if (!st) return { steps: 0, skipped: 'the plan has no selfTraining' };
  if (st.decoder.steps === 0) return { steps: 0, skipped: 'selfTraining.decoder.steps is 0' };
  await trainDecoder(run, 'self-training-decoder', st.decoder);
  return { steps: st.decoder.steps };
}
