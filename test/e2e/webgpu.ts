// Runs a published model in a page of the viewer's origin with onnxruntime-web, once through the
// wasm provider and once through the WebGPU provider, and compares the logits and labels.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';

import type { BrowserSession } from '../helpers/browser.js';
import type { TestModel } from '../fixtures/test-model.js';
import { REPO_ROOT } from './support.js';

export interface ProviderComparison {
  maxAbsDiff: number;
  labelAgreement: number;
  /** Number of distinct non-background labels in the wasm result. */
  foregroundLabels: number;
  ms: { wasm: number; webgpu: number };
  providers: { wasm: string; webgpu: string };
  adapter: { isFallbackAdapter?: boolean; vendor?: string; architecture?: string } | null;
}

const ORT_DIST = path.join(REPO_ROOT, 'node_modules', 'onnxruntime-web', 'dist');
const TEST_PREFIX = '/__e2e/';

const TYPES: Record<string, string> = {
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.html': 'text/html',
};

/**
 * Serves a blank page and onnxruntime-web's files under `/__e2e/` of the viewer's own origin
 * (Playwright answers those requests; everything else, including the model, comes from the real
 * companion server), with the same isolation headers the server sends.
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
    const file = path.join(ORT_DIST, path.basename(rel.replace(/^ort\//, '')));
    try {
      const body = await readFile(file);
      await route.fulfill({
        status: 200,
        headers: {
          ...headers,
          'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        },
        body,
      });
    } catch {
      await route.fulfill({ status: 404, headers, body: 'not found' });
    }
  });
  await page.goto(`${origin}${TEST_PREFIX}blank.html`);
  return page;
}

export async function compareProviders(
  session: BrowserSession,
  origin: string,
  model: TestModel,
): Promise<ProviderComparison> {
  const page = await openBlankPage(session, origin);
  try {
    return await page.evaluate(
      async ({ id, input, dims, channels, prefix }) => {
        const ortUrl = `${prefix}ort/ort.min.mjs`;
        const ort = (await import(ortUrl)) as typeof import('onnxruntime-web');
        ort.env.wasm.wasmPaths = `${prefix}ort/`;
        const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
        const adapter = (await gpu?.requestAdapter()) as
          | { isFallbackAdapter?: boolean; info?: { vendor?: string; architecture?: string } }
          | null
          | undefined;
        const res = await fetch(`/models/${encodeURIComponent(id)}/model.onnx`);
        if (!res.ok) throw new Error(`GET model.onnx: expected 200, found ${res.status}`);
        const bytes = new Uint8Array(await res.arrayBuffer());
        const x = Float32Array.from(input);
        const out: Record<string, { logits: Float32Array; ms: number }> = {};
        for (const ep of ['wasm', 'webgpu']) {
          const t = performance.now();
          const sess = await ort.InferenceSession.create(bytes, { executionProviders: [ep] });
          const r = await sess.run({ image: new ort.Tensor('float32', x, dims) });
          const data = (await r.logits.getData()) as Float32Array;
          out[ep] = { logits: Float32Array.from(data), ms: performance.now() - t };
          await sess.release();
        }
        const a = out.wasm.logits;
        const b = out.webgpu.logits;
        let maxAbsDiff = a.length === b.length ? 0 : Infinity;
        for (let i = 0; i < a.length && i < b.length; i++) {
          maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - b[i]));
        }
        const n = a.length / channels;
        let agree = 0;
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
        }
        return {
          maxAbsDiff,
          labelAgreement: agree / n,
          foregroundLabels: seen.size,
          ms: { wasm: out.wasm.ms, webgpu: out.webgpu.ms },
          providers: { wasm: 'wasm', webgpu: adapter ? 'webgpu' : 'none' },
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
        input: Array.from(model.atlasInput),
        dims: (model.metadata.onnx as { input: { shape: number[] } }).input.shape,
        channels: model.metadata.labels.length + 1,
        prefix: TEST_PREFIX,
      },
    );
  } finally {
    await page.close();
  }
}

export const WORKER_URL = '/plugins/extension/inference-worker.js';

/**
 * The same comparison through the extension's own inference worker (dist/extension/
 * inference-worker.js, protocol in extension/src/inference/protocol.ts): the product's path.
 */
export async function compareProvidersInWorker(
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
        const runOnce = (provider: 'wasm' | 'webgpu', requestId: number): Promise<Reply> =>
          new Promise((resolve, reject) => {
            const w = new Worker(workerUrl, { type: 'module' });
            w.onerror = (e) => {
              w.terminate();
              reject(new Error(`worker error: ${e.message}`));
            };
            w.onmessage = (e: MessageEvent<Reply>) => {
              const r = e.data;
              if (r.requestId !== requestId || r.type === 'progress') return;
              w.terminate();
              if (r.type === 'error') reject(new Error(`worker (${provider}): ${r.message}`));
              else resolve(r);
            };
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
        const t0 = performance.now();
        const wasm = await runOnce('wasm', 1);
        const t1 = performance.now();
        const webgpu = await runOnce('webgpu', 2);
        const t2 = performance.now();
        const a = wasm.logits ?? new Float32Array();
        const b = webgpu.logits ?? new Float32Array();
        let maxAbsDiff = a.length === b.length && a.length > 0 ? 0 : Infinity;
        for (let i = 0; i < a.length && i < b.length; i++) {
          maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - b[i]));
        }
        const n = a.length / channels;
        let agree = 0;
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
        }
        return {
          maxAbsDiff,
          labelAgreement: n > 0 ? agree / n : 0,
          foregroundLabels: seen.size,
          ms: { wasm: t1 - t0, webgpu: t2 - t1 },
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
