import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VolumeError, volumeFromInstances, voxelToLps } from '@rrl/server/pacs/volume.js';
import { smallSeries } from './helpers.js';

test('volumeFromInstances sorts slices along the normal and keeps the geometry', () => {
  const s = smallSeries(16, 12, 6);
  const shuffled = [3, 0, 5, 1, 4, 2].map((k) => s.files[k]);
  const v = volumeFromInstances(shuffled);
  assert.deepEqual(v.geometry.dims, [16, 12, 6]);
  assert.deepEqual(v.geometry.spacing, [1, 1.5, 2.5]);
  // source slice k is at z = 30 − 2.5 k; the normal is +z, so volume slice 0 = source slice 5
  assert.deepEqual(v.geometry.origin, [-10, -20, 17.5]);
  assert.deepEqual(v.geometry.direction, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const frame = 16 * 12;
  for (let z = 0; z < 6; z++) {
    const k = 5 - z;
    for (const i of [0, 7, 100, frame - 1]) {
      assert.equal(v.voxels[z * frame + i], ((k * frame + i) * 37) % 1000);
    }
  }
  assert.equal(v.instances.length, 6);
  assert.equal(v.instances[0].PixelData, undefined);
  assert.equal(v.seriesUID, s.seriesInstanceUID);
  assert.deepEqual(voxelToLps(v.geometry, 2, 4, 1), [-8, -14, 20]);
});

test('volumeFromInstances refuses a missing slice and a single slice with clear messages', () => {
  const s = smallSeries(8, 8, 5);
  assert.throws(
    () => volumeFromInstances([s.files[0], s.files[1], s.files[3], s.files[4]]),
    (e: unknown) =>
      e instanceof VolumeError && /missing 1 slice between slice 2 and 3/.test(e.message),
  );
  assert.throws(() => volumeFromInstances([s.files[0]]), /at least 2 slices/);
});
