/**
 * Reading volumes from disk for training and evaluation (Node only): NIfTI files (.nii, .nii.gz)
 * and folders of DICOM Part-10 files (one image series, or one SEG for labels).
 */
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { VolumeReadError } from './errors.js';
import { isNiftiPath, niftiId, readNiftiVolume } from './nifti.js';
import type { ImageVolume, LabelVolume } from './types.js';
import { dicomFilesUnder, readDicomImageFolder, readDicomLabel } from './dicom.js';

export { VolumeReadError } from './errors.js';
export type { ImageVolume, LabelVolume } from './types.js';

/** True when the file starts with the DICOM Part-10 preamble + "DICM". */
export async function isDicomFile(file: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'r');
    const b = Buffer.alloc(132);
    const { bytesRead } = await fh.read(b, 0, 132, 0);
    return bytesRead === 132 && b.toString('latin1', 128, 132) === 'DICM';
  } catch {
    return false;
  } finally {
    await fh?.close();
  }
}

async function kindOf(p: string): Promise<'nifti' | 'folder' | 'dicom-file'> {
  let st;
  try {
    st = await stat(p);
  } catch {
    throw new VolumeReadError(p, 'it does not exist. Check the path.');
  }
  if (st.isDirectory()) return 'folder';
  if (isNiftiPath(p)) return 'nifti';
  if (await isDicomFile(p)) return 'dicom-file';
  throw new VolumeReadError(
    p,
    'expected a .nii / .nii.gz file, a DICOM file or a folder of DICOM files, found another kind of file. Convert it to NIfTI or pass its DICOM folder.',
  );
}

/** Reads an image volume from a NIfTI file or a folder of DICOM files holding one image series. */
export async function readImageVolume(p: string): Promise<ImageVolume> {
  const kind = await kindOf(p);
  if (kind === 'nifti') {
    const v = await readNiftiVolume(p);
    return {
      data: Float32Array.from(v.data),
      dims: v.dims,
      spacing: v.spacing,
      source: path.basename(p),
    };
  }
  if (kind === 'dicom-file') {
    throw new VolumeReadError(
      p,
      'expected a folder holding all files of one DICOM image series, found a single DICOM file. Pass the folder instead.',
    );
  }
  return readDicomImageFolder(p);
}

function sameGrid(
  a: { dims: readonly number[]; spacing: readonly number[] },
  b: { dims: readonly number[]; spacing: readonly number[] },
): boolean {
  return (
    a.dims.every((d, i) => d === b.dims[i]) &&
    a.spacing.every(
      (s, i) => Math.abs(s - (b.spacing[i] ?? NaN)) <= 1e-3 * Math.max(1, Math.abs(s)),
    )
  );
}

function gridText(v: { dims: readonly number[]; spacing: readonly number[] }): string {
  return `[${v.dims.join(' × ')}] voxels at [${v.spacing.map((s) => +s.toFixed(4)).join(', ')}] mm`;
}

/** Converts label voxels (already integer-checked) to the smallest unsigned array; lists values. */
export function packLabels(
  src: ArrayLike<number>,
  file: string,
): { data: Uint8Array | Uint16Array; values: number[] } {
  let max = 0;
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v <= 65535)) {
      throw new VolumeReadError(
        file,
        `expected integer label values 0..65535, found ${v} at voxel ${i}. Pass a label map (not an image or a probability map).`,
      );
    }
    if (v > max) max = v;
  }
  const data = max <= 255 ? Uint8Array.from(src) : Uint16Array.from(src);
  const seen = new Uint8Array(max + 1);
  for (const v of data) seen[v] = 1;
  const values: number[] = [];
  for (let v = 1; v <= max; v++) if (seen[v]) values.push(v);
  return { data, values };
}

/**
 * Reads a label volume from a NIfTI file (integer values), a DICOM SEG file or a folder holding one
 * SEG (segment numbers become values). With `reference`, a grid that differs from the reference
 * image throws VolumeReadError ("atlas and label grids differ").
 */
export async function readLabelVolume(p: string, reference?: ImageVolume): Promise<LabelVolume> {
  const kind = await kindOf(p);
  let label: LabelVolume;
  if (kind === 'nifti') {
    const v = await readNiftiVolume(p);
    const { data, values } = packLabels(v.data, p);
    label = { data, dims: v.dims, spacing: v.spacing, values, source: path.basename(p) };
  } else {
    label = await readDicomLabel(p, kind === 'folder', reference);
  }
  if (reference && !sameGrid(reference, label)) {
    throw new VolumeReadError(
      p,
      `atlas and label grids differ: the image ${reference.source} is ${gridText(reference)}, the labels ${label.source} are ${gridText(label)}. Pass the label map drawn on this image (same size and voxel spacing).`,
    );
  }
  return label;
}

async function folderHasDicom(dir: string): Promise<boolean> {
  let files: string[];
  try {
    files = await dicomFilesUnder(dir);
  } catch {
    return false;
  }
  for (const f of files) if (await isDicomFile(f)) return true;
  return false;
}

/**
 * The volumes in a folder: .nii / .nii.gz files and sub-folders containing DICOM files (at any
 * depth up to 4, as readImageVolume reads them), sorted by
 * id (file name without extension, or folder name). Hidden entries are skipped.
 */
export async function listVolumes(dir: string): Promise<{ id: string; path: string }[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new VolumeReadError(dir, `the folder cannot be listed (${(e as Error).message}).`);
  }
  const out: { id: string; path: string }[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      const st = await stat(p).catch(() => undefined);
      isDir = !!st?.isDirectory();
      isFile = !!st?.isFile();
    }
    if (isFile && isNiftiPath(e.name)) out.push({ id: niftiId(e.name), path: p });
    else if (isDir && (await folderHasDicom(p))) out.push({ id: e.name, path: p });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.path < b.path ? -1 : 1));
}
