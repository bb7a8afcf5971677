/** A tiny 3-D conv network + MSE loss built with the engine's graph builder, for runtime tests. */
import { buildForwardGraph, buildTrainingGraph } from '@rrl/models/engine/autodiff/training.js';
import { Graph, type Value } from '@rrl/models/engine/graph/graph.js';
import type { OptimizerConfig } from '@rrl/models/engine/optim/optim.js';

export const IMAGE_DIMS = [1, 1, 6, 5, 4] as const;
export const TARGET_DIMS = [1, 2, 6, 5, 4] as const;

export interface TinyNet {
  graph: Graph;
  image: Value;
  target: Value;
  logits: Value;
  loss: Value;
}

export function tinyNet(): TinyNet {
  const g = new Graph();
  const image = g.input('image', IMAGE_DIMS);
  const target = g.input('target', TARGET_DIMS);
  const w1 = g.param('c1.w', [4, 1, 3, 3, 3], { kind: 'normal', std: 0.25 });
  const b1 = g.param('c1.b', [4], { kind: 'zeros' });
  const s1 = g.param('n1.scale', [4], { kind: 'ones' });
  const t1 = g.param('n1.bias', [4], { kind: 'zeros' });
  const w2 = g.param('c2.w', [2, 4, 1, 1, 1], { kind: 'normal', std: 0.5 });
  const b2 = g.param('c2.b', [2], { kind: 'zeros' });
  const h = g.leakyRelu(g.instanceNorm(g.conv(image, w1, b1, { pads: 1 }), s1, t1), 0.01);
  const logits = g.conv(h, w2, b2);
  const d = g.sub(logits, target);
  const loss = g.reduceMean(g.mul(d, d));
  return { graph: g, image, target, logits, loss };
}

export function tinyTraining(optimizer: OptimizerConfig = { type: 'adamw', weightDecay: 0.01 }) {
  const net = tinyNet();
  const built = buildTrainingGraph({
    graph: net.graph,
    loss: net.loss,
    metrics: { meanLogit: net.graph.reduceMean(net.logits) },
    optimizer,
  });
  return { net, built };
}

export function tinyForward() {
  const net = tinyNet();
  return {
    net,
    forward: buildForwardGraph({
      graph: net.graph,
      outputs: { logits: net.logits },
      params: 'inputs',
    }),
  };
}

/** Deterministic data: a smooth image and a target made from it. */
export function tinyBatch(noise = 0, rng?: { normal(): number }) {
  const n = IMAGE_DIMS.reduce((a: number, b: number) => a * b, 1);
  const image = new Float32Array(n);
  for (let i = 0; i < n; i++) image[i] = Math.sin(i * 0.37) + (rng ? noise * rng.normal() : 0);
  const target = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    target[i] = image[i]! > 0 ? 1 : 0;
    target[n + i] = image[i]! > 0 ? 0 : 1;
  }
  return {
    image: { data: image, dims: IMAGE_DIMS },
    target: { data: target, dims: TARGET_DIMS },
  };
}
