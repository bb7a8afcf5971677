/**
 * Export: eval-model.onnx, then model.onnx + metadata.json (written last, atomically). The
 * published output is the full pipeline (medical branch + auto-prompting decoder) unless the
 * decoder made the segmentation of the atlas — the one volume with true labels — clearly worse
 * than the medical branch alone (an under-trained decoder): then the model publishes the branch,
 * with a notice that says so and gives both scores.
 */
import * as ort from 'onnxruntime-node';
import { exportRrlEvalModel, exportRrlModel } from '../export.js';
import { dice } from '../metrics.js';
import { argmaxClasses } from '../pseudoLabels.js';
import { rrlInferenceNet } from '../networks.js';
import type { Run, StageOutcome } from './run.js';
import { type Params, atomicWrite } from './run.js';

/** The decoder may score this much below the branch on the atlas before the branch is published. */
export const DECODER_TOLERANCE = 0.02;

/** Mean Dice over the foreground classes of two label volumes. */
function meanDice(pred: Uint8Array, truth: Uint8Array, classes: number): number {
  let sum = 0;
  for (let c = 1; c < classes; c++) sum += dice(pred, truth, c);
  return sum / Math.max(1, classes - 1);
}

/** The atlas segmented by the full pipeline and by the medical branch, scored against its labels. */
async function atlasScores(
  run: Run,
  evalModel: Uint8Array,
): Promise<{ full: number; medical: number }> {
  const session = await ort.InferenceSession.create(evalModel, {
    executionProviders: ['cpu'],
    logSeverityLevel: 3,
  });
  try {
    const image = new ort.Tensor('float32', run.input.atlas.image, [
      1,
      run.args.inChannels,
      ...run.grid,
    ]);
    const out = await session.run({ image }, ['logits', 'medicalLogits']);
    const classes = run.plan.classes;
    const truth = run.input.atlas.labels;
    const labels = (name: string) => argmaxClasses(out[name]!.data as Float32Array, classes);
    return {
      full: meanDice(labels('logits'), truth, classes),
      medical: meanDice(labels('medicalLogits'), truth, classes),
    };
  } finally {
    await session.release();
  }
}

export async function exportStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const net = rrlInferenceNet(run.args, run.grid);
  const init = net.graph.initialParams(p.seeds.init);
  const params: Params = new Map();
  for (const [k, v] of init) params.set(k, run.params.get(k) ?? v);
  const evalModel = exportRrlEvalModel({ args: run.args, grid: run.grid, params });
  const decoderTrained = !!run.done('decoder') && !run.done('decoder')!.skipped;
  let head: 'full' | 'medical' = 'full';
  if (decoderTrained) {
    const s = await atlasScores(run, evalModel);
    run.say(
      `[export] atlas mean Dice: full pipeline ${s.full.toFixed(3)}, medical branch ${s.medical.toFixed(3)}`,
    );
    if (s.full < s.medical - DECODER_TOLERANCE) {
      head = 'medical';
      const notice =
        `the auto-prompting decoder lowered the atlas's mean Dice from ${s.medical.toFixed(3)} ` +
        `(medical branch) to ${s.full.toFixed(3)}: the published model is the medical branch ` +
        'without the decoder (train the decoder longer to use it)';
      if (!run.state.notices.includes(notice)) run.state.notices.push(notice);
      run.say(`[export] ${notice}`);
    }
  }
  const { onnx, metadata } = exportRrlModel({
    head,
    args: run.args,
    grid: run.grid,
    params,
    spacing: [...p.preprocess.spacing],
    info: { ...run.input.info, intensity: { ...p.preprocess.intensity } },
    notices: run.state.notices,
    resample: p.preprocess.resample,
  });
  run.progress('export', { step: 1, total: 3 });
  await atomicWrite(run.paths.evalModel, evalModel);
  run.progress('export', { step: 2, total: 3 });
  await atomicWrite(run.paths.model, onnx);
  await atomicWrite(run.paths.metadata, `${JSON.stringify(metadata, null, 2)}\n`);
  run.progress('export', { step: 3, total: 3 });
  return { steps: 0 };
}
