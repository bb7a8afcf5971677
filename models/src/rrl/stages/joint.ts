/** Joint stage: the registration network fine-tuned with a segmentation term; the pseudo labels fused with E_g's predictions. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calibratesVolumes, ignoresDisagreement, multiAtlasNeighbours, stageLr } from '../plan.js';
import { argmaxClasses, IGNORE_LABEL } from '../pseudoLabels.js';
import { runRegistrationStage } from '../registration.js';
import type { Run, StageOutcome } from './run.js';
import { atomicWrite, loadParams, saveParams } from './run.js';
import { predictions, pseudoFile, switchPseudoLabels } from './pseudoLabelFiles.js';
import {
  loadSavedRegistration,
  saveField,
  saveRegistration,
  warpAtlasAll,
} from './registrationFiles.js';
import {
  crossFitFolds,
  crossFitParamsFile,
  relabelRoundSteps,
  studentTask,
} from './distill-task.js';
import { multiAtlasRound } from './multiAtlas.js';
import { segBatch } from './sampling.js';
import { calibratedLabels, classCounts, volumeOffsets } from '../volumeCalibration.js';

/**
 * E_g's softmax of every unlabelled volume: from the current E_g, or with cross-fitting from the
 * student of the volume's fold (one that never trained on it).
 */
async function generalPredictions(run: Run): Promise<Float32Array[]> {
  const folds = crossFitFolds(run);
  if (folds.length === 0) {
    run.say('[joint] E_g predictions of the unlabelled volumes');
    return predictions(run, ['generalLogits'], 'joint');
  }
  run.say(
    `[joint] E_g predictions of the unlabelled volumes by ${folds.length} cross-fitted students`,
  );
  const out: Float32Array[] = new Array<Float32Array>(run.input.unlabeled.length);
  for (const [f, held] of folds.entries()) {
    const params = await loadParams(crossFitParamsFile(run, f));
    const probs = await predictions(run, ['generalLogits'], 'joint', { params, volumes: held });
    for (const [i, k] of held.entries()) out[k] = probs[i]!;
  }
  return out;
}

/** The joint stage's registration's own labels of volume `k` (kept for `ignoreDisagreement`). */
function registrationLabelsFile(run: Run, k: number): string {
  return pseudoFile(run, run.input.unlabeled[k]!.id, 'joint-registration');
}

/**
 * Joint registration–segmentation refinement: the registration net is fine-tuned with the
 * extra term weight·(1 − soft Dice(warped atlas labels, E_g softmax)), then the pseudo labels
 * are recomputed and fused with the branch: argmax((1 − f)·warped one-hot + f·softmax).
 */
export async function jointStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const sched = p.schedule.joint;
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.joint.steps is 0' };
  const saved = await loadSavedRegistration(run);
  // Fine-tune from the registration stage's weights (the joint checkpoint wins on resume).
  // Snapshot of the registration stage's weights (registration/ is overwritten at the end).
  const snap = join(run.paths.checkpoints, 'registration-final.params');
  if (!existsSync(snap)) await saveParams(snap, saved.params);
  const initial = await loadParams(snap);
  const general = await generalPredictions(run);
  const folds = crossFitFolds(run);
  const relabel = relabelRoundSteps(run);
  const total = sched.steps + relabel * folds.length;
  const profiler = run.profiler('joint');
  const reg = await runRegistrationStage({
    grid: run.grid,
    classes: p.classes,
    atlasImage: run.input.atlas.image,
    atlasLabels: run.input.atlas.labels,
    targets: run.input.unlabeled.map((u) => u.image),
    args: saved.args,
    steps: sched.steps,
    lr: stageLr(sched),
    seed: p.seeds.init + run.stageIndex('joint'),
    provider: run.provider,
    initialParams: initial,
    jointSegmentation: { weight: p.loss.registrationSegmentation, predictions: general },
    checkpoint: {
      path: join(run.paths.checkpoints, 'joint.ckpt'),
      every: Math.max(1, Math.min(50, Math.ceil(sched.steps / 4))),
    },
    signal: run.input.signal,
    pseudoLabels: false,
    ...(profiler ? { profiler } : {}),
    spin: run.input.spin ?? false,
    ...(p.registrationPrealign ? { prealign: p.registrationPrealign } : {}),
    onProgress: (q) =>
      run.progress('joint', { step: q.step, total, loss: q.loss, metrics: q.metrics }),
  });
  await run.reportProfile(profiler);
  const f = p.jointFusion;
  // parsePlan refuses the weight without registrationRefine
  const towards = p.loss.refineSegmentation ?? 0;
  if (towards > 0) {
    run.say(
      `[joint] per-volume refinement towards E_g's prediction too (soft-Dice weight ${towards})`,
    );
  }
  const C = p.classes;
  const m = run.voxels;
  const file = (k: number): string => pseudoFile(run, run.input.unlabeled[k]!.id, 1);
  // With ignoreDisagreement the registration's own labels are kept for the relabelling round.
  const keepRegistration = ignoresDisagreement(p);
  await warpAtlasAll(run, reg.params, reg.args, {
    what: 'joint (pseudo labels)',
    of: 'joint',
    steps: sched.steps,
    exists: (k) =>
      existsSync(file(k)) && (!keepRegistration || existsSync(registrationLabelsFile(run, k))),
    ...(towards > 0
      ? { towards: (k: number) => ({ probabilities: general[k]!, weight: towards }) }
      : {}),
    save: async (k, r, pre) => {
      await saveField(run, k, r.displacement, pre);
      if (keepRegistration)
        await atomicWrite(registrationLabelsFile(run, k), argmaxClasses(r.probabilities, C));
      const fused = new Float32Array(C * m);
      const pr = general[k]!;
      for (let i = 0; i < C * m; i++) fused[i] = (1 - f) * r.probabilities[i]! + f * pr[i]!;
      await atomicWrite(file(k), argmaxClasses(fused, C));
    },
  });
  await saveRegistration(run, reg.params, reg.args, {
    steps: p.schedule.registration.steps,
    jointSteps: sched.steps,
  });
  run.fields = undefined; // the joint registration's displacements replace the first ones
  const changed = await switchPseudoLabels(run, 1);
  run.say(`[joint] fused pseudo labels (branch weight ${f}): ${changed} of voxels changed`);
  if (relabel > 0) await relabelRound(run, folds, relabel, sched.steps, total);
  if (multiAtlasNeighbours(p, 'joint') > 0) await multiAtlasRound(run, 'joint', reg, total);
  return { steps: total };
}

/**
 * The relabelling round (`crossFit.relabelSteps`): each fold's student, fine-tuned on the joint
 * stage's pseudo labels of the volumes outside its fold (data seed + 100·fold, checkpoint
 * `joint-relabel<f>.ckpt`, parameters `checkpoints/relabel-fold<f>.params`), labels its held-out
 * volumes (argmax of its softmax; `pseudo-labels/<id>.r1-relabel.u8`). Those labels replace the
 * joint stage's for the mutual and decoder stages; the E_g that goes on to the mutual stage stays
 * the first distill-task student. A cancelled round resumes in the student it stopped in.
 */
async function relabelRound(
  run: Run,
  folds: number[][],
  steps: number,
  before: number,
  total: number,
): Promise<void> {
  const { task, extra } = await studentTask(run);
  const sched = run.plan.schedule.distillTask;
  const keep = run.params;
  const file = (k: number): string => pseudoFile(run, run.input.unlabeled[k]!.id, 'relabel');
  const ignore = ignoresDisagreement(run.plan);
  const calibrate = calibratesVolumes(run.plan);
  try {
    for (const [f, held] of folds.entries()) {
      if (held.every((k) => existsSync(file(k)))) continue;
      const paramsFile = join(run.paths.checkpoints, `relabel-fold${f}.params`);
      if (!existsSync(paramsFile)) {
        run.params = await loadParams(crossFitParamsFile(run, f));
        const volumes = run.input.unlabeled.map((_, k) => k).filter((k) => !held.includes(k));
        run.say(
          `[joint] relabelling student ${f + 1} of ${folds.length}: ${steps} steps on the new pseudo labels of ${volumes.length} volumes, then labels the ${held.length} held out`,
        );
        await run.trainStage({
          stage: 'joint',
          task,
          steps,
          lr: stageLr({ ...sched, steps }),
          batch: (rng) => segBatch(run, rng, volumes),
          ...(extra ? { extra } : {}),
          part: { name: `relabel${f}`, index: f, count: folds.length },
          progress: { before, total },
        });
        await saveParams(paramsFile, run.params);
      }
      const params = await loadParams(paramsFile);
      const probs = await predictions(run, ['generalLogits'], 'joint', { params, volumes: held });
      const calibrated = calibrate
        ? await calibrateToRegistration(run, probs, held, `student ${f + 1}`)
        : undefined;
      for (const [i, k] of held.entries()) {
        const labels = calibrated?.[i] ?? argmaxClasses(probs[i]!, run.plan.classes);
        if (ignore) markDisagreement(labels, await readFile(registrationLabelsFile(run, k)));
        await atomicWrite(file(k), labels);
      }
    }
  } finally {
    run.params = keep;
  }
  const changed = await switchPseudoLabels(run, 'relabel');
  run.say(`[joint] relabelled by the held-out students: ${changed} of voxels changed`);
  if (ignore) {
    let n = 0;
    for (const b of run.pseudo) for (const l of b) if (l === IGNORE_LABEL) n++;
    const share = ((100 * n) / (run.voxels * Math.max(1, run.pseudo.length))).toFixed(2);
    run.say(
      `[joint] ${share} % of voxels left out of the mutual and decoder stages' losses: the relabelled label and the registration's disagree there`,
    );
  }
}

/**
 * The labels of the volumes `held` from their probabilities `probs`, with the class offsets that
 * make each class's voxels over them add up to their registration labels' (round 0); says the
 * volume ratio (argmax ÷ registration) that the offsets correct.
 */
async function calibrateToRegistration(
  run: Run,
  probs: readonly Float32Array[],
  held: readonly number[],
  who: string,
): Promise<Uint8Array[]> {
  const C = run.plan.classes;
  const registration: Uint8Array[] = [];
  for (const k of held) {
    registration.push(
      new Uint8Array(await readFile(pseudoFile(run, run.input.unlabeled[k]!.id, 0))),
    );
  }
  const target = classCounts(registration, C);
  const before = classCounts(
    probs.map((p) => argmaxClasses(p, C)),
    C,
  );
  const offsets = volumeOffsets(probs, C, target);
  const labels = calibratedLabels(probs, C, offsets);
  const after = classCounts(labels, C);
  // foreground classes only (class 0's offset is 0)
  const ratio = (n: number[]): string =>
    n
      .slice(1)
      .map((v, c) => (target[c + 1]! > 0 ? (v / target[c + 1]!).toFixed(3) : '–'))
      .join(', ');
  const logOffsets = [...offsets.slice(1)].map((o) => o.toFixed(3)).join(', ');
  run.say(
    `[joint] ${who}: class volumes ÷ the registration's [${ratio(before)}] → [${ratio(after)}] (log offsets ${logOffsets})`,
  );
  return labels;
}

/** Marks `IGNORE_LABEL` where `labels` and the registration's `reference` differ (in place). */
export function markDisagreement(labels: Uint8Array, reference: Uint8Array): void {
  if (reference.length !== labels.length) {
    throw new Error(
      `markDisagreement: the registration's labels have ${reference.length} voxels, the relabelled ${labels.length}; use a new output folder`,
    );
  }
  for (let i = 0; i < labels.length; i++) if (labels[i] !== reference[i]) labels[i] = IGNORE_LABEL;
}
