/**
 * Training graphs of the segmentation stages, on the same parameter names as `rrlInferenceNet`
 * so that weights carry over between stages and into the exported model:
 * - `branchSegmentationTask(args, grid, 'eg' | 'em', weights)`: encoder + head against one-hot
 *   (pseudo) labels — stage 2 / mutual stage supervision;
 * - `apDecoderTask(args, grid, weights)`: the full inference graph with E_g, E_m and both heads
 *   frozen (non-trainable) and the prompt behind stopGradient; only the AP decoder (`ap.`) learns.
 */
import { Graph, type Value } from '../engine/graph/graph.js';
import { crossEntropyLoss, l1Loss, mseLoss, softDiceLoss } from '../engine/losses/losses.js';
import { rrlEncoder, rrlInferenceNet, segmentationHead, type RrlNetArgs } from './networks.js';
import type { SegmentationTask } from '../engine/nn/unet.js';

export interface SegmentationWeights {
  dice: number;
  crossEntropy: number;
  /**
   * Voxels whose target is all zeros (pseudo labels marked `IGNORE_LABEL`) add nothing to the
   * loss: their cross-entropy is 0 by construction, and the soft Dice leaves them out
   * (`DiceOptions.ignoreEmptyTarget`).
   */
  ignoreEmptyTarget?: boolean;
}

/** A segmentation training task of the RRL networks: the engine's task without its U-Net args. */
export type RrlSegmentationTask = Pick<
  SegmentationTask,
  'graph' | 'image' | 'target' | 'logits' | 'loss' | 'metrics'
>;

function segLoss(
  g: Graph,
  logits: Value,
  target: Value,
  w: SegmentationWeights,
): { loss: Value; dice: Value } {
  if (w.dice === 0 && w.crossEntropy === 0) {
    throw new Error(
      'RRL task: dice and crossEntropy weights are both 0; make at least one positive',
    );
  }
  const d = softDiceLoss(g, logits, target, { ignoreEmptyTarget: w.ignoreEmptyTarget === true });
  let loss: Value | undefined = w.dice !== 0 ? g.mul(d.loss, w.dice) : undefined;
  if (w.crossEntropy !== 0) {
    const ce = g.mul(crossEntropyLoss(g, logits, target), w.crossEntropy);
    loss = loss ? g.add(loss, ce) : ce;
  }
  return { loss: loss!, dice: g.reduceMean(d.perClass, [0], false) };
}

function checkGrid(args: RrlNetArgs, grid: readonly number[], who: string): void {
  const div = 2 ** (args.channels.length - 1);
  if (grid.length !== 3 || grid.some((s) => s % div !== 0)) {
    throw new Error(`${who}: grid [${grid.join(', ')}] must be 3 sizes divisible by ${div}`);
  }
}

/** Encoder `branch` + its head (`<branch>_head.`) trained on one-hot labels. */
export function branchSegmentationTask(
  args: RrlNetArgs,
  grid: readonly [number, number, number],
  branch: 'eg' | 'em',
  w: SegmentationWeights,
): RrlSegmentationTask {
  checkGrid(args, grid, 'branchSegmentationTask');
  const g = new Graph();
  const image = g.input('image', [1, args.inChannels, ...grid]);
  const target = g.input('target', [1, args.classes, ...grid]);
  const logits = segmentationHead(g, `${branch}_head`, rrlEncoder(g, branch, image, args), args);
  const { loss, dice } = segLoss(g, logits, target, w);
  return { graph: g, image, target, logits, loss, metrics: { dice } };
}

/** Scope of the frozen stage-1 E_g copy in `taskDistillationTask`. */
export const EG_REFERENCE = 'eg_ref';

/**
 * Stage 2 of the dual-stage distillation (on the task's volumes): E_g + head (`eg.`, `eg_head.`)
 * trained on one-hot (pseudo) labels, plus `featureWeight` · the L1 distance, averaged over the
 * encoder scales, between E_g's features and those of a frozen copy of the stage-1 E_g
 * (`eg_ref.` = the E_g snapshot after SAM distillation, non-trainable, behind stopGradient), so
 * that E_g keeps the general knowledge while it learns the task. Metrics: `dice`, `featureL1`.
 */
export function taskDistillationTask(
  args: RrlNetArgs,
  grid: readonly [number, number, number],
  w: SegmentationWeights & { featureWeight: number },
): RrlSegmentationTask {
  checkGrid(args, grid, 'taskDistillationTask');
  const g = new Graph();
  const image = g.input('image', [1, args.inChannels, ...grid]);
  const target = g.input('target', [1, args.classes, ...grid]);
  const feats = rrlEncoder(g, 'eg', image, args);
  const logits = segmentationHead(g, 'eg_head', feats, args);
  const ref = rrlEncoder(g, EG_REFERENCE, image, args);
  for (const [name, p] of g.params) {
    if (name.startsWith(`${EG_REFERENCE}.`)) g.params.set(name, { ...p, trainable: false });
  }
  const seg = segLoss(g, logits, target, w);
  let fm: Value | undefined;
  feats.forEach((f, l) => {
    const d = l1Loss(g, f, g.stopGradient(ref[l]!));
    fm = fm ? g.add(fm, d) : d;
  });
  const featureL1 = g.mul(fm!, 1 / feats.length);
  const loss = g.add(seg.loss, g.mul(featureL1, w.featureWeight));
  return { graph: g, image, target, logits, loss, metrics: { dice: seg.dice, featureL1 } };
}

/**
 * The full inference graph; only `ap.` parameters are trainable. With `consistency` > 0 the loss
 * gains `consistency` · MSE between the decoder's softmax and the medical branch's (behind
 * stopGradient, so E_m and its head stay as they are): the decoder is held near the branch it
 * refines instead of fitting every error of the pseudo labels. Metrics `dice` (+ `consistency`).
 */
export function apDecoderTask(
  args: RrlNetArgs,
  grid: readonly [number, number, number],
  w: SegmentationWeights & { consistency?: number },
): RrlSegmentationTask {
  checkGrid(args, grid, 'apDecoderTask');
  const net = rrlInferenceNet(args, grid, { stopPromptGradient: true });
  const g = net.graph;
  for (const [name, p] of g.params) {
    if (!name.startsWith('ap.')) g.params.set(name, { ...p, trainable: false });
  }
  const target = g.input('target', [1, args.classes, ...grid]);
  const seg = segLoss(g, net.logits, target, w);
  const metrics: Record<string, Value> = { dice: seg.dice };
  let loss = seg.loss;
  if (w.consistency) {
    const medical = g.stopGradient(g.softmax(net.medicalLogits, 1));
    metrics.consistency = mseLoss(g, g.softmax(net.logits, 1), medical);
    loss = g.add(loss, g.mul(metrics.consistency, w.consistency));
  }
  return { graph: g, image: net.image, target, logits: net.logits, loss, metrics };
}

export interface MutualTask extends RrlSegmentationTask {
  /** General branch logits (`logits` is the medical branch's). */
  generalLogits: Value;
  /** Pairs (eg.<p>, em.<p>) of encoder parameters for the engine's mutual EMA. */
  emaPairs: [string, string][];
}

/**
 * Mutual stage: both branches (E_g + head, E_m + head) on the same image, each supervised by the
 * (pseudo) labels, plus `mutual` · MSE between their softmax outputs (mutual supervision). Pass
 * `emaPairs` with the plan's `emaAlpha` to `buildTrainingGraph({ ema })`: after each optimiser step
 * the encoders are mixed, eg' = α·eg + (1−α)·em and em' = α·em + (1−α)·eg.
 */
export function mutualTask(
  args: RrlNetArgs,
  grid: readonly [number, number, number],
  w: SegmentationWeights & { mutual: number },
): MutualTask {
  checkGrid(args, grid, 'mutualTask');
  const g = new Graph();
  const image = g.input('image', [1, args.inChannels, ...grid]);
  const target = g.input('target', [1, args.classes, ...grid]);
  const generalLogits = segmentationHead(g, 'eg_head', rrlEncoder(g, 'eg', image, args), args);
  const logits = segmentationHead(g, 'em_head', rrlEncoder(g, 'em', image, args), args);
  const sg = segLoss(g, generalLogits, target, w);
  const sm = segLoss(g, logits, target, w);
  let loss = g.add(sg.loss, sm.loss);
  if (w.mutual !== 0) {
    const d = mseLoss(g, g.softmax(generalLogits, 1), g.softmax(logits, 1));
    loss = g.add(loss, g.mul(d, w.mutual));
  }
  const emaPairs: [string, string][] = [...g.params.keys()]
    .filter((n) => n.startsWith('eg.'))
    .map((n) => [n, `em.${n.slice(3)}`]);
  return {
    graph: g,
    image,
    target,
    logits,
    generalLogits,
    loss,
    metrics: { dice: sm.dice, diceGeneral: sg.dice },
    emaPairs,
  };
}
