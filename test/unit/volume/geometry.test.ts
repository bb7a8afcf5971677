import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GeometryError,
  computeVolumeGeometry,
  instanceGeometryFromNaturalized,
  type InstanceGeometry,
} from '@rrl/core/volume/index.js';

const AXIAL = [1, 0, 0, 0, 1, 0] as InstanceGeometry['imageOrientationPatient'];

function axialSeries(zs: number[], extra: Partial<InstanceGeometry> = {}): InstanceGeometry[] {
  return zs.map((z) => ({
    imagePositionPatient: [-90, -120, z],
    imageOrientationPatient: AXIAL,
    pixelSpacing: [1.5, 0.8],
    rows: 20,
    columns: 30,
    ...extra,
  }));
}

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GeometryError, String(e));
    return e.problem;
  }
  assert.fail('expected a GeometryError');
}

test('sorts shuffled slices along the normal and reports dims/spacing/origin', () => {
  const zs = [6, 0, 9, 3, 12];
  const g = computeVolumeGeometry(axialSeries(zs));
  assert.deepEqual(g.dims, [30, 20, 5]);
  assert.deepEqual(g.spacing, [0.8, 1.5, 3]);
  assert.deepEqual(g.origin, [-90, -120, 0]);
  assert.deepEqual(
    g.order.map((i) => zs[i]),
    [0, 3, 6, 9, 12],
  );
  assert.deepEqual(g.direction.slice(6), [0, 0, 1]);
});

test('sagittal orientation sorts along x (normal = row × col)', () => {
  // row along +y (anterior→posterior), column along -z: normal = y × (-z) = -x
  const iop = [0, 1, 0, 0, 0, -1] as InstanceGeometry['imageOrientationPatient'];
  const xs = [10, 12, 14, 16];
  const inst = xs.map((x) => ({
    imagePositionPatient: [x, 0, 0] as [number, number, number],
    imageOrientationPatient: iop,
    pixelSpacing: [1, 1] as [number, number],
    rows: 4,
    columns: 4,
  }));
  const g = computeVolumeGeometry(inst);
  assert.deepEqual(g.direction.slice(6), [-1, 0, 0]);
  assert.deepEqual(
    g.order.map((i) => xs[i]),
    [16, 14, 12, 10],
  );
  assert.equal(g.spacing[2], 2);
});

test('single slice and empty series are rejected', () => {
  assert.equal(
    problem(() => computeVolumeGeometry(axialSeries([0]))),
    'single-slice',
  );
  assert.throws(
    () => computeVolumeGeometry(axialSeries([0])),
    /has 1 slice; a 3-D volume needs at least 2/,
  );
  assert.equal(
    problem(() => computeVolumeGeometry([])),
    'no-instances',
  );
  assert.equal(
    problem(() => computeVolumeGeometry(axialSeries([0, 1, 2]), { minSlices: 8 })),
    'single-slice',
  );
});

test('a missing slice is detected as such, with its place', () => {
  assert.equal(
    problem(() => computeVolumeGeometry(axialSeries([0, 2, 4, 8, 10]))),
    'missing-slice',
  );
  assert.throws(
    () => computeVolumeGeometry(axialSeries([0, 2, 4, 8, 10]), { seriesInstanceUID: '1.2.840.9' }),
    /Series 1\.2\.840\.9 is missing 1 slice between slice 3 and 4/,
  );
});

test('non-uniform spacing is rejected, small jitter is tolerated', () => {
  assert.equal(
    problem(() => computeVolumeGeometry(axialSeries([0, 2, 4, 7, 9]))),
    'non-uniform-spacing',
  );
  const g = computeVolumeGeometry(axialSeries([0, 2.01, 3.99, 6, 8.02]));
  assert.ok(Math.abs(g.spacing[2] - 2.005) < 1e-9);
});

test('mixed orientations, mixed sizes, duplicates and missing attributes are rejected', () => {
  const mixed = axialSeries([0, 1, 2]);
  mixed[1] = { ...mixed[1], imageOrientationPatient: [1, 0, 0, 0, 0, -1] };
  assert.equal(
    problem(() => computeVolumeGeometry(mixed)),
    'mixed-orientation',
  );
  const sizes = axialSeries([0, 1, 2]);
  sizes[2] = { ...sizes[2], rows: 21 };
  assert.equal(
    problem(() => computeVolumeGeometry(sizes)),
    'mixed-size',
  );
  assert.equal(
    problem(() => computeVolumeGeometry(axialSeries([0, 1, 1, 2]))),
    'duplicate-position',
  );
  const noPos = axialSeries([0, 1]);
  noPos[0] = {
    ...noPos[0],
    imagePositionPatient: undefined as unknown as [number, number, number],
  };
  assert.equal(
    problem(() => computeVolumeGeometry(noPos)),
    'missing-attributes',
  );
});

test('in-plane shifted slices are not a regular grid', () => {
  const s = axialSeries([0, 1, 2, 3]);
  s[2] = { ...s[2], imagePositionPatient: [-80, -120, 2] };
  assert.equal(
    problem(() => computeVolumeGeometry(s)),
    'not-stacked',
  );
});

test('naturalized instance attributes are read, including backslash strings', () => {
  const g = instanceGeometryFromNaturalized({
    ImagePositionPatient: ['1', '2', '3'],
    ImageOrientationPatient: '1\\0\\0\\0\\1\\0',
    PixelSpacing: [0.5, 0.7],
    Rows: 10,
    Columns: '12',
  });
  assert.deepEqual(g, {
    imagePositionPatient: [1, 2, 3],
    imageOrientationPatient: [1, 0, 0, 0, 1, 0],
    pixelSpacing: [0.5, 0.7],
    rows: 10,
    columns: 12,
  });
});
