import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTrainingGraph } from '@rrl/models/engine/autodiff/training.js';
import { trainSteps } from '../../helpers/train.js';
import { defaultPlan } from '@rrl/models/rrl/plan.js';
import { rrlInferenceNet, rrlNetArgsFromPlan } from '@rrl/models/rrl/networks.js';
import { distillationTask, resampleFeatureVolume } from '@rrl/models/rrl/distill.js';
import {
  buildStandInTeacher,
  loadTeacher,
  teacherFeatureVolume,
  type FeatureVolume,
} from '@rrl/models/rrl/teacher.js';

test('feature-volume resampling crops the valid region and interpolates per axis', () => {
  // C=2, S=3, 64×64, valid 4 rows × 8 columns; value = 100·c + 10·s + x (independent of rows).
  const [C, S] = [2, 3];
  const data = new Float32Array(C * S * 64 * 64).fill(-1e6); // padding must never leak in
  for (let c = 0; c < C; c++)
    for (let s = 0; s < S; s++)
      for (let y = 0; y < 4; y++)
        for (let x = 0; x < 8; x++) data[((c * S + s) * 64 + y) * 64 + x] = 100 * c + 10 * s + x;
  const fv: FeatureVolume = { data, dims: [C, S, 64, 64], sliceIndices: [0, 1, 2], valid: [4, 8] };
  const r = resampleFeatureVolume(fv, [3, 2, 4]);
  assert.equal(r.length, 2 * 3 * 2 * 4);
  // Same slice count → slices unchanged; 8 columns → 4: half-pixel centres 0.5, 2.5, 4.5, 6.5.
  const at = (c: number, z: number, y: number, x: number): number =>
    r[((c * 3 + z) * 2 + y) * 4 + x]!;
  assert.ok(Math.abs(at(0, 0, 0, 0) - 0.5) < 1e-5);
  assert.ok(Math.abs(at(1, 2, 1, 3) - (100 + 20 + 6.5)) < 1e-5);
  assert.ok(r.every((v) => v > -1));
});

test('stage-1 distillation from the stand-in teacher: E_g names match the inference net and the loss falls', async () => {
  const args = {
    ...rrlNetArgsFromPlan(defaultPlan()),
    channels: [4, 8, 16],
    convsPerLevel: [1, 1, 1],
    decoderChannels: [4, 4, 8],
  };
  const grid: [number, number, number] = [8, 8, 8];
  const task = distillationTask(args, grid);
  assert.deepEqual(task.target.shape, [1, 256, 2, 2, 2]);
  const egNames = [...task.graph.params.keys()].filter((n) => n.startsWith('eg.'));
  const infNames = [...rrlInferenceNet(args, grid).graph.params.keys()].filter((n) =>
    n.startsWith('eg.'),
  );
  assert.deepEqual(egNames, infNames);

  const vol = new Float32Array(8 * 8 * 8);
  for (let i = 0; i < vol.length; i++) vol[i] = ((i * 7919) % 101) / 101 + (i % 8) / 8;
  const teacher = await loadTeacher(buildStandInTeacher(11));
  let fv: FeatureVolume;
  try {
    fv = await teacherFeatureVolume(teacher, { data: vol, dims: [8, 8, 8] }, { sliceStride: 4 });
  } finally {
    await teacher.session.release();
  }
  const target = resampleFeatureVolume(fv, [2, 2, 2]);

  const tg = buildTrainingGraph({
    graph: task.graph,
    loss: task.loss,
    optimizer: { type: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
  });
  const { losses } = await trainSteps(
    tg,
    task.graph.initialParams(3),
    { image: vol, target },
    20,
    0.01,
  );
  assert.ok(losses.every(Number.isFinite));
  assert.ok(
    losses[19]! < losses[0]! * 0.7,
    `distillation loss did not fall: ${losses.map((l) => l.toFixed(4)).join(' ')}`,
  );
});

test('distillationTask rejects a scale the encoder does not have', () => {
  const args = rrlNetArgsFromPlan(defaultPlan());
  assert.throws(
    () => distillationTask(args, [16, 16, 16], { scale: 4 }),
    /scale 4 is not one of the encoder's scales 0\.\.3/,
  );
});
