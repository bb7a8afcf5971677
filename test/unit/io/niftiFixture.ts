/** Writes small NIfTI-1 files for IO tests (any scalar datatype, either byte order). */
import { writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

export interface NiftiFixture {
  dims: number[];
  pixdim: [number, number, number];
  datatype: number;
  values: ArrayLike<number>;
  bigEndian?: boolean;
  slope?: number;
  inter?: number;
  xyztUnits?: number;
  gzip?: boolean;
}

const BYTES: Record<number, number> = {
  2: 1,
  4: 2,
  8: 4,
  16: 4,
  64: 8,
  256: 1,
  512: 2,
  768: 4,
  1024: 8,
  1280: 8,
};

export function encodeNiftiFixture(f: NiftiFixture): Buffer {
  const le = !f.bigEndian;
  const bytes = BYTES[f.datatype];
  const header = new DataView(new ArrayBuffer(352));
  header.setInt32(0, 348, le);
  header.setInt16(40, f.dims.length, le);
  for (let i = 0; i < 7; i++) header.setInt16(42 + 2 * i, f.dims[i] ?? 1, le);
  header.setInt16(70, f.datatype, le);
  header.setInt16(72, bytes * 8, le);
  header.setFloat32(76, 1, le);
  header.setFloat32(80, f.pixdim[0], le);
  header.setFloat32(84, f.pixdim[1], le);
  header.setFloat32(88, f.pixdim[2], le);
  header.setFloat32(108, 352, le);
  header.setFloat32(112, f.slope ?? 1, le);
  header.setFloat32(116, f.inter ?? 0, le);
  header.setUint8(123, f.xyztUnits ?? 2);
  header.setInt16(254, 1, le); // sform_code
  header.setFloat32(280, f.pixdim[0], le);
  header.setFloat32(300, f.pixdim[1], le);
  header.setFloat32(320, f.pixdim[2], le);
  for (let i = 0; i < 4; i++) header.setUint8(344 + i, [0x6e, 0x2b, 0x31, 0][i]);
  const body = new DataView(new ArrayBuffer(f.values.length * bytes));
  for (let i = 0; i < f.values.length; i++) {
    const v = f.values[i];
    const o = i * bytes;
    switch (f.datatype) {
      case 2:
        body.setUint8(o, v);
        break;
      case 4:
        body.setInt16(o, v, le);
        break;
      case 8:
        body.setInt32(o, v, le);
        break;
      case 16:
        body.setFloat32(o, v, le);
        break;
      case 64:
        body.setFloat64(o, v, le);
        break;
      case 256:
        body.setInt8(o, v);
        break;
      case 512:
        body.setUint16(o, v, le);
        break;
      case 768:
        body.setUint32(o, v, le);
        break;
      case 1024:
        body.setBigInt64(o, BigInt(v), le);
        break;
      case 1280:
        body.setBigUint64(o, BigInt(v), le);
        break;
      default:
        throw new Error(`fixture: unsupported datatype ${f.datatype}`);
    }
  }
  const raw = Buffer.concat([Buffer.from(header.buffer), Buffer.from(body.buffer)]);
  return f.gzip ? gzipSync(raw) : raw;
}

export async function writeNiftiFixture(file: string, f: NiftiFixture): Promise<void> {
  await writeFile(file, encodeNiftiFixture(f));
}
