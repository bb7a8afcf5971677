import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { train } from '@rrl/models/cli/train.js';
import { evaluate } from '@rrl/models/cli/eval.js';
import { blobVolume, capture, writeNifti } from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const hippoLabels = path.join(root, 'models/labelsets/hippocampus.json');
const tinyPlan = path.join(root, 'models/plans/tiny.json');
let dir = '';
let atlasImage = '';
let atlasLabels = '';
let unlabeled = '';

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-cli-errors-'));
  const v = blobVolume([12, 14, 10], [6, 7, 5], [4, 4, 3]);
  atlasImage = path.join(dir, 'atlas.nii.gz');
  atlasLabels = path.join(dir, 'atlas_seg.nii.gz');
  await writeNifti(atlasImage, [12, 14, 10], v.image);
  await writeNifti(atlasLabels, [12, 14, 10], v.labels);
  unlabeled = path.join(dir, 'unlabeled');
  await mkdir(unlabeled);
  await writeNifti(path.join(unlabeled, 'u1.nii.gz'), [12, 14, 10], v.image);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function runTrain(extra: string[], base?: Partial<Record<string, string>>) {
  const c = capture();
  const opts: Record<string, string> = {
    plan: tinyPlan,
    labels: hippoLabels,
    out: path.join(dir, 'out'),
    'atlas-image': atlasImage,
    'atlas-labels': atlasLabels,
    unlabeled,
    ...base,
  };
  const argv = Object.entries(opts).flatMap(([k, v]) => (v ? [`--${k}`, v] : []));
  const code = await train([...argv, ...extra], c.io);
  return { code, err: c.stderr(), out: c.stdout() };
}

test('train: atlas and label grids that differ are a clear input error (exit 2)', async () => {
  const wrong = path.join(dir, 'wrong_grid.nii.gz');
  await writeNifti(wrong, [12, 14, 11], new Uint8Array(12 * 14 * 11).fill(1));
  const r = await runTrain([], { 'atlas-labels': wrong });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /grids differ/);
  assert.match(r.err, /12 × 14 × 10/);
  assert.match(r.err, /12 × 14 × 11/);
});

test('train: an empty atlas label volume is a clear input error (exit 2)', async () => {
  const empty = path.join(dir, 'empty.nii.gz');
  await writeNifti(empty, [12, 14, 10], new Uint8Array(12 * 14 * 10));
  const r = await runTrain([], { 'atlas-labels': empty });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /empty\.nii\.gz is empty/);
});

test('train: atlas labels with no value of the label set are rejected (exit 2)', async () => {
  const other = path.join(dir, 'other_values.nii.gz');
  await writeNifti(other, [12, 14, 10], new Uint8Array(12 * 14 * 10).fill(7));
  const r = await runTrain([], { 'atlas-labels': other });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /\[7\], none of which is in the label set "hippocampus"/);
});

test('train: a missing atlas file is a clear input error (exit 2)', async () => {
  const r = await runTrain([], { 'atlas-image': path.join(dir, 'nope.nii.gz') });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /nope\.nii\.gz/);
  assert.match(r.err, /does not exist/);
});

test('train: unreadable unlabelled volumes are skipped with their reason; none usable → exit 2', async () => {
  const bad = path.join(dir, 'bad_unlabeled');
  await mkdir(bad);
  await writeFile(path.join(bad, 'broken.nii.gz'), 'not a nifti file');
  await writeFile(path.join(bad, 'truncated.nii'), Buffer.alloc(100));
  const r = await runTrain([], { unlabeled: bad });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /skipped unlabelled volume broken: /);
  assert.match(r.err, /skipped unlabelled volume truncated: /);
  assert.match(r.err, /none of the 2 unlabelled volumes could be read/);
});

test('train: missing required options and a plan/label-set mismatch are usage errors', async () => {
  const c = capture();
  assert.equal(await train(['--plan', tinyPlan], c.io), 2);
  assert.match(c.stderr(), /--labels is required/);
  const brain = path.join(root, 'models/labelsets/brain-aseg.json');
  const r = await runTrain([], { labels: brain });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /plan\.classes is 3 but the label set "brain-aseg" has 30 labels/);
});

test('eval: a folder that is not a trained model is a usage error (exit 2)', async () => {
  const c = capture();
  const split = path.join(dir, 'split.json');
  await writeFile(
    split,
    JSON.stringify({
      atlas: { image: atlasImage, labels: atlasLabels },
      test: [{ id: 't', image: atlasImage, labels: atlasLabels }],
    }),
  );
  const code = await evaluate(['--model', dir, '--split', split], c.io);
  assert.equal(code, 2, c.stderr());
  assert.match(c.stderr(), /metadata\.json/);
});

test('train --plan auto: volumes too small for a derived plan are an input error that says why (exit 2)', async () => {
  // 12 × 14 × 10 voxels at 1 mm: fewer than 16 voxels on an axis
  const r = await runTrain([], { plan: 'auto' });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--plan auto: .*too small for a 3-D network/);
  assert.match(r.err, /at least 16 voxels per axis/);
});
