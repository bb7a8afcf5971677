// Launch geometry of the engine's WGSL 3-D convolution kernels and how their Node device opens
// (the kernels' numbers are checked on Chromium's WebGPU: test/e2e/wgsl-conv3d.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { convLaunch, convMacs, convOutputDims, gemmShader } from '@rrl/models/engine/gpu/conv3d.js';
import { GpuUnavailableError, openGpu } from '@rrl/models/engine/gpu/device.js';

const layer = { batch: 1, cin: 16, cout: 16, d: 64, h: 64, w: 64, kernel: 3, stride: 1, pad: 1 };

test('GEMM sizes of the three kernels', { timeout: 10_000 }, () => {
  assert.deepEqual(convOutputDims({ ...layer, stride: 2 }), [32, 32, 32]);
  assert.deepEqual(convOutputDims({ ...layer, kernel: 1, pad: 0 }), [64, 64, 64]);
  const f = convLaunch('forward', layer);
  assert.deepEqual([f.M, f.N, f.K], [16, 64 ** 3, 16 * 27]);
  const gi = convLaunch('gradInput', { ...layer, cout: 32, stride: 2 });
  assert.deepEqual(
    [gi.M, gi.N, gi.K],
    [16, 64 ** 3, 32 * 27],
    'input gradient: one column per input voxel',
  );
  const gw = convLaunch('gradWeight', { ...layer, batch: 2 });
  assert.deepEqual(
    [gw.M, gw.N, gw.K],
    [16, 16 * 27, 2 * 64 ** 3],
    'weight gradient: batch folded into K',
  );
  assert.equal(convMacs(layer), 16 * 16 * 27 * 64 ** 3);
});

test(
  'a large weight gradient is split over K so that its few output tiles fill the GPU',
  { timeout: 10_000 },
  () => {
    const l = convLaunch('gradWeight', layer);
    assert.ok(l.splits > 100, `splits ${l.splits}`);
    assert.ok(
      l.splits * l.kChunk >= l.K && (l.splits - 1) * l.kChunk < l.K,
      'the splits cover K exactly once',
    );
    assert.equal(l.kChunk % 16, 0, 'whole 16-deep K slices per split');
    assert.equal(convLaunch('forward', layer).splits, 1, '4096 output tiles need no split');
  },
);

test('every kernel synchronises its workgroup around the shared tiles', { timeout: 10_000 }, () => {
  for (const kind of ['forward', 'gradInput', 'gradWeight'] as const) {
    const code = gemmShader(kind);
    assert.match(code, /var<workgroup> As/);
    assert.equal(code.match(/workgroupBarrier\(\)/g)?.length, 2, kind);
  }
});

test(
  'the Node device opens on a GPU, or says why it cannot (never a crash on a software adapter)',
  { timeout: 60_000 },
  async (t) => {
    try {
      const ctx = await openGpu();
      t.diagnostic(
        `adapter: ${ctx.adapter.vendor} ${ctx.adapter.architecture} ${ctx.adapter.description}`,
      );
      assert.equal(
        ctx.software,
        false,
        'openGpu returned a software adapter without allowSoftware',
      );
      ctx.device.destroy();
    } catch (e) {
      assert.ok(e instanceof GpuUnavailableError, String(e));
      t.diagnostic(e.message);
      assert.match(e.message, /software|no adapter|did not load|refused/);
      assert.match(e.message, /Vulkan|GPU/, 'the message says what it needs');
    }
  },
);
