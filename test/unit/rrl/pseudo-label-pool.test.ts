/**
 * Pseudo labels several pairs at a time in worker threads (models/src/rrl/pseudoLabelPool.ts):
 * the same labels, probabilities and fields as in this thread; every pair reported once; a
 * cancelled run stops handing out pairs and reports the ones under way; a failing pair's error
 * arrives after the others finished.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { registrationNet, type RegistrationArgs } from '@rrl/models/engine/nn/registration.js';
import { pseudoLabels, type Grid, type PseudoLabelInput } from '@rrl/models/rrl/pseudoLabels.js';
import { pseudoLabelsParallel } from '@rrl/models/rrl/pseudoLabelPool.js';
import { texturedBlob } from './helpers.js';

const grid: Grid = [16, 16, 16];
const args: RegistrationArgs = { base: 4, smoothness: 1, similarity: 'lncc', channels: 1 };
const g = new Graph();
registrationNet(g, g.input('moving', [1, 1, ...grid]), g.input('fixed', [1, 1, ...grid]), args);
const params = g.initialParams(3);
const atlas = texturedBlob(grid, [7, 7, 7]);
const centres: [number, number, number][] = [
  [9, 7, 8],
  [5, 7, 6],
  [7, 9, 8],
  [8, 6, 7],
];
const inputs: PseudoLabelInput[] = centres.map((c) => ({
  params,
  args,
  grid,
  classes: 3,
  atlasImage: atlas.image,
  atlasLabels: atlas.halves,
  target: texturedBlob(grid, c).image,
  refine: { steps: 12, lr: 0.2, smoothness: 1, window: 5, downsample: 2, tolerance: 0 },
}));

test('two worker threads give the pseudo labels of this thread, each pair once', async () => {
  const here = await Promise.all(inputs.map((i) => pseudoLabels(i)));
  const seen: number[] = [];
  const left = await pseudoLabelsParallel(
    [0, 1, 2, 3],
    (k) => inputs[k]!,
    async (k, r) => {
      seen.push(k);
      assert.deepEqual(r.labels, here[k]!.labels, `labels of pair ${k}`);
      assert.deepEqual(r.probabilities, here[k]!.probabilities, `probabilities of pair ${k}`);
      assert.deepEqual(r.displacement, here[k]!.displacement, `field of pair ${k}`);
    },
    { workers: 2 },
  );
  assert.deepEqual(left, []);
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3]);
  assert.ok(
    here.some((r) => r.labels.some((v) => v !== 0)),
    'labels are not all background',
  );
});

test('cancelled: no new pair is handed out, the ones under way are reported', async () => {
  const ctrl = new AbortController();
  const seen: number[] = [];
  const left = await pseudoLabelsParallel(
    [0, 1, 2, 3],
    (k) => inputs[k]!,
    async (k) => {
      seen.push(k);
      ctrl.abort();
    },
    { workers: 2, signal: ctrl.signal },
  );
  assert.equal(seen.length, 2, `reported ${seen.join(',')}`);
  assert.deepEqual([...seen, ...left].sort(), [0, 1, 2, 3]);
});

test('a failing pair: its error after the other pairs were reported', async () => {
  const seen: number[] = [];
  await assert.rejects(
    pseudoLabelsParallel(
      [0, 1, 2],
      (k) => (k === 0 ? { ...inputs[0]!, target: new Float32Array(10) } : inputs[k]!),
      async (k) => {
        seen.push(k);
      },
      { workers: 2 },
    ),
    /predictDisplacement fixed image/,
  );
  assert.ok(seen.includes(1), `the pair under way was reported (${seen.join(',')})`);
});
