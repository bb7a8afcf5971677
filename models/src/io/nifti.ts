/**
 * NIfTI-1/2 reading (.nii, .nii.gz) into ImageVolume / LabelVolume (Node only). All common
 * datatypes, either byte order, scl_slope/scl_inter, dims beyond 3 only when they are 1, pixdim →
 * spacing in mm (xyzt_units metre/micron converted).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { VolumeReadError } from './errors.js';

export interface NiftiVolume {
  dims: [number, number, number];
  spacing: [number, number, number];
  /** Voxel values with scl_slope / scl_inter applied, x fastest. */
  data: Float64Array;
}

const DATATYPES: Record<number, { name: string; bytes: number }> = {
  2: { name: 'uint8', bytes: 1 },
  4: { name: 'int16', bytes: 2 },
  8: { name: 'int32', bytes: 4 },
  16: { name: 'float32', bytes: 4 },
  64: { name: 'float64', bytes: 8 },
  256: { name: 'int8', bytes: 1 },
  512: { name: 'uint16', bytes: 2 },
  768: { name: 'uint32', bytes: 4 },
  1024: { name: 'int64', bytes: 8 },
  1280: { name: 'uint64', bytes: 8 },
};

export function isNiftiPath(p: string): boolean {
  return /\.nii(\.gz)?$/i.test(p);
}

/** File name without .nii / .nii.gz. */
export function niftiId(p: string): string {
  return path.basename(p).replace(/\.nii(\.gz)?$/i, '');
}

function readValue(view: DataView, code: number, offset: number, le: boolean): number {
  switch (code) {
    case 2:
      return view.getUint8(offset);
    case 4:
      return view.getInt16(offset, le);
    case 8:
      return view.getInt32(offset, le);
    case 16:
      return view.getFloat32(offset, le);
    case 64:
      return view.getFloat64(offset, le);
    case 256:
      return view.getInt8(offset);
    case 512:
      return view.getUint16(offset, le);
    case 768:
      return view.getUint32(offset, le);
    case 1024:
      return Number(view.getBigInt64(offset, le));
    default:
      return Number(view.getBigUint64(offset, le));
  }
}

/** Reads a NIfTI file; throws VolumeReadError naming what was expected and found. */
export async function readNiftiVolume(file: string): Promise<NiftiVolume> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new VolumeReadError(file, `the file cannot be opened (${(e as Error).message}).`);
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new VolumeReadError(
        file,
        `the file is gzip-compressed but does not decompress (${(e as Error).message}); it is truncated or corrupt. Re-export it.`,
      );
    }
  }
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  if (!nifti.isNIFTI(ab)) {
    throw new VolumeReadError(
      file,
      'expected a NIfTI-1 or NIfTI-2 single file (.nii or .nii.gz, magic "n+1"/"n+2"), found something else. Convert it to NIfTI or pass a DICOM folder.',
    );
  }
  const header = nifti.readHeader(ab);
  const hd = header.dims;
  const ndim = hd[0] ?? 0;
  if (!(ndim >= 2 && ndim <= 7)) {
    throw new VolumeReadError(file, `expected 3 dimensions in the header, found dim[0] = ${ndim}.`);
  }
  const dims: [number, number, number] = [
    hd[1] ?? 1,
    ndim >= 2 ? (hd[2] ?? 1) : 1,
    ndim >= 3 ? (hd[3] ?? 1) : 1,
  ];
  for (let d = 4; d <= ndim; d++) {
    if ((hd[d] ?? 1) > 1) {
      throw new VolumeReadError(
        file,
        `expected a 3-D volume, found ${ndim} dimensions [${header.dims.slice(1, ndim + 1).join(', ')}] with ${header.dims[d]} along dimension ${d}. Extract one 3-D volume (e.g. one time point) first.`,
      );
    }
  }
  if (!dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new VolumeReadError(file, `expected positive dimensions, found [${dims.join(', ')}].`);
  }
  const type = DATATYPES[header.datatypeCode];
  if (!type) {
    throw new VolumeReadError(
      file,
      `expected a scalar datatype (uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64), found datatype code ${header.datatypeCode}. Convert it to a scalar volume.`,
    );
  }
  const n = dims[0] * dims[1] * dims[2];
  const raw = nifti.readImage(header, ab);
  if (raw.byteLength < n * type.bytes) {
    throw new VolumeReadError(
      file,
      `expected ${n * type.bytes} bytes of ${type.name} voxels for [${dims.join(', ')}], found ${raw.byteLength}; the file is truncated.`,
    );
  }
  const unitScale = [1, 1000, 1, 0.001][header.xyzt_units & 7] ?? 1;
  const spacing = [1, 2, 3].map((a) => Math.abs(header.pixDims[a] ?? 0) * unitScale) as [
    number,
    number,
    number,
  ];
  if (!spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new VolumeReadError(
      file,
      `expected positive voxel sizes in pixdim[1..3], found [${spacing.join(', ')}]. Fix the header (voxel size in mm).`,
    );
  }
  const slope = Number.isFinite(header.scl_slope) && header.scl_slope !== 0 ? header.scl_slope : 1;
  const inter = Number.isFinite(header.scl_inter) ? header.scl_inter : 0;
  const data = new Float64Array(n);
  const view = new DataView(raw);
  const le = header.littleEndian;
  const code = header.datatypeCode;
  for (let i = 0, o = 0; i < n; i++, o += type.bytes) {
    data[i] = readValue(view, code, o, le) * slope + inter;
  }
  return { dims, spacing, data };
}
