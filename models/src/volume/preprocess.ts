/**
 * The model's pre- and post-processing, shared by the browser extension and Node tests:
 * source volume → model input tensor data, and model logits → label map on the source grid.
 */
import type { ModelMetadata } from '../format/metadata.js';
import { normalizeIntensity } from './normalize.js';
import { logitsToSourceLabels, resampleTrilinear, type Dims } from './resample.js';

/** Grid dims [x, y, z] of a model. */
export function modelGridDims(meta: Pick<ModelMetadata, 'grid'>): Dims {
  return [meta.grid.size[0], meta.grid.size[1], meta.grid.size[2]];
}

/** ONNX input dims [1, 1, D, H, W] of a model. */
export function modelInputDims(meta: Pick<ModelMetadata, 'grid'>): number[] {
  const [x, y, z] = meta.grid.size;
  return [1, 1, z, y, x];
}

/** Resamples the source voxels onto the model grid (trilinear, fit-extent) and normalises them. */
export function prepareModelInput(
  voxels: ArrayLike<number>,
  srcDims: Dims,
  meta: Pick<ModelMetadata, 'grid' | 'intensity'>,
): Float32Array {
  const onGrid = resampleTrilinear(voxels, srcDims, modelGridDims(meta));
  return normalizeIntensity(onGrid, meta.intensity).data;
}

/** Logits [1, C, D, H, W] on the model grid → label values on the source grid. */
export function labelsFromLogits(
  logits: Float32Array,
  meta: Pick<ModelMetadata, 'grid' | 'labels'>,
  srcDims: Dims,
): Uint8Array {
  return logitsToSourceLabels(logits, meta.labels.length + 1, modelGridDims(meta), srcDims);
}

/** Voxel count per label value (index = value). */
export function countLabels(labels: Uint8Array, maxValue: number): number[] {
  const counts = new Array<number>(maxValue + 1).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (v <= maxValue) counts[v]++;
  }
  return counts;
}
