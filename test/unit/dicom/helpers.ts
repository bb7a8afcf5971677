/** Small synthetic series for the DICOM unit and integration tests (no patient data). */
import {
  writeImageSeries,
  type VolumeGeometry,
  type WrittenSeries,
} from '@rrl/core/dicom/series.js';
import type { Code, SegmentDescription } from '@rrl/core/dicom/seg.js';

export const sct = (value: string, meaning: string): Code => ({ value, scheme: 'SCT', meaning });
export const ANATOMY = sct('91723000', 'Anatomical Structure');

export const SEGMENTS: SegmentDescription[] = [
  {
    labelValue: 1,
    label: 'Left hippocampus',
    color: [220, 180, 140],
    category: ANATOMY,
    type: sct('5366008', 'Hippocampus'),
    modifier: sct('7771000', 'Left'),
    algorithmType: 'AUTOMATIC',
    algorithmName: 'unit-test',
  },
  {
    labelValue: 2,
    label: 'Right thalamus',
    color: [0, 118, 14],
    category: ANATOMY,
    type: sct('42695009', 'Thalamus'),
    modifier: sct('24028007', 'Right'),
    algorithmType: 'MANUAL',
  },
];

export function smallGeometry(nx = 16, ny = 12, nz = 6): VolumeGeometry {
  return {
    dims: [nx, ny, nz],
    spacing: [1, 1.5, 2.5],
    origin: [-10, -20, 30],
    // slice direction points to −z, so slice order and z order differ
    direction: [1, 0, 0, 0, 1, 0, 0, 0, -1],
  };
}

export function smallSeries(
  nx = 16,
  ny = 12,
  nz = 6,
  studyInstanceUID = '2.25.99001',
): WrittenSeries {
  const g = smallGeometry(nx, ny, nz);
  const voxels = new Int16Array(nx * ny * nz);
  for (let i = 0; i < voxels.length; i++) voxels[i] = (i * 37) % 1000;
  return writeImageSeries({
    modality: 'MR',
    geometry: g,
    voxels,
    patient: { name: 'SYNTHETIC^UNIT', id: 'SYN-UNIT', sex: 'O' },
    study: { studyInstanceUID, studyId: 'U1', description: 'SYNTHETIC DEMO unit test' },
    series: { description: 'synthetic T1', seriesNumber: 1 },
    synthetic: true,
  });
}

/** A labelmap with blobs of label 1 and 2 on some slices (slice-major, as writeBinarySeg wants). */
export function blobLabelmap(nx: number, ny: number, nz: number): Uint8Array {
  const lm = new Uint8Array(nx * ny * nz);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = (z * ny + y) * nx + x;
        if (z >= 1 && z <= 3 && (x - 4) ** 2 + (y - 4) ** 2 < 8) lm[i] = 1;
        if (z >= 2 && x > nx - 5 && y > ny - 4) lm[i] = 2;
      }
    }
  }
  return lm;
}
