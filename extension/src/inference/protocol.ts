/**
 * Message protocol of the inference worker (`dist/extension/inference-worker.js`, a module Web
 * Worker running onnxruntime-web). One request per worker run; to cancel, terminate the worker.
 *
 * Usage (same origin as the extension bundle):
 *   const w = new Worker(new URL('/plugins/extension/inference-worker.js', location.href), { type: 'module' });
 *   w.postMessage(request, [request.input.buffer]);
 *   w.onmessage = (e: MessageEvent<InferenceReply>) => { ... };
 */

export type ExecutionProvider = 'webgpu' | 'wasm';

/** Checked fallback order (transformers.js style). */
export const PROVIDER_FALLBACK_ORDER: readonly ExecutionProvider[] = Object.freeze([
  'webgpu',
  'wasm',
]);

export interface InferenceRequest {
  type: 'run';
  /** Correlates replies with the request. */
  requestId: number;
  /** Absolute or same-origin URL of the .onnx file. */
  modelUrl: string;
  /** Optional lowercase hex SHA-256 of the model file; checked after download when given. */
  modelSha256?: string;
  /** Input tensor data, float32, in the layout given by `dims`. */
  input: Float32Array;
  /** Input tensor dims, e.g. [1, 1, D, H, W]. */
  dims: number[];
  /** Graph input / output names; default: the session's first input / output. */
  inputName?: string;
  outputName?: string;
  /** 'webgpu' uses WebGPU when navigator.gpu gives an adapter, else falls back to wasm. */
  preferredProvider: ExecutionProvider;
  /**
   * What to send back: 'logits' (the raw float32 output) or 'labels' (argmax over channel axis 1,
   * uint8, dims [1, D, H, W]).
   */
  output: 'logits' | 'labels';
  /** Folder URL holding onnxruntime-web's .mjs/.wasm files; default: `ort/` beside the worker. */
  wasmPaths?: string;
  /** wasm threads; default: min(4, hardwareConcurrency) when cross-origin isolated, else 1. */
  numThreads?: number;
}

export type InferencePhase = 'load' | 'session' | 'inference' | 'postprocess';

export interface InferenceProgress {
  type: 'progress';
  requestId: number;
  phase: InferencePhase;
  /** 0..1 within the phase; undefined when unknown. */
  fraction?: number;
  message: string;
}

export interface InferenceTimings {
  /** Model download (ms). */
  loadMs: number;
  /** Session creation (ms). */
  sessionMs: number;
  /** session.run (ms). */
  inferenceMs: number;
  /** Output copy / argmax in the worker (ms). */
  postprocessMs: number;
}

export interface InferenceResult {
  type: 'result';
  requestId: number;
  /** The provider that actually ran the model. */
  provider: ExecutionProvider;
  /** Why the preferred provider was not used (absent when it was). */
  fallbackReason?: string;
  /** Present when output === 'logits'. */
  logits?: Float32Array;
  /** Present when output === 'labels'. */
  labels?: Uint8Array;
  /** Dims of the array sent back. */
  dims: number[];
  timings: InferenceTimings;
}

export interface InferenceError {
  type: 'error';
  requestId: number;
  /** User-facing message: what failed, and what to do. */
  message: string;
  /** The provider in use when it failed, when known. */
  provider?: ExecutionProvider;
}

export type InferenceReply = InferenceProgress | InferenceResult | InferenceError;

export function isInferenceReply(v: unknown): v is InferenceReply {
  if (typeof v !== 'object' || v === null) return false;
  const t = (v as { type?: unknown }).type;
  return t === 'progress' || t === 'result' || t === 'error';
}
