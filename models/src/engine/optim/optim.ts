/**
 * Optimiser updates written as graph ops, so that one run of the training graph is one step.
 * Each returns the new parameter value and the new optimiser state values (in state order).
 */
import type { Graph, Value } from '../graph/graph.js';

export interface AdamWConfig {
  type: 'adamw';
  beta1?: number; // 0.9
  beta2?: number; // 0.999
  eps?: number; // 1e-8
  /** Decoupled weight decay (AdamW): p ← p − lr·(update + wd·p). */
  weightDecay?: number; // 0
}

export interface SgdConfig {
  type: 'sgd';
  momentum?: number; // 0.9
  nesterov?: boolean; // false
  /** L2 weight decay added to the gradient. */
  weightDecay?: number; // 0
}

export type OptimizerConfig = AdamWConfig | SgdConfig;

/** Suffixes of the optimiser state tensors kept per parameter. */
export function optimizerStateSuffixes(o: OptimizerConfig): string[] {
  return o.type === 'adamw' ? ['__m', '__v'] : ['__mom'];
}

export interface StepScalars {
  lr: Value; // float32 []
  step: Value; // float32 [], 1-based
}

export interface UpdateResult {
  param: Value;
  state: Value[];
}

/** Bias-correction factors of Adam, shared by every parameter: 1/(1-β1^t), 1/(1-β2^t). */
export function adamCorrections(
  g: Graph,
  o: AdamWConfig,
  s: StepScalars,
): { c1: Value; c2: Value } {
  const b1 = o.beta1 ?? 0.9;
  const b2 = o.beta2 ?? 0.999;
  const c1 = g.reciprocal(g.sub(1, g.powT(g.scalar(b1), s.step)));
  const c2 = g.reciprocal(g.sub(1, g.powT(g.scalar(b2), s.step)));
  return { c1, c2 };
}

export function adamwUpdate(
  g: Graph,
  o: AdamWConfig,
  s: StepScalars,
  corr: { c1: Value; c2: Value },
  p: Value,
  grad: Value,
  m: Value,
  v: Value,
): UpdateResult {
  const b1 = o.beta1 ?? 0.9;
  const b2 = o.beta2 ?? 0.999;
  const eps = o.eps ?? 1e-8;
  const wd = o.weightDecay ?? 0;
  const m1 = g.add(g.mul(m, b1), g.mul(grad, 1 - b1));
  const v1 = g.add(g.mul(v, b2), g.mul(g.mul(grad, grad), 1 - b2));
  const mhat = g.mul(m1, corr.c1);
  const vhat = g.mul(v1, corr.c2);
  let upd = g.div(mhat, g.add(g.sqrt(vhat), eps));
  if (wd !== 0) upd = g.add(upd, g.mul(p, wd));
  const p1 = g.sub(p, g.mul(upd, s.lr));
  return { param: p1, state: [m1, v1] };
}

export function sgdUpdate(
  g: Graph,
  o: SgdConfig,
  s: StepScalars,
  p: Value,
  grad: Value,
  mom: Value,
): UpdateResult {
  const mu = o.momentum ?? 0.9;
  const wd = o.weightDecay ?? 0;
  const gr = wd !== 0 ? g.add(grad, g.mul(p, wd)) : grad;
  const mom1 = g.add(g.mul(mom, mu), gr);
  const dir = o.nesterov ? g.add(gr, g.mul(mom1, mu)) : mom1;
  return { param: g.sub(p, g.mul(dir, s.lr)), state: [mom1] };
}

/**
 * Mutual exponential moving average between two parameter sets, using the old values of both:
 * a' = α·a + (1−α)·b and b' = α·b + (1−α)·a.
 */
export function mutualEma(
  g: Graph,
  a: Value,
  b: Value,
  alpha: Value | number,
): { a: Value; b: Value } {
  const one = typeof alpha === 'number' ? 1 - alpha : g.sub(1, alpha);
  return {
    a: g.add(g.mul(a, alpha), g.mul(b, one)),
    b: g.add(g.mul(b, alpha), g.mul(a, one)),
  };
}
