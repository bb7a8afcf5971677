import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ModelMetadataError,
  checkModelFitsSeries,
  describeModelKind,
  validateMetadata,
  type ModelMetadata,
} from '@rrl/core/format/index.js';

function sample(): Record<string, unknown> {
  return {
    formatVersion: 1,
    id: 'demo-brain-structures@0.1.0',
    name: 'Brain structures (demo)',
    version: '0.1.0',
    task: 'brain-structures',
    kind: 'test-fixture',
    modalities: ['MR'],
    onnx: {
      file: 'model.onnx',
      sha256: 'a'.repeat(64),
      opset: 17,
      input: { name: 'image', shape: [1, 1, 48, 64, 32] },
      output: { name: 'logits', shape: [1, 3, 48, 64, 32] },
    },
    grid: { size: [32, 64, 48], spacing: [5, 3, 4], resample: 'fit-extent' },
    intensity: { method: 'zscore', clip: [-5, 5] },
    labels: [
      {
        value: 1,
        name: 'Left hippocampus',
        color: [220, 180, 140],
        category: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
        type: { value: '5976005', scheme: 'SCT', meaning: 'Hippocampus' },
        modifier: { value: '7771000', scheme: 'SCT', meaning: 'Left' },
      },
      {
        value: 2,
        name: 'Right hippocampus',
        color: [200, 100, 140],
        category: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
        type: { value: '5976005', scheme: 'SCT', meaning: 'Hippocampus' },
        modifier: { value: '24028007', scheme: 'SCT', meaning: 'Right' },
      },
    ],
    provenance: { createdAt: '2026-11-26T00:00:00Z', trainer: 'test' },
    changelog: [{ version: '0.1.0', date: '2026-11-26', changes: 'first' }],
  };
}

function problemsOf(json: unknown): string[] {
  try {
    validateMetadata(json);
  } catch (e) {
    assert.ok(e instanceof ModelMetadataError, `expected ModelMetadataError, got ${String(e)}`);
    return e.problems;
  }
  return [];
}

test('a complete metadata.json validates and keeps its values', () => {
  const m = validateMetadata(sample());
  assert.equal(m.id, 'demo-brain-structures@0.1.0');
  assert.deepEqual(m.grid.size, [32, 64, 48]);
  assert.equal(m.labels[1].modifier?.meaning, 'Right');
});

test('missing fields are all reported, by path', () => {
  const j = sample();
  delete j.name;
  delete j.provenance;
  (j.labels as Record<string, unknown>[])[0].type = undefined;
  const p = problemsOf(j);
  assert.equal(p.length, 3, p.join('\n'));
  assert.match(p.join('\n'), /^name must be a non-empty string/m);
  assert.match(p.join('\n'), /provenance must be an object/);
  assert.match(p.join('\n'), /labels\[0\]\.type must be an object/);
});

test('the error message names the model and what to do', () => {
  const j = sample();
  j.formatVersion = 2;
  assert.throws(
    () => validateMetadata(j),
    /demo-brain-structures@0\.1\.0.*formatVersion must be 1.*Fix metadata\.json/s,
  );
});

test('label values: duplicates, out of range and gaps are rejected', () => {
  const dup = sample();
  (dup.labels as Record<string, unknown>[])[1].value = 1;
  assert.match(problemsOf(dup).join(' '), /value 1 is used by more than one label/);
  const big = sample();
  (big.labels as Record<string, unknown>[])[1].value = 300;
  assert.match(problemsOf(big).join(' '), /integer from 1 to 255, found the number 300/);
  const gap = sample();
  (gap.labels as Record<string, unknown>[])[1].value = 3;
  assert.match(problemsOf(gap).join(' '), /exactly 1\.\.2 .* 2 is missing/);
});

test('input and output shapes must agree with grid size and label count', () => {
  const j = sample();
  (j.onnx as { input: { shape: number[] } }).input.shape = [1, 1, 32, 64, 48];
  (j.onnx as { output: { shape: number[] } }).output.shape = [1, 2, 48, 64, 32];
  const p = problemsOf(j).join('\n');
  assert.match(p, /onnx\.input\.shape must be \[1, 1, D, H, W\] = \[1, 1, 48, 64, 32\]/);
  assert.match(
    p,
    /onnx\.output\.shape must be .*\[1, 3, 48, 64, 32\] \(C = 2 labels \+ background\), found \[1, 2, 48, 64, 32\]/,
  );
});

test('unknown intensity method, bad percentiles, bad kind and bad colour are rejected', () => {
  const j = sample();
  j.intensity = { method: 'minmax' };
  j.kind = 'trained';
  (j.labels as Record<string, unknown>[])[0].color = [0, 0, 256];
  const p = problemsOf(j).join('\n');
  assert.match(p, /intensity\.method must be "zscore" or "percentile", found the string "minmax"/);
  assert.match(p, /kind must be one of rrl-medsam, test-fixture/);
  assert.match(p, /labels\[0\]\.color must be three integers/);
  const q = sample();
  q.intensity = { method: 'percentile', low: 99, high: 1 };
  assert.match(problemsOf(q).join(' '), /0 <= low < high <= 100/);
  const ok = sample();
  ok.intensity = { method: 'percentile', low: 0.5, high: 99.5 };
  assert.deepEqual(problemsOf(ok), []);
});

test('onnx.file must stay inside the model folder; sha256 must be hex', () => {
  const j = sample();
  (j.onnx as Record<string, unknown>).file = '../other/model.onnx';
  (j.onnx as Record<string, unknown>).sha256 = 'xyz';
  const p = problemsOf(j).join('\n');
  assert.match(p, /plain file name/);
  assert.match(p, /sha256 must be 64 lowercase hex digits/);
});

test('non-object input is rejected with a clear message', () => {
  assert.throws(() => validateMetadata([1, 2]), /must hold a JSON object, found an array/);
});

test('checkModelFitsSeries: fitting series has no problems', () => {
  const m = validateMetadata(sample());
  const p = checkModelFitsSeries(m, {
    seriesInstanceUID: '1.2.3',
    modality: 'MR',
    dims: [181, 217, 181],
    spacing: [1, 1, 1],
  });
  assert.deepEqual(p, []);
});

test('checkModelFitsSeries: wrong modality, too few slices, wrong field of view', () => {
  const m: ModelMetadata = validateMetadata(sample());
  const p = checkModelFitsSeries(m, {
    seriesInstanceUID: '1.2.3',
    modality: 'CT',
    dims: [512, 512, 4],
    spacing: [0.05, 0.05, 5],
  });
  const all = p.join('\n');
  assert.match(all, /is for MR images, but series 1\.2\.3 is CT/);
  assert.match(all, /at least 8 slices, but series 1\.2\.3 has 4/);
  assert.match(all, /Along x series 1\.2\.3 covers 26 mm.*expects about 160 mm/);
  assert.equal(p.length, 5, all);
});

test('test-fixture models are described as test fixtures, not product models', () => {
  assert.match(
    describeModelKind({ kind: 'test-fixture' }),
    /Test fixture .*not a trained product model/,
  );
  assert.doesNotMatch(describeModelKind({ kind: 'rrl-medsam' }), /fixture/);
});
