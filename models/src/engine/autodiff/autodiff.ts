/**
 * Reverse-mode automatic differentiation on the builder's IR: appends, to a Graph, the nodes that
 * compute d(loss)/d(wrt) with ONNX ops that both the CPU and the WebGPU providers of ONNX Runtime
 * support (no ConvTranspose, no GridSample).
 */
import type { Graph, GNode, Value } from '../graph/graph.js';
import { VJP_RULES, type VjpContext } from './vjp.js';

/**
 * How a convolution's weight gradient is formed (measured: gemm27 wins on the CPU; batch-as-channel
 * / im2col on a GPU). 'gemm27' uses the stacked Gemms where they were measured faster (Cin ≤ Cout
 * on grids of ≥ 32k voxels, `vjp.ts#stackedPays`) and the flat-shift Gemms elsewhere; 'stacked'
 * uses the stacked Gemms wherever they apply (tests, benchmarks).
 */
export type ConvGradWeightMode = 'gemm27' | 'stacked' | 'batchAsChannel' | 'im2col';

export interface GradientOptions {
  convGradWeight?: ConvGradWeightMode;
}

/** Ops whose outputs carry no gradient. */
const NON_DIFFERENTIABLE = new Set([
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Greater',
  'Less',
  'Equal',
  'GreaterOrEqual',
  'LessOrEqual',
  'Not',
  'And',
  'Or',
  'Shape',
  'ArgMax',
  'ArgMin',
  'OneHot',
]);

/**
 * Appends the backward pass of `loss` (any shape; seeded with ones) to `g` and returns, for each
 * value in `wrt`, its gradient (a zero tensor when the loss does not depend on it).
 */
export function gradients(
  g: Graph,
  loss: Value,
  wrt: readonly Value[],
  opts: GradientOptions = {},
): Value[] {
  const nodeOf = new Map<string, GNode>();
  for (const n of g.nodes) for (const o of n.outputs) nodeOf.set(o, n);

  // values that depend on some `wrt` value through differentiable ops
  const requires = new Set(wrt.map((v) => v.name));
  for (const n of g.nodes) {
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    if (n.inputs.some((i) => requires.has(i))) {
      for (const o of n.outputs)
        if (g.value(o).dtype === 'float32' && !g.noGradient.has(o)) requires.add(o);
    }
  }
  // nodes the loss depends on
  const onPath = new Set<GNode>();
  const stack = [loss.name];
  const seen = new Set<string>();
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const n = nodeOf.get(name);
    if (!n || !requires.has(name)) continue;
    onPath.add(n);
    stack.push(...n.inputs.filter((i) => i !== '' && requires.has(i)));
  }

  const contributions = new Map<string, Value[]>();
  const addGrad = (name: string, v: Value): void => {
    const list = contributions.get(name);
    if (list) list.push(v);
    else contributions.set(name, [v]);
  };
  const total = (name: string): Value | undefined => {
    const list = contributions.get(name);
    if (!list || list.length === 0) return undefined;
    let acc = list[0]!;
    for (let i = 1; i < list.length; i++) acc = g.add(acc, list[i]!);
    contributions.set(name, [acc]);
    return acc;
  };

  addGrad(loss.name, g.expand(g.scalar(1), loss.shape));
  const forwardNodes = g.nodes.filter((n) => onPath.has(n));
  for (let i = forwardNodes.length - 1; i >= 0; i--) {
    const n = forwardNodes[i]!;
    const dys = n.outputs.map((o) => total(o));
    if (dys.every((d) => d === undefined)) continue;
    const rule = VJP_RULES[n.op];
    if (!rule) {
      throw new Error(
        `autodiff: no gradient rule for ONNX op ${n.op} (node ${n.name}); ` +
          `supported: ${Object.keys(VJP_RULES).sort().join(', ')}`,
      );
    }
    const ctx: VjpContext = {
      g,
      node: n,
      inputs: n.inputs.map((x) => (x === '' ? undefined : g.value(x))),
      outputs: n.outputs.map((x) => g.value(x)),
      dys,
      needs: n.inputs.map((x) => x !== '' && requires.has(x)),
      opts,
    };
    const grads = rule(ctx);
    grads.forEach((gr, k) => {
      if (gr && ctx.needs[k]) {
        const target = ctx.inputs[k]!;
        if (
          gr.shape.length !== target.shape.length ||
          gr.shape.some((d, j) => d !== target.shape[j])
        ) {
          throw new Error(
            `autodiff: rule for ${n.op} gave gradient [${gr.shape.join(',')}] for input ${k} of shape [${target.shape.join(',')}]`,
          );
        }
        addGrad(target.name, gr);
      }
    });
  }
  return wrt.map((v) => total(v.name) ?? g.expand(g.scalar(0), v.shape));
}
