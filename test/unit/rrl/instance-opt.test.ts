/**
 * Instance-specific refinement of a registration (models/src/rrl/instanceOpt.ts): the TypeScript
 * up-sampling equals the graph's ONNX Resize (linear, half_pixel) + Add; on a pair 3 voxels apart
 * the refinement, started from a zero field (an untrained network), lowers the loss and moves the
 * warped atlas labels onto the target's (Dice up); bad inputs and plan fields are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { emitGraph } from '@rrl/models/engine/graph/emit.js';
import { addUpsampled, converged, refineDisplacement } from '@rrl/models/rrl/instanceOpt.js';
import { oneHot, warpLabels, type Grid } from '@rrl/models/rrl/pseudoLabels.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';
import { dice } from '@rrl/models/rrl/metrics.js';
import { texturedBlob as blob } from './helpers.js';

test('addUpsampled equals ONNX Resize (linear, half_pixel) + Add for ×2 and ×4', async () => {
  for (const ds of [2, 4]) {
    const grid: Grid = [8, 12, 4];
    const m = 8 * 12 * 4;
    const coarseDims = grid.map((d) => d / ds);
    const cm = coarseDims.reduce((a, b) => a * b, 1);
    const base = Float32Array.from({ length: 3 * m }, (_, i) => Math.sin(i * 0.37));
    const coarse = Float32Array.from({ length: 3 * cm }, (_, i) => Math.cos(i * 1.3) * 2);
    const g = new Graph();
    const b = g.input('base', [1, 3, ...grid]);
    const r = g.input('r', [1, 3, ...coarseDims]);
    const model = emitGraph(g, {
      inputs: g.inputs,
      outputs: [['out', g.add(b, g.resize(r, ds, 'linear'))]],
    });
    const s = await ort.InferenceSession.create(model);
    const out = await s.run({
      base: new ort.Tensor('float32', base, [1, 3, ...grid]),
      r: new ort.Tensor('float32', coarse, [1, 3, ...coarseDims]),
    });
    await s.release();
    const want = out['out']!.data as Float32Array;
    const got = addUpsampled(base, coarse, grid, ds);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i]! - got[i]!));
    assert.ok(worst < 1e-5, `×${ds}: max abs difference ${worst}`);
  }
});

test('refineDisplacement aligns a pair 3 voxels apart: loss falls, label Dice rises', async () => {
  const grid: Grid = [24, 16, 16];
  const atlas = blob(grid, [10, 8, 8]);
  const target = blob(grid, [13, 8, 8]);
  const m = 24 * 16 * 16;
  const zero = new Float32Array(3 * m);
  const r = await refineDisplacement(atlas.image, target.image, zero, grid, {
    steps: 120,
    lr: 0.3,
    smoothness: 1,
    window: 5,
    downsample: 2,
  });
  assert.equal(r.losses.length, 120);
  assert.ok(r.losses.at(-1)! < r.losses[0]! - 0.05, `loss ${r.losses[0]} → ${r.losses.at(-1)}`);
  const before = await warpLabels(atlas.label, zero, grid, 2);
  const after = await warpLabels(atlas.label, r.displacement, grid, 2);
  const d0 = dice(before.labels, target.label, 1);
  const d1 = dice(after.labels, target.label, 1);
  assert.ok(d1 > d0 + 0.25 && d1 > 0.75, `Dice ${d0.toFixed(3)} → ${d1.toFixed(3)}`);
  // the field moved the atlas content forward along D (displacement samples the atlas at p + u:
  // at the target's centre it points back by about 3 voxels)
  const centre = (13 * 16 + 8) * 16 + 8;
  assert.ok(r.displacement[centre]! < -1.5, `u_D at the target centre ${r.displacement[centre]}`);
  // 0 steps: the initial field back, untouched
  const none = await refineDisplacement(atlas.image, target.image, zero, grid, { steps: 0 });
  assert.equal(none.displacement, zero);
});

test('refineDisplacement towards a segmentation: the warped labels move onto it, image alone they stay', async () => {
  // atlas and target images are the same, so the image term alone keeps the field at zero; the
  // segmentation to agree with is the blob 3 voxels further along D
  const grid: Grid = [24, 16, 16];
  const m = 24 * 16 * 16;
  const atlas = blob(grid, [10, 8, 8]);
  const other = blob(grid, [13, 8, 8]);
  const probabilities = oneHot(other.label, 2);
  const zero = new Float32Array(3 * m);
  const opts = { steps: 120, lr: 0.3, smoothness: 1, window: 5, downsample: 2 };
  const towards = { atlasOnehot: oneHot(atlas.label, 2), probabilities, classes: 2 };
  const labelDice = async (disp: Float32Array): Promise<number> =>
    dice((await warpLabels(atlas.label, disp, grid, 2)).labels, other.label, 1);
  const d0 = await labelDice(zero);
  const imageOnly = await refineDisplacement(atlas.image, atlas.image, zero, grid, opts);
  const off = await refineDisplacement(atlas.image, atlas.image, zero, grid, opts, undefined, 2, {
    ...towards,
    weight: 0,
  });
  const on = await refineDisplacement(atlas.image, atlas.image, zero, grid, opts, undefined, 2, {
    ...towards,
    weight: 2,
  });
  const [dImage, dOff, dOn] = [
    await labelDice(imageOnly.displacement),
    await labelDice(off.displacement),
    await labelDice(on.displacement),
  ];
  assert.ok(
    Math.abs(dImage - d0) < 0.05,
    `image only: Dice ${d0.toFixed(3)} → ${dImage.toFixed(3)}`,
  );
  assert.equal(dOff, dImage, 'weight 0 is the image-only refinement');
  assert.ok(dOn > d0 + 0.2, `towards the segmentation: Dice ${d0.toFixed(3)} → ${dOn.toFixed(3)}`);
  await assert.rejects(
    refineDisplacement(atlas.image, atlas.image, zero, grid, opts, undefined, 2, {
      ...towards,
      probabilities: new Float32Array(7),
      weight: 1,
    }),
    /segmentation to agree with has 7 values, expected 12288/,
  );
});

test('refineDisplacement and the plan refuse bad inputs with the fix', async () => {
  const grid: Grid = [8, 8, 8];
  const v = new Float32Array(512);
  await assert.rejects(
    refineDisplacement(v, v, new Float32Array(10), grid),
    /initial displacement has 10 values, expected 1536/,
  );
  await assert.rejects(
    refineDisplacement(v, v, new Float32Array(1536), [8, 8, 8], { downsample: 3 }),
    /downsample 3 must be 1, 2 or 4/,
  );
  assert.throws(() => parsePlan({ registrationRefine: { steps: -1 } }), /registrationRefine.steps/);
  assert.throws(() => parsePlan({ registrationRefine: { window: 8 } }), /window must be odd/);
  assert.throws(() => parsePlan({ registrationRefine: { iterations: 5 } }), /iterations/);
  assert.throws(() => parsePlan({ loss: { refineSegmentation: -1 } }), /loss.refineSegmentation/);
  assert.throws(
    () => parsePlan({ loss: { refineSegmentation: 1 } }),
    /refineSegmentation needs registrationRefine/,
  );
  assert.equal(
    parsePlan({ loss: { refineSegmentation: 1 }, registrationRefine: {} }).loss.refineSegmentation,
    1,
  );
  assert.equal(parsePlan({}).loss.refineSegmentation, undefined);
  const p = parsePlan({ registrationRefine: { steps: 20 } });
  assert.deepEqual(p.registrationRefine, {
    steps: 20,
    lr: 0.2,
    smoothness: 4,
    window: 9,
    downsample: 2,
    tolerance: 0,
  });
  assert.equal(parsePlan({}).registrationRefine, undefined);
  assert.throws(
    () => parsePlan({ registrationRefine: { tolerance: 2 } }),
    /registrationRefine.tolerance/,
  );
});

test('converged: a loss that has levelled off stops, one still falling does not', () => {
  // exponential approach: the fall over the last 10 steps shrinks relative to the fall so far
  const decay = Array.from({ length: 151 }, (_, k) => Math.exp(-k / 15));
  const stopAt = decay.findIndex((_, k) => converged(decay.slice(0, k + 1), 0.002));
  assert.ok(stopAt > 60 && stopAt < 150 && stopAt % 5 === 0, `stopped after ${stopAt + 1} steps`);
  // a straight line keeps falling by the same amount: never converged
  const line = Array.from({ length: 151 }, (_, k) => -k);
  assert.ok(line.every((_, k) => !converged(line.slice(0, k + 1), 0.002)));
  // tolerance 0: never; a loss that rose overall: never
  assert.ok(!converged(decay, 0));
  assert.ok(!converged([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.5));
});

test('refineDisplacement with a tolerance stops once converged, as aligned as the full run', async () => {
  const grid: Grid = [24, 16, 16];
  const atlas = blob(grid, [10, 8, 8]);
  const target = blob(grid, [13, 8, 8]);
  const zero = new Float32Array(3 * 24 * 16 * 16);
  const o = { steps: 300, lr: 0.3, smoothness: 1, window: 5, downsample: 2 };
  const full = await refineDisplacement(atlas.image, target.image, zero, grid, o);
  const early = await refineDisplacement(atlas.image, target.image, zero, grid, {
    ...o,
    tolerance: 0.002,
  });
  assert.equal(full.losses.length, 300);
  assert.ok(early.losses.length < 250, `stopped after ${early.losses.length} steps`);
  const fall = (l: number[]): number => l[0]! - Math.min(...l);
  assert.ok(
    fall(early.losses) > 0.97 * fall(full.losses),
    `fall ${fall(early.losses)} vs ${fall(full.losses)}`,
  );
  const d = async (disp: Float32Array): Promise<number> =>
    dice((await warpLabels(atlas.label, disp, grid, 2)).labels, target.label, 1);
  const [dFull, dEarly] = [await d(full.displacement), await d(early.displacement)];
  assert.ok(dEarly > dFull - 0.02, `Dice ${dEarly.toFixed(3)} (early) vs ${dFull.toFixed(3)}`);
});
