/**
 * Export: eval-model.onnx, then model.onnx + metadata.json (written last, atomically). The
 * published output is the full pipeline (medical branch + auto-prompting decoder) unless the
 * decoder made the segmentation of the atlas — the one volume with true labels — clearly worse
 * than the medical branch alone (an under-trained decoder): then the model publishes the branch,
 * with a notice that says so and gives both scores.
 *
 * A label-free check follows (issue 19), its scores always on the model card: the published
 * head's mean Dice against the atlas labels and against the registration's labels of the
 * unlabelled volumes. With `plan.registrationFallback` and either score below its `minDice`, the
 * network did not learn the task, and the published model is the registration path instead
 * (`exportRegistrationModel`: the atlas labels warped by the registration network).
 */
import * as ort from 'onnxruntime-node';
import { readFile } from 'node:fs/promises';
import { exportRegistrationModel, exportRrlEvalModel, exportRrlModel } from '../export.js';
import { dice } from '../metrics.js';
import { argmaxClasses } from '../pseudoLabels.js';
import { rrlInferenceNet } from '../networks.js';
import type { Run, StageOutcome } from './run.js';
import { type Params, atomicWrite } from './run.js';
import { pseudoFile } from './pseudoLabelFiles.js';
import { loadSavedRegistration } from './registrationFiles.js';

/** The decoder may score this much below the branch on the atlas before the branch is published. */
export const DECODER_TOLERANCE = 0.02;

/** Mean Dice over the foreground classes of two label volumes. */
function meanDice(pred: Uint8Array, truth: Uint8Array, classes: number): number {
  let sum = 0;
  for (let c = 1; c < classes; c++) sum += dice(pred, truth, c);
  return sum / Math.max(1, classes - 1);
}

type Head = 'full' | 'medical';
const OUTPUT: Record<Head, string> = { full: 'logits', medical: 'medicalLogits' };

/**
 * Both heads' segmentations scored without a test label: against the atlas labels (the one
 * volume with true labels; the network trained on it) and against the registration's labels of
 * every unlabelled volume (round 0, before any network touched them; mean over the volumes).
 */
async function labelFreeScores(
  run: Run,
  evalModel: Uint8Array,
): Promise<Record<Head, { atlas: number; registration: number }>> {
  const session = await ort.InferenceSession.create(evalModel, {
    executionProviders: ['cpu'],
    logSeverityLevel: 3,
  });
  const classes = run.plan.classes;
  const segment = async (image: Float32Array): Promise<Record<Head, Uint8Array>> => {
    const feed = new ort.Tensor('float32', image, [1, run.args.inChannels, ...run.grid]);
    const out = await session.run({ image: feed }, [OUTPUT.full, OUTPUT.medical]);
    const labels = (h: Head) => argmaxClasses(out[OUTPUT[h]]!.data as Float32Array, classes);
    return { full: labels('full'), medical: labels('medical') };
  };
  try {
    const atlas = await segment(run.input.atlas.image);
    const reg = { full: 0, medical: 0 };
    const n = run.input.unlabeled.length;
    for (const u of run.input.unlabeled) {
      run.checkAbort('export');
      const truth = new Uint8Array(await readFile(pseudoFile(run, u.id, 0)));
      const seg = await segment(u.image);
      for (const h of ['full', 'medical'] as const) {
        reg[h] += meanDice(seg[h], truth, classes) / n;
      }
    }
    const truth = run.input.atlas.labels;
    return {
      full: { atlas: meanDice(atlas.full, truth, classes), registration: reg.full },
      medical: { atlas: meanDice(atlas.medical, truth, classes), registration: reg.medical },
    };
  } finally {
    await session.release();
  }
}

function addNotice(run: Run, notice: string): void {
  if (!run.state.notices.includes(notice)) run.state.notices.push(notice);
  run.say(`[export] ${notice}`);
}

export async function exportStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const net = rrlInferenceNet(run.args, run.grid);
  const init = net.graph.initialParams(p.seeds.init);
  const params: Params = new Map();
  for (const [k, v] of init) params.set(k, run.params.get(k) ?? v);
  const evalModel = exportRrlEvalModel({ args: run.args, grid: run.grid, params });
  const decoderTrained = !!run.done('decoder') && !run.done('decoder')!.skipped;
  const scores = await labelFreeScores(run, evalModel);
  let head: Head = 'full';
  if (decoderTrained) {
    const s = { full: scores.full.atlas, medical: scores.medical.atlas };
    run.say(
      `[export] atlas mean Dice: full pipeline ${s.full.toFixed(3)}, medical branch ${s.medical.toFixed(3)}`,
    );
    if (s.full < s.medical - DECODER_TOLERANCE) {
      head = 'medical';
      addNotice(
        run,
        `the auto-prompting decoder lowered the atlas's mean Dice from ${s.medical.toFixed(3)} ` +
          `(medical branch) to ${s.full.toFixed(3)}: the published model is the medical branch ` +
          'without the decoder (train the decoder longer to use it)',
      );
    }
  }
  const check = scores[head];
  const bar = p.registrationFallback?.minDice;
  const fallback = bar !== undefined && Math.min(check.atlas, check.registration) < bar;
  addNotice(
    run,
    `label-free check: the network's mean Dice is ${check.atlas.toFixed(3)} against the atlas ` +
      `labels and ${check.registration.toFixed(3)} against the registration's labels of the ` +
      `${run.input.unlabeled.length} unlabelled volume${run.input.unlabeled.length === 1 ? '' : 's'}` +
      (bar === undefined
        ? ' (the plan sets no bar: the network is published)'
        : fallback
          ? `, below the plan's bar of ${bar}: the network did not learn this task, so the ` +
            'published model is the registration (the atlas labels warped onto the study by the ' +
            'registration network, without per-volume refinement). Train with more unlabelled ' +
            'volumes or more steps to publish a network'
          : `, at least the plan's bar of ${bar}: the network is published`),
  );
  const common = {
    grid: run.grid,
    spacing: [...p.preprocess.spacing] as [number, number, number],
    info: { ...run.input.info, intensity: { ...p.preprocess.intensity } },
    notices: run.state.notices,
    resample: p.preprocess.resample,
  };
  const { onnx, metadata } = fallback
    ? exportRegistrationModel({
        ...common,
        registration: await loadSavedRegistration(run),
        classes: p.classes,
        atlasImage: run.input.atlas.image,
        atlasLabels: run.input.atlas.labels,
      })
    : exportRrlModel({ ...common, head, args: run.args, params });
  run.progress('export', { step: 1, total: 3 });
  await atomicWrite(run.paths.evalModel, evalModel);
  run.progress('export', { step: 2, total: 3 });
  await atomicWrite(run.paths.model, onnx);
  await atomicWrite(run.paths.metadata, `${JSON.stringify(metadata, null, 2)}\n`);
  run.progress('export', { step: 3, total: 3 });
  return { steps: 0 };
}
