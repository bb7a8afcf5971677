/**
 * Every VJP rule against central finite differences (onnxruntime-node CPU, float32), on random
 * inputs and shapes with odd sizes, strides and padding.
 */
import { describe, test } from 'node:test';
import { Rng } from '@rrl/models/engine/index.js';
import { gradCheck, randn } from './gradcheck-helper.js';

const pos = (n: number, seed: number): Float32Array =>
  randn(n, new Rng(seed)).map((v) => 0.5 + Math.abs(v));

describe('element-wise rules', () => {
  test('Add / Sub / Mul / Div with broadcasting', async () => {
    await gradCheck(
      (g) => {
        const a = g.input('a', [2, 3, 4]);
        const b = g.input('b', [3, 1]);
        const c = g.input('c', [1, 1, 4]);
        const d = g.input('d', [2, 1, 1]);
        return { out: g.div(g.mul(g.sub(g.add(a, b), c), a), d) };
      },
      { data: { d: pos(2, 1) } },
    );
  });
  test('Neg, Exp, Log, Sqrt, Abs, Reciprocal, Pow', async () => {
    await gradCheck(
      (g) => {
        const x = g.input('x', [3, 5]);
        const p = g.input('p', [3, 5]);
        const a = g.add(g.neg(g.exp(g.mul(x, 0.5))), g.log(p));
        const b = g.add(g.sqrt(p), g.abs(x));
        return { out: g.add(g.add(a, b), g.add(g.reciprocal(p), g.pow(p, 1.7))) };
      },
      { data: { p: pos(15, 2) } },
    );
  });
  test('Relu, LeakyRelu, Sigmoid, Tanh, Clip, Max, Min, Where, Identity, Cast', async () => {
    await gradCheck(
      (g) => {
        const x = g.input('x', [4, 7]);
        const y = g.input('y', [4, 7]);
        const a = g.add(g.relu(x), g.leakyRelu(y, 0.2));
        const b = g.add(g.sigmoid(x), g.tanh(y));
        const c = g.add(g.clip(x, -0.5, 0.7), g.add(g.max2(x, y), g.min2(x, g.mul(y, 0.5))));
        const d = g.mul(g.where(g.greater(x, y), g.identity(x), g.cast(y, 'float32')), 3);
        return { out: g.add(g.add(a, b), g.add(c, d)) };
      },
      { eps: 1e-3 },
    );
  });
  test('Softmax and LogSoftmax (channel axis and last axis)', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [2, 5, 3, 3, 2]);
      // axis 1 is composed (exp / sum), the last axis uses the ONNX ops
      const a = g.add(g.softmax(x, 1), g.mul(g.logSoftmax(x, 1), 0.3));
      return { out: g.add(a, g.add(g.softmax(x, -1), g.mul(g.logSoftmax(x, 4), 0.3))) };
    });
  });
});

describe('reductions and shape ops', () => {
  test('ReduceSum / ReduceMean / ReduceMax, with and without keepdims', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [2, 3, 5, 4]);
      const a = g.reduceSum(x, [1, 3], true);
      const b = g.reduceMean(x, [0, 2], true);
      const c = g.reduceMax(x, [2], true);
      const s = g.add(g.add(g.mul(x, a), g.mul(x, b)), g.mul(x, c));
      return { out: g.add(g.reduceMean(s, [3], false), g.reduceSum(x, [3], false)) };
    });
  });
  test('Reshape, Transpose, Expand, Concat', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [2, 3, 4]);
      const y = g.input('y', [2, 1, 4]);
      const t = g.transpose(x, [2, 0, 1]);
      const r = g.reshape(t, [4, 6]);
      const e = g.expand(y, [2, 5, 4]);
      const c = g.concat([x, e, g.mul(x, x)], 1);
      return { out: g.add(g.reshape(c, [2, 44]), g.reduceSum(g.mul(r, r))) };
    });
  });
  test('Slice with steps 1 and 2, negative starts; Pad with positive and negative pads', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [3, 7, 6]);
      const a = g.slice(x, [1, -5], [3, 6], [0, 1]);
      const b = g.slice(x, [0, 1, 1], [3, 7, 6], [0, 1, 2], [2, 3, 2]);
      const p = g.pad(x, [1, 0, 2, 0, 2, -1]);
      return {
        out: g.add(
          g.reduceSum(g.mul(a, a)),
          g.add(g.reduceSum(g.mul(b, b)), g.reduceSum(g.mul(p, p))),
        ),
      };
    });
  });
  test('GatherElements (gradient for data, with repeated indices)', async () => {
    const idx = BigInt64Array.from([0, 2, 2, 1, 4, 4, 0, 3, 1, 1, 2, 0], (v) => BigInt(v));
    await gradCheck(
      (g) => {
        const x = g.input('x', [2, 5]);
        const i = g.input('i', [2, 6], 'int64');
        return { out: g.gatherElements(x, i, 1), wrt: [x] };
      },
      { data: { i: idx } },
    );
  });
  test('MatMul (batched, broadcast) and Gemm (all transpose combinations)', async () => {
    await gradCheck((g) => {
      const a = g.input('a', [2, 3, 4]);
      const b = g.input('b', [4, 5]);
      const m = g.matmul(a, b);
      const p = g.input('p', [3, 4]);
      const q = g.input('q', [4, 3]);
      const parts = [
        g.gemm(p, q),
        g.gemm(q, p, true, true),
        g.gemm(p, p, false, true),
        g.gemm(q, q, true, false),
      ];
      const s = parts.reduce((acc, v) => g.add(acc, g.reduceSum(g.mul(v, v))), g.reduceSum(m));
      return { out: g.add(g.mul(m, m), s) };
    });
  });
});

describe('convolution', () => {
  const rng = new Rng(77);
  const pick = (lo: number, hi: number): number => lo + Math.floor(rng.next() * (hi - lo + 1));
  for (const mode of ['gemm27', 'stacked', 'batchAsChannel', 'im2col'] as const) {
    // fixed corner cases plus random shapes (odd sizes, strides 1-2, padding 0-2, batch 1-2)
    const cases: [number, number, number, number, number[], number, number][] = [
      [1, 2, 3, 3, [5, 6, 7], 1, 1],
      [2, 3, 2, 3, [7, 5, 6], 2, 1],
      [1, 2, 4, 1, [3, 4, 5], 1, 0],
      [1, 3, 2, 3, [9, 7, 8], 3, 2],
      [2, 4, 2, 3, [5, 6, 7], 1, 1], // Cout < Cin: dy is shifted instead of x
      [1, 3, 1, 3, [6, 5, 7], 1, 2],
      [2, 2, 2, 2, [5, 4, 6], 1, 0], // kernel 2: two fastest-axis shifts of x stacked per Gemm
      [1, 3, 2, 2, [4, 5, 6], 1, 1], // same with dy shifted (Cout < Cin)
    ];
    for (let i = 0; i < 3; i++) {
      const k = pick(0, 1) === 0 ? 3 : pick(1, 3);
      cases.push([
        pick(1, 2),
        pick(1, 3),
        pick(1, 4),
        k,
        [pick(5, 9), pick(5, 9), pick(5, 9)],
        pick(1, 2),
        pick(0, k - 1),
      ]);
    }
    for (const [n, cin, cout, k, sp, s, p] of cases) {
      test(`Conv ${mode}: N${n} Cin${cin} Cout${cout} k${k} [${sp.join(',')}] stride ${s} pad ${p}`, async () => {
        await gradCheck(
          (g) => {
            const x = g.input('x', [n, cin, ...sp]);
            const w = g.param('w', [cout, cin, k, k, k], { kind: 'he' });
            const b = g.param('b', [cout], { kind: 'zeros' });
            return { out: g.conv(x, w, b, { strides: s, pads: p }) };
          },
          { gradientOptions: { convGradWeight: mode } },
        );
      });
    }
  }
  for (const [k, pads] of [
    [
      [3, 2, 3],
      [1, 0, 1, 1, 1, 1],
    ],
    [
      [1, 3, 3],
      [0, 1, 1, 0, 1, 1],
    ],
    [
      [3, 3, 1],
      [1, 1, 0, 1, 2, 0],
    ],
    [
      [2, 1, 2],
      [0, 0, 1, 1, 0, 0],
    ],
  ] as const) {
    // the stacked grad-weight (gemm27, stride 1, batch 1) with every axis role: first, middle, last
    test(`Conv stacked stride 1: kernel [${k.join(',')}] pads [${pads.join(',')}]`, async () => {
      await gradCheck(
        (g) => {
          const x = g.input('x', [1, 3, 5, 6, 4]);
          const w = g.param('w', [2, 3, ...k], { kind: 'he' });
          return { out: g.conv(x, w, undefined, { pads: [...pads] }) };
        },
        { gradientOptions: { convGradWeight: 'stacked' } },
      );
    });
  }
  test('Conv 2-D and 1-D (stacked)', async () => {
    await gradCheck(
      (g) => {
        const x2 = g.input('x2', [1, 2, 6, 5]);
        const w2 = g.param('w2', [3, 2, 3, 3], { kind: 'he' });
        const x1 = g.input('x1', [1, 2, 7]);
        const w1 = g.param('w1', [2, 2, 3], { kind: 'he' });
        const a = g.conv(x2, w2, undefined, { pads: 1 });
        const b = g.conv(x1, w1, undefined, { pads: 1 });
        return { out: g.add(g.reduceSum(g.mul(a, a)), g.reduceSum(g.mul(b, b))) };
      },
      { gradientOptions: { convGradWeight: 'stacked' } },
    );
  });
  test('Conv with asymmetric pads and per-axis strides', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [1, 2, 6, 7, 5]);
      const w = g.param('w', [2, 2, 3, 2, 3], { kind: 'he' });
      return { out: g.conv(x, w, undefined, { strides: [1, 2, 2], pads: [0, 1, 2, 1, 0, 1] }) };
    });
  });
});

describe('normalisation, pooling, resizing', () => {
  test('InstanceNormalization (input, scale, bias)', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [2, 3, 3, 4, 5]);
      const s = g.param('s', [3], { kind: 'ones' });
      const b = g.param('b', [3], { kind: 'zeros' });
      return { out: g.instanceNorm(x, s, b) };
    });
  });
  test('GroupNorm (composite)', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [1, 4, 3, 4, 3]);
      const s = g.param('s', [4], { kind: 'ones' });
      const b = g.param('b', [4], { kind: 'zeros' });
      return { out: g.groupNorm(x, s, b, 2) };
    });
  });
  test('AveragePool: kernel 2 stride 2 on odd sizes; stride 1 with padding', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [1, 2, 5, 6, 7]);
      const a = g.averagePool(x, { kernel: 2, strides: 2 });
      const b = g.averagePool(x, { kernel: [3, 1, 5], strides: 1, pads: [1, 0, 2, 1, 0, 2] });
      return { out: g.add(g.reduceSum(g.mul(a, a)), g.mul(b, b)) };
    });
  });
  test('MaxPool: kernel 2 stride 2 on odd sizes', async () => {
    await gradCheck(
      (g) => {
        const x = g.input('x', [2, 2, 5, 4, 7]);
        return { out: g.maxPool(x, { kernel: 2, strides: 2 }) };
      },
      { eps: 1e-3 },
    );
  });
  test('Resize nearest ×2 and ×(1,2,3); repeatUpsample', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [1, 2, 3, 4, 3]);
      const a = g.resize(x, 2, 'nearest');
      const b = g.resize(x, [1, 2, 3], 'nearest');
      const c = g.repeatUpsample(x, [2, 1, 2]);
      return {
        out: g.add(
          g.add(g.reduceSum(g.mul(a, a)), g.reduceSum(g.mul(b, b))),
          g.reduceSum(g.mul(c, c)),
        ),
      };
    });
  });
  for (const mode of ['half_pixel', 'align_corners'] as const) {
    test(`Resize trilinear ×2 (${mode})`, async () => {
      await gradCheck((g) => {
        const x = g.input('x', [1, 2, 3, 5, 4]);
        return { out: g.resize(x, 2, 'linear', mode) };
      });
    });
  }
  test('depthToSpace3d', async () => {
    await gradCheck((g) => {
      const x = g.input('x', [1, 16, 2, 3, 2]);
      return { out: g.depthToSpace3d(x, 2) };
    });
  });
  test('warp3d: gradients for the volume and the displacement', async () => {
    await gradCheck(
      (g) => {
        const v = g.input('v', [1, 2, 5, 6, 4]);
        const d = g.input('d', [1, 3, 5, 6, 4]);
        return { out: g.warp3d(v, d) };
      },
      { data: { d: randn(360, new Rng(3), 1.3) }, eps: 1e-3 },
    );
  });
});
