/**
 * Inference worker entry (built to dist/extension/inference-worker.js as a module worker).
 * Loads onnxruntime-web at run time from `ort/` beside this file (not bundled: its .mjs/.wasm pair
 * must stay together), picks WebGPU when an adapter exists, else wasm, and runs requests one at a
 * time. The last model's session is kept for the next request of the same model and provider.
 */
import type * as OrtModule from 'onnxruntime-web';
import type {
  ExecutionProvider,
  InferenceReply,
  InferenceRequest,
  InferenceResult,
  InferencePhase,
} from './protocol.js';
import { argmaxChannels } from '@rrl/core/volume/resample.js';

type Ort = typeof OrtModule;

interface GpuLike {
  requestAdapter(): Promise<unknown>;
}

const scope = self as unknown as {
  postMessage(msg: InferenceReply, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<unknown>) => void) | null;
  location: { href: string };
  crossOriginIsolated?: boolean;
  navigator: { gpu?: GpuLike; hardwareConcurrency?: number };
};

let ortPromise: Promise<Ort> | undefined;

function loadOrt(wasmPaths: string): Promise<Ort> {
  if (!ortPromise) {
    const url = new URL('ort.min.mjs', wasmPaths).href;
    ortPromise = (import(/* webpackIgnore: true */ url) as Promise<Ort & { default?: Ort }>).then(
      (m) => {
        const ort = (m.InferenceSession ? m : m.default) as Ort;
        ort.env.wasm.wasmPaths = wasmPaths;
        return ort;
      },
    );
  }
  return ortPromise;
}

function progress(requestId: number, phase: InferencePhase, message: string, fraction?: number) {
  scope.postMessage({ type: 'progress', requestId, phase, message, fraction });
}

async function fetchModel(req: InferenceRequest): Promise<Uint8Array> {
  const res = await fetch(req.modelUrl);
  if (!res.ok) {
    throw new Error(
      `Downloading the model from ${req.modelUrl} failed: HTTP ${res.status} ${res.statusText}. Check that the model is published in the models folder and the server is running.`,
    );
  }
  const total = Number(res.headers.get('content-length') ?? 0);
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let got = 0;
  let lastReport = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    if (total > 0 && got - lastReport > total / 20) {
      lastReport = got;
      progress(
        req.requestId,
        'load',
        `Downloading model (${(got / 1e6).toFixed(1)} MB)`,
        got / total,
      );
    }
  }
  const out = new Uint8Array(got);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as unknown as ArrayBuffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function webgpuAvailable(): Promise<string | undefined> {
  const gpu = scope.navigator.gpu;
  if (!gpu) return 'this browser exposes no WebGPU (navigator.gpu is missing)';
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return 'navigator.gpu.requestAdapter() gave no adapter (no usable GPU)';
  } catch (e) {
    return `requesting a WebGPU adapter failed (${e instanceof Error ? e.message : String(e)})`;
  }
  return undefined;
}

/** The last session, kept for the next run of the same model on the same provider. */
let cached:
  | {
      key: string;
      bytes: Uint8Array;
      session: OrtModule.InferenceSession;
      provider: ExecutionProvider;
      fallbackReason?: string;
    }
  | undefined;

async function run(req: InferenceRequest): Promise<void> {
  const key = `${req.modelUrl}|${req.modelSha256 ?? ''}|${req.preferredProvider}`;
  if (cached && cached.key !== key) {
    const old = cached.session;
    cached = undefined;
    await old.release().catch(() => undefined);
  }
  if (cached) {
    await runSession(req, cached.session, cached.provider, cached.fallbackReason, 0, 0);
    return;
  }
  const wasmPaths = req.wasmPaths ?? new URL('./ort/', scope.location.href).href;
  let provider: ExecutionProvider = req.preferredProvider;
  let fallbackReason: string | undefined;
  if (provider === 'webgpu') {
    fallbackReason = await webgpuAvailable();
    if (fallbackReason) provider = 'wasm';
  }

  const t0 = performance.now();
  progress(req.requestId, 'load', 'Downloading model');
  const [ort, modelBytes] = await Promise.all([loadOrt(wasmPaths), fetchModel(req)]);
  // crypto.subtle exists only in secure contexts (https, localhost); elsewhere the check is skipped.
  if (req.modelSha256 && globalThis.crypto?.subtle) {
    const got = await sha256Hex(modelBytes);
    if (got !== req.modelSha256) {
      throw new Error(
        `The model file at ${req.modelUrl} does not match its metadata (sha256 ${got.slice(0, 12)}…, expected ${req.modelSha256.slice(0, 12)}…). Republish the model so that model.onnx and metadata.json agree.`,
      );
    }
  }
  const t1 = performance.now();

  const isolated = scope.crossOriginIsolated === true;
  ort.env.wasm.numThreads =
    req.numThreads ??
    (isolated ? Math.max(1, Math.min(4, scope.navigator.hardwareConcurrency ?? 1)) : 1);

  progress(req.requestId, 'session', `Preparing the model (${provider})`);
  let session: OrtModule.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelBytes, {
      // WebGPU in NCHW: onnxruntime-web's WebGPU pooling kernels take 3-D windows only in NCHW
      // (in its default NHWC layout a 3-D MaxPool fails at run time and the model fell back to
      // wasm); our models are NCDHW throughout.
      executionProviders: [
        provider === 'webgpu' ? { name: 'webgpu', preferredLayout: 'NCHW' } : provider,
      ],
      graphOptimizationLevel: 'all',
      // No silent CPU nodes: a model with a node WebGPU cannot run fails to load here (and runs on
      // wasm, with the reason shown) instead of running partly on the CPU.
      ...(provider === 'webgpu' ? { extra: { session: { disable_cpu_ep_fallback: '1' } } } : {}),
    });
  } catch (e) {
    if (provider !== 'webgpu') throw e;
    const message = e instanceof Error ? e.message : String(e);
    fallbackReason = /fallback to CPU EP has been explicitly disabled/i.test(message)
      ? 'the model has operations that WebGPU cannot run in this browser'
      : `the WebGPU provider could not load the model (${message})`;
    provider = 'wasm';
    progress(req.requestId, 'session', 'Preparing the model (wasm, WebGPU failed)');
    session = await ort.InferenceSession.create(modelBytes, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
    });
  }
  const t2 = performance.now();
  cached = { key, bytes: modelBytes, session, provider, fallbackReason };
  await runSession(req, session, provider, fallbackReason, t1 - t0, t2 - t1);
}

async function runSession(
  req: InferenceRequest,
  session: OrtModule.InferenceSession,
  provider: ExecutionProvider,
  fallbackReason: string | undefined,
  loadMs: number,
  sessionMs: number,
): Promise<void> {
  const ort = await loadOrt(req.wasmPaths ?? new URL('./ort/', scope.location.href).href);
  const t2 = performance.now();
  const inputName = req.inputName ?? session.inputNames[0];
  const outputName = req.outputName ?? session.outputNames[0];
  if (
    inputName === undefined ||
    outputName === undefined ||
    !session.inputNames.includes(inputName) ||
    !session.outputNames.includes(outputName)
  ) {
    throw new Error(
      `The model's graph has inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}], but its metadata names input "${inputName}" and output "${outputName}". Fix metadata.json.`,
    );
  }
  const expected = req.dims.reduce((a, b) => a * b, 1);
  if (req.input.length !== expected) {
    throw new Error(
      `Input holds ${req.input.length} values but dims [${req.dims.join(', ')}] need ${expected}.`,
    );
  }
  progress(req.requestId, 'inference', `Running the model (${provider})`);
  const feeds: Record<string, OrtModule.Tensor> = {
    [inputName]: new ort.Tensor('float32', req.input, req.dims),
  };
  let results: OrtModule.InferenceSession.ReturnType;
  try {
    results = await session.run(feeds, [outputName]);
  } catch (e) {
    // Some graphs load on WebGPU but fail when run (3-D ConvTranspose in onnxruntime-web 1.30): retry on wasm.
    if (provider !== 'webgpu' || !cached) throw e;
    fallbackReason = `the model failed on WebGPU (${e instanceof Error ? e.message : String(e)})`;
    provider = 'wasm';
    progress(req.requestId, 'session', 'Preparing the model (wasm, WebGPU failed)');
    const old = cached.session;
    session = await ort.InferenceSession.create(cached.bytes, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
    });
    cached = { ...cached, session, provider, fallbackReason };
    await old.release().catch(() => undefined);
    progress(req.requestId, 'inference', 'Running the model (wasm)');
    results = await session.run(feeds, [outputName]);
  }
  const t3 = performance.now();
  const out = results[outputName];
  if (!out) throw new Error(`The model returned no output "${outputName}".`);
  const outData = (await out.getData(true)) as Float32Array;
  const outDims = [...out.dims];
  progress(req.requestId, 'postprocess', 'Reading the result');
  // Labels (argmax over channels, batch kept) or the raw logits, moved to the caller without a copy.
  let payload: Pick<InferenceResult, 'labels' | 'logits' | 'dims'>;
  let transfer: ArrayBuffer;
  if (req.output === 'labels') {
    const labels = argmaxChannels(outData, outDims[1] ?? 1);
    payload = { labels, dims: [outDims[0] ?? 1, ...outDims.slice(2)] };
    transfer = labels.buffer as ArrayBuffer;
  } else {
    const logits = new Float32Array(outData);
    payload = { logits, dims: outDims };
    transfer = logits.buffer;
  }
  const t4 = performance.now();
  const reply: InferenceReply = {
    type: 'result',
    requestId: req.requestId,
    provider,
    fallbackReason,
    ...payload,
    timings: { loadMs, sessionMs, inferenceMs: t3 - t2, postprocessMs: t4 - t3 },
  };
  scope.postMessage(reply, [transfer]);
}

scope.onmessage = (e: MessageEvent<unknown>) => {
  const req = e.data as InferenceRequest;
  if (!req || req.type !== 'run') return;
  run(req).catch((err: unknown) => {
    scope.postMessage({
      type: 'error',
      requestId: req.requestId,
      message: err instanceof Error ? err.message : String(err),
    });
  });
};
