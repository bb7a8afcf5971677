/**
 * Registration stage on a tiny synthetic pair: a 16³ blob (atlas) and the same blob shifted by
 * 2 voxels (target). The loss falls and the pseudo labels overlap the true shifted label better
 * than the unregistered atlas labels; the stage resumes from its checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runRegistrationStage, type StageProgress } from '@rrl/models/rrl/registration.js';
import type { Grid } from '@rrl/models/rrl/pseudoLabels.js';
import { dice } from '@rrl/models/rrl/metrics.js';
import { texturedBlob } from './helpers.js';

const grid: Grid = [16, 16, 16];
const m = 16 ** 3;

const blob = (c: [number, number, number]) => texturedBlob(grid, c);

test('registration stage: loss falls, pseudo labels beat the unregistered atlas, resumes', async () => {
  const atlas = blob([7, 7, 7]);
  const target = blob([9, 7, 8]); // shifted by 2 voxels along D and 1 along W
  const unregistered = dice(atlas.label, target.label, 1);
  const dir = mkdtempSync(join(tmpdir(), 'rrl-reg-stage-'));
  try {
    const progress: StageProgress[] = [];
    const common = {
      grid,
      classes: 2,
      atlasImage: atlas.image,
      atlasLabels: atlas.label,
      targets: [target.image],
      args: { base: 8, depth: 3, smoothness: 1, window: 9 },
      lr: 3e-3,
      seed: 1,
      checkpoint: { path: join(dir, 'reg.ckpt'), every: 10 },
      onProgress: (p: StageProgress) => progress.push(p),
    };
    const first = await runRegistrationStage({ ...common, steps: 20 });
    assert.equal(first.losses.length, 20);
    assert.ok(existsSync(common.checkpoint.path));
    assert.ok(
      progress.some((p) => p.phase === 'registration' && p.step === 20 && p.loss !== undefined),
    );
    assert.ok(progress.some((p) => p.phase === 'pseudo-labels' && p.step === 1));
    // resume: only the 80 remaining steps run, numbered from 21
    progress.length = 0;
    const second = await runRegistrationStage({ ...common, steps: 100 });
    assert.equal(second.losses.length, 80);
    assert.equal(progress.find((p) => p.phase === 'registration')!.step, 21);
    const losses = [...first.losses, ...second.losses];
    const head = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const tail = losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(tail < head, `loss did not fall: first 5 mean ${head}, last 5 mean ${tail}`);
    const registered = dice(second.pseudoLabels[0]!, target.label, 1);
    assert.ok(
      registered > unregistered + 0.2,
      `Dice registered ${registered.toFixed(3)} vs unregistered ${unregistered.toFixed(3)}`,
    );
    console.log(
      `# loss ${head.toFixed(4)} → ${tail.toFixed(4)}; Dice unregistered ${unregistered.toFixed(3)} → registered ${registered.toFixed(3)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('joint segmentation term pulls the warp towards the segmentation branch prediction', async () => {
  // The target image equals the atlas image (the image term favours no motion); only the
  // segmentation prediction (the one-hot of the shifted label) says where the structure is.
  const atlas = blob([7, 7, 7]);
  const shifted = blob([9, 7, 8]);
  const prediction = new Float32Array(2 * m);
  for (let v = 0; v < m; v++) prediction[shifted.label[v]! * m + v] = 1;
  const unregistered = dice(atlas.label, shifted.label, 1);
  const segLosses: number[] = [];
  const r = await runRegistrationStage({
    grid,
    classes: 2,
    atlasImage: atlas.image,
    atlasLabels: atlas.label,
    targets: [atlas.image],
    args: { base: 8, depth: 3, smoothness: 1, window: 9 },
    steps: 60,
    lr: 3e-3,
    seed: 2,
    jointSegmentation: { weight: 1, predictions: [prediction] },
    onProgress: (p) => {
      if (p.phase === 'registration') segLosses.push(p.metrics!['segmentation']!);
    },
  });
  assert.equal(segLosses.length, 60);
  assert.ok(
    segLosses.at(-1)! < segLosses[0]!,
    `segmentation term ${segLosses[0]} → ${segLosses.at(-1)}`,
  );
  const registered = dice(r.pseudoLabels[0]!, shifted.label, 1);
  assert.ok(
    registered > unregistered + 0.15,
    `Dice with the joint term ${registered.toFixed(3)} vs unregistered ${unregistered.toFixed(3)}`,
  );
  console.log(
    `# joint: segmentation term ${segLosses[0]!.toFixed(3)} → ${segLosses.at(-1)!.toFixed(3)}; Dice ${unregistered.toFixed(3)} → ${registered.toFixed(3)}`,
  );
  await assert.rejects(
    runRegistrationStage({
      grid,
      classes: 2,
      atlasImage: atlas.image,
      atlasLabels: atlas.label,
      targets: [atlas.image],
      steps: 1,
      lr: 1e-3,
      jointSegmentation: { weight: 1, predictions: [] },
    }),
    /one prediction per target/,
  );
});
