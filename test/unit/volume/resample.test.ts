import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  argmaxChannels,
  countLabels,
  indexToWorld,
  labelCentroid,
  labelsFromLogits,
  logitsToSourceLabels,
  normalizeIntensity,
  percentile,
  prepareModelInput,
  resampleNearest,
  resampleTrilinear,
} from '@rrl/core/volume/index.js';

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol, `index ${i}: ${a[i]} vs ${b[i]}`);
  }
}

test('identity resample returns the input', () => {
  const src = Float32Array.from({ length: 4 * 3 * 2 }, (_, i) => i * 1.5);
  close(resampleTrilinear(src, [4, 3, 2], [4, 3, 2]), src);
  assert.deepEqual(
    resampleNearest(
      Uint8Array.from(src, (v) => v),
      [4, 3, 2],
      [4, 3, 2],
    ),
    Uint8Array.from(src, (v) => v),
  );
});

test('trilinear downsampling by 2 averages neighbouring pairs (known answer)', () => {
  // f(x, y, z) = x + 10 y + 100 z on a 4×2×2 grid → 2×1×1: centres at x = 0.5, 2.5; y = 0.5; z = 0.5
  const src = new Float32Array(4 * 2 * 2);
  for (let z = 0; z < 2; z++)
    for (let y = 0; y < 2; y++)
      for (let x = 0; x < 4; x++) src[x + 4 * (y + 2 * z)] = x + 10 * y + 100 * z;
  close(resampleTrilinear(src, [4, 2, 2], [2, 1, 1]), [0.5 + 5 + 50, 2.5 + 5 + 50]);
});

test('trilinear upsampling reproduces a linear function inside and clamps at the borders', () => {
  const src = Float32Array.from([0, 10]); // 2×1×1
  // dst 4: u = (j + 0.5) * 0.5 - 0.5 = -0.25, 0.25, 0.75, 1.25 → clamped 0, 0.25, 0.75, 1
  close(resampleTrilinear(src, [2, 1, 1], [4, 1, 1]), [0, 2.5, 7.5, 10]);
});

test('nearest keeps label values and maps block-wise', () => {
  const src = Uint8Array.from([1, 2, 3, 4]);
  assert.deepEqual(Array.from(resampleNearest(src, [4, 1, 1], [2, 1, 1])), [2, 4]);
  assert.deepEqual(
    Array.from(resampleNearest(src, [4, 1, 1], [8, 1, 1])),
    [1, 1, 2, 2, 3, 3, 4, 4],
  );
  const u16 = resampleNearest(Uint16Array.from([7, 9]), [1, 1, 2], [1, 1, 4]);
  assert.ok(u16 instanceof Uint16Array);
  assert.deepEqual(Array.from(u16), [7, 7, 9, 9]);
});

test('dimension mismatches are reported', () => {
  assert.throws(
    () => resampleTrilinear(new Float32Array(5), [2, 2, 2], [1, 1, 1]),
    /needs 8 voxels, but the array holds 5/,
  );
  assert.throws(
    () => resampleTrilinear(new Float32Array(8), [2, 2, 2], [0, 1, 1]),
    /positive integers/,
  );
  assert.throws(
    () => logitsToSourceLabels(new Float32Array(7), 2, [2, 2, 1], [4, 4, 1]),
    /must hold 2 × 4 values/,
  );
});

test('argmax over channels', () => {
  // C=3, N=2: voxel0 channel2 highest, voxel1 channel0
  const l = Float32Array.from([0, 5, 1, 1, 2, -1]);
  assert.deepEqual(Array.from(argmaxChannels(l, 3)), [2, 0]);
});

test('logits back to the source grid: a half-space label stays a half-space, sized to the source', () => {
  // grid 4×1×1, C=2: channel1 wins for x >= 2
  const gx = 4;
  const logits = new Float32Array(2 * gx);
  for (let x = 0; x < gx; x++) {
    logits[x] = x < 2 ? 1 : -1;
    logits[gx + x] = x < 2 ? -1 : 1;
  }
  const out = logitsToSourceLabels(logits, 2, [4, 1, 1], [8, 3, 2]);
  assert.equal(out.length, 8 * 3 * 2);
  for (let z = 0; z < 2; z++)
    for (let y = 0; y < 3; y++)
      assert.deepEqual(
        Array.from(out.slice((z * 3 + y) * 8, (z * 3 + y + 1) * 8)),
        [0, 0, 0, 0, 1, 1, 1, 1],
      );
  assert.deepEqual(countLabels(out, 2), [24, 24, 0]);
});

test('labelsFromLogits round-trips a resampled label map (trilinear one-hot then argmax)', () => {
  const src = new Uint8Array(20 * 16 * 12);
  for (let z = 0; z < 12; z++)
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 20; x++) {
        const r = Math.hypot(x - 10, y - 8, z - 6);
        src[x + 20 * (y + 16 * z)] = r < 4 ? 1 : r < 6 ? 2 : 0;
      }
  const grid: [number, number, number] = [10, 8, 6];
  const onGrid = resampleNearest(src, [20, 16, 12], grid);
  const n = 10 * 8 * 6;
  const logits = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) logits[onGrid[i] * n + i] = 1;
  const back = labelsFromLogits(
    logits,
    { grid: { size: grid, spacing: [1, 1, 1], resample: 'fit-extent' }, labels: [{}, {}] as never },
    [20, 16, 12],
  );
  let agree = 0;
  for (let i = 0; i < src.length; i++) if (back[i] === src[i]) agree++;
  assert.ok(agree / src.length > 0.9, `agreement ${agree / src.length}`);
});

test('zscore normalisation: mean 0, std 1, then clipped', () => {
  const d = Float32Array.from([1, 2, 3, 4, 5]);
  const { offset, scale } = normalizeIntensity(d, { method: 'zscore' });
  assert.equal(offset, 3);
  assert.ok(Math.abs(scale - 1 / Math.sqrt(2)) < 1e-12);
  close(
    d,
    [-2, -1, 0, 1, 2].map((v) => v / Math.sqrt(2)),
  );
  const e = Float32Array.from([0, 0, 0, 0, 100]);
  normalizeIntensity(e, { method: 'zscore', clip: [-1, 1] });
  close(e, [-0.5, -0.5, -0.5, -0.5, 1]);
  const flat = Float32Array.from([7, 7, 7]);
  normalizeIntensity(flat, { method: 'zscore' });
  close(flat, [0, 0, 0]);
});

test('percentile normalisation maps P_low..P_high to 0..1 and clips', () => {
  const d = Float32Array.from({ length: 101 }, (_, i) => i);
  assert.equal(percentile(d, 50), 50);
  assert.equal(percentile(Float32Array.from([0, 10]), 25), 2.5);
  normalizeIntensity(d, { method: 'percentile', low: 10, high: 90 });
  close([d[0], d[10], d[50], d[90], d[100]], [0, 0, 0.5, 1, 1]);
  assert.throws(
    () => normalizeIntensity(Float32Array.from([1]), { method: 'x' } as never),
    /unknown intensity method "x"/,
  );
});

test('prepareModelInput resamples to the grid then normalises', () => {
  const src = Float32Array.from({ length: 8 * 8 * 8 }, (_, i) => i % 8);
  const out = prepareModelInput(src, [8, 8, 8], {
    grid: { size: [4, 4, 2], spacing: [1, 1, 1], resample: 'fit-extent' },
    intensity: { method: 'zscore' },
  });
  assert.equal(out.length, 32);
  const mean = out.reduce((a, b) => a + b, 0) / out.length;
  assert.ok(Math.abs(mean) < 1e-6);
  // x varies fastest, increasing along x
  assert.ok(out[0] < out[1] && out[1] < out[2] && out[2] < out[3]);
});

test('logitsToSourceLabels equals a naive per-voxel trilinear argmax (random logits)', () => {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const grid: [number, number, number] = [5, 4, 3];
  const src: [number, number, number] = [13, 9, 7];
  const C = 4;
  const gv = 5 * 4 * 3;
  const logits = Float32Array.from({ length: C * gv }, () => rnd() * 4 - 2);
  // a block where channel 2 wins everywhere, to exercise the uniform fast path
  for (let v = 0; v < 20; v++) logits[2 * gv + v] = 10;
  const fast = logitsToSourceLabels(logits, C, grid, src);
  const coord = (j: number, s: number, g: number) =>
    Math.min(g - 1, Math.max(0, (j + 0.5) * (g / s) - 0.5));
  const at = (c: number, x: number, y: number, z: number) => logits[c * gv + x + 5 * (y + 4 * z)];
  let o = 0;
  for (let k = 0; k < src[2]; k++)
    for (let j = 0; j < src[1]; j++)
      for (let i = 0; i < src[0]; i++) {
        const u = [coord(i, src[0], 5), coord(j, src[1], 4), coord(k, src[2], 3)];
        const f = u.map(Math.floor);
        const w = u.map((v, a) => v - f[a]);
        const n = [5, 4, 3];
        let best = 0;
        let bestV = -Infinity;
        for (let c = 0; c < C; c++) {
          let v = 0;
          for (let dz = 0; dz < 2; dz++)
            for (let dy = 0; dy < 2; dy++)
              for (let dx = 0; dx < 2; dx++) {
                const wt = (dx ? w[0] : 1 - w[0]) * (dy ? w[1] : 1 - w[1]) * (dz ? w[2] : 1 - w[2]);
                v +=
                  wt *
                  at(
                    c,
                    Math.min(f[0] + dx, n[0] - 1),
                    Math.min(f[1] + dy, n[1] - 1),
                    Math.min(f[2] + dz, n[2] - 1),
                  );
              }
          if (v > bestV + 1e-5) {
            bestV = v;
            best = c;
          }
        }
        assert.equal(fast[o++], best, `voxel ${i},${j},${k}`);
      }
});

test('labelCentroid and indexToWorld (known answers)', () => {
  const l = new Uint8Array(4 * 3 * 2);
  l[1 + 4 * (2 + 3 * 1)] = 5; // (1, 2, 1)
  l[3 + 4 * (0 + 3 * 1)] = 5; // (3, 0, 1)
  assert.deepEqual(labelCentroid(l, [4, 3, 2], 5), [2, 1, 1]);
  assert.equal(labelCentroid(l, [4, 3, 2], 2), undefined);
  // rows along -x, columns along +z, slices along +y
  assert.deepEqual(
    indexToWorld([2, 1, 1], [10, 20, 30], [0.5, 2, 3], [-1, 0, 0, 0, 0, 1, 0, 1, 0]),
    [9, 23, 32],
  );
});
