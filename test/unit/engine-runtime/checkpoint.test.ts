import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  readCheckpoint,
  specHash,
  writeCheckpoint,
} from '@rrl/models/engine/runtime/checkpoint.js';
import { SeededRng } from '@rrl/models/engine/runtime/rng.js';
import type { TrainingGraphSpec } from '@rrl/models/engine/runtime/types.js';

const spec: TrainingGraphSpec = {
  dataInputs: ['image'],
  stateInputs: [
    { name: 'w', dims: [2, 3], kind: 'param', param: 'w' },
    { name: 'w__m', dims: [2, 3], kind: 'optim', param: 'w' },
    { name: 'b', dims: [3], kind: 'param', param: 'b' },
  ],
  stateOutputs: { w: 'w__next', w__m: 'w__m__next', b: 'b__next' },
  lossOutput: 'loss',
  params: [
    { name: 'w', dims: [2, 3] },
    { name: 'b', dims: [3] },
  ],
};

test('the seeded RNG is reproducible and resumes from a saved state', () => {
  const a = new SeededRng(42);
  const b = new SeededRng(42);
  const first = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(
    first,
    Array.from({ length: 5 }, () => b.nextU32()),
  );
  assert.notDeepEqual(
    first,
    Array.from({ length: 5 }, () => new SeededRng(43).nextU32()),
  );
  const saved = a.state();
  const next = Array.from({ length: 5 }, () => a.next());
  const resumed = SeededRng.fromState(saved);
  assert.deepEqual(
    Array.from({ length: 5 }, () => resumed.next()),
    next,
  );
  for (let i = 0; i < 1000; i++) {
    const u = a.next();
    assert.ok(u >= 0 && u < 1);
  }
  assert.throws(() => new SeededRng(-1), /seed must be an integer/);
});

test('checkpoints round-trip exactly, are written atomically and refuse corruption', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'rrl-ckpt-'));
  try {
    const file = path.join(dir, 'sub', 'run.ckpt');
    const w = Float32Array.from([1.5, -2, 3.25, Math.fround(0.1), 1e-30, -0]);
    const m = new Float32Array(6).fill(0.5);
    const bias = Float32Array.from([7, 8, 9]);
    const rng = new SeededRng(7);
    rng.next();
    await writeCheckpoint(
      file,
      {
        step: 12,
        seed: 7,
        rng: rng.state(),
        specHash: specHash(spec),
        provider: 'cpu',
        extra: { lastLoss: 0.25 },
      },
      [
        { name: 'w', kind: 'param', tensor: { data: w, dims: [2, 3] } },
        { name: 'w__m', kind: 'optim', tensor: { data: m, dims: [2, 3] } },
        { name: 'b', kind: 'param', tensor: { data: bias, dims: [3] } },
      ],
    );
    // no temporary file is left beside it
    assert.deepEqual(await readdir(path.dirname(file)), ['run.ckpt']);
    const ckpt = await readCheckpoint(file);
    assert.equal(ckpt.header.step, 12);
    assert.equal(ckpt.header.seed, 7);
    assert.deepEqual(ckpt.header.rng, rng.state());
    assert.equal(ckpt.header.specHash, specHash(spec));
    assert.deepEqual(ckpt.header.extra, { lastLoss: 0.25 });
    assert.deepEqual(Array.from(ckpt.tensors.get('w')!.data), Array.from(w));
    assert.ok(Object.is(ckpt.tensors.get('w')!.data[5], -0));
    assert.deepEqual(Array.from(ckpt.tensors.get('b')!.data), [7, 8, 9]);
    assert.deepEqual(ckpt.tensors.get('w__m')!.dims, [2, 3]);

    // flip one data byte: refused
    const bytes = await readFile(file);
    const bad = Buffer.from(bytes);
    bad[bad.length - 1] ^= 0xff;
    await writeFile(file + '.bad', bad);
    await assert.rejects(readCheckpoint(file + '.bad'), /corrupt/);
    // truncate: refused
    await writeFile(file + '.short', bytes.subarray(0, bytes.length - 4));
    await assert.rejects(readCheckpoint(file + '.short'), /truncated/);
    // not a checkpoint
    await writeFile(file + '.txt', 'hello world, not a checkpoint');
    await assert.rejects(readCheckpoint(file + '.txt'), /not a checkpoint/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the spec hash changes with the state layout', () => {
  const other: TrainingGraphSpec = {
    ...spec,
    stateInputs: spec.stateInputs.map((s) => (s.name === 'b' ? { ...s, dims: [4] } : s)),
  };
  assert.notEqual(specHash(spec), specHash(other));
  assert.equal(specHash(spec), specHash({ ...spec }));
});
