/** Self-training: the unlabelled volumes relabelled by registration and the model, then both branches fine-tuned on the new labels (skipped when the plan has no selfTraining). */
import { existsSync } from 'node:fs';
import { argmaxClasses } from '../pseudoLabels.js';
import type { Run, StageOutcome } from './run.js';
import { atomicWrite } from './run.js';
import { predictions, pseudoFile, switchPseudoLabels } from './pseudoLabelFiles.js';
import { loadSavedRegistration, prealigned, warpAtlas } from './registrationFiles.js';
import { trainMutual } from './mutual.js';

/**
 * Self-training round: every unlabelled volume is relabelled with
 * argmax((1 − fusion)·registration softmax + fusion·model softmax), where the model's is the
 * mean of the medical branch's and the full pipeline's (the refined registration as in the
 * joint stage); then both branches are fine-tuned on these labels with the mutual task.
 */
export async function selfTrainingStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const st = p.selfTraining;
  if (!st) return { steps: 0, skipped: 'the plan has no selfTraining' };
  const need = run.input.unlabeled.some((u) => !existsSync(pseudoFile(run, u.id, 2)));
  if (need) {
    run.say('[self-training] model predictions of the unlabelled volumes');
    const model = await predictions(run, ['medicalLogits', 'logits'], 'self-training');
    const reg = await loadSavedRegistration(run);
    const pre = prealigned(run);
    const C = p.classes;
    const m = run.voxels;
    const f = st.fusion;
    for (const [k, u] of run.input.unlabeled.entries()) {
      run.checkAbort('self-training');
      const file = pseudoFile(run, u.id, 2);
      if (existsSync(file)) continue;
      const r = await warpAtlas(run, pre, reg.params, reg.args, k);
      const fused = new Float32Array(C * m);
      const pr = model[k]!;
      for (let i = 0; i < C * m; i++) fused[i] = (1 - f) * r.probabilities[i]! + f * pr[i]!;
      await atomicWrite(file, argmaxClasses(fused, C));
      run.progress(
        'pseudo-labels',
        { step: k + 1, total: run.input.unlabeled.length },
        'self-training',
      );
    }
  }
  const changed = await switchPseudoLabels(run, 2);
  run.say(`[self-training] relabelled (model weight ${st.fusion}): ${changed} of voxels changed`);
  if (st.mutual.steps > 0) await trainMutual(run, 'self-training', st.mutual);
  return { steps: st.mutual.steps };
}
