// One series geometry for the viewer and the server: the same series, fed to the viewer's check
// (computeVolumeGeometry on the instances' metadata, as runOneShot does) and to the server's
// volume reader (volumeFromDatasets, as training and the atlas use), gets the same answer and the
// same grid — a series the viewer segments is never skipped by training, and the reverse.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readPart10, type NaturalDataset } from '@rrl/core/dicom/dcmjs.js';
import {
  computeVolumeGeometry,
  instanceGeometryFromNaturalized,
} from '@rrl/core/volume/geometry.js';
import { volumeFromDatasets } from '@rrl/core/volume/part10.js';
import { smallSeries } from '../dicom/helpers.js';

/** The series' datasets with slice `k` moved `dz` mm along z. */
function withShift(k: number, dz: number): NaturalDataset[] {
  const s = smallSeries(8, 8, 9);
  return s.files.map((f, i) => {
    const ds = readPart10(f);
    if (i === k) {
      const p = (ds.ImagePositionPatient as number[]).map(Number);
      ds.ImagePositionPatient = [p[0], p[1], (p[2] ?? 0) + dz];
    }
    return ds;
  });
}

function viewer(ds: NaturalDataset[]) {
  return computeVolumeGeometry(
    ds.map((d) => instanceGeometryFromNaturalized(d)),
    {
      minSlices: 2,
    },
  );
}

test(
  'a slightly uneven series (3 % of the spacing) is one volume for both, with one grid',
  { timeout: 10_000 },
  () => {
    const ds = withShift(4, 0.075); // the spacing is 2.5 mm
    const v = viewer(ds);
    const s = volumeFromDatasets(ds);
    assert.deepEqual(s.geometry.dims, v.dims);
    assert.deepEqual(s.geometry.spacing, v.spacing);
    assert.deepEqual(s.geometry.origin, v.origin);
    assert.deepEqual(s.geometry.direction, v.direction);
  },
);

test(
  'a clearly uneven series (12 %) and a missing slice are refused by both, for the same reason',
  { timeout: 10_000 },
  () => {
    for (const [ds, reason] of [
      [withShift(4, 0.3), /non-uniform slice spacing/],
      [withShift(4, 0).filter((_, i) => i !== 4), /missing 1 slice/],
    ] as const) {
      assert.throws(() => viewer(ds), reason);
      assert.throws(() => volumeFromDatasets(ds), reason);
    }
  },
);
