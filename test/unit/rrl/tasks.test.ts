import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTrainingGraph } from '@rrl/models/engine/autodiff/training.js';
import { trainSteps } from '../../helpers/train.js';
import type { Graph, Value } from '@rrl/models/engine/graph/graph.js';
import { defaultPlan } from '@rrl/models/rrl/plan.js';
import { rrlInferenceNet, rrlNetArgsFromPlan } from '@rrl/models/rrl/networks.js';
import { apDecoderTask, branchSegmentationTask, mutualTask } from '@rrl/models/rrl/tasks.js';

const args = {
  ...rrlNetArgsFromPlan(defaultPlan()),
  channels: [4, 8, 16],
  convsPerLevel: [1, 1, 1],
  decoderChannels: [4, 4, 8],
  headWidth: 4,
};
const grid: [number, number, number] = [8, 8, 8];
const N = 8 * 8 * 8;

/** Synthetic volume: a ball (class 2) inside a shell (class 1); image = class/2 + ripple. */
function data(): { image: Float32Array; target: Float32Array } {
  const image = new Float32Array(N);
  const target = new Float32Array(3 * N);
  let i = 0;
  for (let z = 0; z < 8; z++)
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++, i++) {
        const r = Math.hypot(z - 3.5, y - 3.5, x - 3.5);
        const c = r < 1.8 ? 2 : r < 3.2 ? 1 : 0;
        target[c * N + i] = 1;
        image[i] = c / 2 + 0.1 * Math.sin(i * 1.7);
      }
  return { image, target };
}

async function train(
  graph: Graph,
  loss: Value,
  steps: number,
  params = graph.initialParams(4),
  o: { lr?: number; ema?: { pairs: [string, string][]; alpha: number } } = {},
): Promise<{ losses: number[]; final: Map<string, Float32Array> }> {
  const { model, spec } = buildTrainingGraph({
    graph,
    loss,
    ema: o.ema,
    optimizer: { type: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
  });
  const { image, target } = data();
  const { losses, state } = await trainSteps(
    { model, spec },
    params,
    { image, target },
    steps,
    o.lr ?? 0.01,
  );
  return { losses, final: state };
}

test('branch segmentation tasks (E_g and E_m + head) train: the loss falls', async () => {
  for (const branch of ['eg', 'em'] as const) {
    const t = branchSegmentationTask(args, grid, branch, { dice: 1, crossEntropy: 1 });
    const names = [...t.graph.params.keys()];
    assert.ok(names.every((n) => n.startsWith(`${branch}.`) || n.startsWith(`${branch}_head.`)));
    const inf = new Set(rrlInferenceNet(args, grid).graph.params.keys());
    assert.ok(
      names.every((n) => inf.has(n)),
      'names match the inference net',
    );
    const { losses } = await train(t.graph, t.loss, 15);
    assert.ok(
      losses[14]! < losses[0]! * 0.8,
      `${branch}: loss did not fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`,
    );
  }
});

test('AP decoder task: only the decoder learns; the loss falls', async () => {
  const t = apDecoderTask(args, grid, { dice: 1, crossEntropy: 1 });
  const trainable = [...t.graph.params.values()].filter((p) => p.trainable).map((p) => p.name);
  assert.ok(trainable.length > 0 && trainable.every((n) => n.startsWith('ap.')));
  const init = t.graph.initialParams(4);
  const { losses, final } = await train(t.graph, t.loss, 15, init);
  assert.ok(
    losses[14]! < losses[0]! * 0.8,
    `loss did not fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`,
  );
  assert.deepEqual(final.get('eg.level0.0.conv.w'), init.get('eg.level0.0.conv.w'));
  assert.deepEqual(final.get('em.level1.0.conv.w'), init.get('em.level1.0.conv.w'));
  assert.notDeepEqual(final.get('ap.head.conv.w'), init.get('ap.head.conv.w'));
});

test('AP decoder task with consistency: + w · MSE to the medical branch, still only the decoder learns', async () => {
  const init = apDecoderTask(args, grid, { dice: 1, crossEntropy: 1 }).graph.initialParams(4);
  const first = async (consistency: number): Promise<number> => {
    const t = apDecoderTask(args, grid, { dice: 1, crossEntropy: 1, consistency });
    if (consistency) assert.ok(t.metrics.consistency);
    const { losses } = await train(t.graph, t.loss, 1, init, { lr: 0 });
    return losses[0]!;
  };
  const [l0, l2, l4] = [await first(0), await first(2), await first(4)];
  const mse = (l2 - l0) / 2;
  assert.ok(mse > 1e-4, `the consistency term is ${mse}`);
  assert.ok(Math.abs(l4 - l0 - 4 * mse) < 1e-4, `not linear in the weight: ${l0} ${l2} ${l4}`);
  const t = apDecoderTask(args, grid, { dice: 1, crossEntropy: 1, consistency: 2 });
  const trainable = [...t.graph.params.values()].filter((p) => p.trainable).map((p) => p.name);
  assert.ok(trainable.length > 0 && trainable.every((n) => n.startsWith('ap.')));
  const { losses, final } = await train(t.graph, t.loss, 15, init);
  assert.ok(losses[14]! < losses[0]! * 0.8, `loss did not fall: ${losses.join(' ')}`);
  assert.deepEqual(final.get('em_head.out.conv.w'), init.get('em_head.out.conv.w'));
});

test('tasks reject a zero loss and a bad grid', () => {
  assert.throws(
    () => branchSegmentationTask(args, grid, 'eg', { dice: 0, crossEntropy: 0 }),
    /both 0/,
  );
  assert.throws(
    () => apDecoderTask(args, [8, 6, 8], { dice: 1, crossEntropy: 0 }),
    /must be 3 sizes divisible by 4/,
  );
});

test('mutual task: both branches learn, the encoders are mixed by the mutual EMA', async () => {
  const t = mutualTask(args, grid, { dice: 1, crossEntropy: 1, mutual: 0.5 });
  assert.ok(t.emaPairs.length > 0);
  assert.ok(t.emaPairs.every(([a, b]) => a.startsWith('eg.') && b === `em.${a.slice(3)}`));
  const names = new Set(t.graph.params.keys());
  assert.ok(t.emaPairs.every(([, b]) => names.has(b)));
  // lr 0: AdamW leaves the parameters, so one step is exactly the EMA of the initial values.
  const init = t.graph.initialParams(4);
  const alpha = 0.75;
  const { final } = await train(t.graph, t.loss, 1, init, {
    lr: 0,
    ema: { pairs: t.emaPairs, alpha },
  });
  const a = init.get('eg.level1.0.conv.w')!;
  const b = init.get('em.level1.0.conv.w')!;
  const a1 = final.get('eg.level1.0.conv.w')!;
  const b1 = final.get('em.level1.0.conv.w')!;
  assert.notDeepEqual(a, b, 'the branches start from different weights');
  for (let i = 0; i < a.length; i += 17) {
    assert.ok(Math.abs(a1[i]! - (alpha * a[i]! + (1 - alpha) * b[i]!)) < 1e-6);
    assert.ok(Math.abs(b1[i]! - (alpha * b[i]! + (1 - alpha) * a[i]!)) < 1e-6);
  }
  const { losses } = await train(t.graph, t.loss, 15, init, {
    ema: { pairs: t.emaPairs, alpha: 0.99 },
  });
  assert.ok(
    losses[14]! < losses[0]! * 0.8,
    `loss did not fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`,
  );
});
