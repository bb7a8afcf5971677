// A WebGPU device for the engine's WGSL kernels: in Node through Dawn (npm `webgpu`, a prebuilt
// dawn.node; the NVIDIA adapter on a GPU machine through Vulkan), or from any `GPU` object (a
// browser's navigator.gpu: the kernels' tests run them in Chromium's WebGPU).
//
// Dawn for Node on Mesa's lavapipe (the software Vulkan of a CPU-only Debian machine) aborts the
// process as soon as a shader uses workgroupBarrier (npm webgpu 0.6.2, Mesa 25.0.7: "futex facility
// returned an unexpected error code" / pthread mutex assertions, with any workgroup size and every
// Dawn toggle tried), and the GEMM kernels need barriers: openGpu refuses software adapters unless
// asked, so the process says why instead of crashing.

/** No WebGPU adapter or device could be opened; the message says why and what to install. */
export class GpuUnavailableError extends Error {
  constructor(
    reason: string,
    hint = 'Dawn needs a Vulkan driver: on Linux the NVIDIA driver (with its Vulkan ICD) on a GPU machine.',
  ) {
    super(`No WebGPU device for the training engine's GPU kernels: ${reason}. ${hint}`);
    this.name = 'GpuUnavailableError';
  }
}

export interface OpenGpuOptions {
  /** Accept a software adapter (lavapipe) anyway: only for kernels without workgroup barriers. */
  allowSoftware?: boolean;
}

export interface GpuContext {
  device: GPUDevice;
  /** Adapter description (vendor, architecture, device), for reports. */
  adapter: { vendor: string; architecture: string; device: string; description: string };
  /** True on a software adapter (lavapipe, SwiftShader): correct, its timings mean nothing. */
  software: boolean;
}

/** An adapter and what it is, before any device is created on it. */
interface OpenedAdapter {
  adapter: GPUAdapter;
  info: GpuContext['adapter'];
  software: boolean;
}

let opened: Promise<OpenedAdapter> | undefined;
let context: Promise<GpuContext> | undefined;

/**
 * Opens (once per process) Dawn's high-performance adapter and a device with the largest storage
 * buffers it allows. Rejects with GpuUnavailableError when there is none, or when it is a software
 * adapter and `allowSoftware` is not set (see the note at the top); a refused adapter gets no
 * device, so no software-Vulkan threads are left to trip at process exit.
 */
export async function openGpu(options: OpenGpuOptions = {}): Promise<GpuContext> {
  opened ??= openDawn().catch((e: unknown) => {
    opened = undefined;
    throw e;
  });
  const a = await opened;
  if (a.software && !options.allowSoftware) {
    throw new GpuUnavailableError(
      `the only adapter is a software one (${a.info.description}), and Dawn for Node aborts ` +
        'on its workgroup barriers',
      'Run the kernels on a machine with a GPU; their correctness is tested in Chromium’s WebGPU ' +
        '(test/e2e/wgsl-conv3d.test.ts).',
    );
  }
  context ??= deviceOn(a).catch((e: unknown) => {
    context = undefined;
    throw e;
  });
  return context;
}

async function openDawn(): Promise<OpenedAdapter> {
  let gpu: GPU;
  try {
    const dawn = (await import('webgpu')) as { create(o: string[]): GPU; globals: object };
    // GPUBufferUsage, GPUMapMode, … are read from globalThis by WebGPU code.
    for (const [k, v] of Object.entries(dawn.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    gpu = dawn.create([]);
  } catch (e) {
    throw new GpuUnavailableError(
      `Dawn for Node (npm 'webgpu') did not load (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  return adapterOf(gpu);
}

/** The high-performance adapter of `gpu` and a device with the adapter's largest buffer limits. */
export async function gpuContext(gpu: GPU): Promise<GpuContext> {
  return deviceOn(await adapterOf(gpu));
}

async function adapterOf(gpu: GPU): Promise<OpenedAdapter> {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuUnavailableError('Dawn found no adapter');
  const i = adapter.info;
  const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`;
  return {
    adapter,
    info: {
      vendor: i.vendor,
      architecture: i.architecture,
      device: i.device,
      description: i.description,
    },
    software: /llvmpipe|lavapipe|swiftshader/i.test(text),
  };
}

async function deviceOn(a: OpenedAdapter): Promise<GpuContext> {
  const l = a.adapter.limits;
  let device: GPUDevice;
  try {
    device = await a.adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    });
  } catch (e) {
    throw new GpuUnavailableError(
      `the adapter refused a device (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  return { device, adapter: a.info, software: a.software };
}

/** Copies `data` into a new storage buffer (usable as kernel input or output). */
export function uploadBuffer(device: GPUDevice, data: Float32Array): GPUBuffer {
  const buffer = device.createBuffer({
    size: Math.max(4, data.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
  device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  return buffer;
}

/** A zero-filled storage buffer of `length` floats. */
export function storageBuffer(device: GPUDevice, length: number): GPUBuffer {
  return device.createBuffer({
    size: Math.max(4, length * 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
}

/** Reads `length` floats of `buffer` back to the CPU (waits for the queue). */
export async function downloadBuffer(
  device: GPUDevice,
  buffer: GPUBuffer,
  length: number,
): Promise<Float32Array> {
  const staging = device.createBuffer({
    size: Math.max(4, length * 4),
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, 0, staging, 0, length * 4);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0, length * 4));
  staging.unmap();
  staging.destroy();
  return out;
}
