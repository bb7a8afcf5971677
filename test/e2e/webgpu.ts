// Runs a published model through the extension's inference worker (onnxruntime-web) in a page of
// the viewer's origin, once with the wasm provider and once with WebGPU, and compares the results.
import type { Page } from 'playwright-core';

import type { BrowserSession } from '../helpers/browser.js';
import type { TestModel } from '../fixtures/test-model.js';

export interface ProviderComparison {
  /** Largest |Δ| of the raw outputs (logits). */
  maxAbsDiff: number;
  /** Largest |Δ| of the per-voxel softmax probabilities over the label channels. */
  maxProbDiff: number;
  /** Voxels where some probability differs by more than 1e-3. */
  voxelsProbDiffOver1e3: number;
  labelAgreement: number;
  /** Number of distinct non-background labels in the wasm result. */
  foregroundLabels: number;
  ms: { wasm: number; webgpu: number };
  providers: { wasm: string; webgpu: string };
  adapter: { isFallbackAdapter?: boolean; vendor?: string; architecture?: string } | null;
}

const TEST_PREFIX = '/__e2e/';

/**
 * Opens a blank page at `/__e2e/blank.html` of the viewer's own origin (Playwright answers it, with
 * the isolation headers the server sends; the worker, onnxruntime-web and the model come from the
 * real companion server).
 */
async function openBlankPage(session: BrowserSession, origin: string): Promise<Page> {
  const page = await session.context.newPage();
  await page.route(`${origin}${TEST_PREFIX}**`, async (route) => {
    const url = new URL(route.request().url());
    const rel = url.pathname.slice(TEST_PREFIX.length);
    const headers = {
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin',
    };
    if (rel === 'blank.html') {
      await route.fulfill({
        status: 200,
        headers: { ...headers, 'content-type': 'text/html' },
        body: '<!doctype html><meta charset="utf-8"><title>e2e</title>',
      });
      return;
    }
    await route.fulfill({ status: 404, headers, body: 'not found' });
  });
  await page.goto(`${origin}${TEST_PREFIX}blank.html`);
  return page;
}

export const WORKER_URL = '/plugins/extension/inference-worker.js';

/**
 * Runs `model` on its atlas input through the extension's inference worker (dist/extension/
 * inference-worker.js, protocol in extension/src/inference/protocol.ts) with wasm, then WebGPU.
 */
export async function compareProviders(
  session: BrowserSession,
  origin: string,
  model: TestModel,
): Promise<ProviderComparison> {
  const page = await openBlankPage(session, origin);
  try {
    return await page.evaluate(
      async ({ id, sha256, input, dims, channels, workerUrl }) => {
        interface Reply {
          type: 'progress' | 'result' | 'error';
          requestId: number;
          provider?: string;
          fallbackReason?: string;
          logits?: Float32Array;
          message?: string;
          timings?: { inferenceMs: number; sessionMs: number };
        }
        const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
        const adapter = (await gpu?.requestAdapter()) as
          | { isFallbackAdapter?: boolean; info?: { vendor?: string; architecture?: string } }
          | null
          | undefined;
        // (no inner helper functions: the bundler would wrap them in a helper the page lacks)
        const replies: Reply[] = [];
        const ms: number[] = [];
        const providers: ('wasm' | 'webgpu')[] = ['wasm', 'webgpu'];
        for (let k = 0; k < providers.length; k++) {
          const provider = providers[k];
          const requestId = k + 1;
          const t = performance.now();
          const reply = await new Promise<Reply>((resolve, reject) => {
            const w = new Worker(workerUrl, { type: 'module' });
            w.addEventListener('error', (e) => {
              w.terminate();
              reject(new Error(`worker error: ${e.message}`));
            });
            w.addEventListener('message', (e: MessageEvent<Reply>) => {
              const r = e.data;
              if (r.requestId !== requestId || r.type === 'progress') return;
              w.terminate();
              if (r.type === 'error') reject(new Error(`worker (${provider}): ${r.message}`));
              else resolve(r);
            });
            const x = Float32Array.from(input);
            w.postMessage(
              {
                type: 'run',
                requestId,
                modelUrl: `/models/${encodeURIComponent(id)}/model.onnx`,
                modelSha256: sha256,
                input: x,
                dims,
                preferredProvider: provider,
                output: 'logits',
              },
              [x.buffer],
            );
          });
          ms.push(performance.now() - t);
          replies.push(reply);
        }
        const [wasm, webgpu] = replies;
        const a = wasm.logits ?? new Float32Array();
        const b = webgpu.logits ?? new Float32Array();
        let maxAbsDiff = a.length === b.length && a.length > 0 ? 0 : Infinity;
        for (let i = 0; i < a.length && i < b.length; i++) {
          maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - b[i]));
        }
        const n = a.length / channels;
        let agree = 0;
        let maxProbDiff = a.length === b.length && a.length > 0 ? 0 : Infinity;
        let over = 0;
        const seen = new Set<number>();
        for (let o = 0; o < n; o++) {
          let la = 0;
          let lb = 0;
          for (let c = 1; c < channels; c++) {
            if (a[c * n + o] > a[la * n + o]) la = c;
            if (b[c * n + o] > b[lb * n + o]) lb = c;
          }
          if (la === lb) agree++;
          if (la > 0) seen.add(la);
          // softmax of both at this voxel, shifted by each one's own maximum
          let sa = 0;
          let sb = 0;
          for (let c = 0; c < channels; c++) {
            sa += Math.exp(a[c * n + o] - a[la * n + o]);
            sb += Math.exp(b[c * n + o] - b[lb * n + o]);
          }
          let worst = 0;
          for (let c = 0; c < channels; c++) {
            const pa = Math.exp(a[c * n + o] - a[la * n + o]) / sa;
            const pb = Math.exp(b[c * n + o] - b[lb * n + o]) / sb;
            worst = Math.max(worst, Math.abs(pa - pb));
          }
          maxProbDiff = Math.max(maxProbDiff, worst);
          if (worst > 1e-3) over++;
        }
        return {
          maxAbsDiff,
          maxProbDiff,
          voxelsProbDiffOver1e3: over,
          labelAgreement: n > 0 ? agree / n : 0,
          foregroundLabels: seen.size,
          ms: { wasm: ms[0], webgpu: ms[1] },
          providers: {
            wasm: String(wasm.provider),
            webgpu: `${webgpu.provider}${webgpu.fallbackReason ? ` (${webgpu.fallbackReason})` : ''}`,
          },
          adapter: adapter
            ? {
                isFallbackAdapter: adapter.isFallbackAdapter,
                vendor: adapter.info?.vendor,
                architecture: adapter.info?.architecture,
              }
            : null,
        };
      },
      {
        id: model.metadata.id,
        sha256: (model.metadata.onnx as { sha256: string }).sha256,
        input: Array.from(model.atlasInput),
        dims: (model.metadata.onnx as { input: { shape: number[] } }).input.shape,
        channels: model.metadata.labels.length + 1,
        workerUrl: WORKER_URL,
      },
    );
  } finally {
    await page.close();
  }
}
