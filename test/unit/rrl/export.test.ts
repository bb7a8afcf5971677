import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { defaultPlan } from '@rrl/models/rrl/plan.js';
import { rrlInferenceNet, rrlNetArgsFromPlan } from '@rrl/models/rrl/networks.js';
import { exportRrlModel, type RrlModelInfo } from '@rrl/models/rrl/export.js';

const args = {
  ...rrlNetArgsFromPlan(defaultPlan()),
  channels: [4, 8, 16],
  convsPerLevel: [1, 1, 1],
  decoderChannels: [4, 4, 8],
};
const grid: [number, number, number] = [8, 8, 12];

function info(): RrlModelInfo {
  const label = (value: number, name: string, meaning: string): RrlModelInfo['labels'][number] => ({
    value,
    name,
    color: [200, 100 + value, 140],
    category: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
    type: { value: '5976005', scheme: 'SCT', meaning: 'Hippocampus' },
    modifier: { value: value === 1 ? '7771000' : '24028007', scheme: 'SCT', meaning },
  });
  return {
    id: 'rrl-test@0.0.1',
    name: 'RRL export test',
    version: '0.0.1',
    task: 'hippocampus',
    modalities: ['MR'],
    intensity: { method: 'zscore', clip: [-5, 5] },
    labels: [label(1, 'Left hippocampus', 'Left'), label(2, 'Right hippocampus', 'Right')],
    provenance: { createdAt: '2026-11-26T00:00:00Z', trainer: 'rrl unit test' },
    changelog: [{ version: '0.0.1', date: '2026-11-26', changes: 'test export' }],
  };
}

test('export: one ONNX (image → logits) with valid metadata that describes it', async () => {
  const params = rrlInferenceNet(args, grid).graph.initialParams(9);
  const { onnx, metadata } = exportRrlModel({
    args,
    grid,
    params,
    spacing: [1, 1, 1],
    info: info(),
    notices: ['Stage 1 (SAM distillation) skipped: no teacher in the plan.'],
  });
  assert.equal(metadata.kind, 'rrl-medsam');
  assert.deepEqual(metadata.grid.size, [12, 8, 8]);
  assert.deepEqual(metadata.onnx.input, { name: 'image', shape: [1, 1, 8, 8, 12] });
  assert.deepEqual(metadata.onnx.output, { name: 'logits', shape: [1, 3, 8, 8, 12] });
  assert.equal(metadata.onnx.sha256, createHash('sha256').update(onnx).digest('hex'));
  assert.match(metadata.provenance.notes ?? '', /Stage 1 \(SAM distillation\) skipped/);
  const s = await ort.InferenceSession.create(onnx, { executionProviders: ['cpu'] });
  try {
    assert.deepEqual(s.inputNames, ['image']);
    assert.deepEqual(s.outputNames, ['logits']);
    const x = new Float32Array(8 * 8 * 12).map((_, i) => Math.cos(i));
    const r = await s.run({ image: new ort.Tensor('float32', x, metadata.onnx.input.shape) });
    assert.deepEqual(r.logits!.dims, metadata.onnx.output.shape);
    assert.ok((r.logits!.data as Float32Array).every(Number.isFinite));
  } finally {
    await s.release();
  }
});

test('export refuses labels that do not match the output classes', () => {
  const params = rrlInferenceNet(args, grid).graph.initialParams(9);
  const one = info();
  one.labels = one.labels.slice(0, 1);
  assert.throws(
    () => exportRrlModel({ args, grid, params, spacing: [1, 1, 1], info: one }),
    /3 output classes \(background \+ 2 labels\) but 1 labels were given/,
  );
});

test('export writes the plan resampling mode into metadata.grid', () => {
  const params = rrlInferenceNet(args, grid).graph.initialParams(9);
  const { metadata } = exportRrlModel({
    args,
    grid,
    params,
    spacing: [1, 1, 1.5],
    info: info(),
    resample: 'fixed-spacing',
  });
  assert.deepEqual(metadata.grid, {
    size: [12, 8, 8],
    spacing: [1, 1, 1.5],
    resample: 'fixed-spacing',
  });
  const fit = exportRrlModel({ args, grid, params, spacing: [1, 1, 1], info: info() }).metadata;
  assert.equal(fit.grid.resample, 'fit-extent');
});
