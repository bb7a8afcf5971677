/**
 * Assembles a 3-D volume from the DICOM Part 10 instances of one image series (any order), as the
 * server reads a series from the PACS and the IO code reads a DICOM folder. Needs dcmjs, so it is
 * not re-exported from `core/src/volume/index.ts` (the viewer bundle does not need it).
 *
 * Volume layout: x (column) fastest, then y (row), then z (slice); slices sorted ascending along
 * the slice normal (row × column direction), as cornerstone does. Geometry in LPS mm.
 */
import { first, readPart10, str, type NaturalDataset } from '../dicom/dcmjs.js';
import type { VolumeGeometry } from '../dicom/series.js';
import {
  computeVolumeGeometry,
  GeometryError,
  instanceGeometryFromNaturalized,
} from './geometry.js';

export const UNCOMPRESSED_SYNTAXES = new Set([
  '1.2.840.10008.1.2', // implicit VR little endian
  '1.2.840.10008.1.2.1', // explicit VR little endian
]);

export interface SeriesVolume {
  geometry: VolumeGeometry;
  /** Modality values (RescaleSlope/Intercept applied), x fastest. */
  voxels: Float32Array;
  /** The instances' datasets without PixelData, in volume slice order (z = 0 first). */
  instances: NaturalDataset[];
  studyUID: string;
  seriesUID: string;
  modality: string;
}

export class VolumeError extends Error {
  override name = 'VolumeError';
}

function sliceValues(ds: NaturalDataset, rows: number, columns: number, k: number): Float32Array {
  const ts = str((ds._meta as NaturalDataset | undefined)?.TransferSyntaxUID);
  if (ts && !UNCOMPRESSED_SYNTAXES.has(ts)) {
    throw new VolumeError(
      `Instance ${k} is stored compressed (transfer syntax ${ts}) and the PACS did not transcode ` +
        'it: only uncompressed little-endian images can be read here.',
    );
  }
  const bits = Number(first(ds.BitsAllocated));
  const signed = Number(first(ds.PixelRepresentation)) === 1;
  const spp = Number(first(ds.SamplesPerPixel) ?? 1);
  if (spp !== 1) throw new VolumeError(`Instance ${k} is not a greyscale image (${spp} samples).`);
  const raw = ds.PixelData;
  const buf = Array.isArray(raw) ? raw[0] : raw;
  if (!(buf instanceof ArrayBuffer)) throw new VolumeError(`Instance ${k} has no pixel data.`);
  const n = rows * columns;
  const bytes = bits / 8;
  if (buf.byteLength < n * bytes) {
    throw new VolumeError(
      `Instance ${k} holds ${buf.byteLength} bytes of pixel data; ${rows}×${columns} pixels of ${bits} bits need ${n * bytes}.`,
    );
  }
  let src: ArrayLike<number>;
  if (bits === 16) src = signed ? new Int16Array(buf, 0, n) : new Uint16Array(buf, 0, n);
  else if (bits === 8) src = signed ? new Int8Array(buf, 0, n) : new Uint8Array(buf, 0, n);
  else if (bits === 32) src = signed ? new Int32Array(buf, 0, n) : new Uint32Array(buf, 0, n);
  else throw new VolumeError(`Instance ${k} has BitsAllocated ${bits}; expected 8, 16 or 32.`);
  const slope = Number(first(ds.RescaleSlope) ?? 1) || 1;
  const intercept = Number(first(ds.RescaleIntercept) ?? 0) || 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = src[i]! * slope + intercept;
  return out;
}

/**
 * Builds a volume from Part 10 instances of one series (any order). The series must be one
 * regular 3-D grid by the same rules (and tolerances) as the viewer's (`computeVolumeGeometry`):
 * a series the viewer segments is one the server can train on, and the reverse.
 */
export function volumeFromInstances(files: ArrayBuffer[]): SeriesVolume {
  if (files.length < 2) {
    throw new VolumeError(
      `A volume needs at least 2 slices; the series has ${files.length} instance(s).`,
    );
  }
  return volumeFromDatasets(files.map((f) => readPart10(f)));
}

/** volumeFromInstances on already parsed (naturalized, with PixelData) datasets. */
export function volumeFromDatasets(parsed: NaturalDataset[]): SeriesVolume {
  if (parsed.length < 2) {
    throw new VolumeError(
      `A volume needs at least 2 slices; the series has ${parsed.length} instance(s).`,
    );
  }
  parsed.forEach((ds, k) => {
    const frames = Number(first(ds.NumberOfFrames) ?? 1);
    if (frames > 1) {
      throw new VolumeError(
        `Instance ${k + 1} is a multi-frame image (${frames} frames): only series with one image per instance can be read as a volume.`,
      );
    }
  });
  let g;
  try {
    g = computeVolumeGeometry(
      parsed.map((ds) => instanceGeometryFromNaturalized(ds as Record<string, unknown>)),
      { minSlices: 2 },
    );
  } catch (e) {
    if (e instanceof GeometryError) throw new VolumeError(e.message);
    throw e;
  }
  const [columns, rows] = g.dims;
  const first0 = parsed[g.order[0] ?? 0] as NaturalDataset;
  const geometry: VolumeGeometry = {
    dims: g.dims,
    spacing: g.spacing,
    origin: g.origin,
    direction: g.direction,
  };
  const frame = rows * columns;
  const voxels = new Float32Array(frame * parsed.length);
  const instances: NaturalDataset[] = [];
  g.order.forEach((k, z) => {
    const ds = parsed[k] as NaturalDataset;
    voxels.set(sliceValues(ds, rows, columns, k), z * frame);
    const { PixelData: _pixels, ...rest } = ds;
    instances.push(rest);
  });
  return {
    geometry,
    voxels,
    instances,
    studyUID: str(first0.StudyInstanceUID) ?? '',
    seriesUID: str(first0.SeriesInstanceUID) ?? '',
    modality: str(first0.Modality) ?? '',
  };
}
