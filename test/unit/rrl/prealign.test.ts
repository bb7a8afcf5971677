/**
 * Translation pre-alignment: the integer shift maximising the global NCC is recovered exactly on
 * a textured synthetic volume (coarse-to-fine search), shifting follows the convention
 * shifted(p) = vol(p − s) with replicated image borders and 0 label borders, and on a pair with
 * a 7-voxel offset the registration stage's pseudo labels with pre-alignment beat those without.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findShift, shiftImage, shiftLabels, type Shift } from '@rrl/models/rrl/prealign.js';
import { runRegistrationStage } from '@rrl/models/rrl/registration.js';
import type { Grid } from '@rrl/models/rrl/pseudoLabels.js';
import { dice } from '@rrl/models/rrl/metrics.js';
import { texturedBlob as blob } from './helpers.js';

test('shiftImage / shiftLabels: content moves by +s, image borders replicated, labels 0', () => {
  const grid: Grid = [3, 4, 5];
  const vol = Float32Array.from({ length: 60 }, (_, i) => i);
  const lab = Uint8Array.from({ length: 60 }, (_, i) => 1 + (i % 3));
  const s: Shift = [1, -1, 2];
  const im = shiftImage(vol, grid, s);
  const lb = shiftLabels(lab, grid, s);
  const at = (z: number, y: number, x: number): number => (z * 4 + y) * 5 + x;
  assert.equal(im[at(1, 1, 3)], vol[at(0, 2, 1)]);
  assert.equal(lb[at(1, 1, 3)], lab[at(0, 2, 1)]);
  assert.equal(im[at(0, 0, 0)], vol[at(0, 1, 0)], 'clamped to the border');
  assert.equal(lb[at(0, 0, 0)], 0, 'outside the source: label 0');
  assert.equal(lb[at(1, 3, 4)], 0, 'y + 1 = 4 is outside');
});

test('findShift recovers a known shift exactly (coarse-to-fine), within ±maxShift', () => {
  const grid: Grid = [28, 32, 24];
  const atlas = blob(grid, [13, 15, 11]);
  for (const s of [
    [5, -3, 2],
    [-7, 6, -1],
    [0, 0, 0],
    [3, 7, -6],
  ] as Shift[]) {
    const target = shiftImage(atlas.image, grid, s);
    const r = findShift(atlas.image, target, grid, 8);
    assert.deepEqual(r.shift, s, `shift ${s.join(',')}`);
    assert.ok(r.ncc > 0.999, `ncc ${r.ncc}`);
  }
  // limited search range: never beyond maxShift
  const far = shiftImage(atlas.image, grid, [6, 0, 0]);
  const r = findShift(atlas.image, far, grid, 3);
  assert.ok(
    r.shift.every((v) => Math.abs(v) <= 3),
    `${r.shift.join(',')}`,
  );
  assert.throws(() => findShift(atlas.image, new Float32Array(5), grid, 2), /expected 21504/);
});

test('pseudo labels with pre-alignment beat those without on a 7-voxel offset', async () => {
  const grid: Grid = [24, 16, 16];
  const atlas = blob(grid, [8, 8, 8]);
  const target = blob(grid, [15, 8, 8]); // 7 voxels along D
  const common = {
    grid,
    classes: 2,
    atlasImage: atlas.image,
    atlasLabels: atlas.label,
    targets: [target.image],
    args: { base: 8, depth: 3, smoothness: 1, window: 9 },
    steps: 10,
    lr: 3e-3,
    seed: 1,
  };
  const without = await runRegistrationStage(common);
  const withPre = await runRegistrationStage({ ...common, prealign: { maxShift: 8 } });
  assert.deepEqual(without.shifts, [[0, 0, 0]]);
  assert.deepEqual(withPre.shifts, [[7, 0, 0]]);
  const dNo = dice(without.pseudoLabels[0]!, target.label, 1);
  const dPre = dice(withPre.pseudoLabels[0]!, target.label, 1);
  assert.ok(dPre > 0.9, `with pre-alignment: Dice ${dPre}`);
  assert.ok(dPre > dNo + 0.3, `with ${dPre} vs without ${dNo}`);
});
