/**
 * Volume calibration (models/src/rrl/volumeCalibration.ts): class offsets on the log-probabilities
 * that make each class's voxels over a set of volumes add up to a target count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  calibratedLabels,
  classCounts,
  offsetArgmax,
  volumeOffsets,
} from '@rrl/models/rrl/volumeCalibration.js';
import { argmaxClasses } from '@rrl/models/rrl/pseudoLabels.js';

/** [3, m] probabilities: class 1 with probability p1[i], class 2 with p2[i], the rest background. */
function probs(p1: number[], p2: number[]): Float32Array {
  const m = p1.length;
  const out = new Float32Array(3 * m);
  for (let i = 0; i < m; i++) {
    out[m + i] = p1[i]!;
    out[2 * m + i] = p2[i]!;
    out[i] = 1 - p1[i]! - p2[i]!;
  }
  return out;
}

test('volume calibration: a shrunken structure grows to the target count, most probable voxels first', () => {
  // class 1 peaks at 0.45 in the middle and falls off: the argmax labels nothing
  const p1 = [0.05, 0.2, 0.35, 0.45, 0.44, 0.3, 0.1, 0.02];
  const p2 = p1.map(() => 0);
  const a = probs(p1, p2);
  assert.deepEqual(classCounts([argmaxClasses(a, 3)], 3), [8, 0, 0]);
  const offsets = volumeOffsets([a], 3, [4, 4, 0]);
  assert.equal(offsets[0], 0);
  const [labels] = calibratedLabels([a], 3, offsets);
  assert.deepEqual([...labels!], [0, 0, 1, 1, 1, 1, 0, 0], 'the four most probable voxels');
  // a class the target leaves out labels nothing, however probable
  const none = calibratedLabels(
    [probs([0.9, 0.9], [0, 0])],
    3,
    volumeOffsets([probs([0.9, 0.9], [0, 0])], 3, [2, 0, 0]),
  );
  assert.deepEqual([...none[0]!], [0, 0]);
});

test('volume calibration: counts over several volumes match, two classes at once, argmax kept when it already matches', () => {
  let s = 7;
  const rand = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const vols = [0, 1, 2].map(() => {
    const m = 500;
    const p1: number[] = [];
    const p2: number[] = [];
    for (let i = 0; i < m; i++) {
      const u = rand();
      const v = rand() * (1 - u);
      p1.push(u * 0.8);
      p2.push(v * 0.9);
    }
    return probs(p1, p2);
  });
  const before = classCounts(
    vols.map((v) => argmaxClasses(v, 3)),
    3,
  );
  // the same counts: the offsets change no label
  const same = calibratedLabels(vols, 3, volumeOffsets(vols, 3, before));
  assert.deepEqual(
    same,
    vols.map((v) => argmaxClasses(v, 3)),
  );
  // both structures 30 % larger
  const target = [0, Math.round(before[1]! * 1.3), Math.round(before[2]! * 1.3)];
  target[0] = 1500 - target[1]! - target[2]!;
  const offsets = volumeOffsets(vols, 3, target);
  assert.ok(offsets[1]! > 0 && offsets[2]! > 0, `${[...offsets]}`);
  const after = classCounts(calibratedLabels(vols, 3, offsets), 3);
  for (const c of [1, 2]) {
    assert.ok(Math.abs(after[c]! - target[c]!) <= 3, `class ${c}: ${after[c]} vs ${target[c]}`);
  }
  assert.throws(() => volumeOffsets(vols, 3, [1, 2]), /2 target counts for 3 classes/);
  // offsetArgmax with zero offsets is the plain argmax
  const log = vols[0]!.map((p) => Math.log(Math.max(p, 1e-12)));
  assert.deepEqual(offsetArgmax(log, 3, new Float64Array(3)), argmaxClasses(vols[0]!, 3));
});
