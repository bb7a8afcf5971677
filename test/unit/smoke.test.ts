import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';

test('onnxruntime-node lists the CPU backend', () => {
  const names = ort.listSupportedBackends().map((b) => b.name);
  assert.ok(names.includes('cpu'), `backends: ${names.join(',')}`);
});
