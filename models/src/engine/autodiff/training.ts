/**
 * Training, forward and EMA graphs: the ONNX models the runtime runs. One run of the training graph
 * is one optimisation step (forward, backward, optimiser update).
 */
import type { DType } from '../onnx/model.js';
import { emitGraph } from '../graph/emit.js';
import { Graph, type Value } from '../graph/graph.js';
import {
  adamCorrections,
  adamwUpdate,
  mutualEma,
  optimizerStateSuffixes,
  sgdUpdate,
  type OptimizerConfig,
} from '../optim/optim.js';
import { gradients, type GradientOptions } from './autodiff.js';

export interface TensorSpec {
  name: string;
  dims: number[];
  type: DType;
}

export interface StateInputSpec {
  name: string;
  dims: number[];
  kind: 'param' | 'optim';
  /** The parameter this state belongs to (itself for kind 'param'). */
  param: string;
}

export interface TrainingGraphSpec {
  dataInputs: TensorSpec[];
  /** Scalar float32 inputs: learning rate and 1-based step count. */
  scalarInputs: { lr: 'lr'; step: 'step' };
  stateInputs: StateInputSpec[];
  /** state input name → output name (`<state>__next`). */
  stateOutputs: Record<string, string>;
  lossOutput: 'loss';
  /** `metric:<name>` outputs. */
  metricOutputs: string[];
  /** `grad:<input>` outputs (gradients of data inputs, when asked for). */
  inputGradOutputs: string[];
  params: { name: string; dims: number[]; trainable: boolean }[];
  optimizer: OptimizerConfig & { stateSuffixes: string[] };
  gradientOptions: GradientOptions;
  ema?: { pairs: [string, string][]; alpha: number };
}

export interface TrainingGraphOptions {
  graph: Graph;
  /** Scalar loss value of `graph`. */
  loss: Value;
  metrics?: Record<string, Value>;
  optimizer: OptimizerConfig;
  gradientOptions?: GradientOptions;
  /** Data inputs whose gradients are wanted as `grad:<name>` outputs. */
  inputGradients?: readonly string[];
  /** Mutual EMA applied to the updated parameters of each pair (a, b) after the optimiser step. */
  ema?: { pairs: readonly (readonly [string, string])[]; alpha: number };
  opset?: number;
}

export interface BuiltGraph<S> {
  model: Uint8Array;
  spec: S;
}

/** Names of every value that `outputs` depend on. */
export function dependencies(g: Graph, outputs: readonly Value[]): Set<string> {
  const producer = new Map<string, readonly string[]>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n.inputs);
  const seen = new Set<string>();
  const stack = outputs.map((v) => v.name);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n === '' || seen.has(n)) continue;
    seen.add(n);
    stack.push(...(producer.get(n) ?? []));
  }
  return seen;
}

export function buildTrainingGraph(o: TrainingGraphOptions): BuiltGraph<TrainingGraphSpec> {
  if (o.loss.shape.length !== 0) {
    throw new Error(
      `buildTrainingGraph: the loss must be a scalar (shape []), got [${o.loss.shape.join(',')}]`,
    );
  }
  const g = o.graph.clone();
  const metrics = Object.entries(o.metrics ?? {});
  const deps = dependencies(g, [o.loss, ...metrics.map(([, v]) => v)]);
  const params = [...g.params.values()];
  const trainable = params.filter((p) => p.trainable);
  const inputGradNames = [...(o.inputGradients ?? [])];
  const wrt = [...trainable.map((p) => g.value(p.name)), ...inputGradNames.map((n) => g.value(n))];
  const grads = gradients(g, o.loss, wrt, o.gradientOptions);

  const lr = g.input('lr', [], 'float32');
  const step = g.input('step', [], 'float32');
  const suffixes = optimizerStateSuffixes(o.optimizer);
  const stateInputs: Value[] = [];
  const stateSpecs: StateInputSpec[] = [];
  const outputs: [string, Value][] = [['loss', o.loss]];
  const next = new Map<string, Value>();
  const corr =
    o.optimizer.type === 'adamw' ? adamCorrections(g, o.optimizer, { lr, step }) : undefined;
  const newParam = new Map<string, Value>();

  params.forEach((p) => {
    const pv = g.value(p.name);
    stateInputs.push(pv);
    stateSpecs.push({ name: p.name, dims: [...p.shape], kind: 'param', param: p.name });
    if (!p.trainable) {
      newParam.set(p.name, pv);
      return;
    }
    const grad = grads[trainable.indexOf(p)]!;
    const st = suffixes.map((s) => {
      const v = g.input(`${p.name}${s}`, p.shape, 'float32');
      stateInputs.push(v);
      stateSpecs.push({ name: v.name, dims: [...p.shape], kind: 'optim', param: p.name });
      return v;
    });
    const res =
      o.optimizer.type === 'adamw'
        ? adamwUpdate(g, o.optimizer, { lr, step }, corr!, pv, grad, st[0]!, st[1]!)
        : sgdUpdate(g, o.optimizer, { lr, step }, pv, grad, st[0]!);
    newParam.set(p.name, res.param);
    st.forEach((s, i) => next.set(s.name, res.state[i]!));
  });
  for (const [a, b] of o.ema?.pairs ?? []) {
    const r = mutualEma(g, newParam.get(a)!, newParam.get(b)!, o.ema!.alpha);
    newParam.set(a, r.a);
    newParam.set(b, r.b);
  }
  for (const [k, v] of newParam) next.set(k, v);

  const stateOutputs: Record<string, string> = {};
  for (const s of stateInputs) {
    const outName = `${s.name}__next`;
    stateOutputs[s.name] = outName;
    outputs.push([outName, next.get(s.name)!]);
  }
  const metricOutputs: string[] = [];
  for (const [name, v] of metrics) {
    metricOutputs.push(`metric:${name}`);
    outputs.push([`metric:${name}`, v]);
  }
  const inputGradOutputs: string[] = [];
  inputGradNames.forEach((n, i) => {
    inputGradOutputs.push(`grad:${n}`);
    outputs.push([`grad:${n}`, grads[trainable.length + i]!]);
  });
  const dataInputs = g.inputs.filter((v) => deps.has(v.name) && v !== lr && v !== step);
  const model = emitGraph(g, {
    inputs: [...dataInputs, lr, step, ...stateInputs],
    outputs,
    opset: o.opset,
    graphName: 'training',
  });
  return {
    model,
    spec: {
      dataInputs: dataInputs.map((v) => ({ name: v.name, dims: [...v.shape], type: v.dtype })),
      scalarInputs: { lr: 'lr', step: 'step' },
      stateInputs: stateSpecs,
      stateOutputs,
      lossOutput: 'loss',
      metricOutputs,
      inputGradOutputs,
      params: params.map((p) => ({ name: p.name, dims: [...p.shape], trainable: p.trainable })),
      optimizer: { ...o.optimizer, stateSuffixes: suffixes },
      gradientOptions: { ...o.gradientOptions },
      ema: o.ema
        ? { pairs: o.ema.pairs.map(([a, b]) => [a, b] as [string, string]), alpha: o.ema.alpha }
        : undefined,
    },
  };
}

export interface ForwardGraphSpec {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Parameters that are graph inputs (when not baked). */
  paramInputs: { name: string; dims: number[] }[];
}

export interface ForwardGraphOptions {
  graph: Graph;
  outputs: Record<string, Value>;
  /** 'inputs': parameters are graph inputs (trainer eval); a Map: baked as initializers (export). */
  params: 'inputs' | ReadonlyMap<string, Float32Array>;
  opset?: number;
}

export function buildForwardGraph(o: ForwardGraphOptions): BuiltGraph<ForwardGraphSpec> {
  const g = o.graph;
  const outs = Object.entries(o.outputs);
  const deps = dependencies(
    g,
    outs.map(([, v]) => v),
  );
  const dataInputs = g.inputs.filter((v) => deps.has(v.name));
  const usedParams = [...g.params.values()].filter((p) => deps.has(p.name));
  let paramInputs: Value[] = [];
  let bake: ReadonlyMap<string, Float32Array> | undefined;
  if (o.params === 'inputs') paramInputs = usedParams.map((p) => g.value(p.name));
  else {
    const given = o.params;
    bake = given;
    const missing = usedParams.filter((p) => !given.has(p.name));
    if (missing.length > 0) {
      throw new Error(
        `buildForwardGraph: no values given for parameters ${missing.map((p) => p.name).join(', ')}`,
      );
    }
    for (const p of usedParams) {
      const arr = given.get(p.name)!;
      const n = p.shape.reduce((a, b) => a * b, 1);
      if (arr.length !== n) {
        throw new Error(
          `buildForwardGraph: parameter ${p.name} needs ${n} values, got ${arr.length}`,
        );
      }
    }
  }
  const model = emitGraph(g, {
    inputs: [...dataInputs, ...paramInputs],
    outputs: outs,
    bake,
    opset: o.opset,
    graphName: 'forward',
  });
  return {
    model,
    spec: {
      inputs: dataInputs.map((v) => ({ name: v.name, dims: [...v.shape], type: v.dtype })),
      outputs: outs.map(([name, v]) => ({ name, dims: [...v.shape], type: v.dtype })),
      paramInputs: paramInputs.map((v) => ({ name: v.name, dims: [...v.shape] })),
    },
  };
}

export interface EmaGraphSpec {
  /** Scalar float32 input `alpha`. */
  alphaInput: 'alpha';
  pairs: [string, string][];
  stateInputs: { name: string; dims: number[] }[];
  stateOutputs: Record<string, string>;
}

/**
 * A standalone graph for the mutual EMA between two parameter sets: inputs `alpha` and every
 * tensor of each pair (same shapes), outputs `<name>__next` computed from the old values.
 */
export function buildEmaGraph(
  pairs: readonly { a: string; b: string; dims: readonly number[] }[],
  opts: { opset?: number } = {},
): BuiltGraph<EmaGraphSpec> {
  const g = new Graph();
  const alpha = g.input('alpha', [], 'float32');
  const outputs: [string, Value][] = [];
  const inputs: Value[] = [alpha];
  const stateOutputs: Record<string, string> = {};
  const stateInputs: { name: string; dims: number[] }[] = [];
  for (const p of pairs) {
    const a = g.input(p.a, p.dims);
    const b = g.input(p.b, p.dims);
    inputs.push(a, b);
    const r = mutualEma(g, a, b, alpha);
    outputs.push([`${p.a}__next`, r.a], [`${p.b}__next`, r.b]);
    stateOutputs[p.a] = `${p.a}__next`;
    stateOutputs[p.b] = `${p.b}__next`;
    stateInputs.push({ name: p.a, dims: [...p.dims] }, { name: p.b, dims: [...p.dims] });
  }
  const model = emitGraph(g, { inputs, outputs, opset: opts.opset, graphName: 'ema' });
  return {
    model,
    spec: { alphaInput: 'alpha', pairs: pairs.map((p) => [p.a, p.b]), stateInputs, stateOutputs },
  };
}
