// The engine's WGSL 3-D convolution kernels (models/src/engine/gpu/conv3d.ts: forward, input
// gradient, weight gradient) against a float64 reference, run on Chromium's WebGPU (SwiftShader).
// Dawn for Node aborts on workgroup barriers with this machine's software Vulkan (lavapipe), so
// the kernels are checked here in the browser, and run through Dawn on a GPU machine
// (scripts/device/run.sh).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';

import { convSizes, type Conv3dKind, type Conv3dShape } from '@rrl/models/engine/gpu/conv3d.js';
import { launchBrowser, type BrowserSession } from '../helpers/browser.js';
import { maxRelError, randomValues, referenceConv3d } from '../fixtures/conv3d-reference.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ORIGIN = 'http://localhost:9';

const SHAPES: (Conv3dShape & { name: string })[] = [
  // tiles that divide nothing; 3³ kernel, stride 1 (the networks' convolution)
  {
    name: 'k3 s1, 3→5 ch, 7×6×5',
    batch: 1,
    cin: 3,
    cout: 5,
    d: 7,
    h: 6,
    w: 5,
    kernel: 3,
    stride: 1,
    pad: 1,
  },
  // batch 2 and stride 2 (input positions between strides get no gradient)
  {
    name: 'k3 s2, batch 2, 4→6 ch, 9×8×7',
    batch: 2,
    cin: 4,
    cout: 6,
    d: 9,
    h: 8,
    w: 7,
    kernel: 3,
    stride: 2,
    pad: 1,
  },
  // 1×1×1 (the up-sampling's channel mix), more input channels than one 64-wide tile
  {
    name: 'k1, 70→3 ch, 5×4×6',
    batch: 1,
    cin: 70,
    cout: 3,
    d: 5,
    h: 4,
    w: 6,
    kernel: 1,
    stride: 1,
    pad: 0,
  },
  // a real layer's channels: several tiles, K split over workgroups in all three kernels
  {
    name: 'k3 s1, 16→16 ch, 12×10×8',
    batch: 1,
    cin: 16,
    cout: 16,
    d: 12,
    h: 10,
    w: 8,
    kernel: 3,
    stride: 1,
    pad: 1,
  },
];

describe("WGSL conv3d kernels on Chromium's WebGPU", { timeout: 300_000 }, () => {
  let browser: BrowserSession;
  let page: Page;

  before(async () => {
    const bundle = await build({
      entryPoints: [path.join(here, 'wgsl-conv3d.page.ts')],
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'browser',
      target: 'es2022',
      external: ['webgpu'],
      logLevel: 'silent',
    });
    const script = bundle.outputFiles[0]?.text ?? '';
    browser = await launchBrowser({ webgpu: true });
    page = await browser.newPage();
    await page.route(`${ORIGIN}/**`, (route) =>
      route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/html' },
        body: '<!doctype html><meta charset="utf-8"><title>wgsl</title>',
      }),
    );
    await page.goto(`${ORIGIN}/wgsl.html`);
    await page.addScriptTag({ content: script });
  });

  after(async () => {
    await browser?.close();
  });

  for (const shape of SHAPES) {
    test(`${shape.name}: forward, input and weight gradients within 1e-5 of float64`, async (t) => {
      const sizes = convSizes(shape);
      const x = randomValues(sizes.x, 1);
      const w = randomValues(sizes.w, 2);
      const dy = randomValues(sizes.y, 3);
      const want = referenceConv3d(shape, x, w, dy);
      const operands: Record<Conv3dKind, [Float32Array, Float32Array]> = {
        forward: [w, x],
        gradInput: [w, dy],
        gradWeight: [dy, x],
      };
      for (const kind of ['forward', 'gradInput', 'gradWeight'] as const) {
        const [a, b] = operands[kind];
        const r = await page.evaluate(
          ({ kind, shape, a, b }) =>
            (
              globalThis as unknown as {
                runConv3d(
                  k: string,
                  s: unknown,
                  a: number[],
                  b: number[],
                ): Promise<{
                  out: number[];
                  adapter: { vendor: string; architecture: string };
                  launch: { M: number; N: number; K: number; splits: number };
                }>;
              }
            ).runConv3d(kind, shape, a, b),
          { kind, shape, a: Array.from(a), b: Array.from(b) },
        );
        const err = maxRelError(r.out, want[kind]);
        t.diagnostic(
          `${kind}: max |error| / max |value| ${err.toExponential(2)} (GEMM ${r.launch.M}×${r.launch.N}×${r.launch.K}, ${r.launch.splits} K-splits; adapter ${r.adapter.vendor} ${r.adapter.architecture})`,
        );
        assert.ok(err < 1e-5, `${kind} of ${shape.name}: relative error ${err}`);
      }
      assert.deepEqual(
        browser.errors.map((e) => e.text.slice(0, 200)),
        [],
        'no console error (a WGSL compile or validation error logs one)',
      );
    });
  }
});
