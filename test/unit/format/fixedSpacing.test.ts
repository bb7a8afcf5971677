import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ModelMetadataError,
  checkModelFitsSeries,
  validateMetadata,
} from '@rrl/core/format/index.js';

function sample(resample: unknown): Record<string, unknown> {
  return {
    formatVersion: 1,
    id: 'hippo@0.1.0',
    name: 'Hippocampus',
    version: '0.1.0',
    task: 'hippocampus',
    kind: 'rrl-medsam',
    modalities: ['MR'],
    onnx: {
      file: 'model.onnx',
      sha256: 'b'.repeat(64),
      opset: 17,
      input: { name: 'image', shape: [1, 1, 40, 56, 40] },
      output: { name: 'logits', shape: [1, 2, 40, 56, 40] },
    },
    grid: { size: [40, 56, 40], spacing: [1, 1, 1], resample },
    intensity: { method: 'percentile', low: 1, high: 99 },
    labels: [
      {
        value: 1,
        name: 'Hippocampus',
        color: [220, 180, 140],
        category: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
        type: { value: '5976005', scheme: 'SCT', meaning: 'Hippocampus' },
      },
    ],
    provenance: { createdAt: '2026-11-26T00:00:00Z' },
    changelog: [],
  };
}

test('grid.resample accepts "fit-extent" and "fixed-spacing" and names both when wrong', () => {
  assert.equal(validateMetadata(sample('fixed-spacing')).grid.resample, 'fixed-spacing');
  assert.equal(validateMetadata(sample('fit-extent')).grid.resample, 'fit-extent');
  assert.throws(
    () => validateMetadata(sample('stretch')),
    (e: unknown) => {
      assert.ok(e instanceof ModelMetadataError);
      assert.deepEqual(e.problems, [
        'grid.resample must be one of "fit-extent", "fixed-spacing", found the string "stretch".',
      ]);
      return true;
    },
  );
});

test('checkModelFitsSeries on a fixed-spacing grid: extent ratio, with what cropping/padding means', () => {
  const m = validateMetadata(sample('fixed-spacing'));
  const ok = checkModelFitsSeries(m, {
    seriesInstanceUID: '1.2.3',
    modality: 'MR',
    dims: [35, 50, 36],
    spacing: [1, 1, 1],
  });
  assert.deepEqual(ok, []);
  const p = checkModelFitsSeries(m, {
    seriesInstanceUID: '1.2.3',
    modality: 'MR',
    dims: [256, 56, 9],
    spacing: [1, 1, 1],
  });
  assert.equal(p.length, 2, p.join('\n'));
  assert.match(
    p[0],
    /Along x series 1\.2\.3 covers 256 mm.*expects about 40 mm.*ratio 6\.40\)\. At the model's fixed spacing only the central 16 % of it would be segmented\./,
  );
  assert.match(p[1], /Along z series 1\.2\.3 covers 9 mm.*it would fill only 23 % of the grid\./);
  // fit-extent keeps today's wording
  const f = checkModelFitsSeries(validateMetadata(sample('fit-extent')), {
    seriesInstanceUID: '1.2.3',
    modality: 'MR',
    dims: [256, 56, 9],
    spacing: [1, 1, 1],
  });
  assert.equal(f.length, 2);
  assert.ok(f.every((s) => !s.includes('fixed spacing')));
});
