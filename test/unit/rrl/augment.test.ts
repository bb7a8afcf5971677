/**
 * Spatial augmentation (models/src/rrl/augment.ts, plan.sampling.spatial): the identity affine
 * returns the sample unchanged; an integer translation moves image and labels by exactly that
 * many voxels (labels 0, image border replicated where the source is outside); a random affine
 * keeps image and labels consistent (a label-valued image resampled trilinearly agrees with the
 * nearest-neighbour labels nearly everywhere); the plan validates the field. Appearance
 * augmentation: the identity when its draws are neutral, gamma keeps the image's range and order,
 * the bias field is smooth, the noise has the drawn spread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAffine, applyAppearance, randomAffine } from '@rrl/models/rrl/augment.js';
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

/** `next` that returns `first` in order, then a seeded stream. */
function scripted(first: number[], seed = 3): () => number {
  const rng = new SeededRng(seed);
  let i = 0;
  return () => (i < first.length ? first[i++]! : rng.next());
}

test('appearance: neutral draws leave the image; gamma keeps range and order; smooth bias; noise spread', () => {
  const grid: Grid = [12, 10, 8];
  const img = blob(grid, [6, 5, 4]).image;
  const n = img.length;
  const spec = { probability: 1, gamma: 0.5, bias: 0.3, noise: 0.05 };
  // u = 0 for gamma and the 9 bias coefficients (draw 0.5), noise sd 0 (draw 0)
  const neutral = applyAppearance(img, grid, scripted([...Array<number>(10).fill(0.5), 0]), spec);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(neutral[i]! - img[i]!) < 1e-6);

  // gamma 1.5 (u = 1), no bias, no noise: min and max stay, order stays, mid-tones darken
  const g = applyAppearance(img, grid, scripted([1, ...Array<number>(9).fill(0.5), 0]), spec);
  const lo = Math.min(...img);
  const hi = Math.max(...img);
  assert.ok(Math.abs(Math.min(...g) - lo) < 1e-6 && Math.abs(Math.max(...g) - hi) < 1e-5);
  let darker = 0;
  for (let i = 0; i < n; i++) {
    const t = (img[i]! - lo) / (hi - lo);
    assert.ok(Math.abs((g[i]! - lo) / (hi - lo) - Math.pow(t, 1.5)) < 1e-5);
    if (t > 0.05 && t < 0.95) darker += g[i]! < img[i]! ? 1 : 0;
  }
  assert.ok(darker > 0);

  // bias only, on a constant image (with one dark voxel, so that the range is defined): the field
  // is smooth over the grid (neighbours within 8 % on a 24×20×16 grid) and not flat
  const big: Grid = [24, 20, 16];
  const nb = 24 * 20 * 16;
  const flat = new Float32Array(nb).fill(1);
  flat[0] = 0;
  const b = applyAppearance(flat, big, scripted([0.5, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]), spec);
  let maxStep = 0;
  let minF = Infinity;
  let maxF = -Infinity;
  for (let i = 2; i < nb; i++) {
    if (i % big[2] === 0) continue;
    maxStep = Math.max(maxStep, Math.abs(b[i]! / b[i - 1]! - 1));
    minF = Math.min(minF, b[i]!);
    maxF = Math.max(maxF, b[i]!);
  }
  assert.ok(maxStep < 0.08, `neighbouring voxels differ by at most ${maxStep}`);
  assert.ok(maxF / minF > 1.2, `the field varies: ${minF}..${maxF}`);
  assert.equal(flat[1], 1, 'the input is not modified');

  // noise only, sd = 0.05 × range (draw 1): the residual's spread matches
  const noisy = applyAppearance(
    img,
    grid,
    scripted([...Array<number>(10).fill(0.5), 1 - 1e-12]),
    spec,
  );
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (noisy[i]! - img[i]!) ** 2;
  const sd = Math.sqrt(ss / n) / (hi - lo);
  assert.ok(Math.abs(sd - 0.05) < 0.005, `noise sd ${sd}`);
});

test('plan sampling.appearance: absent by default, defaults, validation', () => {
  assert.equal(parsePlan({}).sampling.appearance, undefined);
  assert.deepEqual(parsePlan({ sampling: { appearance: {} } }).sampling.appearance, {
    probability: 0.3,
    gamma: 0.4,
    bias: 0.3,
    noise: 0.03,
  });
  assert.throws(
    () => parsePlan({ sampling: { appearance: { gamma: 3 } } }),
    /plan\.sampling\.appearance\.gamma/,
  );
  assert.throws(() => parsePlan({ sampling: { appearance: { blur: 1 } } }), /unknown field "blur"/);
});
