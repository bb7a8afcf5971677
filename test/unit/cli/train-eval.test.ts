import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { train } from '@rrl/models/cli/train.js';
import { evaluate, type EvalReport } from '@rrl/models/cli/eval.js';
import { notWorseCount } from '@rrl/models/cli/report.js';
import { validateMetadata } from '@rrl/core/format/metadata.js';
import { countParams, rrlInferenceNet, rrlNetArgsFromPlan } from '@rrl/models/rrl/networks.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';
import { writeImageSeries } from '@rrl/core/dicom/series.js';
import { blobVolume, capture, writeNifti, type Dims3 } from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const tinyPlan = path.join(root, 'models/plans/tiny.json');
const labelSet = path.join(root, 'models/labelsets/hippocampus.json');
let dir = '';

// Subjects of different sizes, positions and intensity scales (each evaluated on its own grid).
const SUBJECTS: [string, Dims3, Dims3, Dims3, number][] = [
  ['atlas', [20, 24, 18], [10, 12, 9], [6, 7, 5], 1],
  ['u1', [22, 24, 18], [11, 12, 9], [6, 8, 5], 2],
  ['u2', [20, 26, 20], [9, 13, 10], [7, 7, 6], 0.5],
  ['t1', [21, 25, 19], [10, 12, 10], [6, 7, 5], 3],
  ['t2', [19, 23, 17], [10, 11, 8], [5, 7, 5], 1],
];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-cli-e2e-'));
  await mkdir(path.join(dir, 'data/unlabeled'), { recursive: true });
  for (const [id, dims, centre, radii, gain] of SUBJECTS) {
    const v = blobVolume(dims, centre, radii, gain);
    const sub = id.startsWith('u') ? 'data/unlabeled' : 'data';
    await writeNifti(path.join(dir, sub, `${id}.nii.gz`), dims, v.image);
    if (!id.startsWith('u'))
      await writeNifti(path.join(dir, 'data', `${id}_seg.nii.gz`), dims, v.labels);
  }
  // One unlabelled volume as a folder of DICOM files (synthetic MR series, no patient data).
  const d = blobVolume([22, 22, 16], [11, 11, 8], [6, 7, 5], 4);
  const series = writeImageSeries({
    modality: 'MR',
    geometry: {
      dims: [22, 22, 16],
      spacing: [1, 1, 1.2],
      origin: [0, 0, 0],
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
    },
    voxels: Int16Array.from(d.image, (x) => Math.round(x)),
    patient: { name: 'SYNTHETIC^CLI', id: 'SYN-CLI', sex: 'O' },
    study: { studyInstanceUID: '2.25.777', description: 'SYNTHETIC cli test' },
    synthetic: true,
  });
  await mkdir(path.join(dir, 'data/unlabeled/dicom_u3'));
  for (const [k, f] of series.files.entries())
    await writeFile(path.join(dir, `data/unlabeled/dicom_u3/IM${k}.dcm`), Buffer.from(f));
  // An unreadable volume among the unlabelled ones: skipped with its reason, not fatal.
  await writeFile(path.join(dir, 'data/unlabeled/corrupt.nii.gz'), 'this is not a NIfTI file');
  await writeFile(
    path.join(dir, 'split.json'),
    JSON.stringify({
      atlas: { id: 'atlas', image: 'atlas.nii.gz', labels: 'atlas_seg.nii.gz' },
      test: ['t1', 't2'].map((id) => ({ id, image: `${id}.nii.gz`, labels: `${id}_seg.nii.gz` })),
    }),
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('train (tiny plan) publishes a valid model, resumes on rerun, and eval reports Dice for a-d', async () => {
  const out = path.join(dir, 'model');
  // The tiny plan with enough decoder steps for the auto-prompting decoder to learn: with its
  // 12 steps the published model stays below registration alone (mean Dice 0.38 vs 0.78;
  // 150 steps: 0.83).
  const tiny = JSON.parse(await readFile(tinyPlan, 'utf8')) as {
    schedule: Record<string, { steps: number }>;
    selfTraining?: { decoder: { steps: number } };
  };
  tiny.schedule.decoder!.steps = 150;
  if (tiny.selfTraining) tiny.selfTraining.decoder.steps = 150;
  const planFile = path.join(dir, 'plan.json');
  await writeFile(planFile, JSON.stringify(tiny));
  const argv = [
    '--plan',
    planFile,
    '--labels',
    labelSet,
    '--atlas-image',
    path.join(dir, 'data/atlas.nii.gz'),
    '--atlas-labels',
    path.join(dir, 'data/atlas_seg.nii.gz'),
    '--unlabeled',
    path.join(dir, 'data/unlabeled'),
    '--out',
    out,
    '--provider',
    'cpu',
  ];
  const c1 = capture();
  assert.equal(await train(argv, c1.io), 0, c1.stderr());
  assert.match(c1.stderr(), /skipped unlabelled volume corrupt: /);
  assert.match(c1.stderr(), /3 unlabelled volume\(s\) read, 1 skipped/);
  assert.match(c1.stderr(), /stage 1\/\d+ registration \[[#.]+\] \d+\/\d+ loss -?\d/);
  assert.match(c1.stdout(), /model: +.*model\.onnx/);
  for (const f of ['model.onnx', 'metadata.json', 'eval-model.onnx', 'labelset.json', 'plan.json'])
    assert.ok(existsSync(path.join(out, f)), `${f} missing`);
  const meta = validateMetadata(
    JSON.parse(await readFile(path.join(out, 'metadata.json'), 'utf8')),
  );
  assert.deepEqual(
    meta.labels.map((l) => [l.value, l.name]),
    [
      [1, 'Anterior hippocampus'],
      [2, 'Posterior hippocampus'],
    ],
  );
  assert.equal(meta.labels[0]!.type.value, '5366008');

  // Rerun on the same folder: every stage is already done.
  const c2 = capture();
  assert.equal(await train(argv, c2.io), 0, c2.stderr());
  assert.match(c2.stderr(), /\[registration\] already done/);
  assert.match(c2.stderr(), /\[export\] already done/);

  const reportFile = path.join(dir, 'report.json');
  const c3 = capture();
  const code = await evaluate(
    [
      '--model',
      out,
      '--split',
      path.join(dir, 'split.json'),
      '--data-dir',
      path.join(dir, 'data'),
      '--wasm-runs',
      '1',
      '--report',
      reportFile,
    ],
    c3.io,
  );
  assert.equal(code, 0, c3.stderr());
  assert.match(c3.stdout(), /\(a\) atlas labels copied/);
  assert.match(c3.stdout(), /\(d\) full pipeline/);
  assert.match(c3.stdout(), /onnxruntime-web wasm/);
  assert.match(c3.stdout(), /\(d\) no worse than \(b\) on \d of 2 subjects/);
  const report = JSON.parse(await readFile(reportFile, 'utf8')) as EvalReport;
  assert.equal(typeof report.date, 'string');
  assert.ok(report.gitCommit === null || /^[0-9a-f]{40}$/.test(report.gitCommit));
  assert.deepEqual(report.plan, parsePlan(tiny));
  assert.deepEqual(report.split.test, ['t1', 't2']);
  assert.equal(report.perSubject.length, 2);
  assert.deepEqual(report.perSubject[0]!.dims, [21, 25, 19]);
  assert.deepEqual(report.comparison.dNotWorseThanB, {
    count: notWorseCount(
      report.perSubject,
      ['Anterior hippocampus', 'Posterior hippocampus'],
      'd',
      'b',
    ),
    of: 2,
  });
  const names = ['Anterior hippocampus', 'Posterior hippocampus'];
  for (const m of ['a', 'b', 'c', 'd'] as const) {
    const s = report.methods[m];
    assert.deepEqual(Object.keys(s.perLabel), names);
    for (const n of names) {
      assert.ok(s.perLabel[n]!.mean >= 0 && s.perLabel[n]!.mean <= 1, `${m} ${n} mean`);
      assert.ok(s.perLabel[n]!.std >= 0 && s.perLabel[n]!.std <= 0.5, `${m} ${n} std`);
      for (const subj of report.perSubject) {
        const d = subj.dice[m][n]!;
        assert.ok(d >= 0 && d <= 1, `${m} ${n} ${subj.id} Dice ${d}`);
      }
    }
    assert.ok(s.mean >= 0 && s.mean <= 1);
    assert.ok(s.hd95 === null || s.hd95 >= 0);
  }
  console.log(
    `# mean Dice: (a) ${report.methods.a.mean.toFixed(3)} (b) ${report.methods.b.mean.toFixed(3)} (c) ${report.methods.c.mean.toFixed(3)} (d) ${report.methods.d.mean.toFixed(3)}`,
  );
  // The trained model beats its own registration baseline (b): both the published model (d) and
  // the medical branch alone (c). A model that learnt nothing scores far below.
  assert.ok(
    report.methods.d.mean > report.methods.b.mean,
    `(d) ${report.methods.d.mean} > (b) ${report.methods.b.mean}`,
  );
  assert.ok(
    report.methods.c.mean > report.methods.b.mean,
    `(c) ${report.methods.c.mean} > (b) ${report.methods.b.mean}`,
  );
  // The blobs overlap well without registration: (a) is far from 0.
  assert.ok(report.methods.a.mean > 0.5, `method a mean Dice ${report.methods.a.mean}`);
  // Parameters: exactly the inference net's parameters (model.onnx has no medical head).
  const plan = parsePlan(JSON.parse(await readFile(path.join(out, 'plan.json'), 'utf8')));
  const net = rrlInferenceNet(rrlNetArgsFromPlan(plan), plan.grid);
  assert.equal(report.model.evalModelParameters, countParams(net.graph));
  assert.equal(
    report.model.parameters,
    countParams(net.graph) - countParams(net.graph, 'em_head.'),
  );
  assert.ok(report.timing.nodeCpuMs.median > 0);
  assert.equal(report.timing.wasmMs?.runs.length, 1);
  assert.ok(report.machine.cpuCount > 0);
});
