import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  classesPresent,
  LabelSetError,
  mapToClasses,
  modelLabels,
  parseLabelSet,
  readLabelSet,
} from '@rrl/models/cli/labelset.js';
import { parseSplit, SplitError } from '@rrl/models/cli/split.js';
import { ProgressReporter, progressLine } from '@rrl/models/cli/progress.js';
import { notWorseCount, summarizeMethods, type SubjectScores } from '@rrl/models/cli/report.js';
import { oneHot } from '@rrl/models/cli/eval.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test('label sets: hippocampus has 2 classes; brain-aseg has the 30 FreeSurfer values of labels.json', async () => {
  const hip = await readLabelSet(path.join(root, 'models/labelsets/hippocampus.json'));
  assert.deepEqual(
    hip.labels.map((l) => [l.source, l.name]),
    [
      [[1], 'Anterior hippocampus'],
      [[2], 'Posterior hippocampus'],
    ],
  );
  const aseg = await readLabelSet(path.join(root, 'models/labelsets/brain-aseg.json'));
  // The values evaluated on brain-aseg (../shared/data/brain-aseg/labels.json), in order.
  const evalLabels = [
    2, 3, 4, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 28, 31, 41, 42, 43, 46, 47, 49, 50, 51,
    52, 53, 54, 60, 63,
  ];
  assert.deepEqual(
    aseg.labels.map((l) => l.source[0]),
    evalLabels,
  );
  assert.equal(aseg.labels[15]!.name, 'Left-VentralDC');
  const ml = modelLabels(aseg);
  assert.deepEqual(
    ml.map((l) => l.value),
    evalLabels.map((_, i) => i + 1),
  );
  // Values outside the set become background; set values become their class index.
  assert.deepEqual(
    [...mapToClasses(Uint16Array.of(0, 2, 5, 63, 1000, 17), aseg)],
    [0, 1, 0, 30, 0, 13],
  );
  assert.deepEqual(classesPresent([5, 17, 999], aseg), [13]);
});

test('label sets: duplicate source values and bad colours are rejected with the field named', () => {
  const code = { value: '1', scheme: 'SCT', meaning: 'x' };
  const l = (source: unknown, color: unknown = [1, 2, 3]) => ({
    source,
    name: 'n',
    color,
    category: code,
    type: code,
  });
  assert.throws(
    () => parseLabelSet({ labels: [l(1), l([2, 1])] }, 'x.json'),
    /source value 1 is already used/,
  );
  assert.throws(() => parseLabelSet({ labels: [l(1, [1, 2])] }, 'x.json'), /labels\[0\]\.color/);
  assert.throws(() => parseLabelSet({ labels: [] }, 'x.json'), LabelSetError);
  assert.throws(() => parseLabelSet({ labels: [l(0)] }, 'x.json'), /positive integer/);
});

test('splits: hippocampus-style ids resolve under images/ and labels/, test ids never train', () => {
  const s = parseSplit(
    { atlas: 'h_1', train_unlabeled: ['h_2', 'h_3', 'h_9'], test: ['h_9', 'h_4'] },
    '/data/hippo/split.json',
  );
  assert.equal(s.format, 'ids');
  assert.equal(s.atlas.image, '/data/hippo/images/h_1.nii.gz');
  assert.equal(s.atlas.labels, '/data/hippo/labels/h_1.nii.gz');
  assert.deepEqual(
    s.unlabeled.map((u) => u.id),
    ['h_2', 'h_3'],
  );
  assert.deepEqual(s.excluded, ['h_9']);
  assert.deepEqual(
    s.test.map((t) => [t.id, t.labels]),
    [
      ['h_9', '/data/hippo/labels/h_9.nii.gz'],
      ['h_4', '/data/hippo/labels/h_4.nii.gz'],
    ],
  );
  assert.throws(() => parseSplit({ atlas: '../x' }, '/s.json'), SplitError);
  assert.throws(() => parseSplit({ atlas: 3 }, '/s.json'), /expected "atlas"/);
});

test('splits: the explicit brain-aseg split resolves against the data folder', async () => {
  const file = path.join(root, 'models/splits/brain-aseg.json');
  const s = parseSplit(JSON.parse(await readFile(file, 'utf8')), file, '/d');
  assert.equal(s.format, 'explicit');
  assert.equal(s.atlas.image, '/d/brain-aseg/subject_a_t1.nii.gz');
  assert.equal(s.atlas.labels, '/d/brain-aseg/subject_a_aseg.nii.gz');
  assert.deepEqual(
    s.test.map((t) => [t.id, t.image, t.labels]),
    [['subject_b', '/d/brain-aseg/subject_b_t1.nii.gz', '/d/brain-aseg/subject_b_aseg.nii.gz']],
  );
});

test('splits: the few-volume hippocampus split is a subset of the shared split, with its test subjects', async () => {
  const file = path.join(root, 'models/splits/hippocampus-few-8.json');
  const few = parseSplit(JSON.parse(await readFile(file, 'utf8')), file, '/d');
  assert.equal(few.format, 'explicit');
  assert.equal(few.unlabeled.length, 8);
  assert.equal(few.atlas.id, 'hippocampus_190');
  const testIds = new Set(few.test.map((t) => t.id));
  assert.equal(testIds.size, 23);
  for (const u of few.unlabeled) {
    assert.ok(!testIds.has(u.id) && u.id !== few.atlas.id, `${u.id} is neither atlas nor test`);
    assert.equal(u.image, `/d/hippocampus/images/${u.id}.nii.gz`);
  }
});

test('progress: TTY redraws one line with stage, steps, loss and ETA; pipes get plain lines', () => {
  let t = 0;
  let tty = '';
  const r = new ProgressReporter({ write: (s: string) => (tty += s), isTTY: true }, () => t);
  r.update({ phase: 'mutual', stageIndex: 3, stageCount: 6, step: 0, total: 100 });
  t = 10_000;
  r.update({ phase: 'mutual', stageIndex: 3, stageCount: 6, step: 50, total: 100, loss: 0.5 });
  r.finishLine();
  assert.match(tty, /\rstage 4\/6 mutual \[#{12}\.{12}\] 50\/100 loss 0\.5000 ETA 10s/);
  assert.ok(tty.endsWith('\n'));
  assert.equal(tty.split('\n').length, 2);
  let plain = '';
  const p = new ProgressReporter({ write: (s: string) => (plain += s), isTTY: false }, () => 0);
  for (let s = 1; s <= 100; s++)
    p.update({ phase: 'decoder', stageIndex: 4, stageCount: 6, step: s, total: 100 });
  assert.equal(plain.split('\n').filter(Boolean).length, 11); // 1..9 %, each 10 %, and 100 %
  assert.ok(!plain.includes('\r'));
  assert.match(
    progressLine({ phase: 'x', stageIndex: 0, stageCount: 1, step: 3, total: 3 }, 0),
    /3\/3 ETA 0s$/,
  );
});

test('report: per-label mean ± std, subject mean Dice, HD95 mean over defined values', () => {
  const subj = (id: string, a1: number, a2: number, h: number | null): SubjectScores => {
    const dice = { A: a1, B: a2 };
    const hd = { A: h, B: 2 };
    return {
      id,
      dims: [1, 1, 1],
      spacing: [1, 1, 1],
      dice: { a: dice, b: dice, c: dice, d: dice },
      hd95: { a: hd, b: hd, c: hd, d: hd },
    };
  };
  const m = summarizeMethods([subj('s1', 1, 0.5, 4), subj('s2', 0.5, 0.5, null)], ['A', 'B']);
  assert.deepEqual(m.a.perLabel.A, { mean: 0.75, std: 0.25 });
  assert.deepEqual(m.a.perLabel.B, { mean: 0.5, std: 0 });
  assert.equal(m.a.mean, 0.625);
  assert.equal(m.a.std, 0.125);
  assert.equal(m.a.hd95, (4 + 2 + 2) / 3);
  assert.equal(m.a.hd95Undefined, 1);
  const better = subj('s3', 0.9, 0.9, 1);
  better.dice = { ...better.dice, b: { A: 0.95, B: 0.95 } };
  const subjects = [subj('s1', 1, 0.5, 4), subj('s2', 0.5, 0.5, null), better];
  assert.equal(notWorseCount(subjects, ['A', 'B'], 'd', 'b'), 2, 'ties count as no worse');
  assert.equal(notWorseCount(subjects, ['A', 'B'], 'b', 'd'), 3);
});

test('oneHot puts each class in its own channel', () => {
  assert.deepEqual([...oneHot(Uint8Array.of(0, 2, 1), 3)], [1, 0, 0, 0, 0, 1, 0, 1, 0]);
});
