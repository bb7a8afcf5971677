/** Values of the composite builder ops against direct JavaScript computations, and builder errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Graph, Rng, emitGraph, type Value } from '@rrl/models/engine/index.js';
import { randn, runModel } from './gradcheck-helper.js';

async function run(
  g: Graph,
  out: Value,
  data: Record<string, Float32Array>,
): Promise<Float32Array> {
  const model = emitGraph(g, { inputs: g.inputs, outputs: [['y', out]] });
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of g.inputs) feeds[v.name] = new ort.Tensor('float32', data[v.name]!, [...v.shape]);
  return (await runModel(model, feeds))['y']!.data as Float32Array;
}

test('warp3d samples trilinearly at grid + displacement with border clamping', async () => {
  const [d, h, w] = [4, 5, 6];
  const rng = new Rng(3);
  const vol = randn(2 * d * h * w, rng);
  const disp = randn(3 * d * h * w, rng, 1.5);
  const g = new Graph();
  const out = g.warp3d(g.input('v', [1, 2, d, h, w]), g.input('d', [1, 3, d, h, w]));
  const got = await run(g, out, { v: vol, d: disp });
  const m = d * h * w;
  const at = (c: number, z: number, y: number, x: number): number =>
    vol[c * m + (z * h + y) * w + x]!;
  let maxErr = 0;
  for (let c = 0; c < 2; c++)
    for (let z = 0; z < d; z++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const i = (z * h + y) * w + x;
          const p = [z + disp[i]!, y + disp[m + i]!, x + disp[2 * m + i]!].map((v, a) =>
            Math.min(Math.max(v, 0), [d, h, w][a]! - 1),
          );
          const f = p.map(Math.floor);
          const t = p.map((v, a) => v - f[a]!);
          let s = 0;
          for (let k = 0; k < 8; k++) {
            const b = [(k >> 2) & 1, (k >> 1) & 1, k & 1];
            const q = f.map((v, a) => Math.min(v + b[a]!, [d, h, w][a]! - 1));
            const wt = b.reduce((acc, bb, a) => acc * (bb ? t[a]! : 1 - t[a]!), 1);
            s += wt * at(c, q[0]!, q[1]!, q[2]!);
          }
          maxErr = Math.max(maxErr, Math.abs(s - got[c * m + i]!));
        }
  assert.ok(maxErr < 1e-5, `max error ${maxErr}`);
});

test('warp3d with zero displacement is the identity', async () => {
  const vol = randn(60, new Rng(1));
  const g = new Graph();
  const out = g.warp3d(g.input('v', [1, 1, 3, 4, 5]), g.input('d', [1, 3, 3, 4, 5]));
  const got = await run(g, out, { v: vol, d: new Float32Array(180) });
  assert.ok(got.every((v, i) => Math.abs(v - vol[i]!) < 1e-6));
});

test('repeatUpsample equals nearest Resize; depthToSpace3d moves channels to space', async () => {
  const x = randn(2 * 3 * 4 * 5, new Rng(2));
  const g = new Graph();
  const xi = g.input('x', [1, 2, 3, 4, 5]);
  const a = await run(g, g.repeatUpsample(xi, [2, 3, 2]), { x });
  const b = await run(g, g.resize(xi, [2, 3, 2], 'nearest'), { x });
  assert.deepEqual(Array.from(a), Array.from(b));
  const y = randn(16 * 2 * 3 * 2, new Rng(4));
  const g2 = new Graph();
  const out = await run(g2, g2.depthToSpace3d(g2.input('yin', [1, 16, 2, 3, 2]), 2), { yin: y });
  // output (c, 2z+i, 2y+j, 2x+k) = input (c·8 + (i·2 + j)·2 + k, z, y, x)
  const [D, H, W] = [4, 6, 4];
  for (let c = 0; c < 2; c++)
    for (let z = 0; z < D; z++)
      for (let yy = 0; yy < H; yy++)
        for (let xx = 0; xx < W; xx++) {
          const ch = c * 8 + ((z % 2) * 2 + (yy % 2)) * 2 + (xx % 2);
          const src = y[((ch * 2 + (z >> 1)) * 3 + (yy >> 1)) * 2 + (xx >> 1)]!;
          assert.equal(out[((c * D + z) * H + yy) * W + xx], src);
        }
});

test('the builder infers shapes and rejects inconsistent ones with a clear message', () => {
  const g = new Graph();
  const x = g.input('x', [1, 3, 9, 8, 7]);
  const w = g.param('w', [4, 3, 3, 3, 3], { kind: 'he' });
  assert.deepEqual(g.conv(x, w, undefined, { strides: 2, pads: 1 }).shape, [1, 4, 5, 4, 4]);
  assert.deepEqual(g.maxPool(x, { kernel: 2 }).shape, [1, 3, 4, 4, 3]);
  assert.deepEqual(g.slice(x, [1, -3], [100, -1], [2, 4]).shape, [1, 3, 8, 8, 2]);
  assert.deepEqual(g.reduceMean(x, [1, -1], true).shape, [1, 1, 9, 8, 1]);
  assert.deepEqual(g.add(x, g.input('b', [3, 1, 1, 1])).shape, [1, 3, 9, 8, 7]);
  const bad = g.param('bad', [4, 2, 3, 3, 3], { kind: 'he' });
  assert.throws(
    () => g.conv(x, bad, undefined),
    /input has 3 channels, weight \[4,2,3,3,3\] in 1 group\(s\) expects 2/,
  );
  assert.throws(() => g.add(x, g.input('c', [2, 1, 1])), /incompatible/);
  assert.throws(() => g.reshape(x, [5, -1]), /cannot reshape/);
});

test('concatenations of many tensors are emitted as a tree of Concats with at most 7 inputs each', async () => {
  const g = new Graph();
  const xs = Array.from({ length: 27 }, (_, i) => g.input(`x${i}`, [1, 2]));
  const y = g.concat(xs, 0);
  assert.deepEqual(y.shape, [27, 2]);
  const concats = g.nodes.filter((n) => n.op === 'Concat');
  assert.ok(
    concats.length > 1 && concats.every((n) => n.inputs.length <= 7),
    `${concats.map((n) => n.inputs.length)}`,
  );
  const data: Record<string, Float32Array> = {};
  xs.forEach((_, i) => (data[`x${i}`] = Float32Array.of(i, 100 + i)));
  const out = await run(g, y, data);
  assert.deepEqual(
    Array.from(out),
    xs.flatMap((_, i) => [i, 100 + i]),
  );
});
