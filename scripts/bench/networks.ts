/**
 * The benchmark networks, written with the engine's graph builder. `scripts/device/torch_reference.py`
 * mirrors them layer for layer in PyTorch; change both together.
 *
 * Reference U-Net (FACTS.md): `levels` resolutions with widths base·2^l (capped by `maxWidth`);
 * each block is two [Conv 3×3×3 (bias, pad 1) → InstanceNorm (affine, eps 1e-5) → LeakyReLU 0.01];
 * down-sampling MaxPool 2; up-sampling nearest ×2 (`upsample2`), then Concat([up, skip]); head
 * Conv 1×1×1 → classes. Loss: soft Dice (softmax, ε = 1e-5, mean over classes) + cross-entropy.
 *
 * Registration network (VoxelMorph / Bi-JROS size): the same U-Net over Concat([atlas, target])
 * with widths 16-32-32-32, head Conv 1×1×1 → 3 (displacement in voxels, init N(0, 1e-5)); the atlas
 * is warped by the displacement (trilinear); loss: 1 − LNCC (9³ window) + 1.0·‖∇φ‖².
 */
import { Graph, type Value } from '../../models/src/engine/graph/graph.js';

export interface UnetOptions {
  inChannels: number;
  outChannels: number;
  base: number;
  levels: number;
  maxWidth?: number;
  /** Initial std of the head weights (default: He). */
  headStd?: number;
}

export function unetWidths(o: UnetOptions): number[] {
  return Array.from({ length: o.levels }, (_, l) =>
    Math.min(o.base * 2 ** l, o.maxWidth ?? Infinity),
  );
}

function convBlock(g: Graph, name: string, x: Value, cout: number): Value {
  return g.scope(name, () => {
    let h = x;
    for (let i = 0; i < 2; i++) {
      const cin = h.shape[1]!;
      const w = g.param(`conv${i}.w`, [cout, cin, 3, 3, 3], { kind: 'he' }, { fanIn: cin * 27 });
      const b = g.param(`conv${i}.b`, [cout], { kind: 'zeros' });
      const s = g.param(`norm${i}.scale`, [cout], { kind: 'ones' });
      const t = g.param(`norm${i}.bias`, [cout], { kind: 'zeros' });
      h = g.leakyRelu(g.instanceNorm(g.conv(h, w, b, { pads: 1 }), s, t), 0.01);
    }
    return h;
  });
}

/**
 * Nearest-neighbour ×2 up-sampling as Reshape → Expand → Reshape: the same result as Resize
 * (nearest, asymmetric) but a plain broadcast copy, whose gradient is a ReduceSum; ORT's CPU
 * Resize kernel is several times slower on 5-D tensors.
 */
export function upsample2(g: Graph, x: Value): Value {
  const [n, c, d, h, w] = x.shape as [number, number, number, number, number];
  const r = g.reshape(x, [n, c, d, 1, h, 1, w, 1]);
  const e = g.expand(r, [n, c, d, 2, h, 2, w, 2]);
  return g.reshape(e, [n, c, 2 * d, 2 * h, 2 * w]);
}

export function unet(g: Graph, x: Value, o: UnetOptions): Value {
  const widths = unetWidths(o);
  const skips: Value[] = [];
  let h = x;
  for (let l = 0; l < o.levels; l++) {
    h = convBlock(g, `enc${l}`, h, widths[l]!);
    if (l < o.levels - 1) {
      skips.push(h);
      h = g.maxPool(h, { kernel: 2 });
    }
  }
  for (let l = o.levels - 2; l >= 0; l--) {
    const up = upsample2(g, h);
    h = convBlock(g, `dec${l}`, g.concat([up, skips[l]!], 1), widths[l]!);
  }
  return g.scope('head', () => {
    const cin = h.shape[1]!;
    const init =
      o.headStd !== undefined
        ? { kind: 'normal' as const, std: o.headStd }
        : { kind: 'he' as const };
    const w = g.param('w', [o.outChannels, cin, 1, 1, 1], init, { fanIn: cin });
    const b = g.param('b', [o.outChannels], { kind: 'zeros' });
    return g.conv(h, w, b);
  });
}

/** Soft Dice (1 − mean over classes) + cross-entropy, from logits and a one-hot target. */
export function diceCeLoss(g: Graph, logits: Value, target: Value): Value {
  const axes = [0, 2, 3, 4];
  const p = g.softmax(logits, 1);
  const inter = g.reduceSum(g.mul(p, target), axes);
  const denom = g.add(g.reduceSum(p, axes), g.reduceSum(target, axes));
  const dice = g.div(g.add(g.mul(inter, 2), 1e-5), g.add(denom, 1e-5));
  const diceLoss = g.sub(1, g.reduceMean(dice));
  const voxels = logits.shape[2]! * logits.shape[3]! * logits.shape[4]!;
  const ce = g.div(g.neg(g.reduceSum(g.mul(target, g.logSoftmax(logits, 1)))), voxels);
  return g.add(diceLoss, ce);
}

/** 1 − mean local normalised cross-correlation over a `win`³ window (VoxelMorph's NCC). */
export function lnccLoss(g: Graph, a: Value, b: Value, win = 9): Value {
  const ones = g.constant(
    new Float32Array(win * win * win).fill(1),
    [1, 1, win, win, win],
    'float32',
    'ncc_win',
  );
  const pad = Math.floor(win / 2);
  const box = (v: Value): Value => g.conv(v, ones, undefined, { pads: pad });
  const n = win * win * win;
  const sa = box(a);
  const sb = box(b);
  const saa = box(g.mul(a, a));
  const sbb = box(g.mul(b, b));
  const sab = box(g.mul(a, b));
  const cross = g.sub(sab, g.div(g.mul(sa, sb), n));
  const va = g.sub(saa, g.div(g.mul(sa, sa), n));
  const vb = g.sub(sbb, g.div(g.mul(sb, sb), n));
  const cc = g.div(g.mul(cross, cross), g.add(g.mul(va, vb), 1e-5));
  return g.sub(1, g.reduceMean(cc));
}

/** Mean squared forward differences of the displacement along D, H, W, averaged. */
export function smoothnessLoss(g: Graph, disp: Value): Value {
  const [, , d, h, w] = disp.shape as [number, number, number, number, number];
  const sizes = [d, h, w];
  let total: Value | undefined;
  for (let a = 0; a < 3; a++) {
    const axis = 2 + a;
    const hi = g.slice(disp, [1], [sizes[a]!], [axis]);
    const lo = g.slice(disp, [0], [sizes[a]! - 1], [axis]);
    const diff = g.sub(hi, lo);
    const term = g.reduceMean(g.mul(diff, diff));
    total = total ? g.add(total, term) : term;
  }
  return g.div(total!, 3);
}

export interface BenchNetwork {
  graph: Graph;
  /** Data inputs and how to fill them. */
  inputs: { value: Value; fill: (i: number, n: number) => number }[];
  /** Output of the forward (inference) graph. */
  output: Value;
  loss: Value;
  description: string;
}

function smoothVolume(i: number, dims: readonly number[], phase: number): number {
  const [, , d, h, w] = dims as [number, number, number, number, number];
  const x = i % w;
  const y = Math.floor(i / w) % h;
  const z = Math.floor(i / (w * h)) % d;
  return (
    Math.sin((x / w) * 6.1 + phase) * Math.cos((y / h) * 4.3) + Math.sin((z / d) * 5.2 - phase)
  );
}

export function segmentationNetwork(
  base: number,
  size: number,
  classes = 3,
  levels = 3,
): BenchNetwork {
  const g = new Graph();
  const dims = [1, 1, size, size, size];
  const image = g.input('image', dims);
  const target = g.input('target', [1, classes, size, size, size]);
  const logits = unet(g, image, { inChannels: 1, outChannels: classes, base, levels });
  const loss = diceCeLoss(g, logits, target);
  const m = size * size * size;
  return {
    graph: g,
    inputs: [
      { value: image, fill: (i) => smoothVolume(i, dims, 0) },
      {
        value: target,
        fill: (i) => {
          const c = Math.floor(i / m);
          const v = smoothVolume(i % m, dims, 0);
          const label = v < -0.5 ? 1 : v > 0.5 ? 2 : 0;
          return label === c ? 1 : 0;
        },
      },
    ],
    output: logits,
    loss,
    description: `U-Net base ${base}, ${levels} levels (${unetWidths({ inChannels: 1, outChannels: classes, base, levels }).join('-')}), ${classes} classes, ${size}³, soft Dice + CE`,
  };
}

export function registrationNetwork(size: number): BenchNetwork {
  const g = new Graph();
  const dims = [1, 1, size, size, size];
  const atlas = g.input('atlas', dims);
  const target = g.input('target', dims);
  const opts = { inChannels: 2, outChannels: 3, base: 16, levels: 4, maxWidth: 32, headStd: 1e-5 };
  const disp = unet(g, g.concat([atlas, target], 1), opts);
  const warped = g.warp3d(atlas, disp);
  const loss = g.add(lnccLoss(g, warped, target, 9), g.mul(smoothnessLoss(g, disp), 1.0));
  return {
    graph: g,
    inputs: [
      { value: atlas, fill: (i) => smoothVolume(i, dims, 0) },
      { value: target, fill: (i) => smoothVolume(i, dims, 0.3) },
    ],
    output: disp,
    loss,
    description: `registration U-Net ${unetWidths(opts).join('-')} on 2×${size}³ → 3-ch displacement, warp3d, 1 − LNCC(9³) + ‖∇φ‖²`,
  };
}

export const BENCH_CONFIGS = Object.freeze({
  'unet-b8-64': () => segmentationNetwork(8, 64),
  'unet-b16-128': () => segmentationNetwork(16, 128),
  'reg-64': () => registrationNetwork(64),
  'reg-128': () => registrationNetwork(128),
  // small, for smoke tests of the benchmark itself
  'unet-b4-16': () => segmentationNetwork(4, 16),
  'reg-16': () => registrationNetwork(16),
});
export type BenchConfig = keyof typeof BENCH_CONFIGS;
