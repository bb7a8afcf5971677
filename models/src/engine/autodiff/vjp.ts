/**
 * Vector–Jacobian product rules, one per ONNX op, written with ONNX ops that the CPU and WebGPU
 * providers both support. Each rule receives the output gradients and returns input gradients
 * (undefined where an input needs none).
 */
import type { OnnxAttr } from '../onnx/model.js';
import { numel, type Graph, type GNode, type Value } from '../graph/graph.js';
import type { GradientOptions } from './autodiff.js';

export interface VjpContext {
  g: Graph;
  node: GNode;
  inputs: (Value | undefined)[];
  outputs: Value[];
  dys: (Value | undefined)[];
  needs: boolean[];
  opts: GradientOptions;
}

export type VjpRule = (c: VjpContext) => (Value | undefined)[];

function attrInt(n: GNode, k: string, dflt: number): number {
  const a = n.attrs[k] as OnnxAttr | undefined;
  return a && a.kind === 'int' ? a.value : dflt;
}
function attrInts(n: GNode, k: string): number[] | undefined {
  const a = n.attrs[k] as OnnxAttr | undefined;
  return a && a.kind === 'ints' ? [...a.value] : undefined;
}
function attrFloat(n: GNode, k: string, dflt: number): number {
  const a = n.attrs[k] as OnnxAttr | undefined;
  return a && a.kind === 'float' ? a.value : dflt;
}
function attrString(n: GNode, k: string, dflt: string): string {
  const a = n.attrs[k] as OnnxAttr | undefined;
  return a && a.kind === 'string' ? a.value : dflt;
}

/** Values of a constant int64/float initialiser (for Slice/Pad/Resize arguments). */
function constNumbers(g: Graph, v: Value | undefined, what: string): number[] {
  if (!v) throw new Error(`autodiff: ${what} is missing`);
  const c = g.constants.get(v.name);
  if (!c)
    throw new Error(`autodiff: ${what} (${v.name}) must be a constant to differentiate this op`);
  return Array.from(c.data as ArrayLike<number | bigint>, (x) => Number(x));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Sums `grad` over broadcast axes so it has `shape`. */
export function unbroadcast(g: Graph, grad: Value, shape: readonly number[]): Value {
  if (sameShape(grad.shape, shape)) return grad;
  const lead = grad.shape.length - shape.length;
  const axes: number[] = [];
  grad.shape.forEach((d, i) => {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && d !== 1) axes.push(i);
  });
  const r = axes.length > 0 ? g.reduceSum(grad, axes, true) : grad;
  return g.reshape(r, shape);
}

const dy0 = (c: VjpContext): Value => c.dys[0]!;
const x0 = (c: VjpContext): Value => c.inputs[0]!;
const y0 = (c: VjpContext): Value => c.outputs[0]!;

/** Repeats every voxel f_i times along each spatial axis (exact, via nearest Resize). */
function repeatUp(g: Graph, x: Value, f: readonly number[]): Value {
  return g.repeatUpsample(x, f);
}

/** Pads (at the end) or crops spatial axes so that x has the given spatial shape. */
function fitSpatial(g: Graph, x: Value, target: readonly number[]): Value {
  const r = x.shape.length;
  const pads = new Array<number>(2 * r).fill(0);
  let any = false;
  for (let i = 2; i < r; i++) {
    const d = target[i]! - x.shape[i]!;
    if (d !== 0) any = true;
    pads[r + i] = d;
  }
  if (!any) return x;
  if (pads.every((p) => p >= 0)) return g.pad(x, pads);
  const ends = x.shape.map((d, i) => Math.min(d, target[i]!));
  return g.pad(
    g.slice(
      x,
      ends.map(() => 0),
      ends,
    ),
    ends.map(() => 0).concat(ends.map((e, i) => target[i]! - e)),
  );
}

// ------------------------------------------------------------------ convolution

function convGrad(c: VjpContext): (Value | undefined)[] {
  const { g, node } = c;
  const x = c.inputs[0]!;
  const w = c.inputs[1]!;
  const dy = dy0(c);
  const sd = x.shape.length - 2;
  const K = w.shape.slice(2);
  const X = x.shape.slice(2);
  const Y = dy.shape.slice(2);
  const strides = attrInts(node, 'strides') ?? new Array<number>(sd).fill(1);
  const pads = attrInts(node, 'pads') ?? new Array<number>(2 * sd).fill(0);
  const dil = attrInts(node, 'dilations') ?? new Array<number>(sd).fill(1);
  if (attrInt(node, 'group', 1) !== 1)
    throw new Error('autodiff: Conv with group > 1 is not supported');
  if (dil.some((d) => d !== 1))
    throw new Error('autodiff: Conv with dilation > 1 is not supported');
  const [n, cin] = [x.shape[0]!, x.shape[1]!];
  const cout = w.shape[0]!;
  const spatialAxes = X.map((_, i) => i + 2);
  const out: (Value | undefined)[] = [undefined, undefined, undefined];

  if (c.needs[0]) {
    // grad-input = Conv(dilated dy, flipped and transposed weights); no ConvTranspose.
    const wT = g.transpose(w, [1, 0, ...spatialAxes]);
    const allOne = K.every((k) => k === 1);
    const wf = allOne
      ? wT
      : g.slice(
          wT,
          K.map(() => -1),
          K.map(() => -(2 ** 53)),
          spatialAxes,
          K.map(() => -1),
        );
    let u = dy;
    if (strides.some((s) => s !== 1)) {
      // insert s-1 zeros after each element: [N,C,Y0,1,Y1,1,..] → pad → reshape
      const shp1: number[] = [n, cout];
      Y.forEach((d) => shp1.push(d, 1));
      const r1 = g.reshape(dy, shp1);
      const p = new Array<number>(2 * shp1.length).fill(0);
      strides.forEach((s, i) => (p[shp1.length + 3 + 2 * i] = s - 1));
      u = g.reshape(g.pad(r1, p), [n, cout, ...Y.map((d, i) => d * strides[i]!)]);
    }
    const lenU = u.shape.slice(2);
    const padL = K.map((k, i) => k - 1 - pads[i]!);
    const padR = X.map((xd, i) => xd - lenU[i]! + pads[i]!);
    if (padL.some((p) => p < 0))
      throw new Error('autodiff: Conv padding larger than kernel-1 is not supported');
    if (padR.some((p) => p < 0)) {
      u = g.slice(
        u,
        lenU.map(() => 0),
        lenU.map((l, i) => l + Math.min(0, padR[i]!)),
        spatialAxes,
      );
    }
    out[0] = g.conv(u, wf, undefined, { pads: [...padL, ...padR.map((p) => Math.max(0, p))] });
  }

  if (c.needs[1]) {
    const mode = c.opts.convGradWeight ?? 'gemm27';
    const xt = n === 1 ? g.reshape(x, [cin, 1, ...X]) : g.transpose(x, [1, 0, ...spatialAxes]);
    const dyt = n === 1 ? g.reshape(dy, [cout, 1, ...Y]) : g.transpose(dy, [1, 0, ...spatialAxes]);
    const P = X.map((d, i) => d + pads[i]! + pads[i + sd]!);
    const stackable = n === 1 && sd >= 2 && strides.every((q) => q === 1) && numel(K) > 1;
    if (
      stackable &&
      (mode === 'stacked' || (mode === 'gemm27' && stackedPays(cin, cout, numel(P))))
    ) {
      out[1] = stackedGradWeight(g, xt, dyt, K, pads, w.shape);
    } else if (mode === 'batchAsChannel') {
      const full = g.conv(xt, dyt, undefined, { pads, dilations: strides });
      const cut = sameShape(full.shape.slice(2), K)
        ? full
        : g.slice(
            full,
            K.map(() => 0),
            K,
            spatialAxes,
          );
      out[1] = g.transpose(cut, [1, 0, ...spatialAxes]);
    } else {
      const xp = g.pad(xt, [0, 0, ...pads.slice(0, sd), 0, 0, ...pads.slice(sd)]);
      const offsets: number[][] = [];
      const rec = (prefix: number[]): void => {
        if (prefix.length === sd) offsets.push(prefix);
        else for (let k = 0; k < K[prefix.length]!; k++) rec([...prefix, k]);
      };
      rec([]);
      const strided = strides.some((q) => q !== 1);
      if (!strided && (mode === 'gemm27' || mode === 'stacked')) {
        // Flat-shift formulation: embed dy in the padded grid; every kernel offset is then one
        // contiguous range of the flattened padded input (cheap copies, no 3-D strided slices).
        // grad_w[o,c,k] = Σ_q dyP[o,q]·xf[c,q+off_k]; the 27 shifted copies are made of whichever
        // of x (Cin rows) and dy (Cout rows) is smaller.
        const P = xp.shape.slice(2);
        const total = n * numel(P);
        const rowStrides = P.map((_, i) => numel(P.slice(i + 1)));
        const maxOff = K.reduce((acc, k, i) => acc + (k - 1) * rowStrides[i]!, 0);
        const dyP = g.pad(dyt, [0, 0, ...Y.map(() => 0), 0, 0, ...Y.map((yd, i) => P[i]! - yd)]);
        const dyf = g.reshape(dyP, [cout, total]);
        const xf = g.reshape(xp, [cin, total]);
        const offs = offsets.map((o) => o.reduce((acc, k, i) => acc + k * rowStrides[i]!, 0));
        let parts: Value[];
        if (cout < cin && K[sd - 1]! > 1) {
          // As below with the roles swapped: stack the kl fastest-axis shifts of dy once per conv
          // ([kl·Cout, L]), one Gemm per kl offsets (xf is packed 9 instead of 27 times).
          const kl = K[sd - 1]!;
          const dyF = g.pad(dyf, [0, maxOff, 0, 0]);
          const L = total + maxOff - (kl - 1);
          const ds = g.concat(
            Array.from({ length: kl }, (_, j) => g.slice(dyF, [kl - 1 - j], [kl - 1 - j + L], [1])),
            0,
          );
          const groups = offs.filter((_, i) => offsets[i]![sd - 1] === 0);
          const gparts = groups.map((off) => {
            const base = maxOff - off - (kl - 1);
            return g.reshape(g.gemm(g.slice(ds, [base], [base + total], [1]), xf, false, true), [
              1,
              kl,
              cout,
              cin,
            ]);
          });
          out[1] = g.reshape(g.transpose(g.concat(gparts, 0), [2, 3, 0, 1]), w.shape);
          parts = [];
        } else if (cout < cin) {
          // shift dy right by off (zeros in front): Σ_r dyf[o, r−off]·xf[c, r]
          const dyF = g.pad(dyf, [0, maxOff, 0, 0]);
          parts = offs.map((off) => {
            const u =
              off === 0 && maxOff === 0
                ? dyf
                : g.slice(dyF, [maxOff - off], [maxOff - off + total], [1]);
            return g.gemm(u, xf, false, true);
          });
        } else if (K[sd - 1]! > 1) {
          // Offsets along the fastest axis are consecutive flat offsets: stack the kl shifts of
          // x once per conv ([kl·Cin, len]) so each Gemm covers kl offsets (N = kl·Cin fills
          // MLAS's 16-wide column blocks better than N = Cin; 9 Gemms instead of 27).
          const kl = K[sd - 1]!;
          const np = total - maxOff;
          const dy2 = g.slice(dyf, [0], [np], [1]);
          const len = total - (kl - 1);
          const xs = g.concat(
            Array.from({ length: kl }, (_, j) => g.slice(xf, [j], [j + len], [1])),
            0,
          );
          const groups = offs.filter((_, i) => offsets[i]![sd - 1] === 0);
          const gparts = groups.map((off) =>
            g.reshape(g.gemm(dy2, g.slice(xs, [off], [off + np], [1]), false, true), [
              cout,
              1,
              kl,
              cin,
            ]),
          );
          out[1] = g.reshape(g.transpose(g.concat(gparts, 1), [0, 3, 1, 2]), w.shape);
          parts = [];
        } else {
          const np = total - maxOff; // dyf is zero from np on
          const dy2 = maxOff === 0 ? dyf : g.slice(dyf, [0], [np], [1]);
          parts = offs.map((off) =>
            g.gemm(
              dy2,
              off === 0 && maxOff === 0 ? xf : g.slice(xf, [off], [off + np], [1]),
              false,
              true,
            ),
          );
        }
        if (parts.length) {
          out[1] = g.reshape(
            g.concat(
              parts.map((q) => g.reshape(q, [cout, cin, 1])),
              2,
            ),
            w.shape,
          );
        }
      } else {
        const np = n * numel(Y);
        const dy2 = g.reshape(dyt, [cout, np]);
        const shifted = offsets.map((o) => {
          const ends = o.map((k, i) => k + (Y[i]! - 1) * strides[i]! + 1);
          const noop = !strided && o.every((k, i) => k === 0 && ends[i] === xp.shape[2 + i]);
          return g.reshape(noop ? xp : g.slice(xp, o, ends, spatialAxes, strides), [cin, np]);
        });
        if (mode === 'im2col') {
          const cols = g.concat(
            shifted.map((q) => g.reshape(q, [cin, 1, np])),
            1,
          );
          const gw = g.gemm(dy2, g.reshape(cols, [cin * offsets.length, np]), false, true);
          out[1] = g.reshape(gw, w.shape);
        } else {
          const parts = shifted.map((q) => g.reshape(g.gemm(dy2, q, false, true), [cout, cin, 1]));
          out[1] = g.reshape(g.concat(parts, 2), w.shape);
        }
      }
    }
  }
  if (c.inputs[2] && c.needs[2]) out[2] = g.reduceSum(dy, [0, ...spatialAxes], false);
  return out;
}

/**
 * Conv grad-weight, stride 1, batch 1, 2-D or 3-D: one Gemm per offset of the middle kernel axes,
 * each covering the first and the last axis's offsets at once. On the flattened padded grid every
 * kernel offset k is one flat shift off(k) = Σ k_i·S_i (S_i the grid's row strides), and
 * grad_w[o,c,k] = Σ_q dy[o,q]·x[c,q+off(k)] with dy embedded in the padded grid. So:
 * - dy is stacked over the first axis's offsets, each a Pad of dy shifted by k_0 planes
 *   ([K_0·Cout, L], rows (k_0, o));
 * - x is stacked over the last axis's offsets, each one contiguous flat Slice
 *   ([K_last·Cin, L + maxMid], rows (k_last, c));
 * - for every offset m of the middle axes, Gemm(dyS, xS[:, m : m + L]ᵀ) = [K_0·Cout, K_last·Cin].
 * For a 3³ kernel that is 3 Gemms of 3·Cout × 3·Cin instead of 9 of Cout × 3·Cin, each with its
 * own shifted copy of x. x gets one extra zero plane at the end of the first axis so that every
 * shifted range stays in the tensor (a plane is longer than the largest shift past the end).
 */
function stackedGradWeight(
  g: Graph,
  xt: Value,
  dyt: Value,
  K: readonly number[],
  pads: readonly number[],
  wShape: readonly number[],
): Value {
  const sd = K.length;
  const [cin, cout] = [xt.shape[0]!, dyt.shape[0]!];
  const X = xt.shape.slice(2);
  const Y = dyt.shape.slice(2);
  const P = X.map((d, i) => d + pads[i]! + pads[i + sd]!);
  const S = P.map((_, i) => numel(P.slice(i + 1)));
  const L = numel(P);
  const [k0, kl] = [K[0]!, K[sd - 1]!];
  const midK = K.slice(1, sd - 1);
  const maxMid = midK.reduce((acc, k, j) => acc + (k - 1) * S[j + 1]!, 0);
  // x padded as the conv pads it, plus the extra plane when it is read past L: [Cin, (P_0 + e)·S_0]
  const ex = maxMid + kl - 1 > 0 ? 1 : 0;
  const xPads = [
    0,
    0,
    ...pads.slice(0, sd),
    0,
    0,
    ...pads.slice(sd).map((q, i) => q + (i ? 0 : ex)),
  ];
  const xf = g.reshape(g.pad(xt, xPads), [cin, (P[0]! + ex) * S[0]!]);
  const xS = g.concat(
    Array.from({ length: kl }, (_, j) =>
      j === 0 && ex === 0 ? xf : g.slice(xf, [j], [j + L + maxMid], [1]),
    ),
    0,
  );
  // dy on the padded grid shifted by k_0 planes: [K_0·Cout, L]
  const dyS = g.concat(
    Array.from({ length: k0 }, (_, j) => {
      const p = [0, 0, j, ...new Array<number>(sd - 1).fill(0), 0, 0, P[0]! - Y[0]! - j];
      for (let i = 1; i < sd; i++) p.push(P[i]! - Y[i]!);
      return g.reshape(g.pad(dyt, p), [cout, L]);
    }),
    0,
  );
  const mids: number[][] = [[]];
  for (const k of midK) {
    const next: number[][] = [];
    for (const prefix of mids) for (let j = 0; j < k; j++) next.push([...prefix, j]);
    mids.splice(0, mids.length, ...next);
  }
  const parts = mids.map((mk) => {
    const m = mk.reduce((acc, k, j) => acc + k * S[j + 1]!, 0);
    const b = maxMid === 0 ? xS : g.slice(xS, [m], [m + L], [1]);
    return g.reshape(g.gemm(dyS, b, false, true), [1, k0, cout, kl, cin]);
  });
  // [mid…, K_0, Cout, K_last, Cin] → [Cout, Cin, K_0, mid…, K_last]
  const r = midK.length;
  const stacked = g.reshape(parts.length === 1 ? parts[0]! : g.concat(parts, 0), [
    ...midK,
    k0,
    cout,
    kl,
    cin,
  ]);
  const perm = [r + 1, r + 3, r, ...midK.map((_, i) => i), r + 2];
  return g.reshape(g.transpose(stacked, perm), wShape);
}

/**
 * Where `gemm27` uses `stackedGradWeight`: measured per layer of the RRL networks at 48×56×40
 * (forward + grad-weight ms, the 27-offset form vs stacked, interleaved): 16→16 channels at
 * 107k voxels 29.6 vs 22.8, 2→16 7.4 vs 7.1; at 13k voxels and less within ±0.3 ms or slower
 * (64→64 at 1.7k: 4.1 vs 4.7; 64→128 at 210: 2.0 vs 3.0), and slower whenever Cin > Cout
 * (48→16 at 107k: 58.4 vs 59.7; 96→32: 21.2 vs 22.5) — there dy's stack costs more than it saves.
 */
function stackedPays(cin: number, cout: number, paddedVoxels: number): boolean {
  return cin <= cout && paddedVoxels >= 32768;
}

// ------------------------------------------------------------------ normalisation

function instanceNormGrad(c: VjpContext): (Value | undefined)[] {
  // With xc = x − mean(x), rstd = 1/√(var + eps), xhat = xc·rstd, per sample and channel (n voxels):
  //   dbias = Σ dy, dscale = rstd·Σ dy·xc,
  //   dx = scale·rstd·(dy − Σdy/n − xhat·Σ(dy·xhat)/n) = A·dy + B·xc + C with per-channel A, B, C,
  // so the full-size work is: mean, xc, xc², Σ dy·xc, Σ dy and the final A·dy + B·xc + C.
  const { g } = c;
  const x = x0(c);
  const scale = c.inputs[1]!;
  const dy = dy0(c);
  const eps = attrFloat(c.node, 'epsilon', 1e-5);
  const spatial = x.shape.slice(2).map((_, i) => i + 2);
  const n = numel(x.shape.slice(2));
  const bshape = [1, x.shape[1]!, ...spatial.map(() => 1)];
  const mu = g.reduceMean(x, spatial, true);
  const xc = g.sub(x, mu);
  const v = g.reduceMean(g.mul(xc, xc), spatial, true);
  const rstd = g.reciprocal(g.sqrt(g.add(v, eps))); // [N,C,1,1,1]
  const sDy = g.reduceSum(dy, spatial, true); // [N,C,1,1,1]
  const sDyXc = g.reduceSum(g.mul(dy, xc), spatial, true);
  const out: (Value | undefined)[] = [undefined, undefined, undefined];
  if (c.needs[0]) {
    const A = g.mul(g.reshape(scale, bshape), rstd);
    const B = g.neg(g.mul(g.mul(A, g.mul(rstd, rstd)), g.mul(sDyXc, 1 / n)));
    const C = g.neg(g.mul(A, g.mul(sDy, 1 / n)));
    out[0] = g.add(g.add(g.mul(dy, A), g.mul(xc, B)), C);
  }
  const toChannel = (t: Value): Value => g.reshape(g.reduceSum(t, [0], false), [x.shape[1]!]);
  if (c.needs[1]) out[1] = toChannel(g.mul(sDyXc, rstd));
  if (c.needs[2]) out[2] = toChannel(sDy);
  return out;
}

// ------------------------------------------------------------------ pooling and resizing

function poolParams(c: VjpContext): { k: number[]; s: number[]; p: number[] } {
  const sd = x0(c).shape.length - 2;
  const k = attrInts(c.node, 'kernel_shape')!;
  return {
    k,
    s: attrInts(c.node, 'strides') ?? new Array<number>(sd).fill(1),
    p: attrInts(c.node, 'pads') ?? new Array<number>(2 * sd).fill(0),
  };
}

function averagePoolGrad(c: VjpContext): (Value | undefined)[] {
  const { g } = c;
  const x = x0(c);
  const dy = dy0(c);
  const { k, s, p } = poolParams(c);
  const sd = k.length;
  const kprod = numel(k);
  if (k.every((kk, i) => kk === s[i]) && p.every((q) => q === 0)) {
    return [fitSpatial(g, g.mul(repeatUp(g, dy, k), 1 / kprod), x.shape)];
  }
  if (s.every((q) => q === 1)) {
    if (attrInt(c.node, 'count_include_pad', 0) !== 1 && p.some((q) => q !== 0)) {
      throw new Error(
        'autodiff: padded AveragePool needs count_include_pad=1 to be differentiated',
      );
    }
    const padsB = k.map((kk, i) => kk - 1 - p[i]!);
    const padsE = k.map((kk, i) => kk - 1 - p[i + sd]!);
    if ([...padsB, ...padsE].some((q) => q < 0))
      throw new Error('autodiff: AveragePool pad larger than kernel-1');
    return [
      g.averagePool(dy, {
        kernel: k,
        strides: 1,
        pads: [...padsB, ...padsE],
        countIncludePad: true,
      }),
    ];
  }
  throw new Error(
    'autodiff: AveragePool is differentiable with stride = kernel (no padding) or stride 1',
  );
}

function maxPoolGrad(c: VjpContext): (Value | undefined)[] {
  const { g } = c;
  const x = x0(c);
  const { k, s, p } = poolParams(c);
  if (!(k.every((kk, i) => kk === s[i]) && p.every((q) => q === 0))) {
    throw new Error('autodiff: MaxPool is differentiable with stride = kernel and no padding');
  }
  const yUp = fitSpatial(g, repeatUp(g, y0(c), k), x.shape);
  const dyUp = fitSpatial(g, repeatUp(g, dy0(c), k), x.shape);
  return [g.where(g.equal(x, yUp), dyUp, 0)];
}

/** Interpolation matrix A [m, n] of ONNX linear Resize along one axis (out = A · in). */
export function linearResizeMatrix(
  n: number,
  m: number,
  scale: number,
  mode: string,
): Float32Array {
  const a = new Float32Array(m * n);
  for (let o = 0; o < m; o++) {
    let xo: number;
    if (mode === 'align_corners') xo = m > 1 ? (o * (n - 1)) / (m - 1) : 0;
    else if (mode === 'asymmetric') xo = o / scale;
    else xo = (o + 0.5) / scale - 0.5;
    xo = Math.min(Math.max(xo, 0), n - 1);
    const i0 = Math.floor(xo);
    const i1 = Math.min(i0 + 1, n - 1);
    const f = xo - i0;
    a[o * n + i0]! += 1 - f;
    a[o * n + i1]! += f;
  }
  return a;
}

function resizeGrad(c: VjpContext): (Value | undefined)[] {
  const { g, node } = c;
  const x = x0(c);
  const dy = dy0(c);
  const mode = attrString(node, 'mode', 'nearest');
  const ctm = attrString(node, 'coordinate_transformation_mode', 'half_pixel');
  const scales = constNumbers(g, c.inputs[2], 'Resize scales');
  const r = x.shape.length;
  if (scales[0] !== 1 || scales[1] !== 1)
    throw new Error('autodiff: Resize must keep the batch and channel axes');
  if (mode === 'nearest') {
    const f = scales.slice(2);
    if (
      ctm !== 'asymmetric' ||
      attrString(node, 'nearest_mode', 'round_prefer_floor') !== 'floor' ||
      f.some((q) => !Number.isInteger(q) || q < 1)
    ) {
      throw new Error(
        'autodiff: nearest Resize is differentiable for integer up-scaling (asymmetric, floor)',
      );
    }
    const shp: number[] = [x.shape[0]!, x.shape[1]!];
    x.shape.slice(2).forEach((d, i) => shp.push(d, f[i]!));
    const blocks = g.reshape(dy, shp);
    return [
      g.reduceSum(
        blocks,
        f.map((_, i) => 3 + 2 * i),
        false,
      ),
    ];
  }
  if (mode !== 'linear') throw new Error(`autodiff: Resize mode ${mode} is not supported`);
  let cur = dy;
  for (let ax = r - 1; ax >= 2; ax--) {
    const n = x.shape[ax]!;
    const m = cur.shape[ax]!;
    if (n === m && scales[ax] === 1) continue;
    const A = g.constant(linearResizeMatrix(n, m, scales[ax]!, ctm), [m, n], 'float32', 'interp');
    if (ax === r - 1) cur = g.matmul(cur, A);
    else {
      const perm = cur.shape.map((_, i) => i);
      perm[ax] = r - 1;
      perm[r - 1] = ax;
      cur = g.transpose(g.matmul(g.transpose(cur, perm), A), perm);
    }
  }
  return [cur];
}

// ------------------------------------------------------------------ the rule table

export const VJP_RULES: Record<string, VjpRule> = {
  Identity: (c) => [dy0(c)],
  Add: (c) => [unbroadcast(c.g, dy0(c), x0(c).shape), unbroadcast(c.g, dy0(c), c.inputs[1]!.shape)],
  Sub: (c) => [
    unbroadcast(c.g, dy0(c), x0(c).shape),
    c.needs[1] ? unbroadcast(c.g, c.g.neg(dy0(c)), c.inputs[1]!.shape) : undefined,
  ],
  Mul: (c) => [
    c.needs[0] ? unbroadcast(c.g, c.g.mul(dy0(c), c.inputs[1]!), x0(c).shape) : undefined,
    c.needs[1] ? unbroadcast(c.g, c.g.mul(dy0(c), x0(c)), c.inputs[1]!.shape) : undefined,
  ],
  Div: (c) => [
    c.needs[0] ? unbroadcast(c.g, c.g.div(dy0(c), c.inputs[1]!), x0(c).shape) : undefined,
    c.needs[1]
      ? unbroadcast(c.g, c.g.neg(c.g.div(c.g.mul(dy0(c), y0(c)), c.inputs[1]!)), c.inputs[1]!.shape)
      : undefined,
  ],
  Pow: (c) => {
    if (c.needs[1]) throw new Error('autodiff: Pow is differentiable in its base only');
    const b = c.inputs[1]!;
    const d = c.g.mul(c.g.mul(dy0(c), b), c.g.powT(x0(c), c.g.sub(b, 1)));
    return [unbroadcast(c.g, d, x0(c).shape)];
  },
  Max: (c) => {
    const lt = c.g.less(x0(c), c.inputs[1]!);
    return [
      c.needs[0] ? unbroadcast(c.g, c.g.where(lt, 0, dy0(c)), x0(c).shape) : undefined,
      c.needs[1] ? unbroadcast(c.g, c.g.where(lt, dy0(c), 0), c.inputs[1]!.shape) : undefined,
    ];
  },
  Min: (c) => {
    const gt = c.g.greater(x0(c), c.inputs[1]!);
    return [
      c.needs[0] ? unbroadcast(c.g, c.g.where(gt, 0, dy0(c)), x0(c).shape) : undefined,
      c.needs[1] ? unbroadcast(c.g, c.g.where(gt, dy0(c), 0), c.inputs[1]!.shape) : undefined,
    ];
  },
  Neg: (c) => [c.g.neg(dy0(c))],
  Exp: (c) => [c.g.mul(dy0(c), y0(c))],
  Log: (c) => [c.g.div(dy0(c), x0(c))],
  Sqrt: (c) => [c.g.div(c.g.mul(dy0(c), 0.5), y0(c))],
  // sign(x) from comparisons (the WebGPU provider has no Sign kernel)
  Abs: (c) => {
    const x = x0(c);
    const sgn = c.g.sub(
      c.g.cast(c.g.greater(x, 0), 'float32'),
      c.g.cast(c.g.less(x, 0), 'float32'),
    );
    return [c.g.mul(dy0(c), sgn)];
  },
  Reciprocal: (c) => [c.g.neg(c.g.mul(dy0(c), c.g.mul(y0(c), y0(c))))],
  Relu: (c) => [c.g.where(c.g.greater(y0(c), 0), dy0(c), 0)],
  LeakyRelu: (c) => {
    const alpha = attrFloat(c.node, 'alpha', 0.01);
    return [c.g.where(c.g.greater(x0(c), 0), dy0(c), c.g.mul(dy0(c), alpha))];
  },
  Sigmoid: (c) => [c.g.mul(dy0(c), c.g.mul(y0(c), c.g.sub(1, y0(c))))],
  Tanh: (c) => [c.g.mul(dy0(c), c.g.sub(1, c.g.mul(y0(c), y0(c))))],
  Softmax: (c) => {
    const axis = attrInt(c.node, 'axis', -1);
    const y = y0(c);
    const s = c.g.reduceSum(c.g.mul(dy0(c), y), [axis], true);
    return [c.g.mul(y, c.g.sub(dy0(c), s))];
  },
  LogSoftmax: (c) => {
    const axis = attrInt(c.node, 'axis', -1);
    const s = c.g.reduceSum(dy0(c), [axis], true);
    return [c.g.sub(dy0(c), c.g.mul(c.g.exp(y0(c)), s))];
  },
  Cast: (c) => (x0(c).dtype === 'float32' && y0(c).dtype === 'float32' ? [dy0(c)] : [undefined]),
  Clip: (c) => {
    const x = x0(c);
    let d = dy0(c);
    if (c.inputs[1]) d = c.g.where(c.g.less(x, c.inputs[1]), 0, d);
    if (c.inputs[2]) d = c.g.where(c.g.greater(x, c.inputs[2]), 0, d);
    return [d];
  },
  Where: (c) => [
    undefined,
    c.needs[1] ? unbroadcast(c.g, c.g.where(x0(c), dy0(c), 0), c.inputs[1]!.shape) : undefined,
    c.needs[2] ? unbroadcast(c.g, c.g.where(x0(c), 0, dy0(c)), c.inputs[2]!.shape) : undefined,
  ],
  ReduceSum: (c) => {
    const x = x0(c);
    const axes = c.inputs[1]
      ? constNumbers(c.g, c.inputs[1], 'ReduceSum axes')
      : x.shape.map((_, i) => i);
    const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return [c.g.expand(c.g.reshape(dy0(c), keep), x.shape)];
  },
  ReduceMean: (c) => {
    const x = x0(c);
    const axes = c.inputs[1]
      ? constNumbers(c.g, c.inputs[1], 'ReduceMean axes')
      : x.shape.map((_, i) => i);
    const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const count = numel(axes.map((a) => x.shape[a]!));
    return [c.g.expand(c.g.mul(c.g.reshape(dy0(c), keep), 1 / count), x.shape)];
  },
  ReduceMax: (c) => {
    const x = x0(c);
    const axes = c.inputs[1]
      ? constNumbers(c.g, c.inputs[1], 'ReduceMax axes')
      : x.shape.map((_, i) => i);
    const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const mask = c.g.equal(x, c.g.reshape(y0(c), keep));
    return [c.g.where(mask, c.g.expand(c.g.reshape(dy0(c), keep), x.shape), 0)];
  },
  Reshape: (c) => [c.g.reshape(dy0(c), x0(c).shape)],
  Transpose: (c) => {
    const perm = attrInts(c.node, 'perm')!;
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [c.g.transpose(dy0(c), inv)];
  },
  Expand: (c) => [unbroadcast(c.g, dy0(c), x0(c).shape)],
  Concat: (c) => {
    const axis = attrInt(c.node, 'axis', 0);
    let off = 0;
    return c.inputs.map((v, i) => {
      const start = off;
      off += v!.shape[axis]!;
      return c.needs[i] ? c.g.slice(dy0(c), [start], [off], [axis]) : undefined;
    });
  },
  Slice: (c) => {
    const x = x0(c);
    const r = x.shape.length;
    const starts = constNumbers(c.g, c.inputs[1], 'Slice starts');
    const axes = c.inputs[3]
      ? constNumbers(c.g, c.inputs[3], 'Slice axes').map((a) => (a < 0 ? a + r : a))
      : starts.map((_, i) => i);
    const steps = c.inputs[4] ? constNumbers(c.g, c.inputs[4], 'Slice steps') : starts.map(() => 1);
    const dy = dy0(c);
    const pads = new Array<number>(2 * r).fill(0);
    for (let i = 0; i < axes.length; i++) {
      const a = axes[i]!;
      const dim = x.shape[a]!;
      let s = starts[i]!;
      if (s < 0) s += dim;
      s = Math.min(Math.max(s, 0), dim);
      const st = steps[i]!;
      if (st < 1) throw new Error('autodiff: Slice with negative steps is not differentiable here');
      if (st === 1) {
        pads[a] = s;
        pads[a + r] = dim - s - dy.shape[a]!;
      }
    }
    if (steps.every((s) => s === 1)) return [c.g.pad(dy, pads)];
    // strided slice: scatter dy back with zero insertion per strided axis (one axis at a time)
    let cur = dy;
    for (let i = 0; i < axes.length; i++) {
      const a = axes[i]!;
      const st = steps[i]!;
      const dim = x.shape[a]!;
      let s = starts[i]!;
      if (s < 0) s += dim;
      s = Math.min(Math.max(s, 0), dim);
      const len = cur.shape[a]!;
      if (st === 1) {
        const p = new Array<number>(2 * r).fill(0);
        p[a] = s;
        p[a + r] = dim - s - len;
        cur = c.g.pad(cur, p);
        continue;
      }
      const shp = [...cur.shape.slice(0, a + 1), 1, ...cur.shape.slice(a + 1)];
      const e = c.g.reshape(cur, shp);
      const p = new Array<number>(2 * shp.length).fill(0);
      p[shp.length + a + 1] = st - 1;
      const spread = c.g.reshape(
        c.g.pad(e, p),
        cur.shape.map((d, j) => (j === a ? d * st : d)),
      );
      const p2 = new Array<number>(2 * r).fill(0);
      p2[a] = s;
      p2[a + r] = dim - s - len * st;
      cur = c.g.pad(spread, p2);
    }
    return [cur];
  },
  Pad: (c) => {
    const x = x0(c);
    const r = x.shape.length;
    const pads = constNumbers(c.g, c.inputs[1], 'Pad pads');
    if (attrString(c.node, 'mode', 'constant') !== 'constant')
      throw new Error('autodiff: only constant Pad is differentiable');
    const dy = dy0(c);
    if (pads.every((p) => p >= 0)) {
      return [
        c.g.slice(
          dy,
          pads.slice(0, r),
          x.shape.map((d, i) => pads[i]! + d),
        ),
      ];
    }
    return [
      c.g.pad(
        dy,
        pads.map((p) => -p),
      ),
    ];
  },
  GatherElements: (c) => {
    const data = x0(c);
    const axis = attrInt(c.node, 'axis', 0);
    const zeros = c.g.expand(c.g.scalar(0), data.shape);
    return [c.g.scatterElementsAdd(zeros, c.inputs[1]!, dy0(c), axis), undefined];
  },
  MatMul: (c) => {
    const a = x0(c);
    const b = c.inputs[1]!;
    const tr = (v: Value): Value => {
      const p = v.shape.map((_, i) => i);
      const k = p.length;
      [p[k - 2], p[k - 1]] = [p[k - 1]!, p[k - 2]!];
      return c.g.transpose(v, p);
    };
    return [
      c.needs[0] ? unbroadcast(c.g, c.g.matmul(dy0(c), tr(b)), a.shape) : undefined,
      c.needs[1] ? unbroadcast(c.g, c.g.matmul(tr(a), dy0(c)), b.shape) : undefined,
    ];
  },
  Gemm: (c) => {
    if (c.inputs[2]) throw new Error('autodiff: Gemm with a C input is not supported');
    const ta = attrInt(c.node, 'transA', 0) === 1;
    const tb = attrInt(c.node, 'transB', 0) === 1;
    if (attrFloat(c.node, 'alpha', 1) !== 1) throw new Error('autodiff: Gemm alpha must be 1');
    const a = x0(c);
    const b = c.inputs[1]!;
    const dy = dy0(c);
    const da = c.needs[0]
      ? ta
        ? c.g.gemm(b, dy, tb, true)
        : c.g.gemm(dy, b, false, !tb)
      : undefined;
    const db = c.needs[1]
      ? tb
        ? c.g.gemm(dy, a, true, ta)
        : c.g.gemm(a, dy, !ta, false)
      : undefined;
    return [da, db];
  },
  Conv: convGrad,
  InstanceNormalization: instanceNormGrad,
  AveragePool: averagePoolGrad,
  MaxPool: maxPoolGrad,
  Resize: resizeGrad,
};
