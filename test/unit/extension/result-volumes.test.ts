// The panel's volumes and the labelmap hash that tells whether the reader changed a result.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { contentHash } from '@rrl/extension/seg/labelmap.js';
import { formatMl } from '@rrl/extension/panels/ResultSection.js';

test('volumes in mL from voxels and the voxel size', { timeout: 10_000 }, () => {
  assert.equal(formatMl(2790, 1), '2.8 mL');
  assert.equal(formatMl(1000, 0.5 * 0.5 * 3), '0.8 mL');
  assert.equal(formatMl(250_000, 1.2), '300 mL');
  assert.equal(formatMl(1_500_000, 1), '1,500 mL');
  assert.equal(formatMl(10, undefined), undefined, 'no voxel size: no volume');
  assert.equal(formatMl(10, 0), undefined);
});

test('the content hash changes with one voxel and not with a copy', { timeout: 10_000 }, () => {
  const a = new Uint8Array(64 * 64 * 16);
  a[100] = 3;
  const b = a.slice();
  assert.equal(contentHash(a), contentHash(b));
  b[4000] = 1; // one brushed voxel
  assert.notEqual(contentHash(a), contentHash(b));
  b[4000] = 0; // and erased again: clean
  assert.equal(contentHash(a), contentHash(b));
  // The same labels moved to another voxel are another content.
  const c = new Uint8Array(a.length);
  c[101] = 3;
  assert.notEqual(contentHash(a), contentHash(c));
});
