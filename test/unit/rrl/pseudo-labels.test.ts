/** Pseudo-label warp: identity, one-voxel shift, ONNX warp equal to the TypeScript reference. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  warpLabels,
  warpLabelsReference,
  warpReference,
  oneHot,
  IGNORE_LABEL,
  type Grid,
} from '@rrl/models/rrl/pseudoLabels.js';

const grid: Grid = [6, 7, 8];
const m = grid[0] * grid[1] * grid[2];
const idx = (z: number, y: number, x: number): number => (z * grid[1] + y) * grid[2] + x;

/** A box of label 1 and a box of label 2 on background 0. */
function labelVolume(): Uint8Array {
  const l = new Uint8Array(m);
  for (let z = 1; z < 4; z++)
    for (let y = 2; y < 5; y++) for (let x = 1; x < 4; x++) l[idx(z, y, x)] = 1;
  for (let z = 3; z < 5; z++)
    for (let y = 1; y < 3; y++) for (let x = 5; x < 7; x++) l[idx(z, y, x)] = 2;
  return l;
}

test('zero displacement: pseudo labels equal the atlas labels', async () => {
  const labels = labelVolume();
  const r = await warpLabels(labels, new Float32Array(3 * m), grid, 3);
  assert.deepEqual(Array.from(r.labels), Array.from(labels));
  assert.deepEqual(
    Array.from(warpLabelsReference(labels, new Float32Array(3 * m), grid, 3)),
    Array.from(labels),
  );
});

test('a constant one-voxel displacement moves every label by one voxel', async () => {
  const labels = labelVolume();
  for (const axis of [0, 1, 2]) {
    const disp = new Float32Array(3 * m);
    disp.fill(1, axis * m, (axis + 1) * m); // out(p) = atlas(p + e_axis)
    const r = await warpLabels(labels, disp, grid, 3);
    for (let z = 0; z < grid[0]; z++)
      for (let y = 0; y < grid[1]; y++)
        for (let x = 0; x < grid[2]; x++) {
          const q = [z, y, x];
          q[axis] = Math.min(q[axis]! + 1, grid[axis]! - 1);
          assert.equal(
            r.labels[idx(z, y, x)],
            labels[idx(q[0]!, q[1]!, q[2]!)],
            `axis ${axis} voxel ${z},${y},${x}`,
          );
        }
    // the box moved towards the origin along the axis: its first voxel keeps label 1 (from the next)
    assert.equal(r.labels[idx(1, 2, 1)], 1);
    const first = [1, 2, 1];
    first[axis] = first[axis]! - 1; // one voxel before the box now carries label 1
    assert.equal(r.labels[idx(first[0]!, first[1]!, first[2]!)], 1);
    assert.equal(labels[idx(first[0]!, first[1]!, first[2]!)], 0);
  }
});

test('the ONNX warp equals the TypeScript reference for a random smooth displacement', async () => {
  const labels = labelVolume();
  const disp = new Float32Array(3 * m);
  for (let a = 0; a < 3; a++)
    for (let z = 0; z < grid[0]; z++)
      for (let y = 0; y < grid[1]; y++)
        for (let x = 0; x < grid[2]; x++)
          disp[a * m + idx(z, y, x)] = 1.3 * Math.sin(0.7 * z + 1.1 * y + 0.5 * x + a) - 0.2 * a;
  const r = await warpLabels(labels, disp, grid, 3);
  const ref = warpReference(oneHot(labels, 3), disp, grid);
  let maxErr = 0;
  for (let i = 0; i < ref.length; i++)
    maxErr = Math.max(maxErr, Math.abs(ref[i]! - r.probabilities[i]!));
  assert.ok(maxErr < 1e-5, `max |onnx − reference| = ${maxErr}`);
  // argmax may only differ at exact ties; there are none off by more than float noise here
  const refLabels = warpLabelsReference(labels, disp, grid, 3);
  assert.deepEqual(Array.from(r.labels), Array.from(refLabels));
  assert.ok(
    r.labels.some((v, i) => v !== labels[i]),
    'the displacement changed some labels',
  );
});

test('labels outside the classes and wrong sizes are refused with a clear error', async () => {
  const bad = labelVolume();
  bad[0] = 5;
  await assert.rejects(warpLabels(bad, new Float32Array(3 * m), grid, 3), /outside 0\.\.2/);
  await assert.rejects(
    warpLabels(new Uint8Array(10), new Float32Array(3 * m), grid, 3),
    /expected 336 values/,
  );
});

test('oneHot: IGNORE_LABEL gives an all-zero row only when asked for', () => {
  const labels = Uint8Array.from([0, 2, IGNORE_LABEL, 1]);
  assert.deepEqual(
    Array.from(oneHot(labels, 3, { ignore: IGNORE_LABEL })),
    [1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0],
  );
  assert.throws(() => oneHot(labels, 3), /label 255 at voxel 2 is outside 0\.\.2/);
});
