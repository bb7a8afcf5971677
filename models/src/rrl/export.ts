/**
 * Export of the RRL-MedSAM inference graph (E_g + head → prompt; E_m + AP decoder → labels) as
 * one ONNX file with the trained weights baked in, and its `metadata.json` in the published model
 * format (`core/src/format`, formatVersion 1), validated before it is returned.
 */
import { createHash } from 'node:crypto';
import { buildForwardGraph } from '../engine/autodiff/training.js';
import { checkWebGpuOps } from '../engine/export/webgpuOps.js';
import { Graph, type Value } from '../engine/graph/graph.js';
import { registrationNet, type RegistrationArgs } from '../engine/nn/registration.js';
import { oneHot } from './pseudoLabels.js';
import { FORMAT_VERSION, validateMetadata, type ModelMetadata } from '@rrl/core/format/metadata.js';
import { rrlInferenceNet, type RrlNetArgs } from './networks.js';
import type { ResampleMode } from './plan.js';

export type RrlModelInfo = Omit<ModelMetadata, 'formatVersion' | 'kind' | 'onnx' | 'grid'>;

export interface RrlExportOptions {
  args: RrlNetArgs;
  /** [D, H, W] training grid. */
  grid: readonly [number, number, number];
  /** Trained parameters (names as in `rrlInferenceNet`). */
  params: ReadonlyMap<string, Float32Array>;
  /** [x, y, z] mm: the nominal spacing the model was trained at. */
  spacing: [number, number, number];
  info: RrlModelInfo;
  /** Notices recorded in provenance.notes (e.g. "stage 1 (SAM distillation) skipped: no teacher"). */
  notices?: readonly string[];
  /** ONNX file name inside the model folder (default model.onnx). */
  file?: string;
  /** metadata.grid.resample (default 'fit-extent'; the plan's `preprocess.resample`). */
  resample?: ResampleMode;
  /**
   * Which output the model publishes as `logits`: 'full' (the medical branch refined by the
   * auto-prompting decoder, the default) or 'medical' (the medical branch alone, when the
   * decoder made the atlas's segmentation worse).
   */
  head?: 'full' | 'medical';
}

/** Builds the inference ONNX (input `image`, output `logits`) and its validated metadata. */
export function exportRrlModel(o: RrlExportOptions): { onnx: Uint8Array; metadata: ModelMetadata } {
  if (o.info.labels.length !== o.args.classes - 1) {
    throw new Error(
      `exportRrlModel: the network has ${o.args.classes} output classes (background + ${o.args.classes - 1} labels) but ${o.info.labels.length} labels were given; give one label per foreground class.`,
    );
  }
  const net = rrlInferenceNet(o.args, o.grid, { centreInstanceNorm: true });
  const logits = o.head === 'medical' ? net.medicalLogits : net.logits;
  return publish(net.graph, logits, o.params, o);
}

/** What `exportRegistrationModel` needs besides the metadata of `RrlExportOptions`. */
export interface RegistrationExportOptions extends Omit<
  RrlExportOptions,
  'args' | 'params' | 'head'
> {
  /** The registration network's args and trained parameters (`registration/`). */
  registration: { args: RegistrationArgs; params: ReadonlyMap<string, Float32Array> };
  /** Output classes (labels + background). */
  classes: number;
  /** The atlas image and labels on the grid ([D, H, W], normalised as the model's input). */
  atlasImage: Float32Array;
  atlasLabels: ArrayLike<number>;
}

/**
 * The registration path as a published model (issue 19's fallback when the network fails the
 * label-free check at export): input `image` [1, 1, D, H, W] → the registration network's atlas →
 * image displacement → the atlas's one-hot labels warped by it, published as `logits`
 * [1, classes, D, H, W] (probabilities; the viewer takes the argmax). The atlas is baked into the
 * graph. Without the per-volume refinement (`registrationRefine`) or a pre-alignment: a plan with
 * a pre-alignment is refused (the graph has none).
 */
export function exportRegistrationModel(o: RegistrationExportOptions): {
  onnx: Uint8Array;
  metadata: ModelMetadata;
} {
  if (o.info.labels.length !== o.classes - 1) {
    throw new Error(
      `exportRegistrationModel: ${o.classes} classes (background + ${o.classes - 1} labels) but ${o.info.labels.length} labels were given; give one label per foreground class.`,
    );
  }
  const grid = [...o.grid] as [number, number, number];
  const m = grid[0] * grid[1] * grid[2];
  if (o.atlasImage.length !== m || o.atlasLabels.length !== m) {
    throw new Error(
      `exportRegistrationModel: the atlas must be on the grid [${grid.join(', ')}] (${m} voxels), found ${o.atlasImage.length} image and ${o.atlasLabels.length} label voxels.`,
    );
  }
  const { graph, output } = registrationFallbackGraph(
    o.registration.args,
    grid,
    o.classes,
    o.atlasImage,
    o.atlasLabels,
  );
  return publish(graph, output, o.registration.params, o);
}

/**
 * The fallback's graph: input `image` [1, 1, D, H, W]; output the atlas's one-hot labels warped by
 * the registration network's atlas → image displacement, [1, classes, D, H, W].
 */
export function registrationFallbackGraph(
  args: RegistrationArgs,
  grid: readonly [number, number, number],
  classes: number,
  atlasImage: Float32Array,
  atlasLabels: ArrayLike<number>,
): { graph: Graph; output: Value } {
  const g = new Graph();
  g.centreInstanceNorm = true;
  const image = g.input('image', [1, 1, ...grid]);
  const atlas = g.constant(atlasImage, [1, 1, ...grid], 'float32', 'atlas_image');
  const { displacement } = registrationNet(g, atlas, image, { ...args, channels: 1 });
  const onehot = g.constant(
    oneHot(atlasLabels, classes),
    [1, classes, ...grid],
    'float32',
    'atlas_labels',
  );
  // int32 gather indices: WebGPU has no Cast to int64
  return { graph: g, output: g.warp3d(onehot, displacement, 'int32') };
}

/** The published ONNX of `output` (named `logits`) and its validated metadata. */
function publish(
  graph: Graph,
  output: Value,
  params: ReadonlyMap<string, Float32Array>,
  o: Omit<RrlExportOptions, 'args' | 'params' | 'head'>,
): { onnx: Uint8Array; metadata: ModelMetadata } {
  // The viewer runs it on WebGPU: every node must be an operation proven to run there.
  checkWebGpuOps(graph, [output]);
  const { model } = buildForwardGraph({ graph, outputs: { logits: output }, params });
  const [D, H, W] = o.grid;
  const inChannels = graph.values.get('image')?.shape[1] ?? 1;
  const notes = [o.info.provenance.notes, ...(o.notices ?? [])].filter(
    (s): s is string => typeof s === 'string' && s !== '',
  );
  const meta: ModelMetadata = {
    formatVersion: FORMAT_VERSION,
    ...o.info,
    kind: 'rrl-medsam',
    onnx: {
      file: o.file ?? 'model.onnx',
      sha256: createHash('sha256').update(model).digest('hex'),
      opset: 18,
      input: { name: 'image', shape: [1, inChannels, D, H, W] },
      output: { name: 'logits', shape: [1, output.shape[1]!, D, H, W] },
    },
    grid: {
      size: [W, H, D],
      spacing: o.spacing,
      resample: o.resample ?? 'fit-extent',
    },
    provenance: { ...o.info.provenance, ...(notes.length ? { notes: notes.join(' ') } : {}) },
  };
  return { onnx: model, metadata: validateMetadata(JSON.parse(JSON.stringify(meta)), meta.id) };
}

/**
 * The evaluation model: the same inference graph and weights with three outputs — `logits` (full
 * pipeline), `medicalLogits` (E_m + head, no prompt) and `generalLogits` (E_g + head) — each
 * [1, classes, D, H, W]; input `image` [1, inChannels, D, H, W].
 */
export function exportRrlEvalModel(
  o: Pick<RrlExportOptions, 'args' | 'grid' | 'params'>,
): Uint8Array {
  const net = rrlInferenceNet(o.args, o.grid, { centreInstanceNorm: true });
  return buildForwardGraph({
    graph: net.graph,
    outputs: {
      logits: net.logits,
      medicalLogits: net.medicalLogits,
      generalLogits: net.generalLogits,
    },
    params: o.params,
  }).model;
}
