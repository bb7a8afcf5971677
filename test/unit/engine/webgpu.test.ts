/**
 * The training graphs use only ops that ONNX Runtime's WebGPU provider runs: one training step of
 * the segmentation U-Net and of the registration net (warp: GatherElements / ScatterElements)
 * gives the same loss, gradients-driven updates and state on WebGPU (lavapipe here) as on the CPU.
 * Skipped when onnxruntime-node finds no WebGPU adapter.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import {
  Graph,
  Rng,
  buildTrainingGraph,
  emitGraph,
  registrationTask,
  segmentationTask,
} from '@rrl/models/engine/index.js';
import { randn } from './gradcheck-helper.js';

const WEBGPU = {
  name: 'webgpu',
  preferredLayout: 'NCHW',
} as unknown as ort.InferenceSession.ExecutionProviderConfig;

async function webgpuAvailable(): Promise<string | undefined> {
  const g = new Graph();
  const x = g.input('x', [2]);
  const model = emitGraph(g, { inputs: [x], outputs: [['y', g.add(x, 1)]] });
  try {
    const s = await ort.InferenceSession.create(model, {
      executionProviders: [WEBGPU],
      logSeverityLevel: 3,
    });
    await s.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) });
    await s.release();
    return undefined;
  } catch (e) {
    return `no WebGPU adapter for onnxruntime-node (${(e as Error).message.split('\n')[0]})`;
  }
}

const skip = await webgpuAvailable();

async function compareStep(
  task: { graph: Graph; loss: ReturnType<Graph['input']> },
  convGradWeight: 'gemm27' | 'batchAsChannel' | 'im2col' = 'gemm27',
): Promise<void> {
  const { model, spec } = buildTrainingGraph({
    graph: task.graph,
    loss: task.loss,
    optimizer: { type: 'sgd', momentum: 0.9 },
    gradientOptions: { convGradWeight },
  });
  const p = task.graph.initialParams(0);
  const rng = new Rng(1);
  const feeds: Record<string, ort.Tensor> = {
    lr: new ort.Tensor('float32', Float32Array.of(0.1), []),
    step: new ort.Tensor('float32', Float32Array.of(1), []),
  };
  for (const d of spec.dataInputs) {
    const n = d.dims.reduce((a, b) => a * b, 1);
    const arr = randn(n, rng);
    if (d.name === 'target') {
      const per = n / d.dims[1]!;
      arr.fill(0);
      for (let i = 0; i < per; i++) arr[(i % d.dims[1]!) * per + i] = 1;
    }
    feeds[d.name] = new ort.Tensor('float32', arr, d.dims);
  }
  for (const s of spec.stateInputs) {
    const n = s.dims.reduce((a, b) => a * b, 1);
    feeds[s.name] = new ort.Tensor(
      'float32',
      s.kind === 'param' ? p.get(s.name)! : randn(n, rng, 0.01),
      s.dims,
    );
  }
  const out: Record<string, Record<string, ort.Tensor>> = {};
  for (const [name, ep] of [
    ['cpu', 'cpu'],
    ['webgpu', WEBGPU],
  ] as const) {
    const s = await ort.InferenceSession.create(model, {
      executionProviders: [ep],
      logSeverityLevel: 3,
      // every node must be placed on WebGPU: no silent CPU fallback
      ...(name === 'webgpu' ? { extra: { session: { disable_cpu_ep_fallback: '1' } } } : {}),
    });
    out[name] = (await s.run(feeds)) as Record<string, ort.Tensor>;
    await s.release();
  }
  for (const k of Object.keys(out['cpu']!)) {
    const a = out['cpu']![k]!.data as Float32Array;
    const b = out['webgpu']![k]!.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    assert.ok(worst <= 1e-4, `${k}: WebGPU and CPU differ by ${worst}`);
  }
}

describe('training graphs on the WebGPU provider', { skip }, () => {
  test('segmentation U-Net (Dice + CE; conv, InstanceNorm, MaxPool, up-sampling, concat)', async () => {
    await compareStep(
      segmentationTask({ inChannels: 1, outChannels: 3, base: 4, depth: 3 }, [8, 8, 8], {
        dice: 1,
        crossEntropy: 1,
      }),
    );
  });
  test('U-Net variant (strided conv, pixel-shuffle up, GroupNorm, trilinear, avg-pool) with batch-as-channel and im2col weight gradients', async () => {
    const a = { inChannels: 1, outChannels: 2, base: 4, depth: 2 } as const;
    await compareStep(
      segmentationTask({ ...a, down: 'strided', up: 'pixelshuffle', norm: 'group' }, [8, 8, 8]),
      'batchAsChannel',
    );
    await compareStep(
      segmentationTask({ ...a, down: 'avgpool', up: 'trilinear' }, [8, 8, 8]),
      'im2col',
    );
  });
  test('registration net (LNCC + smoothness; warp by GatherElements, gradient by ScatterElements)', async () => {
    await compareStep(registrationTask({ base: 4, depth: 2, window: 3 }, [8, 8, 8]));
  });
});
