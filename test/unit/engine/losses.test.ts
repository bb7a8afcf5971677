/** Each loss: value against a direct JavaScript computation, and gradient check. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import {
  Graph,
  Rng,
  crossEntropyLoss,
  emitGraph,
  l1Loss,
  lnccLoss,
  mseLoss,
  smoothnessLoss,
  softDiceLoss,
} from '@rrl/models/engine/index.js';
import { gradCheck, randn, runModel } from './gradcheck-helper.js';

function oneHot(c: number, n: number, rng: Rng): Float32Array {
  const t = new Float32Array(c * n);
  for (let i = 0; i < n; i++) t[Math.floor(rng.next() * c) * n + i] = 1;
  return t;
}

async function evalScalar(
  build: (g: Graph) => ReturnType<Graph['input']>,
  data: Record<string, Float32Array>,
): Promise<number> {
  const g = new Graph();
  const out = build(g);
  const model = emitGraph(g, { inputs: g.inputs, outputs: [['y', out]] });
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of g.inputs) feeds[v.name] = new ort.Tensor('float32', data[v.name]!, [...v.shape]);
  return ((await runModel(model, feeds))['y']!.data as Float32Array)[0]!;
}

function softmaxAt(x: Float32Array, c: number, n: number, i: number): number[] {
  const v = Array.from({ length: c }, (_, k) => x[k * n + i]!);
  const m = Math.max(...v);
  const e = v.map((q) => Math.exp(q - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((q) => q / s);
}

/** 1 − mean over the foreground classes of the soft Dice, voxels where `skip` holds left out. */
function diceLossReference(
  logits: Float32Array,
  target: Float32Array,
  c: number,
  n: number,
  skip: (i: number) => boolean = () => false,
): number {
  let sum = 0;
  for (let k = 1; k < c; k++) {
    let inter = 0;
    let ps = 0;
    let ts = 0;
    for (let i = 0; i < n; i++) {
      if (skip(i)) continue;
      const p = softmaxAt(logits, c, n, i)[k]!;
      inter += p * target[k * n + i]!;
      ps += p;
      ts += target[k * n + i]!;
    }
    sum += (2 * inter + 1e-5) / (ps + ts + 1e-5);
  }
  return 1 - sum / (c - 1);
}

describe('losses', () => {
  const rng = new Rng(11);
  const [C, D, H, W] = [3, 4, 5, 3];
  const n = D * H * W;
  const logits = randn(C * n, rng);
  const target = oneHot(C, n, rng);

  test('soft Dice (multi-class, from logits): value and gradient', async () => {
    const value = await evalScalar(
      (g) => softDiceLoss(g, g.input('l', [1, C, D, H, W]), g.input('t', [1, C, D, H, W])).loss,
      {
        l: logits,
        t: target,
      },
    );
    const ref = diceLossReference(logits, target, C, n);
    assert.ok(Math.abs(value - ref) < 1e-5, `dice ${value} vs ${ref}`);
    await gradCheck(
      (g) => {
        const l = g.input('l', [1, C, D, H, W]);
        const t = g.input('t', [1, C, D, H, W]);
        return { out: softDiceLoss(g, l, t, { includeBackground: true }).loss, wrt: [l] };
      },
      { data: { l: logits, t: target }, eps: 1e-2 },
    );
  });

  test('soft Dice with ignoreEmptyTarget: ignored voxels (all-zero target) count for nothing', async () => {
    const dice = (l: Float32Array, t: Float32Array, o = { ignoreEmptyTarget: true }) =>
      evalScalar(
        (g) =>
          softDiceLoss(g, g.input('l', [1, C, D, H, W]), g.input('t', [1, C, D, H, W]), o).loss,
        { l, t },
      );
    // a one-hot target has no empty voxel: the same value as without the option
    const plain = await dice(logits, target, { ignoreEmptyTarget: false });
    assert.ok(Math.abs((await dice(logits, target)) - plain) < 1e-6);
    // every third voxel ignored
    const ignored = (i: number) => i % 3 === 0;
    const t = target.slice();
    for (let i = 0; i < n; i++) if (ignored(i)) for (let c = 0; c < C; c++) t[c * n + i] = 0;
    const value = await dice(logits, t);
    const ref = diceLossReference(logits, t, C, n, ignored);
    assert.ok(Math.abs(value - ref) < 1e-5, `dice ${value} vs ${ref}`);
    assert.ok(Math.abs(value - plain) > 1e-3, 'the ignored voxels changed the value');
    // whatever the logits at the ignored voxels, the loss stays
    const other = logits.slice();
    for (let i = 0; i < n; i++)
      if (ignored(i)) for (let c = 0; c < C; c++) other[c * n + i] = 5 * c;
    assert.ok(Math.abs((await dice(other, t)) - value) < 1e-6);
    await gradCheck(
      (g) => {
        const l = g.input('l', [1, C, D, H, W]);
        const tt = g.input('t', [1, C, D, H, W]);
        return { out: softDiceLoss(g, l, tt, { ignoreEmptyTarget: true }).loss, wrt: [l] };
      },
      { data: { l: logits, t }, eps: 1e-2 },
    );
  });

  test('cross-entropy: value and gradient', async () => {
    const value = await evalScalar(
      (g) => crossEntropyLoss(g, g.input('l', [1, C, D, H, W]), g.input('t', [1, C, D, H, W])),
      {
        l: logits,
        t: target,
      },
    );
    let ce = 0;
    for (let i = 0; i < n; i++) {
      const p = softmaxAt(logits, C, n, i);
      for (let c = 0; c < C; c++) ce -= target[c * n + i]! * Math.log(p[c]!);
    }
    assert.ok(Math.abs(value - ce / n) < 1e-5, `ce ${value} vs ${ce / n}`);
    await gradCheck(
      (g) => {
        const l = g.input('l', [1, C, D, H, W]);
        const t = g.input('t', [1, C, D, H, W]);
        return { out: crossEntropyLoss(g, l, t), wrt: [l] };
      },
      { data: { l: logits, t: target } },
    );
  });

  test('LNCC (window 3, separable and 3-D pooling agree; identical images give −1)', async () => {
    const [d, h, w] = [6, 7, 5];
    const a = randn(d * h * w, rng);
    const b = randn(d * h * w, rng).map((v, i) => 0.7 * a[i]! + 0.3 * v);
    const build = (separable: boolean) => (g: Graph) =>
      lnccLoss(g, g.input('a', [1, 1, d, h, w]), g.input('b', [1, 1, d, h, w]), {
        window: 3,
        separable,
      });
    const v1 = await evalScalar(build(true), { a, b });
    const v2 = await evalScalar(build(false), { a, b });
    assert.ok(Math.abs(v1 - v2) < 1e-5, `${v1} vs ${v2}`);
    // direct computation at one interior voxel pattern: mean over all voxels with zero padding
    let total = 0;
    for (let z = 0; z < d; z++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          let [sa, sb, saa, sbb, sab] = [0, 0, 0, 0, 0];
          for (let dz = -1; dz <= 1; dz++)
            for (let dy = -1; dy <= 1; dy++)
              for (let dx = -1; dx <= 1; dx++) {
                const zz = z + dz;
                const yy = y + dy;
                const xx = x + dx;
                if (zz < 0 || yy < 0 || xx < 0 || zz >= d || yy >= h || xx >= w) continue;
                const i = (zz * h + yy) * w + xx;
                sa += a[i]!;
                sb += b[i]!;
                saa += a[i]! * a[i]!;
                sbb += b[i]! * b[i]!;
                sab += a[i]! * b[i]!;
              }
          const [ma, mb, maa, mbb, mab] = [sa / 27, sb / 27, saa / 27, sbb / 27, sab / 27];
          const cr = mab - ma * mb;
          total += (cr * cr) / ((maa - ma * ma) * (mbb - mb * mb) + 1e-5);
        }
    assert.ok(Math.abs(v1 + total / (d * h * w)) < 1e-4, `lncc ${v1} vs ${-total / (d * h * w)}`);
    const same = await evalScalar(build(true), { a, b: a });
    assert.ok(same < -0.99, `lncc of identical images ${same}`);
    await gradCheck(
      (g) => {
        const x = g.input('a', [1, 1, d, h, w]);
        const y = g.input('b', [1, 1, d, h, w]);
        return { out: lnccLoss(g, x, y, { window: 3 }) };
      },
      { data: { a, b }, eps: 1e-3 },
    );
  });

  test('LNCC with the default 9³ window: gradient', async () => {
    await gradCheck(
      (g) => {
        const x = g.input('a', [1, 1, 9, 10, 11]);
        const y = g.input('b', [1, 1, 9, 10, 11]);
        return { out: lnccLoss(g, x, y) };
      },
      { eps: 1e-3 },
    );
  });

  test('displacement smoothness: value and gradient', async () => {
    const disp = randn(3 * 4 * 3 * 5, rng);
    const value = await evalScalar((g) => smoothnessLoss(g, g.input('d', [1, 3, 4, 3, 5])), {
      d: disp,
    });
    const at = (c: number, z: number, y: number, x: number): number =>
      disp[((c * 4 + z) * 3 + y) * 5 + x]!;
    let [sz, sy, sx] = [0, 0, 0];
    for (let c = 0; c < 3; c++)
      for (let z = 0; z < 4; z++)
        for (let y = 0; y < 3; y++)
          for (let x = 0; x < 5; x++) {
            if (z < 3) sz += (at(c, z + 1, y, x) - at(c, z, y, x)) ** 2;
            if (y < 2) sy += (at(c, z, y + 1, x) - at(c, z, y, x)) ** 2;
            if (x < 4) sx += (at(c, z, y, x + 1) - at(c, z, y, x)) ** 2;
          }
    const expected = (sz / (3 * 3 * 3 * 5) + sy / (3 * 4 * 2 * 5) + sx / (3 * 4 * 3 * 4)) / 3;
    assert.ok(Math.abs(value - expected) < 1e-5, `${value} vs ${expected}`);
    await gradCheck((g) => ({ out: smoothnessLoss(g, g.input('d', [1, 3, 4, 3, 5])) }));
  });

  test('L1 and MSE feature matching: values and gradients', async () => {
    const a = randn(40, rng);
    const b = randn(40, rng);
    const l1 = await evalScalar(
      (g) => l1Loss(g, g.input('a', [2, 4, 5]), g.input('b', [2, 4, 5])),
      { a, b },
    );
    const mse = await evalScalar(
      (g) => mseLoss(g, g.input('a', [2, 4, 5]), g.input('b', [2, 4, 5])),
      { a, b },
    );
    const e1 = a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / 40;
    const e2 = a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / 40;
    assert.ok(
      Math.abs(l1 - e1) < 1e-5 && Math.abs(mse - e2) < 1e-5,
      `l1 ${l1}/${e1} mse ${mse}/${e2}`,
    );
    await gradCheck(
      (g) => {
        const x = g.input('a', [2, 4, 5]);
        const y = g.input('b', [2, 4, 5]);
        return { out: g.add(l1Loss(g, x, y), mseLoss(g, x, y)) };
      },
      { eps: 1e-3 },
    );
  });
});
