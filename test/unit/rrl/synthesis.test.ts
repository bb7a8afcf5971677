/**
 * Registration-based synthesis (models/src/rrl/synthesis.ts, plan.sampling.synthetic): a zero
 * displacement gives the atlas back; a constant integer displacement moves image and labels
 * together by exactly that many voxels; blending is convex; a smooth random displacement keeps
 * image and labels consistent; a pre-alignment shift composed into a field warps the atlas as the
 * registration warped the shifted atlas; the plan validates the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  atlasStack,
  blendDisplacements,
  composeShift,
  synthesize,
} from '@rrl/models/rrl/synthesis.js';
import { shiftImage } from '@rrl/models/rrl/prealign.js';
import { warpReference } from '@rrl/models/rrl/pseudoLabels.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';
import type { Grid } from '@rrl/models/rrl/pseudoLabels.js';
import { texturedBlob } from './helpers.js';

const grid: Grid = [16, 14, 12];
const m = grid[0] * grid[1] * grid[2];
const at = (z: number, y: number, x: number): number => (z * grid[1] + y) * grid[2] + x;

/** A smooth displacement [3, D, H, W] with the given amplitudes (voxels) per channel. */
function smoothField(amp: readonly [number, number, number]): Float32Array {
  const d = new Float32Array(3 * m);
  for (let z = 0; z < grid[0]; z++)
    for (let y = 0; y < grid[1]; y++)
      for (let x = 0; x < grid[2]; x++) {
        const i = at(z, y, x);
        d[i] = amp[0] * Math.sin(y / 3);
        d[m + i] = amp[1] * Math.cos(x / 4);
        d[2 * m + i] = amp[2] * Math.sin(z / 5);
      }
  return d;
}

test('synthesize: zero displacement = the atlas; constant shift moves image and labels together', () => {
  const b = texturedBlob(grid, [8, 7, 6]);
  const stack = atlasStack(b.image, b.halves, 3);
  const same = synthesize(stack, 3, new Float32Array(3 * m), grid);
  assert.deepEqual(same.labels, b.halves);
  for (let i = 0; i < m; i++) assert.ok(Math.abs(same.image[i]! - b.image[i]!) < 1e-6);

  // out(p) = atlas(p + d), d = (1, -2, 0) voxels
  const d = new Float32Array(3 * m);
  d.fill(1, 0, m);
  d.fill(-2, m, 2 * m);
  const moved = synthesize(stack, 3, d, grid);
  for (const [z, y, x] of [
    [7, 9, 6],
    [5, 8, 5],
    [9, 7, 7],
  ] as const) {
    assert.equal(moved.labels[at(z, y, x)], b.halves[at(z + 1, y - 2, x)]);
    assert.ok(Math.abs(moved.image[at(z, y, x)]! - b.image[at(z + 1, y - 2, x)]!) < 1e-6);
  }
  assert.throws(() => synthesize(stack.subarray(m), 3, d, grid), /has 8064 values, expected 10752/);
  assert.throws(() => atlasStack(b.image, new Uint8Array(5), 3), /differ in voxel count/);
});

test('blendDisplacements is convex; a smooth field keeps image and labels consistent', () => {
  const a = Float32Array.from({ length: 6 }, (_, i) => i);
  const z = new Float32Array(6);
  assert.deepEqual([...blendDisplacements(a, z, 0.25)], [0, 0.25, 0.5, 0.75, 1, 1.25]);
  assert.throws(() => blendDisplacements(a, new Float32Array(3), 0.5), /lengths differ/);

  // the atlas "image" is its label map; after a smooth warp the warped image rounds to the labels
  const b = texturedBlob(grid, [8, 7, 6]);
  const stack = atlasStack(Float32Array.from(b.label), b.label, 2);
  const d = smoothField([1.5, 1.2, 0.8]);
  const s = synthesize(stack, 2, d, grid);
  let fg = 0;
  let agree = 0;
  for (let i = 0; i < m; i++) {
    if (s.labels[i] === 1) fg++;
    if ((s.image[i]! > 0.5 ? 1 : 0) === s.labels[i]) agree++;
  }
  assert.ok(fg > 100, `${fg} foreground voxels`);
  assert.equal(agree, m, 'image and labels warped by the same field');
});

test('composeShift: the atlas warped by φ − s = the atlas pre-shifted by s, warped by φ', () => {
  const b = texturedBlob(grid, [8, 7, 6]);
  const s: [number, number, number] = [2, -1, 1];
  const phi = smoothField([0.7, 0.6, 0.5]);
  const viaShift = warpReference(shiftImage(b.image, grid, s), phi, grid);
  const direct = warpReference(b.image, composeShift(phi, s), grid);
  let compared = 0;
  // away from the borders, where neither the shift nor the warp clamps
  for (let z = 4; z < grid[0] - 4; z++)
    for (let y = 4; y < grid[1] - 4; y++)
      for (let x = 4; x < grid[2] - 4; x++) {
        const i = at(z, y, x);
        assert.ok(Math.abs(viaShift[i]! - direct[i]!) < 1e-5, `voxel ${z},${y},${x}`);
        compared++;
      }
  assert.ok(compared > 100);
  const moved = composeShift(phi, s);
  assert.equal(moved[0], phi[0]! - 2);
  assert.equal(moved[m], phi[m]! + 1);
  assert.equal(moved[2 * m], phi[2 * m]! - 1);
  // without the composition the two differ (the check above is not vacuous)
  const plain = warpReference(b.image, phi, grid);
  let differ = 0;
  for (let i = 0; i < m; i++) if (Math.abs(plain[i]! - viaShift[i]!) > 1e-3) differ++;
  assert.ok(differ > 100, `${differ} voxels differ without the shift`);
});

test('plan sampling.synthetic: absent by default, defaults, validation', () => {
  assert.equal(parsePlan({}).sampling.synthetic, undefined);
  assert.deepEqual(parsePlan({ sampling: { synthetic: {} } }).sampling.synthetic, {
    probability: 0.3,
    blend: 0.5,
  });
  assert.throws(
    () => parsePlan({ sampling: { synthetic: { probability: 1.5 } } }),
    /sampling\.synthetic\.probability/,
  );
  assert.throws(() => parsePlan({ sampling: { synthetic: { mix: 1 } } }), /unknown field "mix"/);
  assert.throws(() => parsePlan({ sampling: { synthetic: true } }), /expected an object/);
});
