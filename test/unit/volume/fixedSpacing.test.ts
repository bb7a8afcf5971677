import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  centredCoordinate,
  labelsFromLogits,
  labelsToModelGrid,
  normalizeIntensity,
  prepareModelInput,
  probabilitiesToSourceLabels,
  resampleTrilinearCentred,
  type Dims,
} from '@rrl/core/volume/index.js';
import type { GridSpec, ModelMetadata } from '@rrl/core/format/metadata.js';

type Meta = Pick<ModelMetadata, 'grid' | 'intensity' | 'labels'>;

function meta(
  size: Dims,
  spacing: number[],
  resample: GridSpec['resample'] = 'fixed-spacing',
): Meta {
  return {
    grid: {
      size: [...size] as [number, number, number],
      spacing: spacing as [number, number, number],
      resample,
    },
    intensity: { method: 'zscore' },
    labels: [{}, {}, {}] as never,
  };
}

/** Deterministic pseudo-random labels 0..3 in blobs. */
function blobLabels(d: Dims): Uint8Array {
  const out = new Uint8Array(d[0] * d[1] * d[2]);
  let i = 0;
  for (let z = 0; z < d[2]; z++)
    for (let y = 0; y < d[1]; y++)
      for (let x = 0; x < d[0]; x++, i++) out[i] = ((x * 7 + y * 3 + z * 5) >> 2) % 4;
  return out;
}

function oneHot(labels: Uint8Array, channels: number): Float32Array {
  const n = labels.length;
  const l = new Float32Array(channels * n);
  for (let i = 0; i < n; i++) l[labels[i] * n + i] = 1;
  return l;
}

test('fixed-spacing round trip: a volume smaller than the grid comes back unchanged', () => {
  for (const [src, grid] of [
    [
      [5, 7, 6],
      [9, 11, 10],
    ],
    [
      [4, 6, 3],
      [10, 12, 7],
    ],
  ] as [Dims, Dims][]) {
    const m = meta(grid, [1.5, 1.5, 2]);
    const labels = blobLabels(src);
    const onGrid = labelsToModelGrid(labels, src, m, [1.5, 1.5, 2]);
    assert.equal(onGrid.length, grid[0] * grid[1] * grid[2]);
    // padding around the source is background, and every source voxel landed on the grid once
    const count = (a: Uint8Array, v: number): number => a.filter((x) => x === v).length;
    for (let v = 1; v < 4; v++) assert.equal(count(onGrid, v), count(labels, v), `value ${v}`);
    const back = labelsFromLogits(oneHot(onGrid, 4), m, src, [1.5, 1.5, 2]);
    assert.deepEqual(Array.from(back), Array.from(labels));
  }
});

test('fixed-spacing round trip: a volume larger than the grid keeps the centre, cropped border → 0', () => {
  const src: Dims = [13, 15, 12];
  const grid: Dims = [9, 11, 8];
  const m = meta(grid, [1, 1, 1]);
  const labels = blobLabels(src);
  const back = labelsFromLogits(
    oneHot(labelsToModelGrid(labels, src, m, [1, 1, 1]), 4),
    m,
    src,
    [1, 1, 1],
  );
  const off = [2, 2, 2];
  let i = 0;
  let kept = 0;
  for (let z = 0; z < src[2]; z++)
    for (let y = 0; y < src[1]; y++)
      for (let x = 0; x < src[0]; x++, i++) {
        const p = [x, y, z];
        const inGrid = p.every((c, a) => c >= off[a] && c < off[a] + grid[a]);
        assert.equal(back[i], inGrid ? labels[i] : 0, `voxel ${p.join(',')}`);
        if (inGrid) kept++;
      }
  assert.equal(kept, grid[0] * grid[1] * grid[2]);
});

test('centring is exact for odd and even sizes (same spacing): integer shifts, exact inside mask', () => {
  for (const [s, g, shift] of [
    [5, 9, 2],
    [4, 8, 2],
    [7, 7, 0],
    [9, 5, -2],
    [8, 4, -2],
  ]) {
    const src = Float32Array.from({ length: s }, (_, i) => 10 + i);
    const { data, inside } = resampleTrilinearCentred(
      src,
      [s, 1, 1],
      [1, 1, 1],
      [g, 1, 1],
      [1, 1, 1],
    );
    for (let j = 0; j < g; j++) {
      const i = j - shift;
      const isIn = i >= 0 && i < s;
      assert.equal(inside[j], isIn ? 1 : 0, `s ${s} g ${g} j ${j}`);
      if (isIn) assert.equal(data[j], 10 + i);
    }
    assert.equal(centredCoordinate((g - 1) / 2, g, 1, s, 1), (s - 1) / 2);
  }
  // odd source in an even grid: the voxels still coincide (shift trunc(3/2) = 1, no interpolation),
  // the centres agree within half a voxel, and the two directions are exact inverses
  const src = Float32Array.from([0, 1, 2, 3, 4]);
  const { data, inside } = resampleTrilinearCentred(
    src,
    [5, 1, 1],
    [1, 1, 1],
    [8, 1, 1],
    [1, 1, 1],
  );
  assert.deepEqual(Array.from(inside), [0, 1, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual(Array.from(data.slice(1, 6)), [0, 1, 2, 3, 4]);
  for (const [a, b] of [
    [5, 8],
    [8, 5],
    [37, 40],
    [35, 40],
    [40, 37],
  ]) {
    for (let j = 0; j < a; j++) {
      const u = centredCoordinate(j, a, 1, b, 1);
      assert.ok(Number.isInteger(u), `${a} → ${b}: ${u}`);
      assert.equal(centredCoordinate(u, b, 1, a, 1), j);
      assert.ok(Math.abs(u - (j + (b - a) / 2)) <= 0.5);
    }
  }
});

test('labels and image stay aligned on a grid of the same spacing (odd and even size differences)', () => {
  // a blob image and its thresholded label map on a 7×6×5 source; on every grid the label map
  // must still be the threshold of the image (a half-voxel offset breaks this on odd differences)
  const src: Dims = [7, 6, 5];
  const img = new Float32Array(7 * 6 * 5);
  const lab = new Uint8Array(img.length);
  let i = 0;
  for (let z = 0; z < 5; z++)
    for (let y = 0; y < 6; y++)
      for (let x = 0; x < 7; x++, i++) {
        img[i] = 100 - ((x - 2.6) ** 2 + (y - 3.2) ** 2 + (z - 2.1) ** 2) * 10;
        lab[i] = img[i] > 75 ? 1 : 0;
      }
  for (const grid of [
    [10, 8, 8],
    [9, 9, 6],
    [8, 7, 7],
  ] as Dims[]) {
    const m = meta(grid, [1, 1, 1]);
    const { data, inside } = resampleTrilinearCentred(img, src, [1, 1, 1], grid, [1, 1, 1]);
    const onGrid = labelsToModelGrid(lab, src, m, [1, 1, 1]);
    let fg = 0;
    for (let v = 0; v < data.length; v++) {
      if (!inside[v]) continue;
      assert.equal(onGrid[v], data[v] > 75 ? 1 : 0, `grid ${grid.join('×')} voxel ${v}`);
      fg += onGrid[v];
    }
    assert.equal(
      fg,
      lab.reduce((a, b) => a + b, 0),
      `grid ${grid.join('×')}: all label voxels kept`,
    );
  }
});

test('fixed-spacing scales by the spacing ratio in both directions', () => {
  // 5 source voxels at 2 mm (10 mm) onto 10 grid voxels at 1 mm: u = j/2 - 0.25
  const src = Float32Array.from([0, 10, 20, 30, 40]);
  const { data, inside } = resampleTrilinearCentred(
    src,
    [5, 1, 1],
    [2, 1, 1],
    [10, 1, 1],
    [1, 1, 1],
  );
  assert.ok(inside.every((v) => v === 1));
  const expect = Array.from({ length: 10 }, (_, j) => 10 * Math.min(4, Math.max(0, j / 2 - 0.25)));
  data.forEach((v, j) => assert.ok(Math.abs(v - expect[j]) < 1e-5, `j ${j}: ${v} vs ${expect[j]}`));
  // and back: grid labels constant in pairs come back per source voxel
  const m = meta([10, 1, 1], [1, 1, 1]);
  const gridLabels = Uint8Array.from([1, 1, 2, 2, 3, 3, 0, 0, 1, 1]);
  const back = labelsFromLogits(oneHot(gridLabels, 4), m, [5, 1, 1], [2, 1, 1]);
  assert.deepEqual(Array.from(back), [1, 2, 3, 0, 1]);
  // a 2 mm grid over a 1 mm source of twice the size: labels on the grid are every other voxel
  const fine = Uint8Array.from([1, 1, 2, 2, 3, 3, 0, 0]);
  const coarse = labelsToModelGrid(fine, [8, 1, 1], meta([4, 1, 1], [2, 1, 1]), [1, 1, 1]);
  assert.deepEqual(Array.from(coarse), [1, 2, 3, 0]);
  // the physical scale differs per axis: spacing [x, y, z] is honoured per axis
  assert.equal(centredCoordinate(0, 4, 2, 8, 1), 0.5);
  assert.equal(centredCoordinate(0, 8, 1, 4, 2), -0.25);
});

test('prepareModelInput fixed-spacing: statistics from in-source voxels, outside = normalised source minimum', () => {
  const src: Dims = [4, 4, 4];
  const voxels = Float32Array.from({ length: 64 }, (_, i) => ((i * 37) % 64) + 100);
  const m = meta([8, 6, 4], [1, 1, 1]);
  const out = prepareModelInput(voxels, src, m, [1, 1, 1]);
  assert.equal(out.length, 8 * 6 * 4);
  // in-source voxels are exactly the source (shift [2, 1, 0]), normalised with the source's stats
  const expected = normalizeIntensity(Float32Array.from(voxels), { method: 'zscore' });
  const fill = (100 - expected.offset) * expected.scale;
  let i = 0;
  for (let z = 0; z < 4; z++)
    for (let y = 0; y < 6; y++)
      for (let x = 0; x < 8; x++, i++) {
        const sx = x - 2;
        const sy = y - 1;
        const isIn = sx >= 0 && sx < 4 && sy >= 0 && sy < 4;
        const want = isIn ? expected.data[sx + 4 * (sy + 4 * z)] : fill;
        assert.ok(Math.abs(out[i] - want) < 1e-5, `voxel ${x},${y},${z}: ${out[i]} vs ${want}`);
      }
  // percentile: padding is the normalised minimum, clipped to [0, 1]
  const p = prepareModelInput(
    voxels,
    src,
    { ...m, intensity: { method: 'percentile', low: 5, high: 95 } },
    [1, 1, 1],
  );
  assert.equal(p[0], 0);
  assert.ok(p.every((v) => v >= 0 && v <= 1));
});

test('fixed-spacing without the source spacing is a clear error; fit-extent ignores the spacing', () => {
  const voxels = new Float32Array(64).map((_, i) => i);
  assert.throws(
    () => prepareModelInput(voxels, [4, 4, 4], meta([4, 4, 4], [1, 1, 1])),
    /"fixed-spacing".*source spacing \[x, y, z\] in mm is needed.*Pass the series' voxel spacing/,
  );
  assert.throws(
    () => labelsFromLogits(new Float32Array(4 * 64), meta([4, 4, 4], [1, 1, 1]), [4, 4, 4]),
    /labelsFromLogits/,
  );
  assert.throws(
    () => labelsToModelGrid(new Uint8Array(64), [4, 4, 4], meta([4, 4, 4], [1, 1, 1])),
    /labelsToModelGrid/,
  );
  assert.throws(
    () => prepareModelInput(voxels, [4, 4, 4], meta([4, 4, 4], [1, 1, 1]), [1, 0, 1]),
    /source spacing must be three positive numbers/,
  );
  const fit = meta([2, 2, 2], [1, 1, 1], 'fit-extent');
  assert.deepEqual(
    prepareModelInput(voxels, [4, 4, 4], fit, [3, 3, 3]),
    prepareModelInput(voxels, [4, 4, 4], fit),
  );
  assert.equal(probabilitiesToSourceLabels, labelsFromLogits);
});

test('labelsToModelGrid fit-extent is nearest neighbour; Uint16 labels above 255 are refused', () => {
  const labels = Uint16Array.from({ length: 8 }, (_, i) => i % 3);
  const g = labelsToModelGrid(labels, [8, 1, 1], meta([4, 1, 1], [1, 1, 1], 'fit-extent'));
  assert.deepEqual(Array.from(g), [1, 0, 2, 1]);
  assert.ok(g instanceof Uint8Array);
  assert.throws(
    () =>
      labelsToModelGrid(
        Uint16Array.from([0, 300]),
        [2, 1, 1],
        meta([2, 1, 1], [1, 1, 1], 'fit-extent'),
      ),
    /found 300\. Map label values to class indices first/,
  );
});
