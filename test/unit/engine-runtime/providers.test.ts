import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import {
  identityModel,
  identityOutputName,
  probeModel,
} from '@rrl/models/engine/runtime/mini-onnx.js';
import {
  PROVIDERS,
  ProviderUnavailableError,
  isProvider,
  probeProvider,
  selectProvider,
} from '@rrl/models/engine/runtime/providers.js';

test('the provider enum is frozen and ordered cuda → webgpu → cpu', () => {
  assert.deepEqual([...PROVIDERS], ['cuda', 'webgpu', 'cpu']);
  assert.ok(Object.isFrozen(PROVIDERS));
  assert.ok(isProvider('webgpu'));
  assert.ok(!isProvider('wasm'));
});

test('the CPU provider probes as available and runs the probe model correctly', async () => {
  const probe = await probeProvider('cpu');
  assert.equal(probe.available, true, probe.reason);
  const choice = await selectProvider('cpu');
  assert.equal(choice.provider, 'cpu');
});

test('CUDA is reported unavailable (with a reason) where ORT has no CUDA binaries', async (t) => {
  const cuda = (ort.listSupportedBackends() as { name: string; bundled: boolean }[]).find(
    (b) => b.name === 'cuda',
  );
  const probe = await probeProvider('cuda');
  if (probe.available) {
    t.skip('CUDA is installed on this machine');
    return;
  }
  // onnxruntime-node lists CUDA as a backend whose library is not bundled: the probe must say so.
  assert.ok(cuda, 'onnxruntime-node names a CUDA backend');
  assert.equal(cuda.bundled, false);
  assert.match(probe.reason ?? '', /CUDA provider library is not installed/);
  // An explicit request for an unavailable provider is an error that says what to do.
  await assert.rejects(selectProvider('cuda'), (err: unknown) => {
    assert.ok(err instanceof ProviderUnavailableError);
    assert.match(err.message, /cuda/i);
    assert.match(err.message, /auto/);
    return true;
  });
});

test('auto selection takes the first available provider in order', async () => {
  const probes = await Promise.all(PROVIDERS.map((p) => probeProvider(p)));
  const first = probes.find((p) => p.available && !p.software)!;
  const saved = process.env['RRL_ENGINE_PROVIDER'];
  delete process.env['RRL_ENGINE_PROVIDER'];
  try {
    const choice = await selectProvider('auto');
    assert.equal(choice.provider, first.provider);
    // cpu-only order always lands on cpu
    assert.equal((await selectProvider('auto', ['cpu'])).provider, 'cpu');
    // a software WebGPU device is taken only when allowed
    const webgpu = probes[PROVIDERS.indexOf('webgpu')]!;
    if (webgpu.available && webgpu.software) {
      assert.equal((await selectProvider('auto', ['webgpu', 'cpu'])).provider, 'cpu');
      assert.equal((await selectProvider('auto', ['webgpu', 'cpu'], true)).provider, 'webgpu');
    }
  } finally {
    if (saved !== undefined) process.env['RRL_ENGINE_PROVIDER'] = saved;
  }
});

test('RRL_ENGINE_PROVIDER overrides auto and is validated', async () => {
  const saved = process.env['RRL_ENGINE_PROVIDER'];
  try {
    process.env['RRL_ENGINE_PROVIDER'] = 'cpu';
    assert.equal((await selectProvider()).provider, 'cpu');
    process.env['RRL_ENGINE_PROVIDER'] = 'tpu';
    await assert.rejects(selectProvider(), /RRL_ENGINE_PROVIDER is 'tpu'/);
  } finally {
    if (saved === undefined) delete process.env['RRL_ENGINE_PROVIDER'];
    else process.env['RRL_ENGINE_PROVIDER'] = saved;
  }
});

test('WebGPU: GPU-resident outputs feed back as inputs and copy back through the identity model', async (t) => {
  const probe = await probeProvider('webgpu');
  if (!probe.available) {
    t.skip(`WebGPU not available here: ${probe.reason}`);
    return;
  }
  const s = await ort.InferenceSession.create(probeModel(), {
    executionProviders: ['webgpu'],
    preferredOutputLocation: { Y: 'gpu-buffer' },
    logSeverityLevel: 3,
  });
  const copy = await ort.InferenceSession.create(identityModel([{ name: 'A', dims: [2, 3] }]), {
    executionProviders: ['webgpu'],
    logSeverityLevel: 3,
  });
  try {
    const r1 = await s.run({
      X: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
    });
    assert.equal(r1['Y']!.location, 'gpu-buffer');
    const r2 = await s.run({ X: r1['Y']! });
    assert.equal(r2['Y']!.location, 'gpu-buffer');
    const host = await copy.run({ A: r2['Y']! });
    const y = host[identityOutputName('A')]!;
    assert.equal(y.location, 'cpu');
    // x → x² + x twice: 1 → 2 → 6, 2 → 6 → 42, …
    assert.deepEqual(Array.from(y.data as Float32Array), [6, 42, 156, 420, 930, 1806]);
    r1['Y']!.dispose();
    r2['Y']!.dispose();
  } finally {
    await s.release();
    await copy.release();
  }
});
