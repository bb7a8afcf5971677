/**
 * The reference 3-D U-Net (base 8 at 64³, base 16 at 128³; 4 scales) and the segmentation
 * training task built on it. The builder arguments are recorded with the network (voxelmorph
 * LoadableModel style) so that a saved model can be rebuilt exactly.
 */
import { Graph, type Value } from '../graph/graph.js';
import { crossEntropyLoss, softDiceLoss } from '../losses/losses.js';
import {
  convStack,
  downsample,
  pointwise,
  upsample,
  type DownKind,
  type NormKind,
  type UpKind,
} from './layers.js';

export interface UNet3DArgs {
  inChannels: number;
  /** Number of output classes (labels + background). */
  outChannels: number;
  /** Channels at full resolution; level l has base·2^l. */
  base: number;
  /** Number of scales (default 4: three down-samplings). */
  depth?: number;
  /** Conv blocks per level, encoder and decoder (default 2). */
  convsPerLevel?: number;
  norm?: NormKind; // 'instance'
  down?: DownKind; // 'maxpool'
  up?: UpKind; // 'nearest'
  slope?: number; // LeakyReLU 0.01
}

/**
 * The reference U-Net of the benchmarks (base 8 at 64³, base 16 at 128³): 4 scales,
 * one conv block per level (conv3³+bias → InstanceNorm(affine, eps 1e-5) → LeakyReLU 0.01),
 * MaxPool 2 down, nearest ×2 up, concat skips, 1×1×1 head; 1 input channel, 3 classes.
 */
export function referenceUNetArgs(base: 8 | 16 | number, outChannels = 3): Required<UNet3DArgs> {
  return unetDefaults({ inChannels: 1, outChannels, base, depth: 4, convsPerLevel: 1 });
}

export function unetDefaults(a: UNet3DArgs): Required<UNet3DArgs> {
  return {
    depth: 4,
    convsPerLevel: 2,
    norm: 'instance',
    down: 'maxpool',
    up: 'nearest',
    slope: 0.01,
    ...a,
  };
}

/**
 * Architecture (levels l = 0..depth−1, C_l = base·2^l):
 * encoder: level l = convsPerLevel × [conv3³ (bias, pad 1) → InstanceNorm (affine) → LeakyReLU(slope)]
 * to C_l channels, then (l < depth−1) down-sampling (MaxPool 2, stride 2);
 * decoder: for l = depth−2..0: up-sample ×2 (nearest Resize; 'pixelshuffle' = 1×1×1 conv to
 * 8·C_l + depth-to-space), concat [skip_l, up] on channels, convsPerLevel conv blocks to C_l;
 * head: 1×1×1 conv (bias) to outChannels → logits. Parameter names: `enc<l>.<i>.conv.w`, …,
 * `dec<l>.<i>.…`, `up<l>.conv.w` (pixelshuffle only), `head.conv.w/b`.
 */
export function unet3d(g: Graph, x: Value, args: UNet3DArgs, prefix = ''): Value {
  const a = unetDefaults(args);
  const body = (): Value => {
    const skips: Value[] = [];
    let h = x;
    for (let l = 0; l < a.depth; l++) {
      const c = a.base * 2 ** l;
      h = convStack(g, `enc${l}`, h, c, a.convsPerLevel, { norm: a.norm, slope: a.slope });
      if (l < a.depth - 1) {
        skips.push(h);
        h = downsample(g, `down${l}`, h, a.down, c, { norm: a.norm, slope: a.slope });
      }
    }
    for (let l = a.depth - 2; l >= 0; l--) {
      const c = a.base * 2 ** l;
      const up = upsample(g, `up${l}`, h, a.up, c);
      h = convStack(g, `dec${l}`, g.concat([skips[l]!, up], 1), c, a.convsPerLevel, {
        norm: a.norm,
        slope: a.slope,
      });
    }
    return pointwise(g, 'head', h, a.outChannels);
  };
  return prefix ? g.scope(prefix, body) : body();
}

export interface SegmentationTask {
  args: Required<UNet3DArgs>;
  grid: [number, number, number];
  graph: Graph;
  image: Value; // [1, inChannels, D, H, W]
  target: Value; // [1, outChannels, D, H, W] one-hot float32
  logits: Value;
  loss: Value;
  metrics: Record<string, Value>;
}

export interface SegmentationLossOptions {
  dice?: number; // weight, default 1
  crossEntropy?: number; // weight, default 0
}

/**
 * Graph for training the U-Net on one volume per step: inputs `image` [1,Cin,D,H,W] and `target`
 * one-hot [1,C,D,H,W]; loss = dice·softDice + crossEntropy·CE; metric `dice` (mean foreground soft Dice).
 * `grid` is [D, H, W].
 */
export function segmentationTask(
  args: UNet3DArgs,
  grid: readonly [number, number, number],
  w: SegmentationLossOptions = {},
): SegmentationTask {
  const a = unetDefaults(args);
  const div = 2 ** (a.depth - 1);
  if (grid.some((d) => d % div !== 0)) {
    throw new Error(
      `segmentationTask: grid [${grid.join(',')}] must be divisible by ${div} for depth ${a.depth}`,
    );
  }
  const g = new Graph();
  const image = g.input('image', [1, a.inChannels, ...grid]);
  const target = g.input('target', [1, a.outChannels, ...grid]);
  const logits = unet3d(g, image, a);
  const dice = softDiceLoss(g, logits, target);
  const wd = w.dice ?? 1;
  const wce = w.crossEntropy ?? 0;
  let loss = wd !== 0 ? g.mul(dice.loss, wd) : undefined;
  if (wce !== 0) {
    const ce = g.mul(crossEntropyLoss(g, logits, target), wce);
    loss = loss ? g.add(loss, ce) : ce;
  }
  if (!loss) throw new Error('segmentationTask: at least one loss weight must be non-zero');
  return {
    args: a,
    grid: [grid[0], grid[1], grid[2]],
    graph: g,
    image,
    target,
    logits,
    loss,
    metrics: { dice: g.reduceMean(dice.perClass, [0], false) },
  };
}
