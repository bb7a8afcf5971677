/**
 * The engine's WGSL 3-D convolution kernels (models/src/engine/gpu/conv3d.ts) per layer: forward,
 * input gradient and weight gradient, median GPU time per call (submit → queue done, tensors
 * resident on the GPU), their arithmetic rate, and their agreement with onnxruntime-node's CPU Conv
 * on the same data (forward). Beside them, onnxruntime-node's own WebGPU provider on the same
 * forward (its times include copying input and output, as a session run does).
 *
 *   npm run bench:gpu-conv                              # default layers (small ones on a software adapter)
 *   npm run bench:gpu-conv -- --layers 8x8@64,16x16@128,32x32@64,64x64@32 --runs 10 --json out.json
 *
 * Flags: --layers CINxCOUT@SIZE,… (3³ kernel, stride 1, pad 1, batch 1)   --runs N (10)
 *        --warmup N (2)   --no-ort (skip the onnxruntime comparison)   --json FILE
 * On a software adapter (lavapipe) the numbers are only a smoke test of the kernels.
 */
import { writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import {
  Conv3dKernels,
  convMacs,
  convSizes,
  type Conv3dKind,
  type Conv3dShape,
} from '@rrl/models/engine/gpu/conv3d.js';
import {
  downloadBuffer,
  openGpu,
  storageBuffer,
  uploadBuffer,
} from '@rrl/models/engine/gpu/device.js';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { median } from '@rrl/models/cli/report.js';
import { maxRelError, randomValues } from '@rrl/test/fixtures/conv3d-reference.js';
import { emitGraph } from '@rrl/models/engine/graph/emit.js';

interface Args {
  layers?: Conv3dShape[];
  runs: number;
  warmup: number;
  ort: boolean;
  json?: string;
}

function parseLayer(text: string): Conv3dShape {
  const m = /^(\d+)x(\d+)@(\d+)(?:x(\d+)x(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`--layers: '${text}' is not CINxCOUT@SIZE (or CINxCOUT@DxHxW)`);
  const d = Number(m[3]);
  return {
    batch: 1,
    cin: Number(m[1]),
    cout: Number(m[2]),
    d,
    h: m[4] ? Number(m[4]) : d,
    w: m[5] ? Number(m[5]) : d,
    kernel: 3,
    stride: 1,
    pad: 1,
  };
}

function parseArgs(argv: string[]): Args {
  const a: Args = { runs: 10, warmup: 2, ort: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--layers') a.layers = v().split(',').map(parseLayer);
    else if (k === '--runs') a.runs = Number(v());
    else if (k === '--warmup') a.warmup = Number(v());
    else if (k === '--no-ort') a.ort = false;
    else if (k === '--json') a.json = v();
    else if (k === '--help' || k === '-h') {
      console.log(
        'npm run bench:gpu-conv -- [--layers 8x8@64,16x16@128] [--runs 10] [--warmup 2] [--no-ort] [--json FILE]',
      );
      process.exit(0);
    } else throw new Error(`unknown flag ${k} (--help lists them)`);
  }
  return a;
}

/** One 3-D Conv (no bias) as an ONNX model with inputs x, w and output y. */
function convModel(s: Conv3dShape): Uint8Array {
  const g = new Graph();
  const x = g.input('x', [s.batch, s.cin, s.d, s.h, s.w]);
  const w = g.input('w', [s.cout, s.cin, s.kernel, s.kernel, s.kernel]);
  const y = g.conv(x, w, undefined, { strides: s.stride, pads: s.pad });
  return emitGraph(g, { inputs: [x, w], outputs: [['y', y]] });
}

interface LayerResult {
  layer: string;
  shape: Conv3dShape;
  ms: Record<Conv3dKind, number>;
  gflops: Record<Conv3dKind, number>;
  splits: Record<Conv3dKind, number>;
  /** max |ours − ORT CPU| / max |ORT CPU| of the forward. */
  forwardRelErrorVsOrtCpu?: number;
  ortCpuForwardMs?: number;
  ortWebgpuForwardMs?: number;
  ortWebgpuError?: string;
}

async function timeOrt(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
  provider: 'cpu' | 'webgpu',
  runs: number,
  warmup: number,
): Promise<{ ms: number; y: Float32Array }> {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [provider],
    ...(provider === 'webgpu' ? { extra: { session: { disable_cpu_ep_fallback: '1' } } } : {}),
  });
  try {
    let y: Float32Array = new Float32Array();
    const times: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      const t = performance.now();
      const out = await session.run(feeds);
      const dt = performance.now() - t;
      if (i >= warmup) times.push(dt);
      y = out.y!.data as Float32Array;
    }
    return { ms: median(times), y };
  } finally {
    await session.release();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const gpu = await openGpu();
  const { device } = gpu;
  const layers =
    args.layers ??
    (gpu.software
      ? ['8x8@24', '16x16@24', '32x32@16', '64x64@8'].map(parseLayer)
      : ['8x8@64', '16x16@128', '32x32@64', '64x64@32'].map(parseLayer));
  console.log(
    `adapter: ${gpu.adapter.vendor} ${gpu.adapter.architecture} ${gpu.adapter.description}${gpu.software ? ' (software: timings mean nothing)' : ''}`,
  );
  const kernels = new Conv3dKernels(gpu);
  const results: LayerResult[] = [];
  for (const shape of layers) {
    const name = `${shape.cin}→${shape.cout} @ ${shape.d}×${shape.h}×${shape.w}`;
    const sizes = convSizes(shape);
    const x = randomValues(sizes.x, 1);
    const w = randomValues(sizes.w, 2);
    const dy = randomValues(sizes.y, 3);
    const gx = uploadBuffer(device, x);
    const gw = uploadBuffer(device, w);
    const gdy = uploadBuffer(device, dy);
    const gy = storageBuffer(device, sizes.y);
    const gdx = storageBuffer(device, sizes.x);
    const gdw = storageBuffer(device, sizes.w);
    const plans = {
      forward: kernels.plan('forward', shape, gw, gx, gy),
      gradInput: kernels.plan('gradInput', shape, gw, gdy, gdx),
      gradWeight: kernels.plan('gradWeight', shape, gdy, gx, gdw),
    };
    const ms = {} as Record<Conv3dKind, number>;
    const gflops = {} as Record<Conv3dKind, number>;
    const splits = {} as Record<Conv3dKind, number>;
    for (const kind of ['forward', 'gradInput', 'gradWeight'] as const) {
      const times: number[] = [];
      for (let i = 0; i < args.warmup + args.runs; i++) {
        const t = performance.now();
        const enc = device.createCommandEncoder();
        plans[kind].encode(enc);
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
        if (i >= args.warmup) times.push(performance.now() - t);
      }
      ms[kind] = median(times);
      gflops[kind] = (2 * convMacs(shape)) / (ms[kind] * 1e6);
      splits[kind] = plans[kind].launch.splits;
    }
    const r: LayerResult = { layer: name, shape, ms, gflops, splits };
    if (args.ort) {
      const model = convModel(shape);
      const feeds = {
        x: new ort.Tensor('float32', x, [shape.batch, shape.cin, shape.d, shape.h, shape.w]),
        w: new ort.Tensor('float32', w, [
          shape.cout,
          shape.cin,
          shape.kernel,
          shape.kernel,
          shape.kernel,
        ]),
      };
      const cpu = await timeOrt(model, feeds, 'cpu', Math.min(args.runs, 5), 1);
      r.ortCpuForwardMs = cpu.ms;
      const ours = await downloadBuffer(device, gy, sizes.y);
      r.forwardRelErrorVsOrtCpu = maxRelError(ours, cpu.y);
      try {
        r.ortWebgpuForwardMs = (await timeOrt(model, feeds, 'webgpu', args.runs, args.warmup)).ms;
      } catch (e) {
        r.ortWebgpuError = (e instanceof Error ? e.message : String(e)).split('\n')[0];
      }
    }
    for (const p of Object.values(plans)) p.destroy();
    for (const b of [gx, gw, gdy, gy, gdx, gdw]) b.destroy();
    results.push(r);
    console.log(
      `${name}: forward ${ms.forward.toFixed(2)} ms (${gflops.forward.toFixed(0)} GFLOP/s), input grad ${ms.gradInput.toFixed(2)} ms, weight grad ${ms.gradWeight.toFixed(2)} ms (${splits.gradWeight} K-splits)` +
        (r.forwardRelErrorVsOrtCpu !== undefined
          ? `; vs ORT CPU forward: rel. error ${r.forwardRelErrorVsOrtCpu.toExponential(1)}, ${r.ortCpuForwardMs?.toFixed(1)} ms; ORT WebGPU forward ${r.ortWebgpuForwardMs?.toFixed(1) ?? `failed (${r.ortWebgpuError})`} ms`
          : ''),
    );
  }
  console.log(
    '\n| layer (3³, pad 1) | WGSL fwd ms | WGSL grad-input ms | WGSL grad-weight ms | fwd GFLOP/s | ORT WebGPU fwd ms | ORT CPU fwd ms | fwd rel. error vs ORT CPU |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    console.log(
      `| ${r.layer} | ${r.ms.forward.toFixed(2)} | ${r.ms.gradInput.toFixed(2)} | ${r.ms.gradWeight.toFixed(2)} | ${r.gflops.forward.toFixed(0)} | ${r.ortWebgpuForwardMs?.toFixed(1) ?? '—'} | ${r.ortCpuForwardMs?.toFixed(1) ?? '—'} | ${r.forwardRelErrorVsOrtCpu?.toExponential(1) ?? '—'} |`,
    );
  }
  if (args.json) {
    writeFileSync(
      args.json,
      JSON.stringify({ adapter: gpu.adapter, software: gpu.software, results }, null, 2),
    );
  }
  const worst = Math.max(...results.map((r) => r.forwardRelErrorVsOrtCpu ?? 0));
  if (worst > 1e-4) {
    console.error(`WGSL forward disagrees with ORT CPU: relative error ${worst}`);
    process.exitCode = 1;
  }
  device.destroy();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
