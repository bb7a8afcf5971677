import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  dice,
  hd95,
  squaredDistanceTransform,
  summarize,
  surfaceDistancePercentile,
} from '@rrl/models/rrl/metrics.js';

type D3 = [number, number, number];

function cube(dims: D3, lo: D3, size: number, value = 1, into?: Uint8Array): Uint8Array {
  const out = into ?? new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (let z = lo[2]; z < lo[2] + size; z++)
    for (let y = lo[1]; y < lo[1] + size; y++)
      for (let x = lo[0]; x < lo[0] + size; x++) out[x + dims[0] * (y + dims[1] * z)] = value;
  return out;
}

test('dice: hand-computed overlaps, other values ignored, empty cases', () => {
  assert.equal(dice([1, 1, 0, 0], [1, 0, 1, 0], 1), 0.5);
  assert.equal(dice([1, 1, 2, 2], [1, 1, 2, 0], 2), 2 / 3);
  assert.equal(dice([2, 2, 0], [2, 2, 0], 2), 1);
  assert.equal(dice([0, 0, 3], [0, 0, 3], 1), 1, 'both empty');
  assert.equal(dice([1, 0, 0], [0, 0, 0], 1), 0, 'truth empty');
  assert.equal(dice([0, 0, 0], [0, 1, 1], 1), 0, 'prediction empty');
  assert.equal(dice(Uint16Array.from([300, 300]), Uint16Array.from([300, 0]), 300), 2 / 3);
  assert.throws(() => dice([1], [1, 1], 1), /same number of voxels, found 1 and 2/);
});

test('hd95 of two offset cubes equals the offset in mm, per axis and spacing', () => {
  const dims: D3 = [24, 22, 20];
  const a = cube(dims, [4, 4, 4], 10);
  assert.equal(hd95(a, cube(dims, [7, 4, 4], 10), dims, [1, 1, 1], 1), 3);
  assert.equal(hd95(a, cube(dims, [7, 4, 4], 10), dims, [2, 1, 1], 1), 6);
  assert.equal(hd95(a, cube(dims, [4, 6, 4], 10), dims, [1, 0.5, 1], 1), 1);
  assert.equal(hd95(a, cube(dims, [4, 4, 6], 10), dims, [1, 1, 2.5], 1), 5);
  assert.equal(hd95(a, a, dims, [1, 1, 1], 1), 0, 'identical');
  // symmetric
  const b = cube(dims, [5, 4, 8], 10);
  assert.equal(hd95(a, b, dims, [1, 1, 1], 1), hd95(b, a, dims, [1, 1, 1], 1));
});

test('hd95: single voxels give their Euclidean distance; empty cases; the value selects the structure', () => {
  const dims: D3 = [8, 8, 3];
  const p = new Uint8Array(8 * 8 * 3);
  const t = new Uint8Array(8 * 8 * 3);
  p[0] = 2;
  t[3 + 8 * 4] = 2;
  assert.equal(hd95(p, t, dims, [1, 1, 1], 2), 5);
  assert.equal(hd95(p, t, dims, [2, 2, 1], 2), 10);
  assert.equal(hd95(p, t, dims, [1, 1, 1], 1), 0, 'both empty');
  assert.equal(hd95(p, new Uint8Array(p.length), dims, [1, 1, 1], 2), Infinity, 'truth empty');
  assert.equal(hd95(new Uint8Array(p.length), t, dims, [1, 1, 1], 2), Infinity, 'prediction empty');
  assert.throws(() => hd95(p, t, [8, 8, 2], [1, 1, 1], 2), /dims \[8, 8, 2\] need 128 voxels/);
  assert.throws(() => hd95(p, t, dims, [1, 0, 1], 2), /spacing must be three positive numbers/);
});

test('hd95 is the 95th percentile of pooled surface distances (brute force on a small case)', () => {
  const dims: D3 = [9, 7, 6];
  const n = 9 * 7 * 6;
  const p = new Uint8Array(n);
  const t = new Uint8Array(n);
  let seed = 5;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < n; i++) {
    p[i] = rnd() < 0.3 ? 1 : 0;
    t[i] = rnd() < 0.2 ? 1 : 0;
  }
  const sp = [0.7, 1.3, 2];
  const coords = (i: number): D3 => [i % 9, Math.floor(i / 9) % 7, Math.floor(i / 63)];
  const isSurface = (m: Uint8Array, i: number): boolean => {
    if (!m[i]) return false;
    const [x, y, z] = coords(i);
    if (x === 0 || y === 0 || z === 0 || x === 8 || y === 6 || z === 5) return true;
    return [1, -1, 9, -9, 63, -63].some((o) => !m[i + o]);
  };
  const surf = (m: Uint8Array): number[] => [...Array(n).keys()].filter((i) => isSurface(m, i));
  const sP = surf(p);
  const sT = surf(t);
  const dist = (i: number, j: number): number => {
    const a = coords(i);
    const b = coords(j);
    return Math.hypot((a[0] - b[0]) * sp[0], (a[1] - b[1]) * sp[1], (a[2] - b[2]) * sp[2]);
  };
  const all = [
    ...sP.map((i) => Math.min(...sT.map((j) => dist(i, j)))),
    ...sT.map((i) => Math.min(...sP.map((j) => dist(i, j)))),
  ].sort((x, y) => x - y);
  const q = (pct: number): number => {
    const pos = (pct / 100) * (all.length - 1);
    const lo = Math.floor(pos);
    return all[lo] + (pos - lo) * (all[Math.min(lo + 1, all.length - 1)] - all[lo]);
  };
  assert.ok(Math.abs(hd95(p, t, dims, sp, 1) - q(95)) < 1e-9);
  assert.ok(
    Math.abs(surfaceDistancePercentile(p, t, dims, sp, 1, 100) - all[all.length - 1]) < 1e-9,
  );
  assert.ok(Math.abs(surfaceDistancePercentile(p, t, dims, sp, 1, 50) - q(50)) < 1e-9);
});

test('squaredDistanceTransform equals brute force (anisotropic) and is Infinity with no feature', () => {
  const dims: D3 = [7, 5, 4];
  const n = 140;
  const f = new Uint8Array(n);
  [3, 40, 77, 139].forEach((i) => (f[i] = 1));
  const sp = [1.5, 0.5, 3];
  const d = squaredDistanceTransform(f, dims, sp);
  for (let i = 0; i < n; i++) {
    const [x, y, z] = [i % 7, Math.floor(i / 7) % 5, Math.floor(i / 35)];
    let best = Infinity;
    for (const j of [3, 40, 77, 139]) {
      const [a, b, c] = [j % 7, Math.floor(j / 7) % 5, Math.floor(j / 35)];
      best = Math.min(
        best,
        ((x - a) * sp[0]) ** 2 + ((y - b) * sp[1]) ** 2 + ((z - c) * sp[2]) ** 2,
      );
    }
    assert.ok(Math.abs(d[i] - best) < 1e-9, `voxel ${i}: ${d[i]} vs ${best}`);
  }
  assert.ok(squaredDistanceTransform(new Uint8Array(n), dims, sp).every((v) => v === Infinity));
});

test('summarize: mean, population std, median; non-finite values counted and left out', () => {
  assert.deepEqual(summarize([1, 2, 3, 4]), {
    mean: 2.5,
    std: Math.sqrt(1.25),
    median: 2.5,
    n: 4,
    nonFinite: 0,
  });
  assert.deepEqual(summarize([5, Infinity, 1, NaN, 3]), {
    mean: 3,
    std: Math.sqrt(8 / 3),
    median: 3,
    n: 3,
    nonFinite: 2,
  });
  const e = summarize([]);
  assert.ok(Number.isNaN(e.mean) && Number.isNaN(e.std) && Number.isNaN(e.median) && e.n === 0);
});
