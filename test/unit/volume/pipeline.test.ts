// The viewer's pre/post-processing around a real ONNX segmentation network (the E2E team's test
// fixture, run with onnxruntime-node) on the demo atlas volume: the model-format metadata
// validates, the model fits the series, and the labels land where the atlas's labels are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { makeTestModel } from '../../fixtures/test-model.js';
import { loadDemoAtlas } from '@rrl/server/demo/atlas.js';
import { checkModelFitsSeries, validateMetadata } from '@rrl/core/format/metadata.js';
import {
  countLabels,
  labelsFromLogits,
  modelInputDims,
  prepareModelInput,
} from '@rrl/core/volume/preprocess.js';

test('fixture model on the demo atlas: metadata valid, fits, labels overlap the atlas labels', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-viewer-pipeline-'));
  try {
    const model = await makeTestModel({ outDir: dir });
    const meta = validateMetadata(model.metadata);
    assert.equal(meta.kind, 'test-fixture');
    const atlas = await loadDemoAtlas();
    const dims = atlas.geometry.dims;
    assert.deepEqual(
      checkModelFitsSeries(meta, {
        seriesInstanceUID: 'atlas',
        modality: 'MR',
        dims,
        spacing: atlas.geometry.spacing,
      }),
      [],
    );
    const input = prepareModelInput(atlas.image, dims, meta);
    const session = await ort.InferenceSession.create(path.join(model.dir, meta.onnx.file));
    const out = await session.run({
      [meta.onnx.input.name]: new ort.Tensor('float32', input, modelInputDims(meta)),
    });
    const logits = out[meta.onnx.output.name];
    assert.deepEqual(logits.dims, meta.onnx.output.shape);
    const labels = labelsFromLogits(logits.data as Float32Array, meta, dims);
    assert.equal(labels.length, dims[0] * dims[1] * dims[2]);
    const counts = countLabels(labels, meta.labels.length);
    const dices: number[] = [];
    for (const l of meta.labels) {
      let a = 0;
      let b = 0;
      let ab = 0;
      for (let i = 0; i < labels.length; i++) {
        const x = labels[i] === l.value;
        const y = atlas.labels[i] === l.value;
        if (x) a++;
        if (y) b++;
        if (x && y) ab++;
      }
      dices.push((2 * ab) / Math.max(1, a + b));
    }
    const mean = dices.reduce((s, d) => s + d, 0) / dices.length;
    // A flipped or transposed axis anywhere in the chain drives these to ~0.
    assert.ok(
      mean > 0.6 && Math.min(...dices) > 0.3,
      `Dice per label ${dices.map((d) => d.toFixed(2)).join(', ')}; voxels ${counts.join(', ')}`,
    );
    await session.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
