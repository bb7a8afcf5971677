import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { buildForwardGraph } from '@rrl/models/engine/autodiff/training.js';
import { defaultPlan, ENCODER_PARAM_LIMIT } from '@rrl/models/rrl/plan.js';
import {
  autoPromptDecoder,
  countParams,
  encoderParamCount,
  rrlEncoder,
  rrlInferenceNet,
  rrlNetArgsFromPlan,
} from '@rrl/models/rrl/networks.js';

const opts: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: 2,
};

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

test('default encoder (32-64-128-256, conv blocks 2-2-2-1) is within the 2.7M budget', () => {
  const args = rrlNetArgsFromPlan(defaultPlan());
  const net = rrlInferenceNet(args, [16, 16, 16]);
  const eg = countParams(net.graph, 'eg.');
  const em = countParams(net.graph, 'em.');
  assert.equal(eg, encoderParamCount(args));
  assert.equal(eg, 1_744_800);
  assert.equal(em, eg, 'E_g and E_m share the architecture');
  assert.ok(eg <= ENCODER_PARAM_LIMIT);
  // AP decoder 16-32-64-128, one conv block per scale, prompt (3 channels) at every scale:
  // bottleneck (256+3)·27·128 + 3·128, dec2 (128+128+3)·27·64 + 3·64, dec1 (64+64+3)·27·32 + 3·32,
  // dec0 (32+32+3)·27·16 + 3·16, head 16·3 + 3.
  assert.equal(countParams(net.graph, 'ap.'), 895_488 + 447_744 + 113_280 + 28_992 + 51);
  // Two conv blocks at the deepest scale would exceed the budget: the builder refuses it.
  const heavy = { ...args, convsPerLevel: [2, 2, 2, 2] };
  assert.equal(encoderParamCount(heavy), 3_515_040);
  const g = new Graph();
  const x = g.input('image', [1, 1, 16, 16, 16]);
  assert.throws(
    () => rrlEncoder(g, 'eg', x, heavy),
    /3515040 parameters, above the 2700000 budget/,
  );
});

test('the inference network runs in onnxruntime-node with the expected shapes and rebuilds identically', async () => {
  const args = rrlNetArgsFromPlan(defaultPlan());
  const grid: [number, number, number] = [16, 16, 24];
  const build = (): Uint8Array => {
    const net = rrlInferenceNet(args, grid);
    return buildForwardGraph({
      graph: net.graph,
      outputs: { general: net.generalLogits, medical: net.medicalLogits, logits: net.logits },
      params: net.graph.initialParams(42),
    }).model;
  };
  const model = build();
  assert.deepEqual(build(), model, 'same args + seed → byte-identical model');
  const s = await ort.InferenceSession.create(model, opts);
  try {
    const img = randn(16 * 16 * 24, 3);
    const r = await s.run({ image: new ort.Tensor('float32', img, [1, 1, ...grid]) });
    for (const k of ['general', 'medical', 'logits']) {
      assert.deepEqual(r[k]!.dims, [1, 3, ...grid], k);
      const d = r[k]!.data as Float32Array;
      assert.ok(d.every(Number.isFinite), `${k} finite`);
      assert.ok(Math.max(...d) - Math.min(...d) > 0, `${k} not constant`);
    }
  } finally {
    await s.release();
  }
});

test('the auto-prompting decoder uses the prompt', async () => {
  const args = {
    ...rrlNetArgsFromPlan(defaultPlan()),
    channels: [4, 8, 16],
    decoderChannels: [4, 8, 8],
    convsPerLevel: [2, 2, 1],
  };
  const g = new Graph();
  const image = g.input('image', [1, 1, 8, 8, 8]);
  const prompt = g.input('prompt', [1, 3, 8, 8, 8]);
  const feats = rrlEncoder(g, 'em', image, args);
  assert.deepEqual(
    feats.map((f) => f.shape),
    [
      [1, 4, 8, 8, 8],
      [1, 8, 4, 4, 4],
      [1, 16, 2, 2, 2],
    ],
  );
  const logits = autoPromptDecoder(g, 'ap', feats, prompt, args);
  const { model } = buildForwardGraph({
    graph: g,
    outputs: { logits },
    params: g.initialParams(5),
  });
  const s = await ort.InferenceSession.create(model, opts);
  try {
    const img = new ort.Tensor('float32', randn(512, 1), [1, 1, 8, 8, 8]);
    const p1 = new Float32Array(3 * 512).fill(1 / 3);
    const p2 = new Float32Array(3 * 512);
    p2.fill(1, 512, 1024); // all voxels class 1
    const a = (await s.run({ image: img, prompt: new ort.Tensor('float32', p1, [1, 3, 8, 8, 8]) }))
      .logits!;
    const b = (await s.run({ image: img, prompt: new ort.Tensor('float32', p2, [1, 3, 8, 8, 8]) }))
      .logits!;
    assert.deepEqual(a.dims, [1, 3, 8, 8, 8]);
    const da = a.data as Float32Array;
    const db = b.data as Float32Array;
    let diff = 0;
    for (let i = 0; i < da.length; i++) diff = Math.max(diff, Math.abs(da[i]! - db[i]!));
    assert.ok(diff > 1e-3, `output changes with the prompt (max diff ${diff})`);
  } finally {
    await s.release();
  }
});

test('the inference network rejects a grid not divisible by 2^(scales-1)', () => {
  const args = rrlNetArgsFromPlan(defaultPlan());
  assert.throws(() => rrlInferenceNet(args, [16, 12, 16]), /must be divisible by 8 for 4 scales/);
});
