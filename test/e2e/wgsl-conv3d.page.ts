// Bundled by test/e2e/wgsl-conv3d.test.ts into a page: runs the engine's WGSL conv kernels on the
// browser's WebGPU adapter (the same module the Node engine uses through Dawn).
import {
  Conv3dKernels,
  convLaunch,
  type Conv3dKind,
  type Conv3dShape,
} from '@rrl/models/engine/gpu/conv3d.js';
import { gpuContext } from '@rrl/models/engine/gpu/device.js';

let kernels: Promise<Conv3dKernels> | undefined;

async function runConv3d(kind: Conv3dKind, shape: Conv3dShape, a: number[], b: number[]) {
  kernels ??= gpuContext(navigator.gpu).then((ctx) => new Conv3dKernels(ctx));
  const k = await kernels;
  const out = await k.run(kind, shape, Float32Array.from(a), Float32Array.from(b));
  return { out: Array.from(out), adapter: k.ctx.adapter, launch: convLaunch(kind, shape) };
}

(globalThis as unknown as { runConv3d: typeof runConv3d }).runConv3d = runConv3d;
