/** Whole-network gradient checks (small U-Net and registration net on tiny grids) and training runs. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Rng,
  buildTrainingGraph,
  crossEntropyLoss,
  registrationTask,
  segmentationTask,
  softDiceLoss,
  unet3d,
  registrationNet,
  lnccLoss,
  smoothnessLoss,
  type UNet3DArgs,
} from '@rrl/models/engine/index.js';
import { gradCheck, randn } from './gradcheck-helper.js';
import { trainSteps } from '../../helpers/train.js';

function oneHot(c: number, n: number, rng: Rng): Float32Array {
  const t = new Float32Array(c * n);
  for (let i = 0; i < n; i++) t[Math.floor(rng.next() * c) * n + i] = 1;
  return t;
}

// Whole-network checks use LeakyReLU slope 1 (no kinks) so that finite differences are accurate in
// float32: with kinks, a random direction over all weights crosses many of them and the
// finite-difference estimate is off by a few percent (measured: exact agreement with slope 1,
// 2-15 % deviations with slope 0.01 at any eps). The LeakyReLU and MaxPool rules are checked alone
// in vjp.test.ts; one check below keeps the real activation with a looser tolerance.
describe('whole networks', () => {
  const configs: [string, Partial<UNet3DArgs>, [number, number, number]][] = [
    ['maxpool + nearest, instance norm', {}, [8, 8, 8]],
    [
      'strided conv + pixelshuffle, group norm',
      { down: 'strided', up: 'pixelshuffle', norm: 'group' },
      [8, 12, 8],
    ],
    [
      'avgpool + trilinear, one conv per level',
      { down: 'avgpool', up: 'trilinear', convsPerLevel: 1 },
      [12, 8, 8],
    ],
  ];
  for (const [name, extra, grid] of configs) {
    test(`U-Net (${name}) with Dice + cross-entropy: every parameter's gradient`, async () => {
      const rng = new Rng(21);
      const n = grid[0] * grid[1] * grid[2];
      const errs = await gradCheck(
        (g) => {
          const x = g.input('image', [1, 1, ...grid]);
          const t = g.input('target', [1, 3, ...grid]);
          const logits = unet3d(g, x, {
            inChannels: 1,
            outChannels: 3,
            base: 4,
            depth: 3,
            slope: 1,
            ...extra,
          });
          const loss = g.add(softDiceLoss(g, logits, t).loss, crossEntropyLoss(g, logits, t));
          return { out: loss, wrt: [...g.params.keys()].map((k) => g.value(k)) };
        },
        {
          data: { target: oneHot(3, n, rng), image: randn(n, rng) },
          eps: 3e-3,
          // MaxPool keeps kinks (window maxima swap): a little more room for that configuration
          rtol: extra.down === undefined ? 5e-2 : 2e-2,
          seed: 5,
          stencil: 5,
        },
      );
      assert.ok(errs.length >= 20, `checked ${errs.length} parameters`);
    });
  }

  test('registration net (LNCC + smoothness): gradients for parameters and the moving image', async () => {
    const grid = [8, 8, 8] as const;
    await gradCheck(
      (g) => {
        const m = g.input('moving', [1, 1, ...grid]);
        const f = g.input('fixed', [1, 1, ...grid]);
        const { displacement, warped } = registrationNet(g, m, f, { base: 4, depth: 2, slope: 1 });
        const loss = g.add(
          lnccLoss(g, warped, f, { window: 3 }),
          g.mul(smoothnessLoss(g, displacement), 0.5),
        );
        // every parameter is drawn from N(0, 1), so the displacements are several voxels
        return { out: loss, wrt: [m, ...[...g.params.keys()].map((k) => g.value(k))] };
      },
      { eps: 1e-3, rtol: 2e-2, seed: 8, stencil: 5 },
    );
  });

  test('U-Net with the real LeakyReLU(0.01): gradients agree within 10 %', async () => {
    const rng = new Rng(22);
    const grid = [8, 8, 8] as const;
    await gradCheck(
      (g) => {
        const x = g.input('image', [1, 1, ...grid]);
        const t = g.input('target', [1, 2, ...grid]);
        const logits = unet3d(g, x, { inChannels: 1, outChannels: 2, base: 4, depth: 2 });
        return {
          out: softDiceLoss(g, logits, t).loss,
          wrt: [...g.params.keys()].map((k) => g.value(k)),
        };
      },
      {
        data: { target: oneHot(2, 512, rng), image: randn(512, rng) },
        eps: 1e-4,
        rtol: 0.1,
        seed: 6,
        stencil: 5,
      },
    );
  });
});

describe('training graphs of the networks', () => {
  test('segmentation U-Net (AdamW): the loss falls when fitting one volume', async () => {
    const t = segmentationTask({ inChannels: 1, outChannels: 2, base: 4, depth: 3 }, [8, 8, 8], {
      dice: 1,
      crossEntropy: 1,
    });
    const tg = buildTrainingGraph({
      graph: t.graph,
      loss: t.loss,
      metrics: t.metrics,
      optimizer: { type: 'adamw', weightDecay: 1e-4 },
    });
    assert.deepEqual(tg.spec.metricOutputs, ['metric:dice']);
    const rng = new Rng(4);
    const img = randn(512, rng);
    // target: voxels brighter than 0 are foreground, so the net can learn it
    const tgt = new Float32Array(1024);
    img.forEach((v, i) => (tgt[(v > 0 ? 1 : 0) * 512 + i] = 1));
    const { losses } = await trainSteps(
      tg,
      t.graph.initialParams(0),
      { image: img, target: tgt },
      12,
      1e-2,
    );
    assert.ok(
      losses[11]! < losses[0]! * 0.8,
      `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`,
    );
  });

  test('registration net (SGD): the loss falls when aligning a shifted image', async () => {
    const t = registrationTask({ base: 4, depth: 2, window: 3, smoothness: 0.1 }, [8, 8, 8]);
    const tg = buildTrainingGraph({
      graph: t.graph,
      loss: t.loss,
      optimizer: { type: 'adamw' },
    });
    const fixed = new Float32Array(512);
    const moving = new Float32Array(512);
    for (let z = 0; z < 8; z++)
      for (let y = 0; y < 8; y++)
        for (let x = 0; x < 8; x++) {
          const blob = (cx: number): number =>
            Math.exp(-((z - 3.5) ** 2 + (y - 3.5) ** 2 + (x - cx) ** 2) / 4);
          fixed[(z * 8 + y) * 8 + x] = blob(3.5);
          moving[(z * 8 + y) * 8 + x] = blob(4.5);
        }
    const { losses } = await trainSteps(tg, t.graph.initialParams(1), { moving, fixed }, 15, 3e-2);
    assert.ok(
      losses[14]! < losses[0]! - 0.01,
      `losses ${losses.map((l) => l.toFixed(4)).join(' ')}`,
    );
  });
});

test('networks rebuild exactly from their recorded arguments (same ONNX bytes, same initial parameters)', () => {
  const a = segmentationTask({ inChannels: 1, outChannels: 3, base: 4, depth: 3 }, [8, 8, 8]);
  const b = segmentationTask(JSON.parse(JSON.stringify(a.args)) as typeof a.args, a.grid);
  const ta = buildTrainingGraph({ graph: a.graph, loss: a.loss, optimizer: { type: 'adamw' } });
  const tb = buildTrainingGraph({ graph: b.graph, loss: b.loss, optimizer: { type: 'adamw' } });
  assert.deepEqual(ta.model, tb.model);
  assert.deepEqual(ta.spec, tb.spec);
  const pa = a.graph.initialParams(9);
  const pb = b.graph.initialParams(9);
  assert.deepEqual([...pa.keys()], [...pb.keys()]);
  for (const [k, v] of pa) assert.deepEqual(v, pb.get(k));
  const r = registrationTask({ base: 4, depth: 2 }, [8, 8, 8]);
  assert.deepEqual(r.args, {
    base: 4,
    depth: 2,
    convsPerLevel: 1,
    channels: 1,
    similarity: 'lncc',
    window: 9,
    smoothness: 1,
    slope: 0.2,
  });
});
