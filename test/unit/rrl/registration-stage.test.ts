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
import {
  runRegistrationStage,
  type StageProgress,
} from '../../../models/src/rrl/stages/registration.js';
import type { Grid } from '../../../models/src/rrl/pseudoLabels.js';

const grid: Grid = [16, 16, 16];
const m = 16 ** 3;

/** Smooth ellipsoid blob centred at c (intensity) and its label (blob > 0.5). */
function blob(c: [number, number, number]): { image: Float32Array; label: Uint8Array } {
  const image = new Float32Array(m);
  const label = new Uint8Array(m);
  for (let z = 0; z < 16; z++)
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++) {
        const r2 = ((z - c[0]) / 4) ** 2 + ((y - c[1]) / 3.5) ** 2 + ((x - c[2]) / 3) ** 2;
        const v = Math.exp(-r2);
        const i = (z * 16 + y) * 16 + x;
        // texture that moves with the blob, so local cross-correlation has something to match
        image[i] =
          v +
          0.3 *
            Math.sin(0.9 * (x - c[2]) + 0.6 * (y - c[1]) + 0.7 * (z - c[0])) *
            Math.exp(-r2 / 4);
        label[i] = r2 < 1 ? 1 : 0;
      }
  return { image, label };
}

function dice(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === 1) sa++;
    if (b[i] === 1) sb++;
    if (a[i] === 1 && b[i] === 1) inter++;
  }
  return (2 * inter) / (sa + sb);
}

test('registration stage: loss falls, pseudo labels beat the unregistered atlas, resumes', async () => {
  const atlas = blob([7, 7, 7]);
  const target = blob([9, 7, 8]); // shifted by 2 voxels along D and 1 along W
  const unregistered = dice(atlas.label, target.label);
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
    const registered = dice(second.pseudoLabels[0]!, target.label);
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
  const unregistered = dice(atlas.label, shifted.label);
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
  const registered = dice(r.pseudoLabels[0]!, shifted.label);
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
