/**
 * A typed builder for ONNX graphs with static shape inference. Every value has a known dtype and
 * shape; nodes are kept in topological (creation) order. Parameters are named float32 tensors with
 * an initialiser and a seed. The same Graph is later pruned and emitted (graph/emit.ts), or
 * differentiated (autodiff/).
 */
import {
  dtypeCode,
  type DType,
  type OnnxAttr,
  type OnnxTensor,
  type TensorData,
} from '../onnx/model.js';
import { hashSeed, initialise, type Initializer } from './init.js';

export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface GNode {
  readonly op: string;
  readonly inputs: readonly string[]; // '' = omitted optional input
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, OnnxAttr>>;
  readonly name: string;
}

export interface ParamInfo {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: Initializer;
  /** Explicit seed; otherwise derived from the global seed and the parameter name. */
  readonly seed?: number;
  readonly fanIn?: number;
  readonly fanOut?: number;
  readonly trainable: boolean;
}

export type Operand = Value | number;

export const attr = {
  i: (value: number): OnnxAttr => ({ kind: 'int', value }),
  is: (value: readonly number[]): OnnxAttr => ({ kind: 'ints', value }),
  f: (value: number): OnnxAttr => ({ kind: 'float', value }),
  fs: (value: readonly number[]): OnnxAttr => ({ kind: 'floats', value }),
  s: (value: string): OnnxAttr => ({ kind: 'string', value }),
};

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function broadcastShapes(...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const v = k >= 0 ? s[k]! : 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) {
          throw new Error(
            `broadcast: shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')} are incompatible`,
          );
        }
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

function triple(v: number | readonly number[], n: number): number[] {
  return typeof v === 'number' ? new Array<number>(n).fill(v) : [...v];
}

export interface ConvOptions {
  strides?: number | readonly number[];
  /** number (all sides), per-axis [p0,p1,p2] (symmetric) or ONNX [begins..., ends...]. */
  pads?: number | readonly number[];
  dilations?: number | readonly number[];
  /** Grouped convolution (w [Cout, Cin/group, ...K]); forward graphs only (autodiff needs 1). */
  group?: number;
}

export interface PoolOptions {
  kernel: number | readonly number[];
  strides?: number | readonly number[];
  pads?: number | readonly number[];
  /** AveragePool only; default 1 (zeros count), which is what autodiff supports with padding. */
  countIncludePad?: boolean;
}

function expandPads(p: number | readonly number[] | undefined, n: number): number[] {
  if (p === undefined) return new Array<number>(2 * n).fill(0);
  if (typeof p === 'number') return new Array<number>(2 * n).fill(p);
  if (p.length === n) return [...p, ...p];
  if (p.length === 2 * n) return [...p];
  throw new Error(`pads: expected 1, ${n} or ${2 * n} numbers, got ${p.length}`);
}

export class Graph {
  readonly values = new Map<string, Value>();
  readonly nodes: GNode[] = [];
  readonly inputs: Value[] = [];
  readonly params = new Map<string, ParamInfo>();
  readonly constants = new Map<string, OnnxTensor>();
  /** Values that autodiff treats as constants (see stopGradient). */
  readonly noGradient = new Set<string>();
  /**
   * instanceNorm subtracts each channel's mean (ReduceSum / N) before InstanceNormalization: the
   * same function, but onnxruntime-web's WebGPU kernel computes the variance in one pass
   * (E[x²] − E[x]²), which loses digits when a channel's mean is large against its spread
   * (measured on Chromium's WebGPU: input offset 30, spread 0.1 → outputs off by 5.5e-3 from wasm;
   * centred: 1e-6). Set for graphs the browser runs; training graphs leave it off.
   */
  centreInstanceNorm = false;
  private counter = 0;
  private scopes: string[] = [];
  private readonly constCache = new Map<string, string>();

  /** A copy whose node list and maps can be extended without changing this graph. */
  clone(): Graph {
    const g = new Graph();
    for (const [k, v] of this.values) g.values.set(k, v);
    g.nodes.push(...this.nodes);
    g.inputs.push(...this.inputs);
    for (const [k, v] of this.params) g.params.set(k, v);
    for (const [k, v] of this.constants) g.constants.set(k, v);
    for (const [k, v] of this.constCache) g.constCache.set(k, v);
    for (const k of this.noGradient) g.noGradient.add(k);
    g.counter = this.counter;
    g.scopes = [...this.scopes];
    g.centreInstanceNorm = this.centreInstanceNorm;
    return g;
  }

  // ------------------------------------------------------------------ naming and scopes

  /** Runs fn with `name/` prepended to parameter and node names. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private prefix(): string {
    return this.scopes.length > 0 ? `${this.scopes.join('.')}.` : '';
  }

  fresh(hint: string): string {
    let name: string;
    do name = `${this.prefix()}${hint}_${this.counter++}`;
    while (this.values.has(name));
    return name;
  }

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new Error(`graph: no value named ${name}`);
    return v;
  }

  private define(name: string, dtype: DType, shape: readonly number[]): Value {
    if (this.values.has(name)) throw new Error(`graph: value ${name} is already defined`);
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(`graph: value ${name} got an invalid shape [${shape.join(',')}]`);
    }
    const v: Value = { name, dtype, shape: [...shape] };
    this.values.set(name, v);
    return v;
  }

  // ------------------------------------------------------------------ leaves

  input(name: string, shape: readonly number[], dtype: DType = 'float32'): Value {
    const v = this.define(name, dtype, shape);
    this.inputs.push(v);
    return v;
  }

  param(
    name: string,
    shape: readonly number[],
    init: Initializer,
    opts: { seed?: number; fanIn?: number; fanOut?: number; trainable?: boolean } = {},
  ): Value {
    const full = `${this.prefix()}${name}`;
    const v = this.define(full, 'float32', shape);
    this.params.set(full, {
      name: full,
      shape: [...shape],
      init,
      seed: opts.seed,
      fanIn: opts.fanIn,
      fanOut: opts.fanOut,
      trainable: opts.trainable ?? true,
    });
    return v;
  }

  /** Initial values of every parameter, deterministic in (seed, parameter name). */
  initialParams(seed = 0): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const p of this.params.values()) {
      const s = p.seed ?? hashSeed(seed, p.name);
      out.set(p.name, initialise(p.shape, p.init, s, { fanIn: p.fanIn, fanOut: p.fanOut }));
    }
    return out;
  }

  constant(data: TensorData, shape: readonly number[], dtype?: DType, hint = 'const'): Value {
    const dt: DType =
      dtype ??
      (data instanceof Float32Array
        ? 'float32'
        : data instanceof BigInt64Array
          ? 'int64'
          : data instanceof Int32Array
            ? 'int32'
            : data instanceof Float64Array
              ? 'float64'
              : 'uint8');
    if (data.length !== numel(shape)) {
      throw new Error(
        `constant: shape [${shape.join(',')}] needs ${numel(shape)} values, got ${data.length}`,
      );
    }
    const small = data.length <= 64;
    const key = small
      ? `${dt}|${shape.join(',')}|${Array.from(data as ArrayLike<number | bigint>).join(',')}`
      : '';
    if (small) {
      const hit = this.constCache.get(key);
      if (hit) return this.value(hit);
    }
    const name = this.fresh(hint);
    this.constants.set(name, { name, dtype: dt, dims: [...shape], data });
    if (small) this.constCache.set(key, name);
    return this.define(name, dt, shape);
  }

  scalar(v: number, dtype: DType = 'float32'): Value {
    if (dtype === 'int64') return this.constant(BigInt64Array.of(BigInt(v)), [], 'int64');
    return this.constant(Float32Array.of(v), [], 'float32');
  }

  ints(v: readonly number[]): Value {
    return this.constant(BigInt64Array.from(v.map((x) => BigInt(x))), [v.length], 'int64', 'ints');
  }

  floats(v: readonly number[]): Value {
    return this.constant(Float32Array.from(v), [v.length], 'float32', 'floats');
  }

  private operand(x: Operand, like?: Value): Value {
    if (typeof x !== 'number') return x;
    return this.scalar(x, like?.dtype === 'int64' ? 'int64' : 'float32');
  }

  // ------------------------------------------------------------------ generic node

  /** Appends a node with explicitly given output types. */
  node(
    op: string,
    inputs: readonly (Value | '')[],
    outputs: readonly { dtype: DType; shape: readonly number[]; name?: string }[],
    attrs: Record<string, OnnxAttr> = {},
  ): Value[] {
    const outs = outputs.map((o) => this.define(o.name ?? this.fresh(op), o.dtype, o.shape));
    this.nodes.push({
      op,
      inputs: inputs.map((i) => (i === '' ? '' : i.name)),
      outputs: outs.map((o) => o.name),
      attrs,
      name: this.fresh(`n_${op}`),
    });
    return outs;
  }

  private unary(op: string, x: Value, attrs: Record<string, OnnxAttr> = {}, dtype?: DType): Value {
    return this.node(op, [x], [{ dtype: dtype ?? x.dtype, shape: x.shape }], attrs)[0]!;
  }

  private binary(op: string, a: Operand, b: Operand, outDtype?: DType): Value {
    const av = this.operand(a, typeof b === 'number' ? undefined : b);
    const bv = this.operand(b, av);
    const shape = broadcastShapes(av.shape, bv.shape);
    return this.node(op, [av, bv], [{ dtype: outDtype ?? av.dtype, shape }])[0]!;
  }

  // ------------------------------------------------------------------ element-wise

  add(a: Operand, b: Operand): Value {
    return this.binary('Add', a, b);
  }
  sub(a: Operand, b: Operand): Value {
    return this.binary('Sub', a, b);
  }
  mul(a: Operand, b: Operand): Value {
    return this.binary('Mul', a, b);
  }
  div(a: Operand, b: Operand): Value {
    return this.binary('Div', a, b);
  }
  /** x ** p for a constant exponent p. */
  pow(x: Value, p: number): Value {
    return this.binary('Pow', x, this.scalar(p));
  }
  /** a ** b with both operands tensors (differentiable in a only). */
  powT(a: Operand, b: Operand): Value {
    return this.binary('Pow', a, b);
  }
  greater(a: Operand, b: Operand): Value {
    return this.binary('Greater', a, b, 'bool');
  }
  less(a: Operand, b: Operand): Value {
    return this.binary('Less', a, b, 'bool');
  }
  equal(a: Operand, b: Operand): Value {
    return this.binary('Equal', a, b, 'bool');
  }
  max2(a: Operand, b: Operand): Value {
    return this.binary('Max', a, b);
  }
  min2(a: Operand, b: Operand): Value {
    return this.binary('Min', a, b);
  }
  neg(x: Value): Value {
    return this.unary('Neg', x);
  }
  exp(x: Value): Value {
    return this.unary('Exp', x);
  }
  log(x: Value): Value {
    return this.unary('Log', x);
  }
  sqrt(x: Value): Value {
    return this.unary('Sqrt', x);
  }
  abs(x: Value): Value {
    return this.unary('Abs', x);
  }
  sign(x: Value): Value {
    return this.unary('Sign', x);
  }
  reciprocal(x: Value): Value {
    return this.unary('Reciprocal', x);
  }
  floor(x: Value): Value {
    return this.unary('Floor', x);
  }
  relu(x: Value): Value {
    return this.unary('Relu', x);
  }
  leakyRelu(x: Value, alpha = 0.01): Value {
    return this.unary('LeakyRelu', x, { alpha: attr.f(alpha) });
  }
  sigmoid(x: Value): Value {
    return this.unary('Sigmoid', x);
  }
  tanh(x: Value): Value {
    return this.unary('Tanh', x);
  }
  identity(x: Value): Value {
    return this.unary('Identity', x);
  }
  /**
   * Softmax along `axis`. On the last axis this is ONNX Softmax; on another axis (e.g. the class
   * axis of [N,C,D,H,W]) it is composed as exp(x − max) / Σ exp(x − max), which ORT's CPU provider
   * runs several times faster than Softmax on a non-last axis (that one transposes internally).
   */
  softmax(x: Value, axis = 1): Value {
    const a = normAxis(axis, x.shape.length);
    if (a === x.shape.length - 1) return this.unary('Softmax', x, { axis: attr.i(a) });
    const e = this.exp(this.sub(x, this.stopGradient(this.reduceMax(x, [a], true))));
    return this.div(e, this.reduceSum(e, [a], true));
  }
  /** Log-softmax along `axis` (composed off the last axis, like softmax). */
  logSoftmax(x: Value, axis = 1): Value {
    const a = normAxis(axis, x.shape.length);
    if (a === x.shape.length - 1) return this.unary('LogSoftmax', x, { axis: attr.i(a) });
    const z = this.sub(x, this.stopGradient(this.reduceMax(x, [a], true)));
    return this.sub(z, this.log(this.reduceSum(this.exp(z), [a], true)));
  }
  /** Identity whose output carries no gradient (autodiff treats it as a constant). */
  stopGradient(x: Value): Value {
    const y = this.unary('Identity', x);
    this.noGradient.add(y.name);
    return y;
  }
  cast(x: Value, to: DType): Value {
    return this.unary('Cast', x, { to: attr.i(dtypeCode(to)) }, to);
  }
  clip(x: Value, min?: number, max?: number): Value {
    const lo = min === undefined ? '' : this.operand(min, x);
    const hi = max === undefined ? '' : this.operand(max, x);
    return this.node('Clip', [x, lo, hi], [{ dtype: x.dtype, shape: x.shape }])[0]!;
  }
  where(cond: Value, a: Operand, b: Operand): Value {
    const av = this.operand(a, typeof b === 'number' ? undefined : b);
    const bv = this.operand(b, av);
    const shape = broadcastShapes(cond.shape, av.shape, bv.shape);
    return this.node('Where', [cond, av, bv], [{ dtype: av.dtype, shape }])[0]!;
  }

  // ------------------------------------------------------------------ reductions

  private reduce(
    op: string,
    x: Value,
    axes: readonly number[] | undefined,
    keepdims: boolean,
  ): Value {
    const rank = x.shape.length;
    const ax = (axes ?? x.shape.map((_, i) => i))
      .map((a) => normAxis(a, rank))
      .sort((a, b) => a - b);
    const shape: number[] = [];
    x.shape.forEach((d, i) => {
      if (ax.includes(i)) {
        if (keepdims) shape.push(1);
      } else shape.push(d);
    });
    return this.node(op, [x, this.ints(ax)], [{ dtype: x.dtype, shape }], {
      keepdims: attr.i(keepdims ? 1 : 0),
    })[0]!;
  }
  reduceSum(x: Value, axes?: readonly number[], keepdims = false): Value {
    return this.reduce('ReduceSum', x, axes, keepdims);
  }
  reduceMean(x: Value, axes?: readonly number[], keepdims = false): Value {
    return this.reduce('ReduceMean', x, axes, keepdims);
  }
  reduceMax(x: Value, axes?: readonly number[], keepdims = false): Value {
    return this.reduce('ReduceMax', x, axes, keepdims);
  }

  // ------------------------------------------------------------------ shape ops

  reshape(x: Value, shape: readonly number[]): Value {
    const n = numel(x.shape);
    const out = [...shape];
    const neg = out.indexOf(-1);
    if (neg >= 0) {
      const rest = numel(out.filter((_, i) => i !== neg));
      out[neg] = n / rest;
    }
    if (numel(out) !== n || out.some((d) => !Number.isInteger(d))) {
      throw new Error(`reshape: cannot reshape [${x.shape.join(',')}] to [${shape.join(',')}]`);
    }
    if (out.length === x.shape.length && out.every((d, i) => d === x.shape[i])) return x;
    return this.node('Reshape', [x, this.ints(out)], [{ dtype: x.dtype, shape: out }])[0]!;
  }

  transpose(x: Value, perm: readonly number[]): Value {
    if (perm.length !== x.shape.length)
      throw new Error(`transpose: perm length ${perm.length} != rank ${x.shape.length}`);
    if (perm.every((p, i) => p === i)) return x;
    const shape = perm.map((p) => x.shape[p]!);
    return this.node('Transpose', [x], [{ dtype: x.dtype, shape }], { perm: attr.is(perm) })[0]!;
  }

  expand(x: Value, shape: readonly number[]): Value {
    const out = broadcastShapes(x.shape, shape);
    if (out.length === x.shape.length && out.every((d, i) => d === x.shape[i])) return x;
    return this.node('Expand', [x, this.ints(shape)], [{ dtype: x.dtype, shape: out }])[0]!;
  }

  concat(xs: readonly Value[], axis: number): Value {
    if (xs.length === 0) throw new Error('concat: no inputs');
    if (xs.length === 1) return xs[0]!;
    const rank = xs[0]!.shape.length;
    const a = normAxis(axis, rank);
    const shape = [...xs[0]!.shape];
    shape[a] = xs.reduce((s, v) => s + v.shape[a]!, 0);
    for (const v of xs) {
      if (v.shape.some((d, i) => i !== a && d !== shape[i])) {
        throw new Error(
          `concat on axis ${a}: shapes ${xs.map((q) => `[${q.shape.join(',')}]`).join(', ')} differ off-axis`,
        );
      }
    }
    if (xs.length > Graph.maxConcatInputs) {
      // a tree of smaller Concats: WebGPU kernels bind every input as a storage buffer and the
      // adapter limit can be as low as 8–16 per stage (17 buffers failed on an H200)
      const groups: Value[] = [];
      for (let i = 0; i < xs.length; i += Graph.maxConcatInputs) {
        groups.push(this.concat(xs.slice(i, i + Graph.maxConcatInputs), a));
      }
      return this.concat(groups, a);
    }
    return this.node('Concat', xs, [{ dtype: xs[0]!.dtype, shape }], { axis: attr.i(a) })[0]!;
  }

  /** Most inputs of one emitted Concat node (larger concatenations become a tree). */
  static maxConcatInputs = 7;

  /** ONNX Slice; steps may be negative (then autodiff is not available). */
  slice(
    x: Value,
    starts: readonly number[],
    ends: readonly number[],
    axes?: readonly number[],
    steps?: readonly number[],
  ): Value {
    const rank = x.shape.length;
    const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(a, rank));
    const st = steps ?? starts.map(() => 1);
    const shape = [...x.shape];
    ax.forEach((a, i) => {
      const dim = x.shape[a]!;
      const step = st[i]!;
      let s = starts[i]!;
      let e = ends[i]!;
      if (s < 0) s += dim;
      if (e < 0 && e > -1e15) e += dim;
      if (step > 0) {
        s = Math.min(Math.max(s, 0), dim);
        e = Math.min(Math.max(e, 0), dim);
        shape[a] = Math.max(0, Math.ceil((e - s) / step));
      } else {
        s = Math.min(Math.max(s, 0), dim - 1);
        e = Math.min(Math.max(e, -1), dim - 1);
        shape[a] = Math.max(0, Math.ceil((s - e) / -step));
      }
    });
    const clampBig = (v: number): bigint => BigInt(Math.max(Math.min(v, 2 ** 53), -(2 ** 53)));
    const startsV = this.constant(
      BigInt64Array.from(starts.map(clampBig)),
      [starts.length],
      'int64',
      'ints',
    );
    const endsV = this.constant(
      BigInt64Array.from(ends.map(clampBig)),
      [ends.length],
      'int64',
      'ints',
    );
    return this.node(
      'Slice',
      [x, startsV, endsV, this.ints(ax), this.ints(st)],
      [{ dtype: x.dtype, shape }],
    )[0]!;
  }

  /** Constant zero padding; pads = [begin_0..begin_{r-1}, end_0..end_{r-1}] (may be negative = crop). */
  pad(x: Value, pads: readonly number[], value = 0): Value {
    const r = x.shape.length;
    if (pads.length !== 2 * r) throw new Error(`pad: expected ${2 * r} pads, got ${pads.length}`);
    if (pads.every((p) => p === 0)) return x;
    const shape = x.shape.map((d, i) => d + pads[i]! + pads[i + r]!);
    const inputs: Value[] = [x, this.ints(pads)];
    if (value !== 0) inputs.push(this.scalar(value));
    return this.node('Pad', inputs, [{ dtype: x.dtype, shape }], { mode: attr.s('constant') })[0]!;
  }

  gatherElements(data: Value, indices: Value, axis: number): Value {
    const a = normAxis(axis, data.shape.length);
    return this.node(
      'GatherElements',
      [data, indices],
      [{ dtype: data.dtype, shape: indices.shape }],
      {
        axis: attr.i(a),
      },
    )[0]!;
  }

  scatterElementsAdd(data: Value, indices: Value, updates: Value, axis: number): Value {
    const a = normAxis(axis, data.shape.length);
    return this.node(
      'ScatterElements',
      [data, indices, updates],
      [{ dtype: data.dtype, shape: data.shape }],
      {
        axis: attr.i(a),
        reduction: attr.s('add'),
      },
    )[0]!;
  }

  matmul(a: Value, b: Value): Value {
    if (a.shape.length < 2 || b.shape.length < 2)
      throw new Error('matmul: operands must have rank >= 2');
    const m = a.shape[a.shape.length - 2]!;
    const k = a.shape[a.shape.length - 1]!;
    const k2 = b.shape[b.shape.length - 2]!;
    const n = b.shape[b.shape.length - 1]!;
    if (k !== k2)
      throw new Error(`matmul: inner dims differ: [${a.shape.join(',')}] x [${b.shape.join(',')}]`);
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.node('MatMul', [a, b], [{ dtype: a.dtype, shape: [...batch, m, n] }])[0]!;
  }

  /** 2-D Gemm: op(A) @ op(B) (no C). */
  gemm(a: Value, b: Value, transA = false, transB = false): Value {
    const [m, k] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const [k2, n] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
    if (k !== k2) throw new Error(`gemm: inner dims differ (${k} vs ${k2})`);
    return this.node('Gemm', [a, b], [{ dtype: a.dtype, shape: [m, n] }], {
      transA: attr.i(transA ? 1 : 0),
      transB: attr.i(transB ? 1 : 0),
    })[0]!;
  }

  // ------------------------------------------------------------------ neural-network ops

  /** N-D convolution (group 1). x [N,Cin,...S], w [Cout,Cin,...K], b [Cout] or undefined. */
  conv(x: Value, w: Value, b: Value | undefined, opts: ConvOptions = {}): Value {
    const sd = x.shape.length - 2;
    const strides = triple(opts.strides ?? 1, sd);
    const dil = triple(opts.dilations ?? 1, sd);
    const pads = expandPads(opts.pads, sd);
    const group = opts.group ?? 1;
    if (w.shape[1]! * group !== x.shape[1]) {
      throw new Error(
        `conv: input has ${x.shape[1]} channels, weight [${w.shape.join(',')}] in ${group} group(s) expects ${w.shape[1]! * group}`,
      );
    }
    const shape = [x.shape[0]!, w.shape[0]!];
    for (let i = 0; i < sd; i++) {
      const k = w.shape[2 + i]!;
      const o =
        Math.floor(
          (x.shape[2 + i]! + pads[i]! + pads[i + sd]! - dil[i]! * (k - 1) - 1) / strides[i]!,
        ) + 1;
      if (o < 1)
        throw new Error(
          `conv: output size ${o} < 1 on spatial axis ${i} (input [${x.shape.join(',')}])`,
        );
      shape.push(o);
    }
    const inputs: Value[] = b ? [x, w, b] : [x, w];
    return this.node('Conv', inputs, [{ dtype: 'float32', shape }], {
      kernel_shape: attr.is(w.shape.slice(2)),
      strides: attr.is(strides),
      pads: attr.is(pads),
      dilations: attr.is(dil),
      group: attr.i(group),
    })[0]!;
  }

  instanceNorm(x: Value, scale: Value, bias: Value, epsilon = 1e-5): Value {
    let input = x;
    if (this.centreInstanceNorm) {
      const spatial = x.shape.slice(2);
      const axes = spatial.map((_, i) => i + 2);
      input = this.sub(x, this.div(this.reduceSum(x, axes, true), numel(spatial)));
    }
    return this.node(
      'InstanceNormalization',
      [input, scale, bias],
      [{ dtype: x.dtype, shape: x.shape }],
      {
        epsilon: attr.f(epsilon),
      },
    )[0]!;
  }

  /** GroupNorm composed of Reshape + ReduceMean arithmetic, with per-channel affine parameters. */
  groupNorm(x: Value, scale: Value, bias: Value, groups: number, epsilon = 1e-5): Value {
    const [n, c, ...s] = x.shape as number[];
    if (c! % groups !== 0)
      throw new Error(`groupNorm: ${c} channels are not divisible into ${groups} groups`);
    const xr = this.reshape(x, [n!, groups, (c! / groups) * numel(s)]);
    const mu = this.reduceMean(xr, [2], true);
    const xc = this.sub(xr, mu);
    const v = this.reduceMean(this.mul(xc, xc), [2], true);
    const xhat = this.reshape(this.div(xc, this.sqrt(this.add(v, epsilon))), x.shape);
    const bshape = [1, c!, ...s.map(() => 1)];
    return this.add(this.mul(xhat, this.reshape(scale, bshape)), this.reshape(bias, bshape));
  }

  private pool(op: 'AveragePool' | 'MaxPool', x: Value, o: PoolOptions): Value {
    const sd = x.shape.length - 2;
    const k = triple(o.kernel, sd);
    const strides = triple(o.strides ?? o.kernel, sd);
    const pads = expandPads(o.pads, sd);
    const shape = [x.shape[0]!, x.shape[1]!];
    for (let i = 0; i < sd; i++) {
      shape.push(
        Math.floor((x.shape[2 + i]! + pads[i]! + pads[i + sd]! - k[i]!) / strides[i]!) + 1,
      );
    }
    const attrs: Record<string, OnnxAttr> = {
      kernel_shape: attr.is(k),
      strides: attr.is(strides),
      pads: attr.is(pads),
    };
    if (op === 'AveragePool')
      attrs['count_include_pad'] = attr.i(o.countIncludePad === false ? 0 : 1);
    return this.node(op, [x], [{ dtype: x.dtype, shape }], attrs)[0]!;
  }
  averagePool(x: Value, o: PoolOptions): Value {
    return this.pool('AveragePool', x, o);
  }
  maxPool(x: Value, o: PoolOptions): Value {
    return this.pool('MaxPool', x, o);
  }

  /**
   * Resize by per-spatial-axis scale factors. 'nearest' uses asymmetric/floor (integer factors
   * repeat voxels); 'linear' uses half_pixel (or align_corners) trilinear interpolation.
   */
  resize(
    x: Value,
    scales: number | readonly number[],
    mode: 'nearest' | 'linear' = 'nearest',
    coordinateMode: 'half_pixel' | 'align_corners' | 'asymmetric' = mode === 'nearest'
      ? 'asymmetric'
      : 'half_pixel',
  ): Value {
    const sd = x.shape.length - 2;
    const sc = [1, 1, ...triple(scales, sd)];
    const shape = x.shape.map((d, i) => Math.floor(d * sc[i]!));
    const attrs: Record<string, OnnxAttr> = {
      mode: attr.s(mode),
      coordinate_transformation_mode: attr.s(coordinateMode),
    };
    if (mode === 'nearest') attrs['nearest_mode'] = attr.s('floor');
    return this.node('Resize', [x, '', this.floats(sc)], [{ dtype: x.dtype, shape }], attrs)[0]!;
  }

  /**
   * Nearest up-sampling by integer factors along the spatial axes as Reshape → Expand → Reshape
   * (much faster than Resize on the CPU provider; its gradient is a block ReduceSum).
   */
  repeatUpsample(x: Value, factors: number | readonly number[]): Value {
    const sd = x.shape.length - 2;
    const f = triple(factors, sd);
    if (f.every((v) => v === 1)) return x;
    const sp = x.shape.slice(2);
    const last = sp.length - 1;
    let cur = x;
    // the last (contiguous) axis: MatMul with a 0/1 repeat matrix (Expand with an inner block of
    // one element is slow on the CPU provider)
    if (f[last]! > 1) {
      const n = sp[last]!;
      const m = n * f[last]!;
      const u = new Float32Array(n * m);
      for (let i = 0; i < n; i++)
        for (let r = 0; r < f[last]!; r++) u[i * m + i * f[last]! + r] = 1;
      cur = this.matmul(cur, this.constant(u, [n, m], 'float32', 'repeat'));
    }
    if (f.slice(0, last).some((v) => v > 1)) {
      const inter: number[] = [x.shape[0]! * x.shape[1]!];
      const big: number[] = [x.shape[0]! * x.shape[1]!];
      sp.slice(0, last).forEach((d, i) => {
        inter.push(d, 1);
        big.push(d, f[i]!);
      });
      inter.push(cur.shape[cur.shape.length - 1]!);
      big.push(cur.shape[cur.shape.length - 1]!);
      cur = this.expand(this.reshape(cur, inter), big);
    }
    return this.reshape(cur, [x.shape[0]!, x.shape[1]!, ...sp.map((d, i) => d * f[i]!)]);
  }

  /** [N, C·r³, D, H, W] → [N, C, D·r, H·r, W·r] (3-D depth-to-space; channel index = c·r³ + (i·r + j)·r + k). */
  depthToSpace3d(x: Value, r: number): Value {
    const [n, c, d, h, w] = x.shape as [number, number, number, number, number];
    if (c % (r * r * r) !== 0)
      throw new Error(`depthToSpace3d: ${c} channels not divisible by ${r}^3`);
    const co = c / (r * r * r);
    const a = this.reshape(x, [n * co, r, r, r, d, h, w]);
    const t = this.transpose(a, [0, 4, 1, 5, 2, 6, 3]);
    return this.reshape(t, [n, co, d * r, h * r, w * r]);
  }

  /**
   * Differentiable 3-D warp: samples `vol` [N,C,D,H,W] at (grid + disp), disp [N,3,D,H,W] in voxels
   * (channel 0 along D, 1 along H, 2 along W), with trilinear interpolation and border clamping.
   * Built from Floor, Clip, Cast, GatherElements and arithmetic (no GridSample). `index` is the
   * gather's index type: int64 (training graphs) or int32 (inference graphs for onnxruntime-web's
   * WebGPU provider, which has no Cast to int64).
   */
  warp3d(vol: Value, disp: Value, index: 'int64' | 'int32' = 'int64'): Value {
    const [n, c, d, h, w] = vol.shape as [number, number, number, number, number];
    if (
      disp.shape.length !== 5 ||
      disp.shape[1] !== 3 ||
      disp.shape[2] !== d ||
      disp.shape[3] !== h ||
      disp.shape[4] !== w
    ) {
      throw new Error(
        `warp3d: displacement must be [${n},3,${d},${h},${w}], got [${disp.shape.join(',')}]`,
      );
    }
    const dims = [d, h, w];
    const m = d * h * w;
    const coords: Value[] = [];
    for (let a = 0; a < 3; a++) {
      const grid = new Float32Array(m);
      for (let z = 0; z < d; z++)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++) grid[(z * h + y) * w + x] = a === 0 ? z : a === 1 ? y : x;
      const g = this.constant(grid, [1, 1, d, h, w], 'float32', 'grid');
      const comp = this.slice(disp, [a], [a + 1], [1]);
      // clamp the sampling position to the volume so the weights stay in [0, 1]
      coords.push(this.clip(this.add(g, comp), 0, dims[a]! - 1));
    }
    const flat = this.reshape(vol, [n, c, m]);
    if (m > 2 ** 24)
      throw new Error(`warp3d: ${m} voxels exceed the exact float32 index range (2^24)`);
    // Index arithmetic in float32 (exact below 2^24) with Clip, cast to int64 at the end: the
    // WebGPU provider has no element-wise Min/Max and limited int64 arithmetic.
    const frac: Value[] = [];
    const idx0: Value[] = [];
    const idx1: Value[] = [];
    for (let a = 0; a < 3; a++) {
      const f0 = this.floor(coords[a]!);
      frac.push(this.sub(coords[a]!, f0));
      idx0.push(f0);
      idx1.push(this.clip(this.add(f0, 1), 0, dims[a]! - 1));
    }
    let out: Value | undefined;
    for (let corner = 0; corner < 8; corner++) {
      const bits = [(corner >> 2) & 1, (corner >> 1) & 1, corner & 1];
      const iz = bits[0] ? idx1[0]! : idx0[0]!;
      const iy = bits[1] ? idx1[1]! : idx0[1]!;
      const ix = bits[2] ? idx1[2]! : idx0[2]!;
      const linF = this.add(this.add(this.mul(iz, h * w), this.mul(iy, w)), ix); // [N,1,D,H,W]
      // reshape/expand in float, cast last: the WebGPU provider keeps int64 Reshapes on the CPU
      const linFlat = this.cast(
        this.expand(this.reshape(this.stopGradient(linF), [n, 1, m]), [n, c, m]),
        index,
      );
      const sampled = this.reshape(this.gatherElements(flat, linFlat, 2), [n, c, d, h, w]);
      let wgt: Value | undefined;
      for (let a = 0; a < 3; a++) {
        const wa = bits[a] ? frac[a]! : this.sub(1, frac[a]!);
        wgt = wgt ? this.mul(wgt, wa) : wa;
      }
      const term = this.mul(sampled, wgt!);
      out = out ? this.add(out, term) : term;
    }
    return out!;
  }
}
