/** NIfTI-1 reading (via nifti-reader-js, .gz through zlib) and a minimal writer (uint8/int16/float32). */
import { readFile, writeFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';

export interface NiftiImage {
  dims: [number, number, number];
  /** Voxel values with scl_slope/scl_inter applied, i fastest. */
  data: Float32Array;
  /** 4×4 voxel index → RAS mm (row-major). */
  affine: number[][];
}

export async function readNifti(file: string): Promise<NiftiImage> {
  let buf: Buffer = await readFile(file);
  if (file.endsWith('.gz')) buf = gunzipSync(buf);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const header = nifti.readHeader(ab);
  if (!header) throw new Error(`${file} is not a NIfTI-1 file (no readable header).`);
  const raw = nifti.readImage(header, ab);
  const dims: [number, number, number] = [header.dims[1]!, header.dims[2]!, header.dims[3]!];
  const n = dims[0] * dims[1] * dims[2];
  let typed: ArrayLike<number>;
  switch (header.datatypeCode) {
    case 2:
      typed = new Uint8Array(raw, 0, n);
      break;
    case 4:
      typed = new Int16Array(raw, 0, n);
      break;
    case 512:
      typed = new Uint16Array(raw, 0, n);
      break;
    case 16:
      typed = new Float32Array(raw, 0, n);
      break;
    default:
      throw new Error(
        `${file}: expected NIfTI datatype uint8, int16, uint16 or float32, found code ${header.datatypeCode}.`,
      );
  }
  const slope = header.scl_slope || 1;
  const inter = header.scl_inter || 0;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = typed[i]! * slope + inter;
  return { dims, data, affine: header.affine.map((r: number[]) => [...r]) };
}

/** Encodes a NIfTI-1 single file (.nii), gzipped when `gzip` is true. */
export function encodeNifti(
  dims: [number, number, number],
  data: Uint8Array | Int16Array | Float32Array,
  affine: number[][],
  gzip = true,
  description = '',
): Buffer {
  const [nx, ny, nz] = dims;
  if (data.length !== nx * ny * nz) {
    throw new Error(`encodeNifti: expected ${nx * ny * nz} voxels, found ${data.length}`);
  }
  const [code, bits] =
    data instanceof Uint8Array ? [2, 8] : data instanceof Int16Array ? [4, 16] : [16, 32];
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  header.writeInt16LE(3, 40);
  header.writeInt16LE(nx, 42);
  header.writeInt16LE(ny, 44);
  header.writeInt16LE(nz, 46);
  for (let i = 4; i <= 7; i++) header.writeInt16LE(1, 40 + 2 * i);
  header.writeInt16LE(code, 70);
  header.writeInt16LE(bits, 72);
  // A missing affine entry reads NaN.
  const m = (r: number, c: number): number => affine[r]?.[c] ?? NaN;
  const sp = [0, 1, 2].map((c) => Math.hypot(m(0, c), m(1, c), m(2, c)));
  header.writeFloatLE(1, 76); // qfac
  header.writeFloatLE(sp[0]!, 80);
  header.writeFloatLE(sp[1]!, 84);
  header.writeFloatLE(sp[2]!, 88);
  header.writeFloatLE(1, 92);
  header.writeFloatLE(352, 108); // vox_offset
  header.writeFloatLE(1, 112); // scl_slope
  header.writeFloatLE(0, 116); // scl_inter
  header.writeUInt8(10, 123); // xyzt_units: mm + s
  header.write(description.slice(0, 79), 148, 'latin1');
  header.writeInt16LE(0, 252); // qform_code
  header.writeInt16LE(2, 254); // sform_code: aligned
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) header.writeFloatLE(m(r, c), 280 + 16 * r + 4 * c);
  }
  header.write('n+1\0', 344, 'latin1');
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const file = Buffer.concat([header, body]);
  return gzip ? gzipSync(file, { level: 6 }) : file;
}

export async function writeNifti(
  file: string,
  dims: [number, number, number],
  data: Uint8Array | Int16Array | Float32Array,
  affine: number[][],
  description = '',
): Promise<void> {
  await writeFile(file, encodeNifti(dims, data, affine, file.endsWith('.gz'), description));
}
