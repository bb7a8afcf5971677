import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readPart10, numbers, str } from '@rrl/core/dicom/dcmjs.js';
import {
  CT_IMAGE_STORAGE,
  MR_IMAGE_STORAGE,
  geometryFromNiftiAffine,
  writeImageSeries,
} from '@rrl/core/dicom/series.js';
import { smallGeometry, smallSeries } from './helpers.js';

test('writeImageSeries writes one MR instance per slice with the right geometry and pixels', () => {
  const s = smallSeries(16, 12, 6);
  assert.equal(s.files.length, 6);
  const g = smallGeometry(16, 12, 6);
  s.files.forEach((f, z) => {
    const ds = readPart10(f);
    assert.equal(str(ds.SOPClassUID), MR_IMAGE_STORAGE);
    assert.equal(str(ds.SOPInstanceUID), s.sopInstanceUIDs[z]);
    assert.equal(str(ds.SeriesInstanceUID), s.seriesInstanceUID);
    assert.equal(str(ds.FrameOfReferenceUID), s.frameOfReferenceUID);
    assert.equal(Number(ds.Rows), 12);
    assert.equal(Number(ds.Columns), 16);
    assert.deepEqual(numbers(ds.ImagePositionPatient), [-10, -20, 30 - 2.5 * z]);
    assert.deepEqual(numbers(ds.ImageOrientationPatient), [1, 0, 0, 0, 1, 0]);
    assert.deepEqual(numbers(ds.PixelSpacing), [1.5, 1]); // row spacing \ column spacing
    assert.equal(str(ds.PatientPosition), 'HFS');
    assert.equal(str(ds.BodyPartExamined), 'BRAIN');
    assert.equal(Number(ds.PixelRepresentation), 1);
    const px = new Int16Array((ds.PixelData as ArrayBuffer[])[0]);
    assert.equal(px.length, 16 * 12);
    const off = z * 16 * 12;
    for (const i of [0, 17, 100, 191]) assert.equal(px[i], ((off + i) * 37) % 1000);
  });
  assert.deepEqual(g.dims, [16, 12, 6]);
});

test('writeImageSeries writes CT with rescale attributes and unsigned MR from Uint16Array', () => {
  const g = smallGeometry(8, 8, 2);
  const ct = writeImageSeries({
    modality: 'CT',
    geometry: g,
    voxels: new Int16Array(128).fill(-1000),
    patient: { name: 'SYNTHETIC^CT', id: 'SYN-CT' },
    study: { studyInstanceUID: '2.25.5' },
  });
  const ds = readPart10(ct.files[1]);
  assert.equal(str(ds.SOPClassUID), CT_IMAGE_STORAGE);
  assert.equal(str(ds.RescaleIntercept), '0');
  assert.equal(new Int16Array((ds.PixelData as ArrayBuffer[])[0])[5], -1000);
  const mr = writeImageSeries({
    modality: 'MR',
    geometry: g,
    voxels: new Uint16Array(128).fill(4000),
    patient: { name: 'SYNTHETIC^MR', id: 'SYN-MR' },
    study: { studyInstanceUID: '2.25.6' },
  });
  const m = readPart10(mr.files[0]);
  assert.equal(Number(m.PixelRepresentation), 0);
  assert.equal(new Uint16Array((m.PixelData as ArrayBuffer[])[0])[63], 4000);
});

test('writeImageSeries rejects a voxel count that does not match the dimensions', () => {
  assert.throws(
    () =>
      writeImageSeries({
        modality: 'MR',
        geometry: smallGeometry(8, 8, 2),
        voxels: new Int16Array(100),
        patient: { name: 'X', id: 'Y' },
        study: { studyInstanceUID: '2.25.7' },
      }),
    /expected 128 voxels/,
  );
});

test('geometryFromNiftiAffine converts RAS to LPS', () => {
  // MNI-like: 1 mm, i → R→L? here i increases to the right (+x RAS), origin at (-90,-126,-72)
  const g = geometryFromNiftiAffine(
    [
      [1, 0, 0, -90],
      [0, 1, 0, -126],
      [0, 0, 2, -72],
      [0, 0, 0, 1],
    ],
    [10, 10, 10],
  );
  assert.deepEqual(g.spacing, [1, 1, 2]);
  assert.deepEqual(g.origin, [90, 126, -72]);
  assert.deepEqual(
    g.direction.map((v) => v + 0),
    [-1, 0, 0, 0, -1, 0, 0, 0, 1],
  );
});
