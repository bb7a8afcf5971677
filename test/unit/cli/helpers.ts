/** Test helpers for the train / eval commands: a tiny NIfTI-1 writer, synthetic volumes, captured output. */
import { writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import type { Io } from '@rrl/models/cli/args.js';

export type Dims3 = [number, number, number];

/** Writes a single-file NIfTI-1 (.nii, or gzipped when the name ends in .gz), diagonal affine. */
export async function writeNifti(
  file: string,
  dims: Dims3,
  data: Uint8Array | Float32Array,
  spacing: Dims3 = [1, 1, 1],
): Promise<void> {
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  header.writeInt16LE(3, 40);
  dims.forEach((d, i) => header.writeInt16LE(d, 42 + 2 * i));
  for (let i = 4; i <= 7; i++) header.writeInt16LE(1, 40 + 2 * i);
  const float = data instanceof Float32Array;
  header.writeInt16LE(float ? 16 : 2, 70);
  header.writeInt16LE(float ? 32 : 8, 72);
  header.writeFloatLE(1, 76);
  spacing.forEach((s, i) => header.writeFloatLE(s, 80 + 4 * i));
  header.writeFloatLE(352, 108);
  header.writeFloatLE(1, 112);
  header.writeUInt8(10, 123);
  header.writeInt16LE(2, 254);
  for (let r = 0; r < 3; r++) header.writeFloatLE(spacing[r]!, 280 + 16 * r + 4 * r);
  header.write('n+1\0', 344, 'latin1');
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const bytes = Buffer.concat([header, body]);
  await writeFile(file, file.endsWith('.gz') ? gzipSync(bytes) : bytes);
}

/**
 * A synthetic "anatomy": an ellipsoid centred at `centre` (voxels) with radii `radii`, split along
 * x into label 1 (low x) and label 2 (high x); the image is a smooth background plus a brighter
 * ellipsoid whose halves differ in brightness, scaled by `gain`.
 */
export function blobVolume(
  dims: Dims3,
  centre: Dims3,
  radii: Dims3,
  gain = 1,
): { image: Float32Array; labels: Uint8Array } {
  const [nx, ny, nz] = dims;
  const image = new Float32Array(nx * ny * nz);
  const labels = new Uint8Array(nx * ny * nz);
  let i = 0;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++, i++) {
        const r =
          ((x - centre[0]) / radii[0]) ** 2 +
          ((y - centre[1]) / radii[1]) ** 2 +
          ((z - centre[2]) / radii[2]) ** 2;
        const bg = 20 + 5 * Math.sin(x / 3) * Math.cos(y / 4) + z * 0.3;
        if (r <= 1) {
          const half = x < centre[0] ? 1 : 2;
          labels[i] = half;
          image[i] = gain * (bg + (half === 1 ? 80 : 120));
        } else image[i] = gain * bg;
      }
  return { image, labels };
}

export interface Captured {
  io: Io;
  stdout(): string;
  stderr(): string;
}

export function capture(): Captured {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: { write: (s: string) => (out += s), isTTY: false },
      stderr: { write: (s: string) => (err += s), isTTY: false },
    },
    stdout: () => out,
    stderr: () => err,
  };
}
