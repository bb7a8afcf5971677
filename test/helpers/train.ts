/**
 * Runs a training graph of the engine for a few steps with a plain onnxruntime-node CPU session,
 * feeding each step's `<state>__next` outputs back as the next step's state: what the unit tests
 * use to see a loss fall without the Trainer.
 */
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import type { buildTrainingGraph } from '@rrl/models/engine/autodiff/training.js';

type TrainingGraph = ReturnType<typeof buildTrainingGraph>;

export async function trainSteps(
  { model, spec }: TrainingGraph,
  params: Map<string, Float32Array>,
  data: Record<string, Float32Array>,
  steps: number,
  lr: number,
): Promise<{ losses: number[]; state: Map<string, Float32Array> }> {
  const state = new Map<string, Float32Array>();
  for (const s of spec.stateInputs) {
    state.set(
      s.name,
      s.kind === 'param'
        ? params.get(s.name)!
        : new Float32Array(s.dims.reduce((a, b) => a * b, 1)),
    );
  }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 2,
  });
  const losses: number[] = [];
  try {
    for (let step = 1; step <= steps; step++) {
      const feeds: Record<string, ort.Tensor> = {
        lr: new ort.Tensor('float32', Float32Array.of(lr), []),
        step: new ort.Tensor('float32', Float32Array.of(step), []),
      };
      for (const d of spec.dataInputs) {
        const values = data[d.name];
        assert.ok(values, `no data for the training graph's input ${d.name}`);
        feeds[d.name] = new ort.Tensor('float32', values, d.dims);
      }
      for (const s of spec.stateInputs)
        feeds[s.name] = new ort.Tensor('float32', state.get(s.name)!, s.dims);
      const out = await session.run(feeds);
      const l = (out['loss']!.data as Float32Array)[0]!;
      assert.ok(Number.isFinite(l), `loss is not finite at step ${step}`);
      losses.push(l);
      for (const s of spec.stateInputs)
        state.set(s.name, out[spec.stateOutputs[s.name]!]!.data as Float32Array);
    }
  } finally {
    await session.release();
  }
  return { losses, state };
}
