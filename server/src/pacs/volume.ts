/**
 * Reads a series from a DICOMweb PACS as a 3-D volume (Node side: training, evaluation, tests),
 * and a BINARY SEG over it as a labelmap on the same grid.
 *
 * Volume layout: x (column) fastest, then y (row), then z (slice); slices sorted ascending along
 * the slice normal (row × column direction), as cornerstone does. Geometry in LPS mm.
 */
import { readBinarySeg } from '@rrl/core/dicom/seg.js';
import type { VolumeGeometry } from '@rrl/core/dicom/series.js';
import { VolumeError, volumeFromInstances, type SeriesVolume } from '@rrl/core/volume/part10.js';
import { DicomWebClient, PacsError, jsonString } from './dicomweb.js';

// Assembling a volume from Part 10 instances is shared with models/src/io (DICOM folders).
export {
  UNCOMPRESSED_SYNTAXES,
  VolumeError,
  volumeFromDatasets,
  volumeFromInstances,
  type SeriesVolume,
} from '@rrl/core/volume/part10.js';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** Retrieves a series over WADO-RS and builds its volume. */
export async function fetchSeriesVolume(
  client: DicomWebClient,
  studyUID: string,
  seriesUID: string,
): Promise<SeriesVolume> {
  // Ask for explicit VR little endian: a PACS that stores compressed images transcodes them.
  const files = await client.retrieveSeries(studyUID, seriesUID, EXPLICIT_LE);
  try {
    return volumeFromInstances(files);
  } catch (e) {
    if (e instanceof Error && !(e instanceof PacsError)) {
      throw new VolumeError(`Series ${seriesUID} cannot be read as a volume: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Retrieves the (single-instance) SEG series (BINARY, FRACTIONAL or LABELMAP) `segSeriesUID` and reads it as a labelmap on
 * the grid of `volume` (same indexing as `volume.voxels`).
 */
export async function fetchSegLabelmap(
  client: DicomWebClient,
  volume: SeriesVolume,
  segSeriesUID: string,
): Promise<ReturnType<typeof readBinarySeg>> {
  const inst = await client.qidoInstances(volume.studyUID, segSeriesUID);
  const [first] = inst;
  const sop = first ? jsonString(first, '00080018') : undefined;
  if (!sop) {
    throw new VolumeError(
      `SEG series ${segSeriesUID} has no instance in study ${volume.studyUID}.`,
    );
  }
  // Explicit VR little endian: a PACS transcodes RLE-compressed SEGs (e.g. OHIF's own export).
  const bytes = await client.retrieveInstance(volume.studyUID, segSeriesUID, sop, EXPLICIT_LE);
  return readBinarySeg(bytes, volume.instances);
}

/** Voxel (x, y, z) → LPS mm for a volume geometry. */
export function voxelToLps(
  g: VolumeGeometry,
  x: number,
  y: number,
  z: number,
): [number, number, number] {
  const d = g.direction;
  const sx = x * g.spacing[0];
  const sy = y * g.spacing[1];
  const sz = z * g.spacing[2];
  return [
    g.origin[0] + sx * d[0] + sy * d[3] + sz * d[6],
    g.origin[1] + sx * d[1] + sy * d[4] + sz * d[7],
    g.origin[2] + sx * d[2] + sy * d[5] + sz * d[8],
  ];
}
