/** Volumes as read from disk: x fastest, then y, then z. */

export interface ImageVolume {
  data: Float32Array;
  /** [x, y, z] voxels, x fastest. */
  dims: [number, number, number];
  /** [x, y, z] mm. */
  spacing: [number, number, number];
  /** DICOM modality code when known (DICOM series). */
  modality?: string;
  /** File or folder base name only. */
  source: string;
}

export interface LabelVolume {
  data: Uint8Array | Uint16Array;
  dims: [number, number, number];
  spacing: [number, number, number];
  /** Distinct non-zero values present, ascending. */
  values: number[];
  source: string;
}
