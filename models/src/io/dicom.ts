/** DICOM folder (image series) and DICOM SEG reading (Node only). */
import { VolumeReadError } from './errors.js';
import type { ImageVolume, LabelVolume } from './types.js';

export async function readDicomImageFolder(dir: string): Promise<ImageVolume> {
  throw new VolumeReadError(dir, 'DICOM folders are not supported yet; convert to NIfTI.');
}

export async function readDicomLabel(
  p: string,
  _isFolder: boolean,
  _reference?: ImageVolume,
): Promise<LabelVolume> {
  throw new VolumeReadError(p, 'DICOM SEG is not supported yet; convert to NIfTI.');
}
