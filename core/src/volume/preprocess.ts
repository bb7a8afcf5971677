/**
 * The model's pre- and post-processing, shared by the browser extension and Node tests:
 * source volume → model input tensor data, and model logits → label map on the source grid.
 */
import type { ModelMetadata } from '../format/metadata.js';
import { normalizeIntensity, normalizeIntensityInside } from './normalize.js';
import {
  logitsToSourceLabels,
  logitsToSourceLabelsCentred,
  resampleNearest,
  resampleNearestCentred,
  resampleTrilinear,
  resampleTrilinearCentred,
  type Dims,
} from './resample.js';

/** Grid dims [x, y, z] of a model. */
export function modelGridDims(meta: Pick<ModelMetadata, 'grid'>): Dims {
  return [meta.grid.size[0], meta.grid.size[1], meta.grid.size[2]];
}

/** ONNX input dims [1, 1, D, H, W] of a model. */
export function modelInputDims(meta: Pick<ModelMetadata, 'grid'>): number[] {
  const [x, y, z] = meta.grid.size;
  return [1, 1, z, y, x];
}

function requireSpacing(
  meta: Pick<ModelMetadata, 'grid'>,
  srcSpacing: readonly number[] | undefined,
  what: string,
): readonly number[] {
  if (!srcSpacing) {
    throw new RangeError(
      `${what}: the model's grid is "fixed-spacing" (${meta.grid.spacing.join(' × ')} mm), so the source spacing [x, y, z] in mm is needed, but none was given. Pass the series' voxel spacing.`,
    );
  }
  return srcSpacing;
}

/**
 * Resamples the source voxels onto the model grid (trilinear) and normalises them.
 * - 'fit-extent': the source extent is scaled onto the grid; statistics over all grid voxels.
 * - 'fixed-spacing' (needs `srcSpacing`, [x, y, z] mm): sampled at the grid spacing, centre of the
 *   source extent ↦ centre of the grid; statistics from in-source voxels only; voxels outside the
 *   source take the normalised value of the source minimum.
 */
export function prepareModelInput(
  voxels: ArrayLike<number>,
  srcDims: Dims,
  meta: Pick<ModelMetadata, 'grid' | 'intensity'>,
  srcSpacing?: readonly number[],
): Float32Array {
  if (meta.grid.resample === 'fixed-spacing') {
    const sp = requireSpacing(meta, srcSpacing, 'prepareModelInput');
    const { data, inside } = resampleTrilinearCentred(
      voxels,
      srcDims,
      sp,
      modelGridDims(meta),
      meta.grid.spacing,
    );
    let min = Infinity;
    for (let i = 0; i < voxels.length; i++) if (voxels[i]! < min) min = voxels[i]!;
    return normalizeIntensityInside(data, inside, meta.intensity, min).data;
  }
  const onGrid = resampleTrilinear(voxels, srcDims, modelGridDims(meta));
  return normalizeIntensity(onGrid, meta.intensity).data;
}

/**
 * Logits [1, C, D, H, W] on the model grid → label values on the source grid (argmax of the
 * trilinearly interpolated channels). For 'fixed-spacing' (needs `srcSpacing`), source voxels
 * outside the grid's extent get label 0. Works on probabilities too (argmax is the same).
 */
export function labelsFromLogits(
  logits: Float32Array,
  meta: Pick<ModelMetadata, 'grid' | 'labels'>,
  srcDims: Dims,
  srcSpacing?: readonly number[],
): Uint8Array {
  const channels = meta.labels.length + 1;
  if (meta.grid.resample === 'fixed-spacing') {
    const sp = requireSpacing(meta, srcSpacing, 'labelsFromLogits');
    return logitsToSourceLabelsCentred(
      logits,
      channels,
      modelGridDims(meta),
      meta.grid.spacing,
      srcDims,
      sp,
    );
  }
  return logitsToSourceLabels(logits, channels, modelGridDims(meta), srcDims);
}

/** Probabilities [1, C, D, H, W] on the grid → source labels: the same as labelsFromLogits. */
export const probabilitiesToSourceLabels = labelsFromLogits;

/**
 * A label map on the source grid → the model grid (nearest neighbour), as a Uint8Array. For
 * 'fixed-spacing' (needs `srcSpacing`), grid voxels outside the source extent get 0.
 */
export function labelsToModelGrid(
  labels: Uint8Array | Uint16Array,
  srcDims: Dims,
  meta: Pick<ModelMetadata, 'grid'>,
  srcSpacing?: readonly number[],
): Uint8Array {
  let src: Uint8Array;
  if (labels instanceof Uint8Array) src = labels;
  else {
    src = new Uint8Array(labels.length);
    for (let i = 0; i < labels.length; i++) {
      if (labels[i]! > 255) {
        throw new RangeError(
          `labelsToModelGrid: label values must be 0..255 on the model grid, found ${labels[i]}. Map label values to class indices first.`,
        );
      }
      src[i] = labels[i]!;
    }
  }
  if (meta.grid.resample === 'fixed-spacing') {
    const sp = requireSpacing(meta, srcSpacing, 'labelsToModelGrid');
    return resampleNearestCentred(src, srcDims, sp, modelGridDims(meta), meta.grid.spacing);
  }
  return resampleNearest(src, srcDims, modelGridDims(meta));
}

/** Voxel count per label value (index = value). */
export function countLabels(labels: Uint8Array, maxValue: number): number[] {
  const counts = new Array<number>(maxValue + 1).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (v <= maxValue) counts[v]!++;
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
  const w: [number, number, number] = [origin[0]!, origin[1]!, origin[2]!];
  for (let a = 0; a < 3; a++) {
    for (let c = 0; c < 3; c++) w[c]! += ijk[a]! * spacing[a]! * direction[3 * a + c]!;
  }
  return w;
}
