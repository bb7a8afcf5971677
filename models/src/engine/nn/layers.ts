/** Reusable 3-D layers built on the graph builder. */
import type { Graph, Value } from '../graph/graph.js';

export type NormKind = 'instance' | 'group' | 'none';

export interface ConvBlockOptions {
  kernel?: number; // 3
  stride?: number; // 1
  norm?: NormKind; // 'instance'
  groups?: number; // for 'group' (default 4)
  /** LeakyReLU negative slope; 0 = ReLU (default 0.01). */
  slope?: number;
  /** Apply norm + activation (default true). */
  activate?: boolean;
}

/** conv k³ (bias, 'same' padding for stride 1) → norm (affine) → LeakyReLU, parameters under `name.` */
export function convBlock(
  g: Graph,
  name: string,
  x: Value,
  cout: number,
  o: ConvBlockOptions = {},
): Value {
  const k = o.kernel ?? 3;
  const cin = x.shape[1]!;
  return g.scope(name, () => {
    const w = g.param('conv.w', [cout, cin, k, k, k], { kind: 'he' });
    const b = g.param('conv.b', [cout], { kind: 'zeros' });
    let y = g.conv(x, w, b, { strides: o.stride ?? 1, pads: (k - 1) >> 1 });
    if (o.activate === false) return y;
    const norm = o.norm ?? 'instance';
    if (norm !== 'none') {
      const s = g.param('norm.scale', [cout], { kind: 'ones' });
      const bb = g.param('norm.bias', [cout], { kind: 'zeros' });
      y = norm === 'instance' ? g.instanceNorm(y, s, bb) : g.groupNorm(y, s, bb, o.groups ?? 4);
    }
    const slope = o.slope ?? 0.01;
    return slope === 0 ? g.relu(y) : g.leakyRelu(y, slope);
  });
}

/** n conv blocks in a row (n = 2: the U-Net "double conv"). */
export function convStack(
  g: Graph,
  name: string,
  x: Value,
  cout: number,
  n: number,
  o: ConvBlockOptions = {},
): Value {
  let y = x;
  for (let i = 0; i < n; i++) y = convBlock(g, `${name}.${i}`, y, cout, o);
  return y;
}

export type DownKind = 'maxpool' | 'avgpool' | 'strided';

/** Halves each spatial axis. 'strided' is a stride-2 conv block to `cout` channels. */
export function downsample(
  g: Graph,
  name: string,
  x: Value,
  kind: DownKind,
  cout?: number,
  o: ConvBlockOptions = {},
): Value {
  if (kind === 'maxpool') return g.maxPool(x, { kernel: 2, strides: 2 });
  if (kind === 'avgpool') return g.averagePool(x, { kernel: 2, strides: 2 });
  return convBlock(g, name, x, cout ?? x.shape[1]!, { ...o, stride: 2 });
}

export type UpKind = 'nearest' | 'trilinear' | 'pixelshuffle';

/**
 * Doubles each spatial axis without ConvTranspose: Resize (nearest / trilinear), or a 1×1×1 conv
 * to 8·cout channels followed by depth-to-space ('pixelshuffle', the exact rewrite of ConvTranspose k2s2).
 */
export function upsample(g: Graph, name: string, x: Value, kind: UpKind, cout?: number): Value {
  if (kind === 'nearest') return g.repeatUpsample(x, 2);
  if (kind === 'trilinear') return g.resize(x, 2, 'linear');
  const co = cout ?? x.shape[1]!;
  return g.scope(name, () => {
    const w = g.param('conv.w', [co * 8, x.shape[1]!, 1, 1, 1], { kind: 'he' });
    const b = g.param('conv.b', [co * 8], { kind: 'zeros' });
    return g.depthToSpace3d(g.conv(x, w, b), 2);
  });
}

/** 1×1×1 conv (bias) — output heads. */
export function pointwise(
  g: Graph,
  name: string,
  x: Value,
  cout: number,
  init: 'he' | 'small' = 'he',
): Value {
  return g.scope(name, () => {
    const w = g.param(
      'conv.w',
      [cout, x.shape[1]!, 1, 1, 1],
      init === 'he' ? { kind: 'he' } : { kind: 'normal', std: 1e-5 },
    );
    const b = g.param('conv.b', [cout], { kind: 'zeros' });
    return g.conv(x, w, b);
  });
}

export interface EncoderArgs {
  /** Channels per scale (default 32-64-128-256, the reference frame's encoder). */
  channels?: readonly number[];
  convsPerLevel?: number; // 2
  norm?: NormKind; // 'instance'
  slope?: number; // 0 = ReLU (default)
  down?: DownKind; // 'maxpool'
}

/** A 3-D CNN encoder (double conv blocks per scale); returns the feature map of every scale. */
export function encoder3d(g: Graph, name: string, x: Value, a: EncoderArgs = {}): Value[] {
  const channels = a.channels ?? [32, 64, 128, 256];
  const feats: Value[] = [];
  let h = x;
  g.scope(name, () => {
    channels.forEach((c, l) => {
      if (l > 0)
        h = downsample(g, `down${l - 1}`, h, a.down ?? 'maxpool', c, {
          norm: a.norm,
          slope: a.slope ?? 0,
        });
      h = convStack(g, `level${l}`, h, c, a.convsPerLevel ?? 2, {
        norm: a.norm,
        slope: a.slope ?? 0,
      });
      feats.push(h);
    });
  });
  return feats;
}
