/**
 * Export of the RRL-MedSAM inference graph (E_g + head → prompt; E_m + AP decoder → labels) as
 * one ONNX file with the trained weights baked in, and its `metadata.json` in the published model
 * format (`core/src/format`, formatVersion 1), validated before it is returned.
 */
import { createHash } from 'node:crypto';
import { buildForwardGraph } from '../engine/autodiff/training.js';
import { checkWebGpuOps } from '../engine/export/webgpuOps.js';
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
  // The viewer runs it on WebGPU: every node must be an operation proven to run there.
  checkWebGpuOps(net.graph, [logits]);
  const { model } = buildForwardGraph({ graph: net.graph, outputs: { logits }, params: o.params });
  const [D, H, W] = o.grid;
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
      input: { name: 'image', shape: [1, o.args.inChannels, D, H, W] },
      output: { name: 'logits', shape: [1, o.args.classes, D, H, W] },
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
