// Models through onnxruntime-web's WebGPU provider on Chromium's software adapter (SwiftShader,
// `--enable-unsafe-webgpu`), on a small volume (the demo atlas on a 24×32×24 grid), compared with
// the wasm provider, both through the extension's inference worker in a page of the viewer's
// origin (worker, onnxruntime-web and model served by the companion server): the test fixture,
// and a model the real RRL-MedSAM pipeline trained (3-D convolutions, 3-D MaxPool, upsampling,
// the auto-prompting decoder), which fell back to wasm before the worker asked for NCHW; and a
// probe of every entry of the WebGPU op list that the export checks against.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';

import { buildForwardGraph } from '@rrl/models/engine/autodiff/training.js';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';
import { runPipeline } from '@rrl/models/rrl/pipeline.js';
import type { RrlModelInfo } from '@rrl/models/rrl/export.js';
import { launchBrowser, type BrowserSession } from '../helpers/browser.js';
import { startTestStack, type TestStack } from '../helpers/server.js';
import { DEMO_LABELS, makeTestModel, type TestModel } from '../fixtures/test-model.js';
import { compareProviders, type ProviderComparison } from './webgpu.js';
import { WEBGPU_OPS } from '@rrl/models/engine/export/webgpuOps.js';
import { PROBE_INPUT_SHAPE, webgpuOpProbe } from '../fixtures/webgpu-op-probes.js';
import { e2eSkipReason, ensureBundles } from './support.js';

const skip = e2eSkipReason();

describe('onnxruntime-web: WebGPU (software adapter) against wasm', { skip }, () => {
  let tmp: string;
  let stack: TestStack;
  let model: TestModel;
  let browser: BrowserSession;

  before(async () => {
    await ensureBundles();
    tmp = await mkdtemp(path.join(tmpdir(), 'rrl-e2e-webgpu-'));
    model = await makeTestModel({ outDir: tmp, grid: [24, 32, 24] });
    stack = await startTestStack({ modelsDir: tmp });
    browser = await launchBrowser({ webgpu: true });
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('the fixture model gives the same logits and labels on WebGPU as on wasm', async (t) => {
    const r = await compareProviders(browser, stack.url, model);
    t.diagnostic(
      `webgpu vs wasm, ${model.id}: max |Δlogit| ${r.maxAbsDiff.toExponential(2)}, max |Δprobability| ${r.maxProbDiff.toExponential(2)}, label agreement ${(100 * r.labelAgreement).toFixed(3)} %, adapter ${JSON.stringify(r.adapter)}, wasm ${r.ms.wasm.toFixed(0)} ms, webgpu ${r.ms.webgpu.toFixed(0)} ms (software adapter: timings mean nothing)`,
    );
    assert.ok(r.adapter, 'Chromium exposes a WebGPU adapter with --enable-unsafe-webgpu');
    assert.equal(r.providers.webgpu, 'webgpu');
    assert.ok(r.maxAbsDiff < 1e-3, `max |Δlogit| ${r.maxAbsDiff}`);
    assert.ok(r.labelAgreement >= 0.99, `label agreement ${r.labelAgreement}`);
    assert.equal(r.foregroundLabels, DEMO_LABELS.length, 'every demo structure is segmented');
    assert.deepEqual(
      browser.errors.map((e) => `${e.type}: ${e.text.slice(0, 200)}`),
      [],
      'no console error or uncaught rejection in the page',
    );
  });

  /**
   * Trains `planFile` (its network and grid; `schedule` shortens it) by the real pipeline on the
   * fixture's atlas at the plan's grid with two shifted copies as the unlabelled volumes, and runs
   * the model through the viewer's worker on wasm and on WebGPU.
   */
  async function trainAndCompare(
    planFile: string,
    overrides: Record<string, unknown>,
    id: string,
  ): Promise<{ r: ProviderComparison; seconds: number }> {
    const plan = parsePlan({
      ...(JSON.parse(
        await readFile(new URL(`../../models/plans/${planFile}`, import.meta.url), 'utf8'),
      ) as Record<string, unknown>),
      ...overrides,
    });
    const [gz, gy, gx] = plan.grid;
    const fixture =
      gx === 24 && gy === 32 && gz === 24
        ? model
        : await makeTestModel({ outDir: path.join(tmp, 'fixtures'), grid: [gx, gy, gz] });
    const shifted = (dx: number, dy: number): Float32Array => {
      const out = new Float32Array(fixture.atlasInput.length);
      for (let z = 0; z < gz; z++)
        for (let y = 0; y < gy; y++)
          for (let x = 0; x < gx; x++) {
            const sx = Math.min(gx - 1, Math.max(0, x - dx));
            const sy = Math.min(gy - 1, Math.max(0, y - dy));
            out[(z * gy + y) * gx + x] = fixture.atlasInput[(z * gy + sy) * gx + sx]!;
          }
      return out;
    };
    const info = {
      id,
      name: `RRL-MedSAM WebGPU e2e (${planFile})`,
      version: '0.0.1',
      task: 'demo-brain',
      modalities: ['MR'],
      intensity: { method: 'zscore', clip: [-5, 5] },
      labels: fixture.metadata.labels,
      provenance: { createdAt: '2026-12-07T00:00:00Z', trainer: `webgpu e2e (${planFile})` },
      changelog: [{ version: '0.0.1', date: '2026-12-07', changes: 'test model' }],
    } as unknown as RrlModelInfo;
    const trained = await runPipeline({
      plan,
      outDir: path.join(tmp, `work-${id}`),
      atlas: { image: fixture.atlasInput, labels: fixture.atlasLabels },
      unlabeled: [
        { id: 'shift-a', image: shifted(1, 0) },
        { id: 'shift-b', image: shifted(0, -1) },
      ],
      info,
      provider: 'cpu',
    });
    const dir = path.join(tmp, id);
    await mkdir(dir, { recursive: true });
    await copyFile(trained.modelPath, path.join(dir, 'model.onnx'));
    await copyFile(trained.metadataPath, path.join(dir, 'metadata.json'));
    const metadata = JSON.parse(
      await readFile(path.join(dir, 'metadata.json'), 'utf8'),
    ) as TestModel['metadata'];
    const r = await compareProviders(browser, stack.url, { ...fixture, dir, id, metadata });
    return { r, seconds: trained.seconds };
  }

  /** Serves `onnx` (input `image` [1, 1, 4, 4, 4], no labels) and compares it on wasm and WebGPU. */
  async function compareRawModel(
    id: string,
    onnx: Uint8Array,
    input: Float32Array,
  ): Promise<ProviderComparison> {
    const dir = path.join(tmp, id);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'model.onnx'), onnx);
    const metadata = {
      id,
      labels: [],
      onnx: {
        sha256: createHash('sha256').update(onnx).digest('hex'),
        input: { shape: [...PROBE_INPUT_SHAPE] },
      },
    } as unknown as TestModel['metadata'];
    return compareProviders(browser, stack.url, { ...model, dir, id, metadata, atlasInput: input });
  }

  /**
   * WebGPU ran (no fallback reason) with wasm's result — probabilities within 1e-3, labels agree on
   * ≥ 99.9 % of the voxels — and the page logged no error. (Logits are not held to 1e-3: a deep
   * network's logits of magnitude ~10 differ by a few 1e-3 with another summation order.)
   */
  function assertSameOnWebGpu(r: ProviderComparison): void {
    assert.equal(r.providers.webgpu, 'webgpu');
    assert.ok(r.maxProbDiff < 1e-3, `max |Δprobability| ${r.maxProbDiff}`);
    assert.ok(r.labelAgreement >= 0.999, `label agreement ${r.labelAgreement}`);
    assert.deepEqual(
      browser.errors.map((e) => `${e.type}: ${e.text.slice(0, 200)}`),
      [],
      'no console error in the page (a kernel that fails on WebGPU logs one)',
    );
  }

  test(
    'a model trained by the RRL-MedSAM pipeline runs on WebGPU, not wasm, with the same labels',
    { timeout: 600_000 },
    async (t) => {
      // The tiny plan on the fixture's atlas grid, with the demo labels. Enough training for a
      // model that segments something.
      const { r, seconds } = await trainAndCompare(
        'tiny.json',
        { grid: [24, 32, 24], classes: DEMO_LABELS.length + 1 },
        'rrl-webgpu-e2e@0.0.1',
      );
      t.diagnostic(
        `tiny-plan model (${seconds.toFixed(0)} s of training) webgpu vs wasm: max |Δlogit| ${r.maxAbsDiff.toExponential(2)}, max |Δprobability| ${r.maxProbDiff.toExponential(2)}, label agreement ${(100 * r.labelAgreement).toFixed(3)} %, ${r.foregroundLabels} structures, providers ${JSON.stringify(r.providers)}`,
      );
      assertSameOnWebGpu(r);
      assert.ok(r.foregroundLabels >= 1, 'the trained model segments something');
    },
  );

  test(
    'a registration fallback model (the atlas warped by the registration network) runs on WebGPU with the labels of wasm',
    { timeout: 600_000 },
    async (t) => {
      // A bar no network reaches: the export publishes the registration path (registration
      // network, atlas image and one-hot labels in the graph, warp with int32 gather indices).
      const { r, seconds } = await trainAndCompare(
        'tiny.json',
        {
          grid: [24, 32, 24],
          classes: DEMO_LABELS.length + 1,
          registrationPrealign: undefined,
          registrationFallback: { minDice: 1 },
        },
        'rrl-webgpu-fallback@0.0.1',
      );
      t.diagnostic(
        `registration fallback (${seconds.toFixed(0)} s of training) webgpu vs wasm: max |Δprobability| ${r.maxProbDiff.toExponential(2)}, label agreement ${(100 * r.labelAgreement).toFixed(3)} %, ${r.foregroundLabels} structures, providers ${JSON.stringify(r.providers)}`,
      );
      assertSameOnWebGpu(r);
      assert.ok(r.foregroundLabels >= 1, 'the warped atlas labels segment something');
    },
  );

  test(
    "the demo plan's network (48×56×48, trained briefly by the pipeline) runs on WebGPU with wasm's labels",
    { timeout: 600_000 },
    async (t) => {
      // The demo plan as shipped (grid, channels, decoder, classes), its schedule cut to a few
      // steps per stage: the graph the viewer runs is the demo model's, the weights need not be good.
      const { r, seconds } = await trainAndCompare(
        'demo.json',
        {
          schedule: {
            registration: { steps: 6, lr: 0.003 },
            distillSam: { steps: 0, lr: 0.001 },
            distillTask: { steps: 8, lr: 0.002 },
            mutual: { steps: 8, lr: 0.002, emaAlpha: 0.99 },
            decoder: { steps: 8, lr: 0.003 },
            joint: { steps: 2, lr: 0.001 },
          },
        },
        'rrl-webgpu-demo-plan@0.0.1',
      );
      t.diagnostic(
        `demo-plan model (${seconds.toFixed(0)} s of training) webgpu vs wasm: max |Δlogit| ${r.maxAbsDiff.toExponential(2)}, max |Δprobability| ${r.maxProbDiff.toExponential(2)}, label agreement ${(100 * r.labelAgreement).toFixed(3)} %, providers ${JSON.stringify(r.providers)}, wasm ${r.ms.wasm.toFixed(0)} ms, webgpu ${r.ms.webgpu.toFixed(0)} ms (software adapter)`,
      );
      assertSameOnWebGpu(r);
    },
  );

  test(
    'every operation on the WebGPU op list runs on WebGPU (no CPU node) with the result of wasm',
    { timeout: 300_000 },
    async (t) => {
      // models/src/engine/export/webgpuOps.ts: the export refuses any other op; each entry's probe
      // (test/fixtures/webgpu-op-probes.ts) runs here through the viewer's worker.
      const failures: string[] = [];
      for (const entry of WEBGPU_OPS) {
        const probe = webgpuOpProbe(entry);
        if (!probe) {
          failures.push(`${entry.op}@${entry.rank}: no probe`);
          continue;
        }
        const r = await compareRawModel(
          `op-probe-${entry.op.toLowerCase()}-${entry.rank}@0.0.1`,
          probe.onnx,
          new Float32Array(64).map((_, i) => Math.sin(i * 1.7) * 2),
        );
        t.diagnostic(
          `${entry.op}@${entry.rank}: ${r.providers.webgpu}, max |Δ| vs wasm ${r.maxAbsDiff.toExponential(2)}`,
        );
        if (r.providers.webgpu !== 'webgpu' || !(r.maxAbsDiff < 1e-3)) {
          failures.push(
            `${entry.op}@${entry.rank}: ${r.providers.webgpu}, max |Δ| ${r.maxAbsDiff}`,
          );
        }
      }
      assert.deepEqual(failures, []);
      assert.deepEqual(
        browser.errors.map((e) => `${e.type}: ${e.text.slice(0, 200)}`),
        [],
        'no console error in the page',
      );
    },
  );

  test(
    'a model with an operation WebGPU cannot run loads on wasm and says why (no node runs on the CPU silently)',
    { timeout: 120_000 },
    async () => {
      // Hardmax has no WebGPU kernel in onnxruntime-web: with CPU fallback disabled, the WebGPU
      // session refuses the model as a whole.
      const g = new Graph();
      const x = g.input('image', [1, 1, 4, 4, 4]);
      const [y] = g.node('Hardmax', [x], [{ dtype: 'float32', shape: [1, 1, 4, 4, 4] }], {});
      const { model: onnx } = buildForwardGraph({
        graph: g,
        outputs: { logits: y! },
        params: new Map(),
      });
      const r = await compareRawModel(
        'no-webgpu-kernel@0.0.1',
        onnx,
        new Float32Array(64).map((_, i) => Math.sin(i)),
      );
      assert.equal(
        r.providers.webgpu,
        'wasm (the model has operations that WebGPU cannot run in this browser)',
      );
      assert.ok(r.maxAbsDiff === 0, `same result as wasm: ${r.maxAbsDiff}`);
    },
  );
});
