/**
 * DICOM folders (one image series) and DICOM SEG (label maps) as ImageVolume / LabelVolume
 * (Node only). Slice order and geometry checks: `computeVolumeGeometry`; assembly:
 * `volumeFromDatasets` (shared with the server's PACS reader); SEG decoding: `readBinarySeg`.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { readPart10, str, items, type NaturalDataset } from '@rrl/core/dicom/dcmjs.js';
import {
  LABELMAP_SEGMENTATION_STORAGE,
  SEGMENTATION_STORAGE,
  readBinarySeg,
} from '@rrl/core/dicom/seg.js';
import {
  computeVolumeGeometry,
  GeometryError,
  instanceGeometryFromNaturalized,
} from '@rrl/core/volume/geometry.js';
import { volumeFromDatasets, type SeriesVolume } from '@rrl/core/volume/part10.js';
import { VolumeReadError } from './errors.js';
import type { ImageVolume, LabelVolume } from './types.js';

const SEG_CLASSES = new Set([SEGMENTATION_STORAGE, LABELMAP_SEGMENTATION_STORAGE]);
/** Media Storage Directory (DICOMDIR): an index, not an image. */
const DICOMDIR_CLASS = '1.2.840.10008.1.3.10';
const MAX_DEPTH = 4;

interface ParsedFile {
  file: string;
  bytes: ArrayBuffer;
  ds: NaturalDataset;
}

/** Series instances kept beside an ImageVolume read from DICOM, for reading a SEG over it. */
const sourceOf = new WeakMap<ImageVolume, { seriesUID: string; instances: NaturalDataset[] }>();

function hasMagic(b: Buffer): boolean {
  return b.length >= 132 && b.toString('latin1', 128, 132) === 'DICM';
}

/** Part 10 files under `dir` (recursively, hidden entries skipped), sorted by path. */
export async function dicomFilesUnder(dir: string, depth = 0): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    const st = e.isSymbolicLink() ? await stat(p).catch(() => undefined) : e;
    if (!st) continue;
    if (st.isDirectory()) {
      if (depth < MAX_DEPTH) out.push(...(await dicomFilesUnder(p, depth + 1)));
    } else if (st.isFile()) {
      out.push(p);
    }
  }
  return out;
}

/**
 * Reads and parses every DICOM Part 10 file under `dir`; other files are ignored. A file that
 * starts like DICOM but does not parse is an error, unless `tolerant` (searching a wider folder
 * for a referenced series), where it is skipped.
 */
async function parseFolder(dir: string, reportAs: string, tolerant = false): Promise<ParsedFile[]> {
  let files: string[];
  try {
    files = await dicomFilesUnder(dir);
  } catch (e) {
    throw new VolumeReadError(reportAs, `the folder cannot be listed (${(e as Error).message}).`);
  }
  const out: ParsedFile[] = [];
  for (const file of files) {
    const buf = await readFile(file);
    if (!hasMagic(buf)) continue;
    try {
      out.push(parseOne(file, buf, reportAs));
    } catch (e) {
      if (!tolerant) throw e;
    }
  }
  return out;
}

function parseOne(file: string, buf: Buffer, reportAs: string): ParsedFile {
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let ds: NaturalDataset;
  try {
    ds = readPart10(bytes);
  } catch (e) {
    throw new VolumeReadError(
      reportAs,
      `the file "${path.basename(file)}" starts like a DICOM file but cannot be parsed (${(e as Error).message}). Remove or replace it; a volume with a damaged slice cannot be used.`,
    );
  }
  return { file, bytes, ds };
}

const sopClass = (p: ParsedFile): string => str(p.ds.SOPClassUID) ?? '';
const isSeg = (p: ParsedFile): boolean => SEG_CLASSES.has(sopClass(p));
const isImage = (p: ParsedFile): boolean =>
  !isSeg(p) && sopClass(p) !== DICOMDIR_CLASS && p.ds.PixelData !== undefined;

function groupBySeries(files: ParsedFile[]): Map<string, ParsedFile[]> {
  const m = new Map<string, ParsedFile[]>();
  for (const f of files) {
    const uid = str(f.ds.SeriesInstanceUID) ?? '(no SeriesInstanceUID)';
    const list = m.get(uid) ?? [];
    list.push(f);
    m.set(uid, list);
  }
  return m;
}

/** Orders and assembles one series; geometry problems become VolumeReadErrors. */
function assemble(files: ParsedFile[], seriesUID: string, reportAs: string): SeriesVolume {
  try {
    const geo = computeVolumeGeometry(
      files.map((f) => instanceGeometryFromNaturalized(f.ds)),
      { seriesInstanceUID: seriesUID },
    );
    return volumeFromDatasets(geo.order.map((i) => files[i]!.ds));
  } catch (e) {
    const reason =
      e instanceof GeometryError && e.problem === 'single-slice'
        ? `series ${seriesUID} has ${files.length} slice; expected a 3-D volume of at least 2 slices. Pass a folder with a volumetric series.`
        : e instanceof GeometryError
          ? `series ${seriesUID} is not a regular 3-D volume: ${e.message}`
          : `series ${seriesUID} cannot be assembled into a volume: ${(e as Error).message}`;
    throw new VolumeReadError(reportAs, reason);
  }
}

/** The one image series in `files`, with clear errors for none, SEG-only and several. */
function oneImageSeries(files: ParsedFile[], dir: string): [string, ParsedFile[]] {
  const images = files.filter(isImage);
  if (images.length === 0) {
    const segs = files.filter(isSeg).length;
    throw new VolumeReadError(
      dir,
      files.length === 0
        ? 'expected DICOM image files (Part 10, with the "DICM" preamble) in the folder, found none. Pass a folder holding one image series, or a .nii/.nii.gz file.'
        : segs > 0
          ? `expected a DICOM image series, found only ${segs} DICOM SEG object${segs === 1 ? '' : 's'}. Pass the folder of the images; a SEG is a label volume (readLabelVolume).`
          : `expected DICOM images with pixel data, found ${files.length} DICOM file${files.length === 1 ? '' : 's'} without images (e.g. DICOMDIR, reports). Pass the folder of the image series.`,
    );
  }
  const series = groupBySeries(images);
  if (series.size > 1) {
    const list = [...series].map(([uid, f]) => `${uid} (${f.length} files)`).join(', ');
    throw new VolumeReadError(
      dir,
      `expected one image series in the folder, found ${series.size}: ${list}. Put each series in its own folder.`,
    );
  }
  return [...series][0]!;
}

function toImageVolume(vol: SeriesVolume, source: string): ImageVolume {
  const g = vol.geometry;
  const image: ImageVolume = {
    data: vol.voxels,
    dims: [g.dims[0], g.dims[1], g.dims[2]],
    spacing: [g.spacing[0], g.spacing[1], g.spacing[2]],
    source,
  };
  if (vol.modality) image.modality = vol.modality;
  sourceOf.set(image, { seriesUID: vol.seriesUID, instances: vol.instances });
  return image;
}

/** Reads the one image series in a folder of DICOM Part 10 files. */
export async function readDicomImageFolder(dir: string): Promise<ImageVolume> {
  const files = await parseFolder(dir, dir);
  const [uid, series] = oneImageSeries(files, dir);
  return toImageVolume(assemble(series, uid, dir), path.basename(dir));
}

function referencedSeriesUID(seg: NaturalDataset): string | undefined {
  const ref = items(seg.ReferencedSeriesSequence)[0];
  return ref ? str(ref.SeriesInstanceUID) : undefined;
}

/**
 * Reads a DICOM SEG (a file, or the one SEG in a folder) as a label volume on the grid of the
 * image series it references. Segment numbers become values (for SEGs written by
 * `writeBinarySeg`, the label value recorded in TrackingID "label N"). The series' instances come
 * from `reference` when it was read from DICOM, else from the SEG's folder, else its parent.
 */
export async function readDicomLabel(
  p: string,
  isFolder: boolean,
  reference?: ImageVolume,
): Promise<LabelVolume> {
  let seg: ParsedFile;
  let folderFiles: ParsedFile[] | undefined;
  if (isFolder) {
    folderFiles = await parseFolder(p, p);
    const segs = folderFiles.filter(isSeg);
    if (segs.length !== 1) {
      throw new VolumeReadError(
        p,
        segs.length === 0
          ? `expected one DICOM SEG object in the folder, found none${folderFiles.length ? ` (only ${folderFiles.length} other DICOM files)` : ''}. Pass the SEG file or a folder holding it, or a .nii/.nii.gz label map.`
          : `expected one DICOM SEG object in the folder, found ${segs.length}. Pass the SEG file itself.`,
      );
    }
    seg = segs[0]!;
  } else {
    let buf: Buffer;
    try {
      buf = await readFile(p);
    } catch (e) {
      throw new VolumeReadError(p, `the file cannot be opened (${(e as Error).message}).`);
    }
    seg = parseOne(p, buf, p);
    if (!isSeg(seg)) {
      throw new VolumeReadError(
        p,
        `expected a DICOM SEG object (SOP class ${SEGMENTATION_STORAGE} or ${LABELMAP_SEGMENTATION_STORAGE}), found SOP class ${sopClass(seg) || 'none'}. Pass a SEG or a .nii/.nii.gz label map.`,
      );
    }
  }
  const refUID = referencedSeriesUID(seg.ds);
  if (!refUID) {
    throw new VolumeReadError(
      p,
      'the SEG names no referenced image series (ReferencedSeriesSequence), so its grid is unknown. Export the SEG with its source series reference.',
    );
  }
  let instances: NaturalDataset[] | undefined;
  let spacing: [number, number, number] | undefined;
  let dims: [number, number, number] | undefined;
  const known = reference ? sourceOf.get(reference) : undefined;
  if (reference && known && known.seriesUID === refUID) {
    instances = known.instances;
    spacing = reference.spacing;
    dims = reference.dims;
  } else {
    const segDir = isFolder ? p : path.dirname(p);
    const searchDirs = [segDir, path.dirname(segDir)];
    for (const [n, dir] of searchDirs.entries()) {
      const files = n === 0 && folderFiles ? folderFiles : await parseFolder(dir, p, n > 0);
      const series = files.filter((f) => isImage(f) && str(f.ds.SeriesInstanceUID) === refUID);
      if (series.length > 0) {
        const vol = assemble(series, refUID, p);
        instances = vol.instances;
        spacing = [vol.geometry.spacing[0], vol.geometry.spacing[1], vol.geometry.spacing[2]];
        dims = [vol.geometry.dims[0], vol.geometry.dims[1], vol.geometry.dims[2]];
        break;
      }
    }
  }
  if (!instances || !spacing || !dims) {
    throw new VolumeReadError(
      p,
      `the SEG is drawn on image series ${refUID}, whose DICOM files were found neither beside the SEG nor in the folder above it. Put the SEG next to (or in a sibling folder of) its image series.`,
    );
  }
  let labelmap: Uint8Array;
  try {
    labelmap = readBinarySeg(seg.bytes, instances).labelmap;
  } catch (e) {
    throw new VolumeReadError(
      p,
      `the SEG cannot be read over series ${refUID}: ${(e as Error).message}`,
    );
  }
  const seen = new Uint8Array(256);
  for (const v of labelmap) seen[v] = 1;
  const values: number[] = [];
  for (let v = 1; v < 256; v++) if (seen[v]) values.push(v);
  return { data: labelmap, dims, spacing, values, source: path.basename(p) };
}
