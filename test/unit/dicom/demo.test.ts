import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadDemoAtlas } from '@rrl/server/demo/atlas.js';
import { DEMO_LABELS } from '@rrl/server/demo/labels.js';
import { readNifti, writeNifti } from '@rrl/server/demo/nifti.js';
import { Rng } from '@rrl/server/demo/rng.js';
import { demoUid, generateDemo } from '@rrl/server/demo/seed.js';
import { synthesizeSubject } from '@rrl/server/demo/synth.js';

function blobVolume(n: number): { image: Float32Array; labels: Uint8Array } {
  const image = new Float32Array(n * n * n);
  const labels = new Uint8Array(n * n * n);
  const c = (n - 1) / 2;
  for (let z = 0; z < n; z++)
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n; x++) {
        const i = (z * n + y) * n + x;
        const r = Math.hypot(x - c, y - c, z - c);
        image[i] = r < n / 3 ? 100 + x : 0;
        if (r < n / 6) labels[i] = x < c ? 1 : 2;
      }
  return { image, labels };
}

test('NIfTI written by writeNifti reads back with the same voxels and affine', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-nifti-'));
  try {
    const data = new Uint8Array(4 * 3 * 2).map((_, i) => i);
    const affine = [
      [-1, 0, 0, 90],
      [0, -1.5, 0, 91],
      [0, 0, 2, -71],
      [0, 0, 0, 1],
    ];
    const file = path.join(dir, 'x.nii.gz');
    await writeNifti(file, [4, 3, 2], data, affine);
    const back = await readNifti(file);
    assert.deepEqual(back.dims, [4, 3, 2]);
    assert.deepEqual(Array.from(back.data), Array.from(data));
    assert.deepEqual(back.affine, affine);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the seeded RNG is deterministic and roughly standard normal', () => {
  const a = new Rng(7);
  const b = new Rng(7);
  const xs = Array.from({ length: 20000 }, () => a.normal());
  assert.deepEqual(
    xs.slice(0, 5),
    Array.from({ length: 5 }, () => b.normal()),
  );
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
  assert.ok(Math.abs(sd - 1) < 0.03, `sd ${sd}`);
});

test('synthesizeSubject: identity when every perturbation is off; deterministic per seed', () => {
  const n = 40;
  const { image, labels } = blobVolume(n);
  const none = {
    displacementMm: 0,
    rotationDeg: 0,
    scale: 0,
    translationMm: 0,
    bias: 0,
    noise: 0,
  };
  const id = synthesizeSubject(image, labels, [n, n, n], [1, 1, 1], 3, none);
  assert.deepEqual(Array.from(id.labels), Array.from(labels));
  for (let i = 0; i < image.length; i++) assert.ok(Math.abs(id.image[i] - image[i]) < 1e-3);

  const warp = { controlSpacingMm: 15, displacementMm: 1.5, translationMm: 2 };
  const s1 = synthesizeSubject(image, labels, [n, n, n], [1, 1, 1], 11, warp);
  const s1b = synthesizeSubject(image, labels, [n, n, n], [1, 1, 1], 11, warp);
  const s2 = synthesizeSubject(image, labels, [n, n, n], [1, 1, 1], 12, warp);
  assert.deepEqual(Array.from(s1.labels), Array.from(s1b.labels));
  assert.deepEqual(Array.from(s1.image), Array.from(s1b.image));
  assert.notDeepEqual(Array.from(s1.labels), Array.from(s2.labels));
  // warped, not destroyed: each label keeps a similar volume and overlaps its original
  for (const l of [1, 2]) {
    let before = 0;
    let after = 0;
    let both = 0;
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] === l) before++;
      if (s1.labels[i] === l) after++;
      if (labels[i] === l && s1.labels[i] === l) both++;
    }
    assert.ok(after > 0.6 * before && after < 1.6 * before, `label ${l}: ${before} → ${after}`);
    assert.ok(
      (2 * both) / (before + after) > 0.3,
      `label ${l} Dice ${(2 * both) / (before + after)}`,
    );
    assert.ok(both < before, `label ${l} was not moved at all`);
  }
});

test('demo UIDs are deterministic, valid and distinct', () => {
  const a = demoUid(1, 'atlas/study');
  assert.equal(a, demoUid(1, 'atlas/study'));
  assert.notEqual(a, demoUid(2, 'atlas/study'));
  assert.notEqual(a, demoUid(1, 'atlas/series'));
  assert.match(a, /^2\.25\.[1-9][0-9]*$/);
  assert.ok(a.length <= 64);
});

test('the demo atlas is on a 184-column LPS grid with the structures on the right sides', async () => {
  const atlas = await loadDemoAtlas();
  const g = atlas.geometry;
  assert.deepEqual(g.dims, [184, 217, 181]);
  assert.equal(g.dims[0] % 8, 0);
  assert.deepEqual(g.direction, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const [nx, ny] = g.dims;
  const centroid = (label: number): [number, number, number] => {
    let sx = 0;
    let sy = 0;
    let sz = 0;
    let n = 0;
    for (let i = 0; i < atlas.labels.length; i++) {
      if (atlas.labels[i] !== label) continue;
      const x = i % nx;
      const y = Math.floor(i / nx) % ny;
      const z = Math.floor(i / (nx * ny));
      sx += x;
      sy += y;
      sz += z;
      n++;
    }
    assert.ok(n > 1000, `label ${label} has ${n} voxels`);
    // LPS mm
    return [g.origin[0] + sx / n, g.origin[1] + sy / n, g.origin[2] + sz / n];
  };
  for (const l of DEMO_LABELS) {
    const c = centroid(l.value);
    const left = l.name.startsWith('Left');
    // LPS: +X is the patient's left
    assert.ok(left ? c[0] > 5 : c[0] < -5, `${l.name} centroid x ${c[0].toFixed(1)} mm`);
  }
  // hippocampus lies below the thalamus (LPS +Z is superior)
  assert.ok(centroid(1)[2] < centroid(3)[2]);
  // padding columns hold no brain
  for (let z = 0; z < g.dims[2]; z += 10)
    for (let y = 0; y < ny; y++)
      for (let x = 181; x < 184; x++) assert.equal(atlas.image[(z * ny + y) * nx + x], 0);
});

test('demo generation is deterministic: two runs write identical files', async () => {
  const dirs = await Promise.all(
    [0, 1].map(() => mkdtemp(path.join(os.tmpdir(), 'rrl-demo-det-'))),
  );
  try {
    const manifests = [];
    for (const d of dirs) manifests.push(await generateDemo({ dataDir: d, subjects: 0 }));
    assert.deepEqual(manifests[0], manifests[1]);
    const atlas = manifests[0].studies[0];
    assert.equal(atlas.role, 'atlas');
    const names = (await readdir(path.join(dirs[0], 'demo', atlas.dicomDir))).sort();
    assert.equal(names.length, 182);
    for (const n of [names[0], names[90], names[181]]) {
      const [a, b] = await Promise.all(
        dirs.map((d) => readFile(path.join(d, 'demo', atlas.dicomDir, n))),
      );
      assert.ok(a.equals(b), `${n} differs between runs`);
    }
    const [g1, g2] = await Promise.all(
      dirs.map((d) => readFile(path.join(d, 'demo', atlas.groundTruth))),
    );
    assert.ok(g1.equals(g2));
  } finally {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
});
