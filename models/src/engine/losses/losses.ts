/**
 * Losses the method needs, as graph ops (each is differentiable by autodiff/ and gradient-checked
 * in test/unit/engine). Every loss returns a float32 scalar Value (shape []).
 */
import type { Graph, Value } from '../graph/graph.js';

function spatialAxes(x: Value): number[] {
  return x.shape.slice(2).map((_, i) => i + 2);
}

export interface DiceOptions {
  /** Added to numerator and denominator (default 1e-5). */
  smooth?: number;
  /** Include class 0 in the mean (default false). */
  includeBackground?: boolean;
  /**
   * Leave out the voxels whose target is all zeros (labels marked "ignore"): the probabilities
   * are multiplied by the target's sum over the classes (1 for a one-hot or soft target, 0 where
   * ignored) before the sums, so an ignored voxel adds nothing to Σ p and gets no gradient.
   */
  ignoreEmptyTarget?: boolean;
}

/**
 * Multi-class soft Dice from logits [N,C,…] and a one-hot target [N,C,…] (float32):
 * probabilities = softmax over C, then `probabilityDiceLoss`. Also returns the per-class soft Dice
 * [C'] as a metric.
 */
export function softDiceLoss(
  g: Graph,
  logits: Value,
  target: Value,
  o: DiceOptions = {},
): { loss: Value; perClass: Value } {
  return probabilityDiceLoss(g, g.softmax(logits, 1), target, o);
}

/**
 * Multi-class soft Dice between probabilities [N,C,…] and a one-hot or soft target [N,C,…]: per
 * class d_c = (2·Σ p·t + s) / (Σ p + Σ t + s) over batch and space; loss = 1 − mean_c d_c.
 */
export function probabilityDiceLoss(
  g: Graph,
  p: Value,
  target: Value,
  o: DiceOptions = {},
): { loss: Value; perClass: Value } {
  const s = o.smooth ?? 1e-5;
  const axes = [0, ...spatialAxes(p)];
  if (o.ignoreEmptyTarget) p = g.mul(p, g.reduceSum(target, [1], true));
  let inter = g.reduceSum(g.mul(p, target), axes, false);
  let denom = g.add(g.reduceSum(p, axes, false), g.reduceSum(target, axes, false));
  const c = p.shape[1]!;
  if (!(o.includeBackground ?? false) && c > 1) {
    inter = g.slice(inter, [1], [c], [0]);
    denom = g.slice(denom, [1], [c], [0]);
  }
  const dice = g.div(g.add(g.mul(inter, 2), s), g.add(denom, s));
  return { loss: g.sub(1, g.reduceMean(dice, [0], false)), perClass: dice };
}

/** Mean voxel-wise cross-entropy between softmax(logits) and a one-hot (or soft) target [N,C,…]. */
export function crossEntropyLoss(g: Graph, logits: Value, target: Value): Value {
  const ls = g.logSoftmax(logits, 1);
  const n = logits.shape.reduce((a, b) => a * b, 1) / logits.shape[1]!;
  return g.mul(g.reduceSum(g.mul(ls, target), undefined, false), -1 / n);
}

export interface LnccOptions {
  /** Cubic window edge (odd), default 9. */
  window?: number;
  eps?: number;
  /** Three 1-D average pools (default) instead of one 3-D pool. */
  separable?: boolean;
}

/**
 * Windowed local normalised cross-correlation (voxelmorph NCC), returned as −mean(cc) so that
 * lower is better: cc = (E[IJ] − E[I]E[J])² / ((E[I²] − E[I]²)(E[J²] − E[J]²) + eps), window
 * means over zero-padded w³ neighbourhoods (AveragePool with count_include_pad).
 */
export function lnccLoss(g: Graph, a: Value, b: Value, o: LnccOptions = {}): Value {
  const w = o.window ?? 9;
  if (w % 2 !== 1) throw new Error(`lncc: window must be odd, got ${w}`);
  if (a.shape[1] !== 1 || b.shape[1] !== 1) throw new Error('lncc: images must have one channel');
  const eps = o.eps ?? 1e-5;
  const p = (w - 1) / 2;
  const stack = g.concat([a, b, g.mul(a, a), g.mul(b, b), g.mul(a, b)], 1);
  let m = stack;
  const sd = a.shape.length - 2;
  if (o.separable ?? true) {
    for (let ax = 0; ax < sd; ax++) {
      const k = new Array<number>(sd).fill(1);
      k[ax] = w;
      const pads = new Array<number>(2 * sd).fill(0);
      pads[ax] = p;
      pads[ax + sd] = p;
      m = g.averagePool(m, { kernel: k, strides: 1, pads, countIncludePad: true });
    }
  } else m = g.averagePool(m, { kernel: w, strides: 1, pads: p, countIncludePad: true });
  const ch = (i: number): Value => g.slice(m, [i], [i + 1], [1]);
  const [mA, mB, mAA, mBB, mAB] = [ch(0), ch(1), ch(2), ch(3), ch(4)];
  const cross = g.sub(mAB, g.mul(mA, mB));
  const varA = g.sub(mAA, g.mul(mA, mA));
  const varB = g.sub(mBB, g.mul(mB, mB));
  const cc = g.div(g.mul(cross, cross), g.add(g.mul(varA, varB), eps));
  return g.neg(g.reduceMean(cc, undefined, false));
}

/**
 * Displacement smoothness ‖∇φ‖² (voxelmorph Grad l2): mean of squared forward differences along
 * each spatial axis, averaged over the axes. disp [N,3,D,H,W].
 */
export function smoothnessLoss(g: Graph, disp: Value): Value {
  const axes = spatialAxes(disp);
  let total: Value | undefined;
  for (const ax of axes) {
    const n = disp.shape[ax]!;
    const d = g.sub(g.slice(disp, [1], [n], [ax]), g.slice(disp, [0], [n - 1], [ax]));
    const term = g.reduceMean(g.mul(d, d), undefined, false);
    total = total ? g.add(total, term) : term;
  }
  return g.mul(total!, 1 / axes.length);
}

/** Mean absolute difference (feature matching). */
export function l1Loss(g: Graph, a: Value, b: Value): Value {
  return g.reduceMean(g.abs(g.sub(a, b)), undefined, false);
}

/** Mean squared difference (feature matching). */
export function mseLoss(g: Graph, a: Value, b: Value): Value {
  const d = g.sub(a, b);
  return g.reduceMean(g.mul(d, d), undefined, false);
}
