/**
 * Spatial augmentation (models/src/rrl/augment.ts, plan.sampling.spatial): the identity affine
 * returns the sample unchanged; an integer translation moves image and labels by exactly that
 * many voxels (labels 0, image border replicated where the source is outside); a random affine
 * keeps image and labels consistent (a label-valued image resampled trilinearly agrees with the
 * nearest-neighbour labels nearly everywhere); the plan validates the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAffine, randomAffine } from '@rrl/models/rrl/augment.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';
import { SeededRng } from '@rrl/models/engine/runtime/rng.js';
import type { Grid } from '@rrl/models/rrl/pseudoLabels.js';
import { texturedBlob as blob } from './helpers.js';

const I = [1, 0, 0, 0, 1, 0, 0, 0, 1];

test('identity affine: unchanged; integer translation: exact shift', () => {
  const grid: Grid = [12, 10, 8];
  const b = blob(grid, [6, 5, 4]);
  const same = applyAffine(b.image, b.label, grid, { m: I, t: [0, 0, 0] });
  assert.deepEqual(same.labels, b.label);
  for (let i = 0; i < b.image.length; i++) assert.ok(Math.abs(same.image[i]! - b.image[i]!) < 1e-6);
  const moved = applyAffine(b.image, b.label, grid, { m: I, t: [2, -1, 0] });
  const at = (z: number, y: number, x: number): number => (z * 10 + y) * 8 + x;
  // out(p) = src(p + t)
  assert.equal(moved.labels[at(4, 5, 4)], b.label[at(6, 4, 4)]);
  assert.ok(Math.abs(moved.image[at(3, 6, 2)]! - b.image[at(5, 5, 2)]!) < 1e-6);
  assert.equal(moved.labels[at(11, 3, 3)], 0, 'z + 2 = 13 is outside: label 0');
  assert.ok(Math.abs(moved.image[at(11, 3, 3)]! - b.image[at(11, 2, 3)]!) < 1e-6, 'clamped');
  assert.throws(
    () => applyAffine(b.image, new Uint8Array(3), grid, { m: I, t: [0, 0, 0] }),
    /must both have 960 voxels/,
  );
});

test('random affine: image and labels stay aligned; draws are seeded', () => {
  const grid: Grid = [24, 20, 16];
  const b = blob(grid, [12, 10, 8]);
  const labelImage = Float32Array.from(b.label);
  const spec = { probability: 1, rotation: 15, scale: 0.15, translate: 3 };
  const r1 = new SeededRng(5);
  const r2 = new SeededRng(5);
  const a1 = randomAffine(() => r1.next(), spec);
  const a2 = randomAffine(() => r2.next(), spec);
  assert.deepEqual(a1, a2);
  assert.ok(
    a1.m.some((v, i) => Math.abs(v - I[i]!) > 1e-3),
    'not the identity',
  );
  const out = applyAffine(labelImage, b.label, grid, a1);
  let inside = 0;
  let agree = 0;
  for (let i = 0; i < out.labels.length; i++) {
    if (out.labels[i] === 1) inside++;
    if ((out.image[i]! >= 0.5 ? 1 : 0) === out.labels[i]) agree++;
  }
  assert.ok(inside > 50, `${inside} label voxels left`);
  assert.ok(agree / out.labels.length > 0.98, `agreement ${agree / out.labels.length}`);
});

test('plan.sampling.spatial: defaults, validation, absent by default', () => {
  assert.equal(parsePlan({}).sampling.spatial, undefined);
  const p = parsePlan({ sampling: { spatial: { probability: 0.3 } } });
  assert.deepEqual(p.sampling.spatial, {
    probability: 0.3,
    rotation: 10,
    scale: 0.1,
    translate: 2,
  });
  assert.throws(
    () => parsePlan({ sampling: { spatial: { rotation: 90 } } }),
    /sampling.spatial.rotation/,
  );
  assert.throws(() => parsePlan({ sampling: { spatial: { flip: true } } }), /unknown field "flip"/);
});
