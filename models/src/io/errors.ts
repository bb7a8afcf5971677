/** The one error type of volume reading (Node only). */
import path from 'node:path';

/**
 * A volume (NIfTI file, DICOM folder or DICOM SEG) could not be read. `path` is the full path given
 * by the caller; the message names only its base name (folder names may carry patient data).
 */
export class VolumeReadError extends Error {
  readonly path: string;
  readonly reason: string;
  constructor(filePath: string, reason: string) {
    super(`Cannot read volume "${path.basename(filePath)}": ${reason}`);
    this.name = 'VolumeReadError';
    this.path = filePath;
    this.reason = reason;
  }
}
