import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BENCH_CONFIGS } from '@rrl/models/engine/nn/bench.js';
import { buildForwardGraph, buildTrainingGraph } from '@rrl/models/engine/autodiff/training.js';
import {
  bakeParams,
  exportModel,
  sha256Hex,
  type ExportMetadata,
} from '@rrl/models/engine/export/export.js';
import { maxAbsDiff, runInNode, runInWebWasm } from '@rrl/models/engine/export/parity.js';
import { validateMetadata } from '@rrl/core/format/index.js';
import { SeededRng } from '@rrl/models/engine/runtime/rng.js';
import { Trainer } from '@rrl/models/engine/runtime/trainer.js';
import { IMAGE_DIMS, tinyBatch, tinyForward, tinyTraining } from './tiny-net.js';

const code = (value: string, meaning: string) => ({ value, scheme: 'SCT', meaning });

function exportMeta(): ExportMetadata {
  const [, , d, h, w] = IMAGE_DIMS;
  return {
    name: 'Tiny test network',
    version: '0.0.1',
    task: 'runtime-test',
    kind: 'test-fixture',
    modalities: ['MR'],
    grid: { size: [w, h, d], spacing: [1, 1, 1], resample: 'fit-extent' },
    intensity: { method: 'zscore', clip: [-5, 5] },
    labels: [
      {
        value: 1,
        name: 'Structure',
        color: [200, 100, 50],
        category: code('123037004', 'Anatomical Structure'),
        type: code('5976005', 'Hippocampus'),
      },
    ],
    changelog: [{ version: '0.0.1', date: '2026-11-26', changes: 'test export' }],
  };
}

test('export bakes trained weights; ORT-node and ORT-web (wasm) agree with the training-time forward pass to 1e-4', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'rrl-export-'));
  try {
    // train a few steps so the weights are not the initial ones
    const { net, built } = tinyTraining();
    const trainer = await Trainer.create(built, {
      provider: 'cpu',
      initialState: net.graph.initialParams(4),
    });
    for (let i = 0; i < 5; i++) await trainer.step(tinyBatch(), 0.02);
    const params = await trainer.readParams();
    await trainer.dispose();

    // training-time forward pass: the forward graph with parameters as inputs
    const { forward } = tinyForward();
    const image = tinyBatch(0.5, new SeededRng(11)).image; // not the training data
    const feeds: Record<string, { data: Float32Array; dims: readonly number[] }> = { image };
    for (const p of forward.spec.paramInputs) feeds[p.name] = params.get(p.name)!;
    const reference = await runInNode(forward.model, feeds, 'logits');

    const result = await exportModel({
      forward: forward.model,
      params,
      metadata: exportMeta(),
      modelsDir: dir,
    });
    assert.equal(result.dir, path.join(dir, 'runtime-test@0.0.1'));
    const onDisk = new Uint8Array(await readFile(result.modelPath));
    const meta = validateMetadata(JSON.parse(await readFile(result.metadataPath, 'utf8')));
    assert.equal(meta.onnx.sha256, sha256Hex(onDisk));
    assert.equal(meta.onnx.file, 'model.onnx');
    assert.deepEqual(meta.onnx.input, { name: 'image', shape: [...IMAGE_DIMS] });
    assert.deepEqual(meta.onnx.output, { name: 'logits', shape: [1, 2, 6, 5, 4] });
    assert.equal(meta.kind, 'test-fixture');
    assert.ok(meta.provenance.createdAt);

    const fromNode = await runInNode(onDisk, { image }, 'logits');
    const fromWeb = await runInWebWasm(onDisk, { image }, 'logits');
    const dNode = maxAbsDiff(reference, fromNode);
    const dWeb = maxAbsDiff(reference, fromWeb);
    assert.ok(dNode <= 1e-4, `onnxruntime-node differs by ${dNode}`);
    assert.ok(dWeb <= 1e-4, `onnxruntime-web (wasm) differs by ${dWeb}`);
    // and the result is not trivially constant
    assert.ok(Math.max(...reference) - Math.min(...reference) > 0.1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('export refuses missing, misshapen or diverged parameters with clear messages', () => {
  const { net, forward } = tinyForward();
  const params = net.graph.initialParams(0);
  const missing = new Map(params);
  missing.delete('c2.w');
  assert.throws(() => bakeParams(forward.model, missing), /one input \(the image\).*c2\.w/);
  const wrong = new Map(params);
  wrong.set('c2.b', new Float32Array(3));
  assert.throws(() => bakeParams(forward.model, wrong), /Parameter 'c2.b' should have dims \[2\]/);
  const nan = new Map(params);
  nan.set('c2.b', Float32Array.of(0, NaN));
  assert.throws(() => bakeParams(forward.model, nan), /diverged/);
  const ok = bakeParams(forward.model, params);
  assert.equal(ok.input.name, 'image');
  assert.equal(ok.opset >= 17, true);
});

test('a trained reference U-Net (pooling, up-sampling, skip concat, norms) exports with parity ≤ 1e-4 in ORT-node and ORT-web', async () => {
  const net = BENCH_CONFIGS['unet-b4-16']();
  const built = buildTrainingGraph({
    graph: net.graph,
    loss: net.loss,
    optimizer: { type: 'adamw' },
  });
  const feeds: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
  for (const inp of net.inputs) {
    const n = inp.value.shape.reduce((a: number, b: number) => a * b, 1);
    feeds[inp.value.name] = {
      data: Float32Array.from({ length: n }, (_, i) => inp.fill(i, n)),
      dims: inp.value.shape,
    };
  }
  const trainer = await Trainer.create(built, {
    provider: 'cpu',
    initialState: net.graph.initialParams(8),
  });
  let first = NaN;
  let last = NaN;
  for (let i = 0; i < 4; i++) {
    const r = await trainer.step(feeds, 3e-3);
    if (i === 0) first = r.loss;
    last = r.loss;
  }
  assert.ok(last < first, `loss ${first} → ${last}`);
  const params = await trainer.readParams();
  await trainer.dispose();

  const forward = buildForwardGraph({
    graph: net.graph,
    outputs: { logits: net.output },
    params: 'inputs',
  });
  const image = {
    data: feeds['image']!.data.map((v, i) => v + 0.3 * Math.sin(i * 0.11)),
    dims: feeds['image']!.dims,
  };
  const refFeeds: Record<string, { data: Float32Array; dims: readonly number[] }> = { image };
  for (const p of forward.spec.paramInputs) refFeeds[p.name] = params.get(p.name)!;
  const reference = await runInNode(forward.model, refFeeds, 'logits');
  const baked = bakeParams(forward.model, params, 'logits');
  const dNode = maxAbsDiff(reference, await runInNode(baked.model, { image }, 'logits'));
  const dWeb = maxAbsDiff(reference, await runInWebWasm(baked.model, { image }, 'logits'));
  assert.ok(dNode <= 1e-4, `onnxruntime-node differs by ${dNode}`);
  assert.ok(dWeb <= 1e-4, `onnxruntime-web (wasm) differs by ${dWeb}`);
});
