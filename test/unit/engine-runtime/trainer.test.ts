import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readCheckpoint } from '@rrl/models/engine/runtime/checkpoint.js';
import { buildTrainingGraph } from '@rrl/models/engine/autodiff/training.js';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import {
  TrainingDivergedError,
  TrainingOutOfMemoryError,
  isOutOfMemoryError,
} from '@rrl/models/engine/runtime/errors.js';
import { probeProvider } from '@rrl/models/engine/runtime/providers.js';
import { Trainer, sessionConfigEntries } from '@rrl/models/engine/runtime/trainer.js';
import { tinyBatch, tinyTraining } from './tiny-net.js';

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'rrl-trainer-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function sameArrays(
  a: Map<string, { data: Float32Array }>,
  b: Map<string, { data: Float32Array }>,
): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a)
    assert.deepEqual(Array.from(v.data), Array.from(b.get(k)!.data), `state ${k} differs`);
}

test('the trainer lowers the loss of a small 3-D network and keeps its state in ORT tensors', async () => {
  const { net, built } = tinyTraining();
  const trainer = await Trainer.create(built, {
    provider: 'cpu',
    initialState: net.graph.initialParams(1),
    intraOpNumThreads: 1,
  });
  try {
    assert.equal(trainer.provider, 'cpu');
    const batch = tinyBatch();
    const first = await trainer.step(batch, 0.02);
    assert.equal(first.step, 1);
    assert.ok(Number.isFinite(first.loss) && first.loss > 0);
    assert.equal(typeof first.metrics['meanLogit'], 'number');
    let last = first;
    for (let i = 0; i < 30; i++) last = await trainer.step(batch, 0.02);
    assert.equal(trainer.stepsCompleted, 31);
    assert.ok(last.loss < first.loss * 0.7, `loss ${first.loss} → ${last.loss} should fall`);
    assert.ok(Object.values(trainer.stateLocations).every((l) => l === 'cpu'));
    // parameters moved away from their initial values; Adam moments are no longer zero
    const state = await trainer.readState();
    const init = net.graph.initialParams(1);
    assert.notDeepEqual(Array.from(state.get('c1.w')!.data), Array.from(init.get('c1.w')!));
    assert.ok(state.get('c1.w__m')!.data.some((v) => v !== 0));
    const params = await trainer.readParams();
    assert.deepEqual([...params.keys()].sort(), [...init.keys()].sort());
  } finally {
    await trainer.dispose();
  }
});

test('a run is reproducible from its seed, and a resumed run gives exactly the same next steps', async () => {
  await withTmp(async (dir) => {
    const { net, built } = tinyTraining();
    const opts = {
      provider: 'cpu' as const,
      seed: 99,
      initialState: net.graph.initialParams(5),
      intraOpNumThreads: 1,
    };
    const batch = (_step: number, rng: { normal(): number }) => tinyBatch(0.1, rng);
    const lr = (step: number) => 0.01 / Math.sqrt(step);
    const ckpt = path.join(dir, 'run.ckpt');

    const a = await Trainer.create(built, opts);
    const fractions: number[] = [];
    const aFirst = await a.train({
      steps: 3,
      batch,
      lr,
      checkpoint: { path: ckpt, every: 3 },
      onStep: (_r, p) => fractions.push(p.fraction),
    });
    assert.deepEqual(fractions, [1 / 3, 2 / 3, 1]);
    const aRest = await a.train({ steps: 3, batch, lr });
    const aState = await a.readState();
    await a.dispose();

    // same seed, same data → bit-identical losses
    const b = await Trainer.create(built, opts);
    const bAll = await b.train({ steps: 6, batch, lr });
    await b.dispose();
    assert.deepEqual(
      bAll.map((r) => r.loss),
      [...aFirst, ...aRest].map((r) => r.loss),
    );

    // resume from the checkpoint written after step 3 (a fresh trainer with other initial weights)
    const c = await Trainer.create(built, {
      ...opts,
      seed: 1,
      initialState: net.graph.initialParams(77),
    });
    const header = await c.loadCheckpoint(ckpt);
    assert.equal(header.step, 3);
    assert.equal(c.stepsCompleted, 3);
    const cRest = await c.train({ steps: 3, batch, lr });
    assert.deepEqual(
      cRest.map((r) => [r.step, r.loss]),
      aRest.map((r) => [r.step, r.loss]),
    );
    sameArrays(await c.readState(), aState);
    await c.dispose();
  });
});

test('a checkpoint from another graph is refused with a clear message', async () => {
  await withTmp(async (dir) => {
    const { net, built } = tinyTraining();
    const t = await Trainer.create(built, {
      provider: 'cpu',
      initialState: net.graph.initialParams(0),
    });
    await t.step(tinyBatch(), 0.01);
    const file = path.join(dir, 'a.ckpt');
    await t.saveCheckpoint(file);
    await t.dispose();
    const sgd = tinyTraining({ type: 'sgd', momentum: 0.9 });
    const other = await Trainer.create(sgd.built, {
      provider: 'cpu',
      initialState: sgd.net.graph.initialParams(0),
    });
    await assert.rejects(other.loadCheckpoint(file), /different training graph/);
    await other.dispose();
  });
});

test('an absurd learning rate stops the run with a clear error and keeps the last good checkpoint', async () => {
  await withTmp(async (dir) => {
    const { net, built } = tinyTraining({ type: 'sgd', momentum: 0.9 });
    const trainer = await Trainer.create(built, {
      provider: 'cpu',
      initialState: net.graph.initialParams(2),
    });
    const ckpt = path.join(dir, 'last-good.ckpt');
    const lr = (step: number) => (step <= 3 ? 0.01 : 1e30);
    let caught: unknown;
    try {
      await trainer.train({
        steps: 20,
        batch: () => tinyBatch(),
        lr,
        checkpoint: { path: ckpt, every: 1 },
      });
    } catch (err) {
      caught = err;
    }
    assert.ok(
      caught instanceof TrainingDivergedError,
      `expected TrainingDivergedError, got ${String(caught)}`,
    );
    assert.ok(caught.step > 3, `diverged at step ${caught.step}`);
    assert.match(caught.message, /Training diverged at step \d+/);
    assert.match(caught.message, /lower learning rate/);
    assert.ok(caught.lastCheckpoint, 'the error names the last good checkpoint');
    assert.ok(caught.message.includes(ckpt));
    assert.ok(caught.lastCheckpoint.step >= 3 && caught.lastCheckpoint.step < caught.step);
    // the checkpoint on disk is intact and finite, and says which step it holds
    const saved = await readCheckpoint(ckpt);
    assert.equal(saved.header.step, caught.lastCheckpoint.step);
    for (const [name, t] of saved.tensors)
      assert.ok(t.data.every(Number.isFinite), `${name} finite`);
    // the trainer did not take the diverged step
    assert.ok(trainer.stepsCompleted < caught.step);
    await trainer.dispose();
  });
});

test('WebGPU and CPU trainers agree on a few steps, and WebGPU keeps the state on the GPU', async (t) => {
  const probe = await probeProvider('webgpu');
  if (!probe.available) {
    t.skip(`WebGPU not available: ${probe.reason}`);
    return;
  }
  // SGD: Adam turns the near-zero gradient of a bias before InstanceNorm into ±lr steps whose
  // sign is rounding noise, so parameters could not be compared.
  const { net, built } = tinyTraining({ type: 'sgd', momentum: 0.9 });
  const init = net.graph.initialParams(3);
  const cpu = await Trainer.create(built, { provider: 'cpu', initialState: init });
  const gpu = await Trainer.create(built, { provider: 'webgpu', initialState: init });
  try {
    const batch = tinyBatch();
    for (let i = 0; i < 3; i++) {
      const a = await cpu.step(batch, 0.05);
      const b = await gpu.step(batch, 0.05);
      assert.ok(
        Math.abs(a.loss - b.loss) <= 1e-4 * Math.max(1, Math.abs(a.loss)),
        `step ${i + 1}: ${a.loss} vs ${b.loss}`,
      );
    }
    assert.ok(Object.values(gpu.stateLocations).every((l) => l === 'gpu-buffer'));
    const sc = await cpu.readParams();
    const sg = await gpu.readParams();
    for (const [k, v] of sc) {
      const w = sg.get(k)!.data;
      let m = 0;
      for (let i = 0; i < v.data.length; i++) m = Math.max(m, Math.abs(v.data[i]! - w[i]!));
      assert.ok(m <= 1e-4, `param ${k} differs by ${m}`);
    }
  } finally {
    await cpu.dispose();
    await gpu.dispose();
  }
});

test('an out-of-memory step stops the run with a clear error, keeps the state and the last checkpoint', async () => {
  await withTmp(async (dir) => {
    // a graph whose forward pass needs a 256 TB buffer, beyond any address space: ORT's allocator
    // refuses it at once, whatever the machine's overcommit policy
    const g = new Graph();
    const x = g.input('x', [1, 1, 1, 1]);
    const w = g.param('w', [1], { kind: 'ones' });
    const loss = g.reduceMean(g.expand(g.mul(x, w), [1, 1, 8000000, 8000000]));
    const built = buildTrainingGraph({ graph: g, loss, optimizer: { type: 'sgd', momentum: 0 } });
    const trainer = await Trainer.create(built, {
      provider: 'cpu',
      initialState: g.initialParams(0),
    });
    const ckpt = path.join(dir, 'before.ckpt');
    await trainer.saveCheckpoint(ckpt);
    await assert.rejects(trainer.step({ x: Float32Array.of(1) }, 0.1), (err: unknown) => {
      assert.ok(err instanceof TrainingOutOfMemoryError, String(err));
      assert.equal(err.step, 1);
      assert.equal(err.provider, 'cpu');
      assert.match(
        err.message,
        /Out of memory at step 1 on the 'cpu' provider \(could not allocate [\d.]+ GiB in node /,
      );
      assert.match(err.message, /smaller training grid/);
      assert.equal(err.lastCheckpoint?.path, ckpt);
      return true;
    });
    assert.equal(trainer.stepsCompleted, 0);
    assert.deepEqual(Array.from((await trainer.readParams()).get('w')!.data), [1]);
    await trainer.dispose();
  });
});

test('out-of-memory messages of the providers are recognised', () => {
  for (const m of [
    'Failed to allocate memory for requested buffer of size 123',
    'CUDA failure 2: out of memory',
    'std::bad_alloc',
    'CUDNN_STATUS_ALLOC_FAILED',
  ]) {
    assert.ok(isOutOfMemoryError(new Error(m)), m);
  }
  assert.ok(!isOutOfMemoryError(new Error('Invalid input shape')));
});

test('a cancelled run stops after the current step', async () => {
  const { net, built } = tinyTraining();
  const trainer = await Trainer.create(built, {
    provider: 'cpu',
    initialState: net.graph.initialParams(0),
  });
  const ac = new AbortController();
  const results = await trainer.train({
    steps: 10,
    batch: () => tinyBatch(),
    lr: 0.01,
    signal: ac.signal,
    onStep: (r) => {
      if (r.step === 2) ac.abort();
    },
  });
  assert.deepEqual(
    results.map((r) => r.step),
    [1, 2],
  );
  assert.equal(trainer.stepsCompleted, 2);
  await trainer.dispose();
});

test('a checkpoint of a WebGPU run (state on the GPU) resumes on the CPU provider', async (t) => {
  const probe = await probeProvider('webgpu');
  if (!probe.available) {
    t.skip(`WebGPU not available: ${probe.reason}`);
    return;
  }
  await withTmp(async (dir) => {
    const { net, built } = tinyTraining({ type: 'sgd', momentum: 0.9 });
    const gpu = await Trainer.create(built, {
      provider: 'webgpu',
      initialState: net.graph.initialParams(6),
    });
    const cpu = await Trainer.create(built, {
      provider: 'cpu',
      initialState: net.graph.initialParams(99),
    });
    try {
      await gpu.step(tinyBatch(), 0.05);
      await gpu.step(tinyBatch(), 0.05);
      const file = path.join(dir, 'gpu.ckpt');
      await gpu.saveCheckpoint(file);
      const header = await cpu.loadCheckpoint(file);
      assert.equal(header.provider, 'webgpu');
      assert.equal(cpu.stepsCompleted, 2);
      const a = await gpu.step(tinyBatch(), 0.05);
      const b = await cpu.step(tinyBatch(), 0.05);
      assert.equal(b.step, 3);
      assert.ok(Math.abs(a.loss - b.loss) <= 1e-4 * Math.max(1, a.loss), `${a.loss} vs ${b.loss}`);
    } finally {
      await gpu.dispose();
      await cpu.dispose();
    }
  });
});

test('session config: no spin-waiting by default on the CPU provider only, explicit option wins', () => {
  const key = 'session.intra_op.allow_spinning';
  assert.equal(sessionConfigEntries('cpu', {})[key], '0');
  assert.equal(sessionConfigEntries('cpu', { allowSpinning: true })[key], undefined);
  assert.equal(sessionConfigEntries('webgpu', {})[key], undefined);
  assert.equal(sessionConfigEntries('webgpu', { allowSpinning: false })[key], '0');
  assert.deepEqual(
    sessionConfigEntries('webgpu', { allowSpinning: true, forceCpuNodeNames: ['a', 'b'] }),
    {
      'ep.WebGpuExecutionProvider.forceCpuNodeNames': 'a\nb',
    },
  );
});
