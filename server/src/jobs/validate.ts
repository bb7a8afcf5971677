/**
 * Checks that a PACS series can be a training volume for a task: modality, geometry, spacing and
 * slice count. A series that fails is skipped with the returned reason (the job goes on).
 */
import type { VolumeGeometry } from '@rrl/core/dicom/series.js';

export const SERIES_LIMITS = Object.freeze({
  minSlices: 8,
  maxSlices: 2000,
  minInPlane: 16,
  maxInPlane: 2048,
  /** mm */
  maxSpacing: 10,
  /** Largest spacing / smallest spacing. */
  maxAnisotropy: 8,
});

export interface SeriesFacts {
  seriesUID: string;
  modality: string;
  geometry: VolumeGeometry;
}

/** The reason the series cannot be used, or undefined when it can. */
export function seriesProblem(s: SeriesFacts, taskModality: string): string | undefined {
  const L = SERIES_LIMITS;
  if (taskModality && s.modality !== taskModality) {
    return `modality is ${s.modality || 'missing'}, the task needs ${taskModality}`;
  }
  const [nx, ny, nz] = s.geometry.dims;
  if (nz < L.minSlices) return `${nz} slices; at least ${L.minSlices} are needed for a 3-D volume`;
  if (nz > L.maxSlices) return `${nz} slices; at most ${L.maxSlices} are supported`;
  if (Math.min(nx, ny) < L.minInPlane || Math.max(nx, ny) > L.maxInPlane) {
    return `image size ${nx}×${ny}; expected ${L.minInPlane} to ${L.maxInPlane} pixels per side`;
  }
  const sp = s.geometry.spacing;
  if (!sp.every((v) => Number.isFinite(v) && v > 0)) {
    return `invalid voxel spacing [${sp.join(', ')}] mm`;
  }
  if (Math.max(...sp) > L.maxSpacing) {
    return `voxel spacing [${sp.map((v) => v.toFixed(2)).join(', ')}] mm; at most ${L.maxSpacing} mm per axis is supported`;
  }
  if (Math.max(...sp) / Math.min(...sp) > L.maxAnisotropy) {
    return `voxel spacing [${sp.map((v) => v.toFixed(2)).join(', ')}] mm is too anisotropic (more than ${L.maxAnisotropy}:1)`;
  }
  const d = s.geometry.direction;
  const dot = (a: number, b: number): number =>
    d[3 * a]! * d[3 * b]! + d[3 * a + 1]! * d[3 * b + 1]! + d[3 * a + 2]! * d[3 * b + 2]!;
  if (Math.abs(dot(0, 1)) > 1e-3 || Math.abs(dot(0, 2)) > 1e-3 || Math.abs(dot(1, 2)) > 1e-3) {
    return 'slices are not orthogonal to the image plane (sheared or gantry-tilted geometry)';
  }
  return undefined;
}
