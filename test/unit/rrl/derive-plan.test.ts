// Plans derived from the data's geometry (models/src/rrl/derivePlan.ts): the hippocampus data give
// back the hand-tuned hippocampus plan; anisotropic, large and small volumes follow the rules.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { dataDir, readSplit } from '@rrl/models/cli/split.js';
import { readImageVolume } from '@rrl/models/io/index.js';
import { DERIVED_MAX_VOXELS, derivePlan, type VolumeGeometry } from '@rrl/models/rrl/derivePlan.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';

const root = path.resolve(import.meta.dirname, '../../..');
const voxels = (g: readonly number[]) => g.reduce((p, v) => p * v, 1);

test(
  'the hippocampus data derive the hand-tuned hippocampus plan',
  { timeout: 120_000 },
  async (t) => {
    const hippo = path.join(dataDir(), 'hippocampus');
    if (!existsSync(hippo)) {
      t.skip(`no data at ${hippo} (set RRL_DATA_DIR)`);
      return;
    }
    // What a hospital has: the atlas and the unlabelled volumes (images only).
    const split = await readSplit(path.join(hippo, 'split.json'));
    const atlas = await readImageVolume(split.atlas.image);
    const unlabeled: VolumeGeometry[] = [];
    for (const u of split.unlabeled) unlabeled.push(await readImageVolume(u.image));
    const { plan, reasons } = derivePlan({ atlas, unlabeled, labels: 2 });
    t.diagnostic(reasons.join(' | '));
    const hand = parsePlan(
      JSON.parse(readFileSync(path.join(root, 'models/plans/hippocampus.json'), 'utf8')),
    );
    // The non-geometry settings come from this very file; the geometry (grid, spacing, widths,
    // classes) is what the data decide, and it must come out as the hand-tuned one.
    const { description, ...derived } = plan;
    assert.match(description ?? '', /derived from the data/);
    const { description: _handDescription, ...handRest } = hand;
    assert.deepEqual(derived, handRest, 'every field but the description');
  },
);

test(
  'an anisotropic series (prostate-like) loses resolution along its fine axes first',
  { timeout: 10_000 },
  () => {
    const g = (d: number): VolumeGeometry => ({ dims: [320, 320, d], spacing: [0.6, 0.6, 3.6] });
    const { plan, reasons } = derivePlan({
      atlas: g(24),
      unlabeled: [g(20), g(26), g(24)],
      labels: 2,
    });
    const [sx, sy, sz] = plan.preprocess.spacing;
    assert.equal(sz, 3.6, 'the coarse axis keeps its spacing');
    assert.ok(sx > 0.6 && sx === sy, `in-plane spacing coarsened: ${sx}, ${sy}`);
    assert.ok(voxels(plan.grid) <= DERIVED_MAX_VOXELS, `grid ${plan.grid}`);
    for (const n of plan.grid) assert.equal(n % 2 ** (plan.channels.length - 1), 0);
    assert.ok(plan.grid[0] * sz >= 24 * 3.6 - 1e-6, 'the slices of the median volume fit');
    assert.ok(reasons.some((r) => /coarsened/.test(r)));
  },
);

test(
  'a whole-head MR at 1 mm is coarsened isotropically into the voxel budget',
  { timeout: 10_000 },
  () => {
    const head: VolumeGeometry = { dims: [160, 192, 224], spacing: [1, 1, 1] };
    const small = derivePlan({ atlas: head, unlabeled: [head], labels: 30 });
    assert.equal(small.plan.classes, 31);
    const [s0, s1, s2] = small.plan.preprocess.spacing;
    assert.ok(s0 === s1 && s1 === s2 && s0 > 3, `spacing ${small.plan.preprocess.spacing}`);
    assert.ok(voxels(small.plan.grid) <= DERIVED_MAX_VOXELS);
    const big = derivePlan({ atlas: head, unlabeled: [head], labels: 30 }, { maxVoxels: 500_000 });
    assert.ok(big.plan.preprocess.spacing[0]! < s0, 'a larger budget keeps more resolution');
    assert.ok(voxels(big.plan.grid) <= 500_000);
    // the grid covers the head
    const [D, H, W] = big.plan.grid;
    const [bx, by, bz] = big.plan.preprocess.spacing;
    assert.ok(W * bx! >= 160 && H * by! >= 192 && D * bz! >= 224);
  },
);

test(
  'small volumes get three scales; too small ones and missing geometry are refused in words',
  { timeout: 10_000 },
  () => {
    const v: VolumeGeometry = { dims: [28, 40, 24], spacing: [1, 1, 1] };
    const { plan } = derivePlan({ atlas: v, unlabeled: [v], labels: 1 });
    assert.equal(plan.channels.length, 3);
    assert.deepEqual(plan.grid, [24, 40, 28]);
    const tiny: VolumeGeometry = { dims: [12, 40, 40], spacing: [1, 1, 1] };
    assert.throws(
      () => derivePlan({ atlas: tiny, unlabeled: [tiny], labels: 1 }),
      /too small.*16 voxels/,
    );
    assert.throws(
      () =>
        derivePlan({ atlas: v, unlabeled: [{ dims: [28, 40], spacing: [1, 1, 1] }], labels: 1 }),
      /unlabelled volume 1 has no usable geometry/,
    );
    assert.throws(() => derivePlan({ atlas: v, unlabeled: [v], labels: 0 }), /at least one/);
  },
);
