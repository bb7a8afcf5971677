// The fixture model through onnxruntime-web's WebGPU provider on Chromium's software adapter
// (SwiftShader, `--enable-unsafe-webgpu`), on a small volume (the demo atlas on a 24×28×24 grid),
// compared with the wasm provider, both through the extension's inference worker in a page of the
// viewer's origin (worker, onnxruntime-web and model served by the companion server).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { launchBrowser, type BrowserSession } from '../helpers/browser.js';
import { startTestStack, type TestStack } from '../helpers/server.js';
import { DEMO_LABELS, makeTestModel, type TestModel } from '../fixtures/test-model.js';
import { compareProviders } from './webgpu.js';
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
    model = await makeTestModel({ outDir: tmp, grid: [24, 28, 24] });
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
      `webgpu vs wasm, ${model.id}: max |Δlogit| ${r.maxAbsDiff.toExponential(2)}, label agreement ${(100 * r.labelAgreement).toFixed(3)} %, adapter ${JSON.stringify(r.adapter)}, wasm ${r.ms.wasm.toFixed(0)} ms, webgpu ${r.ms.webgpu.toFixed(0)} ms (software adapter: timings mean nothing)`,
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
});
