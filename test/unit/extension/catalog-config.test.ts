import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCatalog } from '@rrl/extension/utils/modelCatalog.js';
import { resolveConfig } from '@rrl/extension/utils/config.js';
import { nextSeriesNumber, segmentDescriptions } from '@rrl/extension/seg/saveToPacs.js';
import { Store } from '@rrl/extension/state/store.js';
import { validateMetadata } from '@rrl/core/format/metadata.js';

function meta(id: string, extra: Record<string, unknown> = {}) {
  const code = { value: '1', scheme: 'SCT', meaning: 'x' };
  return {
    formatVersion: 1,
    id,
    name: `Model ${id}`,
    version: '1.0.0',
    task: 't',
    kind: 'rrl-medsam',
    modalities: ['CT'],
    onnx: {
      file: 'model.onnx',
      sha256: 'b'.repeat(64),
      opset: 17,
      input: { name: 'image', shape: [1, 1, 8, 8, 8] },
      output: { name: 'logits', shape: [1, 2, 8, 8, 8] },
    },
    grid: { size: [8, 8, 8], spacing: [2, 2, 2], resample: 'fit-extent' },
    intensity: { method: 'percentile', low: 1, high: 99 },
    labels: [
      { value: 1, name: 'Liver', color: [1, 2, 3], category: code, type: code, modifier: code },
    ],
    provenance: { createdAt: '2026-01-01' },
    changelog: [],
    ...extra,
  };
}

test('parseCatalog keeps valid models and reports rejected ones with their reasons', () => {
  const c = parseCatalog([meta('a@1'), meta('b@1', { kind: 'nope' }), 7], 'http://h/models');
  assert.deepEqual(
    c.models.map((m) => m.metadata.id),
    ['a@1'],
  );
  assert.equal(c.models[0].baseUrl, 'http://h/models/a%401/');
  assert.equal(c.rejected.length, 2);
  assert.equal(c.rejected[0].id, 'b@1');
  assert.match(c.rejected[0].reason, /kind must be one of/);
  assert.equal(c.rejected[1].id, 'entry 3');
  assert.throws(() => parseCatalog({ nope: 1 }, 'x'), /not a JSON array/);
  assert.equal(parseCatalog({ models: [meta('c@1')] }, 'x').models.length, 1);
});

test('resolveConfig: server-provided URLs win, same-origin defaults otherwise', () => {
  const d = resolveConfig(undefined, 'http://h/plugins/extension/', 'http://h');
  assert.deepEqual(d, {
    modelsIndexUrl: 'http://h/models/index.json',
    modelsRoot: 'http://h/models',
    dicomWebRoot: 'http://h/dicom-web',
    extensionBaseUrl: 'http://h/plugins/extension/',
  });
  const c = resolveConfig(
    {
      rrlMedSam: {
        modelsIndexUrl: 'http://o/m/index.json',
        modelsRoot: 'http://o/m/',
        dicomWebRoot: '/pacs/dw',
      },
    },
    'x',
    'http://h',
  );
  assert.equal(c.modelsIndexUrl, 'http://o/m/index.json');
  assert.equal(c.modelsRoot, 'http://o/m');
  assert.equal(c.dicomWebRoot, 'http://h/pacs/dw');
});

test('nextSeriesNumber: after the study’s highest, never below 9001 + saves', () => {
  assert.equal(nextSeriesNumber([1, '2', undefined], 0), 9001);
  assert.equal(nextSeriesNumber([1, 9001], 1), 9002);
  assert.equal(nextSeriesNumber([1, 9500], 0), 9501);
  assert.equal(nextSeriesNumber([], 3), 9004);
});

test('segmentDescriptions carry the model’s names, colours and codes', () => {
  const m = validateMetadata(meta('a@1'));
  const [s] = segmentDescriptions(m);
  assert.equal(s.labelValue, 1);
  assert.equal(s.label, 'Liver');
  assert.deepEqual(s.color, [1, 2, 3]);
  assert.deepEqual(s.type, { value: '1', scheme: 'SCT', meaning: 'x' });
  assert.equal(s.algorithmType, 'SEMIAUTOMATIC');
  assert.equal(s.algorithmName, 'Model a@1 1.0.0');
});

test('Store notifies subscribers; reset keeps the loaded models and choices', () => {
  const st = new Store();
  const seen: string[] = [];
  const un = st.subscribe((s) => seen.push(s.status));
  st.set({
    status: 'running',
    selectedModelId: 'a',
    preferredProvider: 'wasm',
    segmentationId: 'seg',
  });
  st.reset();
  un();
  st.set({ status: 'done' });
  assert.deepEqual(seen, ['running', 'idle']);
  assert.equal(st.get().selectedModelId, 'a');
  assert.equal(st.get().preferredProvider, 'wasm');
  assert.equal(st.get().segmentationId, undefined);
});
