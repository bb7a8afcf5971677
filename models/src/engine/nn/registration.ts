/**
 * A small registration network (voxelmorph-style): a U-Net on [moving, fixed] predicts a dense
 * 3-channel displacement (voxels, channel 0 along D, 1 along H, 2 along W); the moving image is
 * warped by it with the GatherElements-based trilinear warp.
 */
import { Graph, type Value } from '../graph/graph.js';
import { lnccLoss, mseLoss, smoothnessLoss } from '../losses/losses.js';
import { pointwise } from './layers.js';
import { unet3d, unetDefaults, type UNet3DArgs } from './unet.js';

export interface RegistrationArgs {
  /** Backbone width (default 16) and depth (default 4), as in unet3d. */
  base?: number;
  depth?: number;
  convsPerLevel?: number; // default 1 (voxelmorph uses one conv per level)
  /** Channels per image (default 1). */
  channels?: number;
  /** Similarity: 'lncc' (window 9) or 'mse'. */
  similarity?: 'lncc' | 'mse';
  window?: number; // 9
  /** Weight of the smoothness term (default 1). */
  smoothness?: number;
  /** LeakyReLU slope of the backbone (default 0.2, as voxelmorph). */
  slope?: number;
}

export interface RegistrationTask {
  args: Required<RegistrationArgs>;
  grid: [number, number, number];
  graph: Graph;
  moving: Value;
  fixed: Value;
  displacement: Value;
  warped: Value;
  loss: Value;
  metrics: Record<string, Value>;
}

export function registrationDefaults(a: RegistrationArgs = {}): Required<RegistrationArgs> {
  return {
    base: 16,
    depth: 4,
    convsPerLevel: 1,
    channels: 1,
    similarity: 'lncc',
    window: 9,
    smoothness: 1,
    slope: 0.2,
    ...a,
  };
}

/**
 * Architecture: x = concat[moving, fixed] (2·channels) → unet3d(base, depth, convsPerLevel,
 * InstanceNorm, LeakyReLU(slope 0.2), MaxPool, nearest up) with a 16-channel (base) head output →
 * LeakyReLU → 1×1×1 conv to 3 channels initialised N(0, 1e-5) (`flow.conv.w/b`) = displacement →
 * warp(moving, displacement). Loss = similarity(warped, fixed) + smoothness·‖∇φ‖².
 */
export function registrationNet(
  g: Graph,
  moving: Value,
  fixed: Value,
  args: RegistrationArgs = {},
): { displacement: Value; warped: Value } {
  const a = registrationDefaults(args);
  const x = g.concat([moving, fixed], 1);
  const u: UNet3DArgs = unetDefaults({
    inChannels: x.shape[1]!,
    outChannels: a.base,
    base: a.base,
    depth: a.depth,
    convsPerLevel: a.convsPerLevel,
    slope: a.slope,
  });
  const feat = g.leakyRelu(unet3d(g, x, u, 'unet'), a.slope);
  const displacement = pointwise(g, 'flow', feat, 3, 'small');
  return { displacement, warped: g.warp3d(moving, displacement) };
}

/** Training graph pieces for pairwise registration; `grid` is [D, H, W]. */
export function registrationTask(
  args: RegistrationArgs,
  grid: readonly [number, number, number],
): RegistrationTask {
  const a = registrationDefaults(args);
  const g = new Graph();
  const moving = g.input('moving', [1, a.channels, ...grid]);
  const fixed = g.input('fixed', [1, a.channels, ...grid]);
  const { displacement, warped } = registrationNet(g, moving, fixed, a);
  const sim =
    a.similarity === 'lncc'
      ? lnccLoss(g, warped, fixed, { window: a.window })
      : mseLoss(g, warped, fixed);
  const smooth = smoothnessLoss(g, displacement);
  const loss = g.add(sim, g.mul(smooth, a.smoothness));
  return {
    args: a,
    grid: [grid[0], grid[1], grid[2]],
    graph: g,
    moving,
    fixed,
    displacement,
    warped,
    loss,
    metrics: { similarity: sim, smoothness: smooth },
  };
}
