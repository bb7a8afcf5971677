/**
 * The whole RRL-MedSAM pipeline on a 16³ grid (models/plans/tiny.json) with synthetic volumes and
 * the generated stand-in teacher (so stage 1 runs): every stage's loss falls, the exported model
 * validates and runs, a run cancelled in the middle of a stage resumes without redoing finished
 * stages and ends where an uninterrupted run ends; a run without teacher records the notice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { validateMetadata } from '@rrl/core/format/metadata.js';
import { parsePlan, type RrlPlan } from '@rrl/models/rrl/plan.js';
import {
  loadRegistration,
  NO_TEACHER_NOTICE,
  plannedStages,
  runPipeline,
  type PipelineInput,
  type PipelineProgress,
} from '@rrl/models/rrl/pipeline.js';
import { buildStandInTeacher } from '@rrl/models/rrl/teacher.js';
import { Run } from '@rrl/models/rrl/stages/run.js';
import { crossFitFolds } from '@rrl/models/rrl/stages/distill-task.js';
import { sample, segBatch } from '@rrl/models/rrl/stages/sampling.js';
import { IGNORE_LABEL } from '@rrl/models/rrl/pseudoLabels.js';
import { SeededRng } from '@rrl/models/engine/runtime/rng.js';
import type { RrlModelInfo } from '@rrl/models/rrl/export.js';
import { loadParams, safeId } from '@rrl/models/rrl/stages/files.js';
import { texturedBlob } from './helpers.js';

const N = 16;
const m = N ** 3;
const tinyPlan = JSON.parse(
  readFileSync(new URL('../../../models/plans/tiny.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

function info(): RrlModelInfo {
  const label = (value: number, name: string): RrlModelInfo['labels'][number] => ({
    value,
    name,
    color: [200, 100 + value, 140],
    category: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
    type: { value: '5976005', scheme: 'SCT', meaning: 'Hippocampus' },
  });
  return {
    id: 'rrl-pipeline-test@0.0.1',
    name: 'RRL pipeline test',
    version: '0.0.1',
    task: 'blob',
    modalities: ['MR'],
    intensity: { method: 'zscore' },
    labels: [label(1, 'Upper half'), label(2, 'Lower half')],
    provenance: { createdAt: '2026-11-26T00:00:00Z', trainer: 'pipeline unit test' },
    changelog: [{ version: '0.0.1', date: '2026-11-26', changes: 'test' }],
  };
}

// Atlas labels: 1 = the blob's upper half, 2 = its lower half.
const atlasBlob = texturedBlob([N, N, N], [7, 7, 7]);
const atlas = { image: atlasBlob.image, labels: atlasBlob.halves };
const targets: [number, number, number][] = [
  [9, 7, 8],
  [5, 7, 6],
  [7, 9, 8],
];
const unlabeled = targets.map((c, k) => ({
  id: `case ${k}`,
  image: texturedBlob([N, N, N], c).image,
}));

function input(plan: RrlPlan, outDir: string, extra: Partial<PipelineInput> = {}): PipelineInput {
  return { plan, outDir, atlas, unlabeled, info: info(), provider: 'cpu', ...extra };
}

/** Loss of every step of every stage from training-log.jsonl (a resumed step overwrites). */
function logLosses(outDir: string): Map<string, number[]> {
  const byStage = new Map<string, Map<number, number>>();
  for (const line of readFileSync(join(outDir, 'training-log.jsonl'), 'utf8').split('\n')) {
    if (!line) continue;
    const r = JSON.parse(line) as { stage: string; step: number; loss?: number };
    if (r.loss === undefined) continue;
    if (!byStage.has(r.stage)) byStage.set(r.stage, new Map());
    byStage.get(r.stage)!.set(r.step, r.loss);
  }
  return new Map(
    [...byStage].map(([s, steps]) => [s, [...steps].sort((a, b) => a[0] - b[0]).map(([, l]) => l)]),
  );
}

const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;

async function runModel(file: string, image: Float32Array): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(file, { executionProviders: ['cpu'] });
  try {
    return await s.run({ image: new ort.Tensor('float32', image, [1, 1, N, N, N]) });
  } finally {
    await s.release();
  }
}

test('pipeline: all stages with the stand-in teacher, cancelled mid-stage and resumed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrl-pipeline-'));
  try {
    const teacher = join(dir, 'standin-teacher.onnx');
    writeFileSync(teacher, buildStandInTeacher(3));
    // with multi-atlas fusion: the registration's and the joint stage's last pseudo labels each
    // voted with 2 neighbours'
    const plan = parsePlan({
      ...tinyPlan,
      teacher,
      multiAtlas: { neighbours: 2, stages: ['joint', 'registration'] },
    });
    assert.deepEqual(plan.multiAtlas?.stages, ['registration', 'joint']);
    const out = join(dir, 'run');

    // 1. cancel in the middle of the mutual stage
    const ctrl = new AbortController();
    const first: PipelineProgress[] = [];
    await assert.rejects(
      runPipeline(
        input(plan, out, {
          signal: ctrl.signal,
          onProgress: (p) => {
            first.push(p);
            if (p.phase === 'mutual' && p.step === 5) ctrl.abort();
          },
        }),
      ),
      (e: Error) => e.name === 'AbortError' && /stage "mutual" after step 5 of 12/.test(e.message),
    );
    const stateAfterAbort = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as {
      stages: { stage: string; seconds: number }[];
    };
    assert.deepEqual(
      stateAfterAbort.stages.map((s) => s.stage),
      ['registration', 'distill-sam', 'distill-task', 'joint'],
    );
    assert.ok(existsSync(join(out, 'checkpoints', 'mutual.ckpt')));
    assert.ok(!existsSync(join(out, 'model.onnx')));
    assert.equal(
      first.filter((p) => p.phase === 'pseudo-labels' && p.stageIndex === 0).length,
      2 * unlabeled.length,
      'one pseudo-label event per unlabelled volume for the atlas, one for its fusion',
    );
    assert.ok(first.every((p) => p.stageCount === 9));
    assert.ok(
      first.some((p) => p.phase === 'joint' && p.stageIndex === 3 && p.loss !== undefined),
      'joint stage is the 4th',
    );
    assert.equal(
      first.filter((p) => p.phase === 'pseudo-labels' && p.stageIndex === 3).length,
      2 * unlabeled.length,
      'the joint stage recomputes one pseudo label per unlabelled volume, then fuses each',
    );
    for (const k of [0, 1, 2]) {
      assert.ok(existsSync(join(out, 'pseudo-labels', `case_${k}.r0-multi-atlas.u8`)));
      assert.ok(existsSync(join(out, 'pseudo-labels', `case_${k}.r1.u8`)));
      assert.ok(existsSync(join(out, 'pseudo-labels', `case_${k}.r1-multi-atlas.u8`)));
      assert.equal(
        readFileSync(join(out, 'fields', `case_${k}.f32`)).byteLength,
        3 * m * 4,
        'the displacement for synthetic samples is kept',
      );
    }

    // a lost displacement is recomputed from the saved (joint) registration on resume
    const field1 = join(out, 'fields', 'case_1.f32');
    const kept = readFileSync(field1);
    rmSync(field1);

    // the resumed mutual stage trains on the fused labels: without one of them it stops, naming it
    const fusedFile = join(out, 'pseudo-labels', 'case_2.r1-multi-atlas.u8');
    renameSync(fusedFile, `${fusedFile}.away`);
    await assert.rejects(
      runPipeline(input(plan, out)),
      /pseudo labels of case 2 are missing \(.*case_2\.r1-multi-atlas\.u8\)/,
    );
    renameSync(`${fusedFile}.away`, fusedFile);

    // 2. rerun: finished stages are not rerun, mutual continues at step 6
    const second: PipelineProgress[] = [];
    const lines: string[] = [];
    const result = await runPipeline(
      input(plan, out, { onProgress: (p) => second.push(p), log: (l) => lines.push(l) }),
    );
    assert.ok(
      lines.some((l) => /^training on (cpu|webgpu|cuda)\b/.test(l)),
      `the log says which provider trains: ${lines.slice(0, 3).join(' | ')}`,
    );
    const stagesRun = new Set(second.map((p) => p.phase));
    assert.deepEqual(
      [...stagesRun],
      ['mutual', 'decoder', 'pseudo-labels', 'self-training', 'self-training-decoder', 'export'],
    );
    assert.equal(
      second.filter((p) => p.phase === 'pseudo-labels' && p.stageIndex === 6).length,
      unlabeled.length,
      'self-training relabels every unlabelled volume',
    );
    for (const k of [0, 1, 2]) assert.ok(existsSync(join(out, 'pseudo-labels', `case_${k}.r2.u8`)));
    assert.equal(second.find((p) => p.phase === 'mutual')!.step, 6);
    const again1 = new Float32Array(readFileSync(field1).buffer.slice(0));
    const kept1 = new Float32Array(
      kept.buffer.slice(kept.byteOffset, kept.byteOffset + kept.byteLength),
    );
    assert.ok(
      again1.every((v, i) => Math.abs(v - kept1[i]!) < 1e-4),
      "recomputed displacement equals the joint stage's",
    );
    assert.deepEqual(
      result.stages.slice(0, 4).map((s) => s.seconds),
      stateAfterAbort.stages.map((s) => s.seconds),
    );
    const stageSteps: [string, number][] = [
      ['registration', 20],
      ['distill-sam', 12],
      ['distill-task', 12],
      ['joint', 8],
      ['mutual', 12],
      ['decoder', 12],
      ['self-training', 12],
      ['self-training-decoder', 12],
      ['export', 0],
    ];
    assert.deepEqual(
      result.stages.map((s) => [s.stage, s.steps]),
      stageSteps,
    );
    // The teacher is named (and its accuracy effect said to be unmeasured); otherwise only the
    // export's decoder check may add a notice (this tiny run's decoder is under-trained), besides
    // the label-free check's scores, which every export reports.
    assert.ok(
      result.notices.some((n) =>
        /^Stage 1 distilled from ONNX image encoder standin-teacher\.onnx \(sha256 [0-9a-f]{12}…, 1024 px\)/.test(
          n,
        ),
      ),
    );
    assert.deepEqual(
      result.notices.filter(
        (n) =>
          !n.startsWith('the auto-prompting decoder') &&
          !n.startsWith('Stage 1 distilled from') &&
          !n.startsWith('label-free check: '),
      ),
      [],
    );

    // every training stage's loss falls (mean of the first 3 steps vs the last 3)
    const losses = logLosses(out);
    for (const [stage, n] of stageSteps.filter(([, steps]) => steps > 0)) {
      const l = losses.get(stage)!;
      assert.equal(l.length, n, `${stage}: steps logged`);
      assert.ok(
        mean(l.slice(-3)) < mean(l.slice(0, 3)),
        `${stage}: loss did not fall: ${l.map((v) => v.toFixed(3)).join(' ')}`,
      );
    }
    const log = readFileSync(join(out, 'training-log.jsonl'), 'utf8');
    assert.match(log, /"stage":"distill-task".*"featureL1"/, 'stage 2 matches stage-1 features');
    assert.match(log, /"stage":"joint".*"segmentation"/, 'joint stage has the segmentation term');

    // the published model: valid metadata, runs with the right output shape
    const meta = validateMetadata(JSON.parse(readFileSync(result.metadataPath, 'utf8')));
    assert.deepEqual(meta.grid.size, [16, 16, 16]);
    assert.deepEqual(meta.intensity, { method: 'zscore', clip: [-5, 5] }, 'from the plan');
    const r = await runModel(result.modelPath, atlas.image);
    assert.deepEqual(r['logits']!.dims, [1, 3, N, N, N]);
    const e = await runModel(result.evalModelPath, atlas.image);
    assert.deepEqual(Object.keys(e).sort(), ['generalLogits', 'logits', 'medicalLogits']);
    const a = r['logits']!.data as Float32Array;
    // The published output is the eval model's full pipeline, or its medical branch when the
    // export found the decoder made the atlas worse (then a notice says so).
    const branchOnly = result.notices.some((n) => n.startsWith('the auto-prompting decoder'));
    const b = e[branchOnly ? 'medicalLogits' : 'logits']!.data as Float32Array;
    assert.ok(
      a.every((v, i) => Math.abs(v - b[i]!) < 1e-4),
      'eval model has the same weights',
    );

    // registration only, from the saved (joint-refined) registration with its pre-alignment
    const regMeta = JSON.parse(
      readFileSync(join(out, 'registration', 'registration.json'), 'utf8'),
    ) as { prealign?: { maxShift: number }; jointSteps?: number };
    assert.deepEqual(regMeta.prealign, { maxShift: 2 });
    assert.equal(regMeta.jointSteps, 8);
    const reg = await loadRegistration(out);
    const p = await reg.register(atlas.image, atlas.labels, unlabeled[0]!.image);
    await reg.release();
    assert.equal(p.labels.length, m);
    assert.equal(p.probabilities.length, 3 * m);

    // 3. an uninterrupted run ends with the same model
    const whole = await runPipeline(input(plan, join(dir, 'whole')));
    const w = (await runModel(whole.modelPath, atlas.image))['logits']!.data as Float32Array;
    const diff = a.reduce((mx, v, i) => Math.max(mx, Math.abs(v - w[i]!)), 0);
    assert.ok(diff < 1e-3, `resumed and uninterrupted runs differ by ${diff}`);

    // rerunning a finished folder does nothing; another plan in the same folder is refused
    const again: PipelineProgress[] = [];
    await runPipeline(input(plan, out, { onProgress: (q) => again.push(q) }));
    assert.equal(again.length, 0);
    await assert.rejects(
      runPipeline(input(parsePlan({ ...tinyPlan }), out)),
      /holds a run of a different plan/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pipeline without a teacher: stage 1 skipped, the notice reaches metadata.json', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrl-pipeline-noteacher-'));
  try {
    const plan = parsePlan({
      ...tinyPlan,
      schedule: {
        registration: { steps: 4, lr: 0.003 },
        distillTask: { steps: 3, lr: 0.01 },
        mutual: { steps: 3, lr: 0.01, emaAlpha: 0.99 },
        decoder: { steps: 3, lr: 0.01 },
        joint: { steps: 0, lr: 0.01 },
      },
      registrationRefine: { steps: 6, window: 5 },
      selfTraining: undefined,
    });
    const result = await runPipeline(input(plan, dir, { profileSteps: 2 }));
    assert.equal(result.notices[0], NO_TEACHER_NOTICE);
    // --profile: a summary per training stage (2 warm-up steps, then up to 2 profiled ones)
    for (const [stage, steps, op] of [
      ['registration', 2, 'Conv'],
      ['refine', 2, 'GatherElements'],
      ['distill-task', 1, 'Conv'],
      ['mutual', 1, 'Conv'],
      ['decoder', 1, 'Conv'],
    ] as const) {
      const p = JSON.parse(readFileSync(join(dir, 'profile', `${stage}.json`), 'utf8')) as {
        steps: number;
        runs: number;
        kernelMsPerStep: number;
        wallMs: number;
        ops: { op: string; msPerStep: number }[];
      };
      assert.equal(p.steps, steps, stage);
      assert.equal(p.runs, steps, stage);
      assert.ok(p.kernelMsPerStep > 0 && p.wallMs >= p.kernelMsPerStep * 0.5, stage);
      assert.ok(
        p.ops.some((o) => o.op === op && o.msPerStep > 0),
        `${stage}: ${op} profiled`,
      );
    }
    assert.ok(
      !readdirSync(join(dir, 'profile')).some((f) => !f.endsWith('.json') || f.includes('.ort')),
    );
    // 3 decoder steps leave the decoder under-trained: the export checks it on the atlas and
    // publishes the medical branch alone, saying so (model.onnx's logits = the eval model's
    // medicalLogits).
    const decoderNotice = result.notices[1] ?? '';
    assert.match(
      decoderNotice,
      /^the auto-prompting decoder lowered the atlas's mean Dice from (\d\.\d{3}) \(medical branch\) to (\d\.\d{3}): the published model is the medical branch/,
    );
    const [, branch, full] = /from (\S+) .* to (\S+):/.exec(decoderNotice) ?? [];
    assert.ok(Number(full) < Number(branch) - 0.02, decoderNotice);
    const published = await runModel(result.modelPath, atlas.image);
    const evaluated = await runModel(result.evalModelPath, atlas.image);
    const a = published.logits!.data as Float32Array;
    const b = evaluated.medicalLogits!.data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    assert.ok(maxDiff < 1e-4, `published vs medical branch: max |Δ| ${maxDiff}`);
    // the label-free check is on the model card even when the plan sets no bar
    assert.match(
      result.notices[2] ?? '',
      /^label-free check: .* \(the plan sets no bar: the network is published\)$/,
    );
    assert.deepEqual(result.stages[1], {
      stage: 'distill-sam',
      steps: 0,
      seconds: result.stages[1]!.seconds,
      skipped: NO_TEACHER_NOTICE,
    });
    const meta = validateMetadata(JSON.parse(readFileSync(result.metadataPath, 'utf8')));
    assert.ok(meta.provenance.notes?.includes(NO_TEACHER_NOTICE), meta.provenance.notes);
    const state = readFileSync(join(dir, 'state.json'), 'utf8');
    assert.ok(state.includes(NO_TEACHER_NOTICE));
    // joint skipped: loadRegistration (with the plan's pre-alignment and instance refinement)
    // reproduces the pseudo labels
    assert.deepEqual(
      JSON.parse(readFileSync(join(dir, 'registration', 'registration.json'), 'utf8')).refine,
      plan.registrationRefine,
    );
    assert.equal(result.stages[3]!.skipped, 'schedule.joint.steps is 0');
    assert.deepEqual(
      result.stages.slice(6, 8).map((s) => [s.stage, s.skipped]),
      [
        ['self-training', 'the plan has no selfTraining'],
        ['self-training-decoder', 'the plan has no selfTraining'],
      ],
    );
    const reg = await loadRegistration(dir);
    const p = await reg.register(atlas.image, atlas.labels, unlabeled[0]!.image);
    await reg.release();
    const saved = readFileSync(join(dir, 'pseudo-labels', 'case_0.u8'));
    assert.deepEqual(new Uint8Array(saved), p.labels);
    assert.ok(!readFileSync(join(dir, 'training-log.jsonl'), 'utf8').includes('featureL1'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("registration fallback: a network below the plan's label-free bar is replaced by the registration path, and the model card says why", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrl-pipeline-fallback-'));
  try {
    const plan = parsePlan({
      ...tinyPlan,
      schedule: {
        registration: { steps: 4, lr: 0.003 },
        distillTask: { steps: 2, lr: 0.01 },
        mutual: { steps: 2, lr: 0.01, emaAlpha: 0.99 },
        decoder: { steps: 2, lr: 0.01 },
        joint: { steps: 0, lr: 0.01 },
      },
      registrationPrealign: undefined,
      selfTraining: undefined,
      // a bar no network reaches: the check must publish the registration
      registrationFallback: { minDice: 1 },
    });
    const result = await runPipeline(input(plan, dir));
    const notice = result.notices.find((n) => n.startsWith('label-free check:')) ?? '';
    assert.match(
      notice,
      /^label-free check: the network's mean Dice is (\d\.\d{3}) against the atlas labels and (\d\.\d{3}) against the registration's labels of the 3 unlabelled volumes, below the plan's bar of 1: .*the published model is the registration/,
    );
    const meta = validateMetadata(JSON.parse(readFileSync(result.metadataPath, 'utf8')));
    assert.ok(meta.provenance.notes?.includes(notice), meta.provenance.notes);
    assert.deepEqual(meta.onnx.output.shape, [1, 3, N, N, N]);
    // the published model is the registration path: its output on a study equals the saved
    // registration's warped atlas labels (no pre-alignment or refinement in this plan)
    const reg = await loadRegistration(dir);
    try {
      for (const u of unlabeled.slice(0, 2)) {
        const want = (await reg.register(atlas.image, atlas.labels, u.image)).probabilities;
        const got = (await runModel(result.modelPath, u.image)).logits!.data as Float32Array;
        assert.equal(got.length, want.length);
        let maxDiff = 0;
        for (let i = 0; i < got.length; i++)
          maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
        assert.ok(maxDiff < 1e-4, `${u.id}: published vs registration, max |Δ| ${maxDiff}`);
      }
    } finally {
      await reg.release();
    }
    // the bar needs the plan without pre-alignment (the published graph has none), within 0..1
    assert.throws(
      () => parsePlan({ ...tinyPlan, registrationFallback: { minDice: 0.5 } }),
      /registrationFallback cannot be used with registrationPrealign/,
    );
    assert.throws(
      () =>
        parsePlan({
          ...tinyPlan,
          registrationPrealign: undefined,
          registrationFallback: { minDice: 2 },
        }),
      /registrationFallback\.minDice/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pipeline input errors name the problem', async () => {
  const plan = parsePlan({ ...tinyPlan });
  const dir = join(tmpdir(), 'rrl-pipeline-never-created');
  await assert.rejects(
    runPipeline(input(plan, dir, { atlas: { image: atlas.image, labels: new Uint8Array(m) } })),
    /atlas label volume is empty/,
  );
  await assert.rejects(
    runPipeline(input(plan, dir, { unlabeled: [{ id: 'x', image: new Float32Array(10) }] })),
    /unlabelled volume x has 10 voxels, expected 4096/,
  );
  await assert.rejects(runPipeline(input(plan, dir, { unlabeled: [] })), /no unlabelled volumes/);
  assert.ok(!existsSync(dir));
});

test('pipeline with crossFit (relabelling round leaving out disagreement, appearance augmentation): one student per fold, each never samples its held-out volumes; a cancelled fold and a cancelled relabelling student resume', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrl-pipeline-crossfit-'));
  try {
    const plan = parsePlan({
      ...tinyPlan,
      schedule: {
        registration: { steps: 4, lr: 0.003 },
        distillTask: { steps: 6, lr: 0.01 },
        mutual: { steps: 2, lr: 0.01, emaAlpha: 0.99 },
        decoder: { steps: 2, lr: 0.01 },
        joint: { steps: 2, lr: 0.003 },
      },
      registrationRefine: { steps: 4, window: 5 },
      // the joint stage's per-volume refinement also agrees with the held-out student
      loss: { ...(tinyPlan.loss as object), refineSegmentation: 1 },
      selfTraining: undefined,
      // the relabelled labels volume-calibrated to the registration's, then compared with it
      crossFit: { folds: 2, relabelSteps: 3, ignoreDisagreement: true, calibrateVolumes: true },
      // appearance augmentation on every sample, so that the stages train through it
      sampling: {
        ...(tinyPlan.sampling as object),
        appearance: { probability: 1 },
      },
    });
    // folds of the 3 volumes: {0, 2} and {1}; each student samples only outside its fold
    const run = new Run(input(plan, dir));
    run.pseudo = unlabeled.map(() => new Uint8Array(m));
    const folds = crossFitFolds(run);
    assert.deepEqual(folds, [[0, 2], [1]]);
    // without the joint stage the students would serve nothing: one student, planned as one
    const noJoint = parsePlan({
      ...tinyPlan,
      crossFit: { folds: 2 },
      schedule: { ...(tinyPlan.schedule as object), joint: { steps: 0, lr: 0.003 } },
    });
    assert.deepEqual(crossFitFolds(new Run(input(noJoint, dir))), []);
    assert.equal(plannedStages(noJoint).find((s) => s.stage === 'distill-task')!.steps, 12);
    const rng = new SeededRng(5);
    const drawn = new Set<number>();
    for (let i = 0; i < 200; i++)
      drawn.add(sample(run, rng, { volumes: [1], synthetic: false }).index);
    assert.deepEqual([...drawn].sort(), [-1, 1]);
    // IGNORE_LABEL voxels of the pseudo labels get all-zero target rows; the atlas never does
    run.pseudo = unlabeled.map(() => new Uint8Array(m).fill(IGNORE_LABEL));
    const still = parsePlan({
      ...plan,
      sampling: {
        ...plan.sampling,
        appearance: undefined,
        synthetic: undefined,
        spatial: undefined,
      },
    });
    const plain = new Run(input(still, dir));
    plain.pseudo = run.pseudo;
    let atlasRows = 0;
    let volumeRows = 0;
    for (let i = 0; i < 20; i++) {
      const t = (segBatch(plain, rng).target as { data: Float32Array }).data;
      const ones = t.reduce((a, b) => a + b, 0);
      if (ones === m) atlasRows++;
      else if (ones === 0) volumeRows++;
    }
    assert.equal(atlasRows + volumeRows, 20, 'every target is the atlas (whole) or ignored');
    assert.ok(atlasRows > 0 && volumeRows > 0, `${atlasRows} atlas, ${volumeRows} volumes`);
    run.pseudo = unlabeled.map(() => new Uint8Array(m));

    // cancelled in the second student, resumed: the first student is not trained again
    const ctrl = new AbortController();
    const seen: PipelineProgress[] = [];
    await assert.rejects(
      runPipeline(
        input(plan, dir, {
          signal: ctrl.signal,
          onProgress: (p) => {
            seen.push(p);
            if (p.phase === 'distill-task' && p.step === 9) ctrl.abort();
          },
        }),
      ),
      (e: Error) => e.name === 'AbortError',
    );
    const fold0 = join(dir, 'checkpoints', 'distill-task-fold0.params');
    assert.ok(
      existsSync(fold0) && !existsSync(join(dir, 'checkpoints', 'distill-task-fold1.params')),
    );
    const fold0Bytes = readFileSync(fold0);
    assert.deepEqual(
      seen
        .filter((p) => p.phase === 'distill-task')
        .map((p) => [p.step, p.total])
        .slice(0, 9),
      Array.from({ length: 9 }, (_, i) => [i + 1, 12]),
    );
    const lines: string[] = [];
    // resumed, and cancelled again in the relabelling round's second student (joint steps:
    // 2 registration + 3 + 3 relabelling): the progress counts on over the whole joint stage
    const ctrl2 = new AbortController();
    const joint: number[][] = [];
    await assert.rejects(
      runPipeline(
        input(plan, dir, {
          signal: ctrl2.signal,
          log: (l) => lines.push(l),
          onProgress: (p) => {
            if (p.phase !== 'joint') return;
            joint.push([p.step, p.total]);
            if (p.step === 7) ctrl2.abort();
          },
        }),
      ),
      (e: Error) => e.name === 'AbortError',
    );
    assert.deepEqual(
      joint.map(([, t]) => t),
      joint.map(() => 8),
    );
    assert.deepEqual(
      joint.map(([s]) => s),
      [1, 2, 3, 4, 5, 6, 7],
    );
    const relabel0 = join(dir, 'checkpoints', 'relabel-fold0.params');
    const relabel0Bytes = readFileSync(relabel0);
    const result = await runPipeline(input(plan, dir, { log: (l) => lines.push(l) }));
    assert.deepEqual(readFileSync(fold0), fold0Bytes, 'student 1 kept');
    assert.deepEqual(readFileSync(relabel0), relabel0Bytes, 'relabelling student 1 kept');
    assert.ok(
      lines.some((l) => /\[joint relabel1\] resuming from step 2 of 3/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /\[distill-task fold1\] resuming from step 3 of 6/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /by 2 cross-fitted students/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /refinement towards E_g's prediction too \(soft-Dice weight 1\)/.test(l)),
      lines.join('\n'),
    );
    assert.equal(result.stages.find((s) => s.stage === 'distill-task')!.steps, 12);
    assert.equal(plannedStages(plan).find((s) => s.stage === 'distill-task')!.steps, 12);
    // the relabelling round: 2 joint steps + 2 students × 3 steps; every volume relabelled by
    // the student that never trained on it
    assert.equal(result.stages.find((s) => s.stage === 'joint')!.steps, 8);
    assert.equal(plannedStages(plan).find((s) => s.stage === 'joint')!.steps, 8);
    // with ignoreDisagreement: a relabelled voxel either agrees with the joint stage's
    // registration or is left out
    let left = 0;
    for (const u of unlabeled) {
      const f = join(dir, 'pseudo-labels', `${safeId(u.id)}.r1-relabel.u8`);
      const relabelled = readFileSync(f);
      const registered = readFileSync(
        join(dir, 'pseudo-labels', `${safeId(u.id)}.r1-registration.u8`),
      );
      assert.equal(relabelled.length, m, f);
      for (let i = 0; i < m; i++) {
        if (relabelled[i] === IGNORE_LABEL) left++;
        else assert.equal(relabelled[i], registered[i], `${f} voxel ${i}`);
      }
    }
    assert.ok(left > 0 && left < m * unlabeled.length, `${left} voxels left out`);
    const share = ((100 * left) / (m * unlabeled.length)).toFixed(2);
    assert.ok(
      lines.some((l) => l.includes(`${share} % of voxels left out of the mutual and decoder`)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) =>
        /relabelling student 2 of 2: 3 steps on the new pseudo labels of 2 volumes, then labels the 1 held out/.test(
          l,
        ),
      ),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /relabelled by the held-out students/.test(l)),
      lines.join('\n'),
    );
    // calibrated: each student's class volumes over its held-out volumes are the registration's
    const calibrated = lines.filter((l) => /^\[joint\] student \d: class volumes/.test(l));
    assert.equal(calibrated.length, 2, lines.join('\n'));
    for (const l of calibrated) {
      const after = /→ \[([^\]]*)\]/.exec(l)![1]!.split(', ');
      for (const r of after) assert.ok(r === '–' || Math.abs(Number(r) - 1) < 0.01, l);
    }
    // the two students differ, and the first goes on to the mutual stage
    const s0 = await loadParams(fold0);
    const s1 = await loadParams(join(dir, 'checkpoints', 'distill-task-fold1.params'));
    const after = await loadParams(join(dir, 'checkpoints', 'after-distill-task.params'));
    const w = 'eg.level0.0.conv.w';
    assert.notDeepEqual(s0.get(w), s1.get(w));
    assert.deepEqual(after.get(w), s0.get(w));
    assert.ok(existsSync(result.modelPath));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
