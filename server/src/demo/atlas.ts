/**
 * The demo atlas: Colin27 (`ch2bet`, skull-stripped) and the AAL atlas on the same grid, from
 * Debian's mricron-data, brought onto the DEMO GRID that every demo series uses:
 *
 * - axes reordered/flipped so that x runs to patient left, y to posterior, z to superior (LPS):
 *   ImageOrientationPatient 1\0\0\0\1\0, slices from inferior to superior — the standard axial
 *   orientation;
 * - x padded with zeros to a multiple of 8 columns (Colin27: 181 → 184). Measured: a 1-bit SEG
 *   over 181 columns packs to an odd length and never loads in OHIF, and Orthanc's per-frame
 *   retrieval needs frames that start on a byte boundary.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { VolumeGeometry } from '@rrl/core/dicom/series.js';
import { DEMO_LABELS } from './labels.js';
import { readNifti } from './nifti.js';
import { AXES, perAxis, type V3 } from './axes.js';

export const MRICRON_TEMPLATES_CANDIDATES = [
  '/usr/share/mricron/templates',
  '/usr/share/mricron',
  '/usr/lib/mricron/templates',
];

export interface DemoVolume {
  geometry: VolumeGeometry;
  /** Image intensities (Colin27 ch2bet units, 0–~133), x fastest. */
  image: Float32Array;
  /** Demo label values 1..8 (DEMO_LABELS), 0 elsewhere, x fastest. */
  labels: Uint8Array;
  /** voxel → RAS affine of the demo grid (for NIfTI files on the same grid). */
  affineRas: number[][];
}

export function findMricronTemplates(dir?: string): string {
  const candidates = dir ? [dir] : MRICRON_TEMPLATES_CANDIDATES;
  for (const d of candidates) {
    if (existsSync(path.join(d, 'ch2bet.nii.gz')) && existsSync(path.join(d, 'aal.nii.gz')))
      return d;
  }
  throw new Error(
    `The Colin27 brain and AAL atlas (ch2bet.nii.gz, aal.nii.gz) were not found in ${candidates.join(
      ', ',
    )}. Install the Debian package mricron-data (apt-get install -y mricron-data).`,
  );
}

/** The RAS affine of a grid described by an LPS VolumeGeometry. */
export function rasAffine(g: VolumeGeometry): number[][] {
  const d = g.direction;
  const cols = perAxis((a) => perAxis((c) => d[3 * a + c]! * g.spacing[a]));
  return [
    [-cols[0][0], -cols[1][0], -cols[2][0], -g.origin[0]],
    [-cols[0][1], -cols[1][1], -cols[2][1], -g.origin[1]],
    [cols[0][2], cols[1][2], cols[2][2], g.origin[2]],
    [0, 0, 0, 1],
  ];
}

/** Loads Colin27 + AAL and resamples them (exactly: axis permutation, flips, padding) to the demo grid. */
export async function loadDemoAtlas(templatesDir?: string): Promise<DemoVolume> {
  const dir = findMricronTemplates(templatesDir);
  const img = await readNifti(path.join(dir, 'ch2bet.nii.gz'));
  const aal = await readNifti(path.join(dir, 'aal.nii.gz'));
  if (img.dims.join() !== aal.dims.join()) {
    throw new Error(
      `ch2bet and aal were expected on the same grid, found ${img.dims.join('×')} and ${aal.dims.join('×')}.`,
    );
  }
  // The NIfTI affine; a missing entry reads NaN (and fails the axis-alignment check).
  const A = (r: number, c: number): number => img.affine[r]?.[c] ?? NaN;
  // NIfTI voxel axis j in LPS
  const axesLps = perAxis((j): V3 => [-A(0, j), -A(1, j), A(2, j)]);
  const src = perAxis((t) => {
    let best: 0 | 1 | 2 = 0;
    let bestAbs = 0;
    for (const j of AXES) {
      const len = Math.hypot(axesLps[j][0], axesLps[j][1], axesLps[j][2]);
      const c = axesLps[j][t] / len;
      if (Math.abs(c) > bestAbs) {
        bestAbs = Math.abs(c);
        best = j;
      }
    }
    if (bestAbs < 0.999) {
      throw new Error(
        'The atlas NIfTI is not axis-aligned; the demo grid expects an axis-aligned volume.',
      );
    }
    const len = Math.hypot(axesLps[best][0], axesLps[best][1], axesLps[best][2]);
    return { j: best, flip: axesLps[best][t] < 0, spacing: len };
  });
  const n = perAxis((t) => img.dims[src[t].j] ?? 0);
  const dims: [number, number, number] = [Math.ceil(n[0] / 8) * 8, n[1], n[2]];
  const srcIndexOf = (t: 0 | 1 | 2, v: number): number => (src[t].flip ? n[t] - 1 - v : v);
  // origin: LPS of target voxel (0,0,0) = NIfTI voxel with indices srcIndexOf(t, 0)
  const ijk: V3 = [0, 0, 0];
  for (const t of AXES) ijk[src[t].j] = srcIndexOf(t, 0);
  const ras = perAxis((r) => A(r, 0) * ijk[0] + A(r, 1) * ijk[1] + A(r, 2) * ijk[2] + A(r, 3));
  const geometry: VolumeGeometry = {
    dims,
    spacing: [src[0].spacing, src[1].spacing, src[2].spacing],
    origin: [-ras[0], -ras[1], ras[2]],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
  const aalToValue = new Uint8Array(256);
  for (const l of DEMO_LABELS) aalToValue[l.aal] = l.value;
  const [nxs = 0, nys = 0] = img.dims;
  const strides: V3 = [1, nxs, nxs * nys];
  const image = new Float32Array(dims[0] * dims[1] * dims[2]);
  const labels = new Uint8Array(image.length);
  for (let z = 0; z < dims[2]; z++) {
    const oz = strides[src[2].j] * srcIndexOf(2, z);
    for (let y = 0; y < dims[1]; y++) {
      const oy = oz + strides[src[1].j] * srcIndexOf(1, y);
      const row = (z * dims[1] + y) * dims[0];
      for (let x = 0; x < n[0]; x++) {
        const o = oy + strides[src[0].j] * srcIndexOf(0, x);
        image[row + x] = img.data[o]!;
        const a = Math.round(aal.data[o]!);
        labels[row + x] = a >= 0 && a < 256 ? aalToValue[a]! : 0;
      }
    }
  }
  return { geometry, image, labels, affineRas: rasAffine(geometry) };
}
