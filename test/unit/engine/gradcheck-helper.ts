/**
 * Gradient checking against central finite differences, with graphs run by onnxruntime-node (CPU).
 * For each checked tensor, a random direction v: compares (L(x+εv) − L(x−εv)) / 2ε with <∇L, v>,
 * where L = Σ out·R for a fixed random R (so every output element matters).
 */
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Graph, type Value } from '@rrl/models/engine/graph/graph.js';
import { Rng } from '@rrl/models/engine/graph/init.js';
import { emitGraph } from '@rrl/models/engine/graph/emit.js';
import { gradients, type GradientOptions } from '@rrl/models/engine/autodiff/autodiff.js';
import type { TensorData } from '@rrl/models/engine/onnx/model.js';

export type Feeds = Record<string, ort.Tensor>;

export function randn(n: number, rng: Rng, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

export function tensorOf(v: Value, data: TensorData): ort.Tensor {
  const dims = [...v.shape];
  switch (v.dtype) {
    case 'float32':
      return new ort.Tensor('float32', data as Float32Array, dims);
    case 'int64':
      return new ort.Tensor('int64', data as BigInt64Array, dims);
    case 'bool':
      return new ort.Tensor('bool', data as Uint8Array, dims);
    default:
      throw new Error(`gradcheck: unsupported input dtype ${v.dtype}`);
  }
}

export async function runModel(
  model: Uint8Array,
  feeds: Feeds,
): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 2,
    graphOptimizationLevel: 'all',
  });
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

export interface CheckOptions {
  seed?: number;
  eps?: number;
  rtol?: number;
  /** values for some inputs/params (others: standard normal). */
  data?: Record<string, TensorData>;
  gradientOptions?: GradientOptions;
  /** Scale of the random inputs (default 1). */
  scale?: number;
  /** Absolute tolerance; default 5e-7·max(1, |L|)/eps (float32 rounding of the two loss values). */
  atol?: number;
  /** Finite-difference stencil: 2 (central, default) or 5 points (O(eps⁴), for whole networks). */
  stencil?: 2 | 5;
  /** Report instead of asserting (debugging). */
  report?: boolean;
}

export interface BuildResult {
  out: Value;
  /** Values (inputs or parameters) to check; default every float input and parameter. */
  wrt?: Value[];
}

/** Builds the graph with `build`, then checks the gradient of Σ out·R for each `wrt` tensor. */
export async function gradCheck(
  build: (g: Graph) => BuildResult,
  o: CheckOptions = {},
): Promise<number[]> {
  const rng = new Rng(o.seed ?? 1234);
  const g = new Graph();
  const { out, wrt: wrtGiven } = build(g);
  const leaves = [...g.inputs, ...[...g.params.keys()].map((n) => g.value(n))];
  const wrt = wrtGiven ?? leaves.filter((v) => v.dtype === 'float32');
  const values = new Map<string, TensorData>();
  for (const v of leaves) {
    const given = o.data?.[v.name];
    if (given) values.set(v.name, given);
    else if (v.dtype === 'float32')
      values.set(
        v.name,
        randn(
          v.shape.reduce((a, b) => a * b, 1),
          rng,
          o.scale ?? 1,
        ),
      );
    else throw new Error(`gradcheck: give data for non-float input ${v.name}`);
  }
  const R = g.constant(
    randn(
      out.shape.reduce((a, b) => a * b, 1),
      rng,
    ),
    out.shape,
    'float32',
    'R',
  );
  const loss = g.reduceSum(g.mul(out, R), undefined, false);
  const fwd = emitGraph(g, { inputs: leaves, outputs: [['L', loss]] });
  const grads = gradients(g, loss, wrt, o.gradientOptions);
  const bwd = emitGraph(g, {
    inputs: leaves,
    outputs: [['L', loss], ...grads.map((gv, i) => [`g${i}`, gv] as const)],
  });
  const feeds = (override?: Map<string, Float32Array>): Feeds => {
    const f: Feeds = {};
    for (const v of leaves) f[v.name] = tensorOf(v, override?.get(v.name) ?? values.get(v.name)!);
    return f;
  };
  const base = await runModel(bwd, feeds());
  const session = await ort.InferenceSession.create(fwd, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 2,
  });
  const eps = o.eps ?? 1e-2;
  const errs: number[] = [];
  try {
    for (let i = 0; i < wrt.length; i++) {
      const v = wrt[i]!;
      const x = values.get(v.name) as Float32Array;
      const dir = randn(x.length, rng);
      const gr = base[`g${i}`]!.data as Float32Array;
      assert.equal(gr.length, x.length, `gradient of ${v.name} has the wrong size`);
      let ad = 0;
      for (let k = 0; k < x.length; k++) ad += gr[k]! * dir[k]!;
      const lossAt = async (h: number): Promise<number> => {
        const moved = new Float32Array(x.length);
        for (let k = 0; k < x.length; k++) moved[k] = x[k]! + h * dir[k]!;
        return (
          (await session.run(feeds(new Map([[v.name, moved]]))))['L']!.data as Float32Array
        )[0]!;
      };
      const [lp, lm] = [await lossAt(eps), await lossAt(-eps)];
      let fd: number;
      if (o.stencil === 5) {
        const [lp2, lm2] = [await lossAt(2 * eps), await lossAt(-2 * eps)];
        fd = (-lp2 + 8 * lp - 8 * lm + lm2) / (12 * eps);
      } else fd = (lp - lm) / (2 * eps);
      const l0 = Math.abs((base['L']!.data as Float32Array)[0]!);
      const atol = o.atol ?? (5e-7 * Math.max(1, l0)) / eps;
      const err =
        Math.max(0, Math.abs(fd - ad) - atol) / Math.max(Math.abs(fd), Math.abs(ad), 1e-30);
      errs.push(err);
      if (o.report) console.log(`${v.name}: ad ${ad} fd ${fd} err ${err}`);
      else
        assert.ok(
          err <= (o.rtol ?? 1e-2),
          `gradient of ${v.name}: autodiff ${ad.toPrecision(6)} vs finite differences ${fd.toPrecision(6)} (rel err ${err.toExponential(2)})`,
        );
    }
  } finally {
    await session.release();
  }
  return errs;
}
