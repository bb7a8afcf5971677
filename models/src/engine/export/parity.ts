/**
 * Runs an ONNX model in onnxruntime-node and in onnxruntime-web's wasm build (inside Node) and
 * measures how far their outputs are from a reference, for the export parity check.
 */
import * as ortNode from 'onnxruntime-node';
import type { HostTensor } from '../runtime/types.js';

export type Feeds = Readonly<Record<string, HostTensor>>;

export async function runInNode(
  model: Uint8Array,
  feeds: Feeds,
  output: string,
  provider: 'cpu' | 'webgpu' = 'cpu',
): Promise<Float32Array> {
  const session = await ortNode.InferenceSession.create(model, {
    executionProviders: [provider],
    logSeverityLevel: 3,
  });
  try {
    const t: Record<string, ortNode.Tensor> = {};
    for (const [k, v] of Object.entries(feeds))
      t[k] = new ortNode.Tensor('float32', v.data, [...v.dims]);
    const out = await session.run(t);
    return Float32Array.from(out[output]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

/** onnxruntime-web (wasm provider) running in this Node process; single-threaded by default. */
export async function runInWebWasm(
  model: Uint8Array,
  feeds: Feeds,
  output: string,
  threads = 1,
): Promise<Float32Array> {
  const ortWeb = await import('onnxruntime-web');
  ortWeb.env.wasm.numThreads = threads;
  const session = await ortWeb.InferenceSession.create(model, { executionProviders: ['wasm'] });
  try {
    const t: Record<string, InstanceType<typeof ortWeb.Tensor>> = {};
    for (const [k, v] of Object.entries(feeds))
      t[k] = new ortWeb.Tensor('float32', v.data, [...v.dims]);
    const out = await session.run(t);
    return Float32Array.from(out[output]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) {
    throw new Error(
      `Cannot compare outputs of different sizes (${a.length} vs ${b.length} values).`,
    );
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
