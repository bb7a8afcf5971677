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

/** Voxel-index centroid [x, y, z] of the voxels with label `value`; undefined when there are none. */
export function labelCentroid(
  labels: Uint8Array,
  dims: Dims,
  value: number,
): [number, number, number] | undefined {
  const [nx, ny] = dims;
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sz = 0;
  let i = 0;
  for (let z = 0; z < dims[2]; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++, i++) {
        if (labels[i] === value) {
          n++;
          sx += x;
          sy += y;
          sz += z;
        }
      }
  return n ? [sx / n, sy / n, sz / n] : undefined;
}

/** Patient (world) position of a voxel index, given origin, spacing and 9-element direction. */
export function indexToWorld(
  ijk: readonly [number, number, number],
  origin: ArrayLike<number>,
  spacing: ArrayLike<number>,
  direction: ArrayLike<number>,
): [number, number, number] {
  const w: [number, number, number] = [origin[0], origin[1], origin[2]];
  for (let a = 0; a < 3; a++) {
    for (let c = 0; c < 3; c++) w[c] += ijk[a] * spacing[a] * direction[3 * a + c];
  }
  return w;
}
