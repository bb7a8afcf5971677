import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import {
  Graph,
  buildEmaGraph,
  buildForwardGraph,
  buildTrainingGraph,
  decodeModel,
  emitGraph,
  gradients,
  Rng,
  type Value,
} from '@rrl/models/engine/index.js';
import { randn, runModel } from './gradcheck-helper.js';
import { trainSteps } from '../../helpers/train.js';

function tinyNet(g: Graph): { x: Value; t: Value; y: Value; loss: Value } {
  const x = g.input('image', [1, 2, 6, 5, 4]);
  const t = g.input('target', [1, 3, 6, 5, 4]);
  const w = g.param('c.w', [3, 2, 3, 3, 3], { kind: 'he' });
  const b = g.param('c.b', [3], { kind: 'zeros' });
  const y = g.conv(g.relu(x), w, b, { pads: 1 });
  const d = g.sub(y, t);
  return { x, t, y, loss: g.reduceMean(g.mul(d, d)) };
}

test('ONNX writer: a model round-trips through the decoder and loads in onnxruntime-node', async () => {
  const g = new Graph();
  const { y } = tinyNet(g);
  const params = g.initialParams(7);
  const { model, spec } = buildForwardGraph({ graph: g, outputs: { logits: y }, params });
  const dec = decodeModel(model);
  assert.equal(dec.opset, 18);
  assert.equal(dec.irVersion, 8);
  assert.deepEqual(
    dec.graph.inputs.map((i) => [i.name, i.dims]),
    [['image', [1, 2, 6, 5, 4]]],
  );
  assert.deepEqual(
    dec.graph.outputs.map((o) => [o.name, o.dims]),
    [['logits', [1, 3, 6, 5, 4]]],
  );
  const w = dec.graph.initializers.find((i) => i.name === 'c.w')!;
  assert.deepEqual([...w.dims], [3, 2, 3, 3, 3]);
  assert.deepEqual(Array.from(w.data as Float32Array), Array.from(params.get('c.w')!));
  const conv = dec.graph.nodes.find((n) => n.opType === 'Conv')!;
  assert.deepEqual(conv.attrs?.['pads'], { kind: 'ints', value: [1, 1, 1, 1, 1, 1] });
  assert.deepEqual(spec.inputs, [{ name: 'image', dims: [1, 2, 6, 5, 4], type: 'float32' }]);
  const x = randn(240, new Rng(1));
  const out = await runModel(model, { image: new ort.Tensor('float32', x, [1, 2, 6, 5, 4]) });
  assert.deepEqual(out['logits']!.dims, [1, 3, 6, 5, 4]);
  // same network with parameters as inputs gives the same result
  const asInputs = buildForwardGraph({ graph: g, outputs: { logits: y }, params: 'inputs' });
  assert.deepEqual(
    asInputs.spec.paramInputs.map((p) => p.name),
    ['c.w', 'c.b'],
  );
  const out2 = await runModel(asInputs.model, {
    image: new ort.Tensor('float32', x, [1, 2, 6, 5, 4]),
    'c.w': new ort.Tensor('float32', params.get('c.w')!, [3, 2, 3, 3, 3]),
    'c.b': new ort.Tensor('float32', params.get('c.b')!, [3]),
  });
  assert.deepEqual(
    Array.from(out2['logits']!.data as Float32Array),
    Array.from(out['logits']!.data as Float32Array),
  );
});

test('initialParams is deterministic per seed and name, and He-scaled', () => {
  const g = new Graph();
  g.param('a', [16, 8, 3, 3, 3], { kind: 'he' });
  g.param('b', [16], { kind: 'ones' });
  const p1 = g.initialParams(3);
  const p2 = g.initialParams(3);
  const p3 = g.initialParams(4);
  assert.deepEqual(p1.get('a'), p2.get('a'));
  assert.notDeepEqual(p1.get('a'), p3.get('a'));
  assert.ok(p1.get('b')!.every((v) => v === 1));
  const a = p1.get('a')!;
  const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  assert.ok(Math.abs(std - Math.sqrt(2 / (8 * 27))) < 0.01, `std ${std}`);
});

async function stepOnce(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  return runModel(model, feeds);
}

test('training graph (AdamW): one run equals a hand-computed AdamW step', async () => {
  const g = new Graph();
  const { loss } = tinyNet(g);
  const rng = new Rng(5);
  const params = g.initialParams(1);
  const x = randn(240, rng);
  const t = randn(360, rng);
  const opt = { type: 'adamw' as const, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 };
  const { model, spec } = buildTrainingGraph({
    graph: g,
    loss,
    optimizer: opt,
    metrics: { l: loss },
  });
  assert.deepEqual(
    spec.stateInputs.map((s) => `${s.name}:${s.kind}`),
    ['c.w:param', 'c.w__m:optim', 'c.w__v:optim', 'c.b:param', 'c.b__m:optim', 'c.b__v:optim'],
  );
  assert.equal(spec.stateOutputs['c.w__v'], 'c.w__v__next');
  assert.deepEqual(spec.metricOutputs, ['metric:l']);
  assert.deepEqual(
    spec.dataInputs.map((d) => d.name),
    ['image', 'target'],
  );
  // gradients from a separate gradient graph
  const g2 = new Graph();
  const n2 = tinyNet(g2);
  const wrt = [g2.value('c.w'), g2.value('c.b')];
  const gr = gradients(g2, n2.loss, wrt);
  const gm = emitGraph(g2, {
    inputs: [n2.x, n2.t, ...wrt],
    outputs: [
      ['gw', gr[0]!],
      ['gb', gr[1]!],
    ],
  });
  const base: Record<string, ort.Tensor> = {
    image: new ort.Tensor('float32', x, [1, 2, 6, 5, 4]),
    target: new ort.Tensor('float32', t, [1, 3, 6, 5, 4]),
    'c.w': new ort.Tensor('float32', params.get('c.w')!, [3, 2, 3, 3, 3]),
    'c.b': new ort.Tensor('float32', params.get('c.b')!, [3]),
  };
  const grads = await runModel(gm, base);
  const m0 = randn(162, rng, 0.1);
  const v0 = randn(162, rng, 0.1).map((q) => q * q);
  const feeds: Record<string, ort.Tensor> = {
    ...base,
    lr: new ort.Tensor('float32', Float32Array.of(0.01), []),
    step: new ort.Tensor('float32', Float32Array.of(3), []),
    'c.w__m': new ort.Tensor('float32', m0, [3, 2, 3, 3, 3]),
    'c.w__v': new ort.Tensor('float32', v0, [3, 2, 3, 3, 3]),
    'c.b__m': new ort.Tensor('float32', new Float32Array(3), [3]),
    'c.b__v': new ort.Tensor('float32', new Float32Array(3), [3]),
  };
  const out = await stepOnce(model, feeds);
  assert.equal(out['loss']!.dims.length, 0);
  assert.equal((out['loss']!.data as Float32Array)[0], (out['metric:l']!.data as Float32Array)[0]);
  const gw = grads['gw']!.data as Float32Array;
  const w = params.get('c.w')!;
  const wNext = out['c.w__next']!.data as Float32Array;
  const mNext = out['c.w__m__next']!.data as Float32Array;
  for (let i = 0; i < w.length; i++) {
    const m = 0.8 * m0[i]! + 0.2 * gw[i]!;
    const v = 0.95 * v0[i]! + 0.05 * gw[i]! * gw[i]!;
    const mh = m / (1 - 0.8 ** 3);
    const vh = v / (1 - 0.95 ** 3);
    const expected = w[i]! - 0.01 * (mh / (Math.sqrt(vh) + 1e-6) + 0.1 * w[i]!);
    assert.ok(Math.abs(mNext[i]! - m) < 1e-5, `m[${i}]`);
    assert.ok(Math.abs(wNext[i]! - expected) < 1e-5, `w[${i}]: ${wNext[i]} vs ${expected}`);
  }
});

test('training graph (SGD with momentum): repeated steps reduce the loss', async () => {
  const g = new Graph();
  const { loss } = tinyNet(g);
  const tg = buildTrainingGraph({
    graph: g,
    loss,
    optimizer: { type: 'sgd', momentum: 0.9 },
  });
  const rng = new Rng(9);
  const x = randn(240, rng);
  const t = randn(360, rng);
  const { losses } = await trainSteps(tg, g.initialParams(2), { image: x, target: t }, 15, 0.02);
  assert.ok(
    losses[14]! < losses[0]! * 0.9,
    `loss did not fall: ${losses.map((l) => l.toFixed(4)).join(' ')}`,
  );
});

test('mutual EMA graph uses the old values of both parameter sets', async () => {
  const { model, spec } = buildEmaGraph([{ a: 'g.w', b: 'm.w', dims: [2] }]);
  assert.deepEqual(spec.stateOutputs, { 'g.w': 'g.w__next', 'm.w': 'm.w__next' });
  const out = await runModel(model, {
    alpha: new ort.Tensor('float32', Float32Array.of(0.75), []),
    'g.w': new ort.Tensor('float32', Float32Array.of(1, 2), [2]),
    'm.w': new ort.Tensor('float32', Float32Array.of(5, 6), [2]),
  });
  assert.deepEqual(Array.from(out['g.w__next']!.data as Float32Array), [2, 3]);
  assert.deepEqual(Array.from(out['m.w__next']!.data as Float32Array), [4, 5]);
});

test('training graph: input gradients as grad:<name> outputs, and mutual EMA after the update', async () => {
  const g = new Graph();
  const x = g.input('x', [3]);
  const a = g.param('a.w', [3], { kind: 'constant', value: 2 });
  const b = g.param('b.w', [3], { kind: 'constant', value: 4 });
  // loss = Σ a·x² + Σ b·x  → d/dx = 2·a·x + b, d/da = x², d/db = x
  const loss = g.add(g.reduceSum(g.mul(a, g.mul(x, x))), g.reduceSum(g.mul(b, x)));
  const { model, spec } = buildTrainingGraph({
    graph: g,
    loss,
    optimizer: { type: 'sgd', momentum: 0 },
    inputGradients: ['x'],
    ema: { pairs: [['a.w', 'b.w']], alpha: 0.75 },
  });
  assert.deepEqual(spec.inputGradOutputs, ['grad:x']);
  const xs = Float32Array.of(1, -2, 3);
  const out = await runModel(model, {
    x: new ort.Tensor('float32', xs, [3]),
    lr: new ort.Tensor('float32', Float32Array.of(0.5), []),
    step: new ort.Tensor('float32', Float32Array.of(1), []),
    'a.w': new ort.Tensor('float32', Float32Array.of(2, 2, 2), [3]),
    'a.w__mom': new ort.Tensor('float32', new Float32Array(3), [3]),
    'b.w': new ort.Tensor('float32', Float32Array.of(4, 4, 4), [3]),
    'b.w__mom': new ort.Tensor('float32', new Float32Array(3), [3]),
  });
  assert.deepEqual(Array.from(out['grad:x']!.data as Float32Array), [8, -4, 16]);
  // SGD: a' = 2 − 0.5·x², b' = 4 − 0.5·x; then EMA with the updated values
  const a1 = Array.from(xs, (v) => 2 - 0.5 * v * v);
  const b1 = Array.from(xs, (v) => 4 - 0.5 * v);
  const aNext = Array.from(out['a.w__next']!.data as Float32Array);
  const bNext = Array.from(out['b.w__next']!.data as Float32Array);
  a1.forEach((v, i) => {
    assert.ok(Math.abs(aNext[i]! - (0.75 * v + 0.25 * b1[i]!)) < 1e-6);
    assert.ok(Math.abs(bNext[i]! - (0.75 * b1[i]! + 0.25 * v)) < 1e-6);
  });
});
