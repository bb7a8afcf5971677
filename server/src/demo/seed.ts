/**
 * Demo studies: the demo ATLAS (Colin27 MR series + a BINARY SEG of 8 AAL structures) and N
 * SYNTHETIC subjects made from it (random smooth deformation, bias field, noise), each its own
 * patient and study, clearly named as synthetic. The subjects' warped labels are kept on disk as
 * ground truth (NIfTI on the series grid + index.json), never in the PACS.
 *
 * Everything is deterministic (seeded; UIDs derived from the seed) and cached under
 * `<dataDir>/demo/`: a second run reuses the files, and the PACS is only sent the studies it does
 * not have yet (checked by StudyInstanceUID and instance count).
 *
 * Layout of `<dataDir>/demo/`:
 *   manifest.json                       what was generated (version, seed, studies)
 *   dicom/<StudyInstanceUID>/NNNN.dcm   Part 10 files of each demo study
 *   ground-truth/<StudyInstanceUID>.nii.gz   labels 1..8 on the study's MR grid (RAS affine)
 *   ground-truth/index.json             studies, series, files and label names
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeBinarySeg } from '@rrl/core/dicom/seg.js';
import { writeImageSeries, type VolumeGeometry } from '@rrl/core/dicom/series.js';
import { DicomWebClient, jsonValue } from '../pacs/dicomweb.js';
import { loadDemoAtlas, type DemoVolume } from './atlas.js';
import { DEMO_LABELS, demoSegments } from './labels.js';
import { writeNifti } from './nifti.js';
import { percentile, synthesizeSubject } from './synth.js';

/** Bump when the generated content changes: cached files of another version are regenerated. */
export const DEMO_VERSION = 2;
export const DEFAULT_DEMO_SEED = 20261126;
export const DEFAULT_DEMO_SUBJECTS = 6;
/** MR intensity scale: Colin27 ch2bet units × this = stored 16-bit values. */
const INTENSITY_SCALE = 24;

export type DemoRole = 'atlas' | 'subject';

export interface DemoStudy {
  role: DemoRole;
  /** 0 for the atlas, 1..N for subjects. */
  index: number;
  studyUID: string;
  seriesUID: string;
  /** The atlas's SEG series (atlas only). */
  segSeriesUID?: string;
  /** Synthetic display identity (not a real patient). */
  patientName: string;
  patientID: string;
  studyDescription: string;
  /** Number of Part 10 files (MR slices, + 1 SEG for the atlas). */
  instanceCount: number;
  /** Folder of the Part 10 files, relative to <dataDir>/demo. */
  dicomDir: string;
  /** Ground-truth labels, relative to <dataDir>/demo. */
  groundTruth: string;
  geometry: VolumeGeometry;
}

export interface DemoManifest {
  version: number;
  seed: number;
  studies: DemoStudy[];
}

export interface SeedDemoOptions {
  /** The PACS. Alternatively give `dicomWebRoot` (+ `username`, `password`). */
  client?: DicomWebClient;
  dicomWebRoot?: string;
  username?: string;
  password?: string;
  /** The server's data folder; demo files go to `<dataDir>/demo/`. */
  dataDir?: string;
  /** Alternatively, the demo folder itself (e.g. var/demo); wins over `dataDir`. */
  outDir?: string;
  /** Number of synthetic subjects (default 6). */
  subjects?: number;
  seed?: number;
  /** Folder with ch2bet.nii.gz and aal.nii.gz (default: Debian's mricron-data). */
  templatesDir?: string;
  /** Progress messages (no patient identifiers: UIDs and subject numbers only). */
  log?: (message: string) => void;
}

export interface SeedDemoResult {
  atlas: { studyUID: string; seriesUID: string; segSeriesUID: string };
  subjects: { studyUID: string; seriesUID: string }[];
  /** StudyInstanceUIDs sent to the PACS by this call (empty when the PACS had them all). */
  stored: string[];
  /** <dataDir>/demo */
  demoDir: string;
  manifest: DemoManifest;
}

/** A deterministic UID under 2.25 from a name (SHA-256 → 128 bits → decimal). */
export function demoUid(seed: number, name: string): string {
  const h = createHash('sha256')
    .update(`rrl-medsam-demo/v${DEMO_VERSION}/${seed}/${name}`)
    .digest();
  h[6] = (h[6]! & 0x0f) | 0x50; // UUID version 5 style bits, as for name-based UUIDs
  h[8] = (h[8]! & 0x3f) | 0x80;
  let n = 0n;
  for (const byte of h.subarray(0, 16)) n = (n << 8n) | BigInt(byte);
  return `2.25.${n.toString(10)}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

function studyIdentity(
  seed: number,
  role: DemoRole,
  index: number,
  geometry: VolumeGeometry,
): DemoStudy {
  const key = role === 'atlas' ? 'atlas' : `subject-${index}`;
  const studyUID = demoUid(seed, `${key}/study`);
  const isAtlas = role === 'atlas';
  return {
    role,
    index,
    studyUID,
    seriesUID: demoUid(seed, `${key}/series`),
    ...(isAtlas ? { segSeriesUID: demoUid(seed, `${key}/seg-series`) } : {}),
    patientName: isAtlas ? 'SYNTHETIC^DEMO-ATLAS' : `SYNTHETIC^DEMO-${pad2(index)}`,
    patientID: isAtlas ? 'SYNTHETIC-DEMO-ATLAS' : `SYNTHETIC-DEMO-${pad2(index)}`,
    studyDescription: isAtlas
      ? 'SYNTHETIC DEMO atlas (Colin27 + AAL structures)'
      : `SYNTHETIC DEMO subject ${pad2(index)} (warped Colin27)`,
    instanceCount: geometry.dims[2] + (isAtlas ? 1 : 0),
    dicomDir: path.join('dicom', studyUID),
    groundTruth: path.join('ground-truth', `${studyUID}.nii.gz`),
    geometry,
  };
}

function studyDate(index: number): string {
  const d = new Date(Date.UTC(2025, 0, 6 + 7 * index));
  return d.toISOString().slice(0, 10).replace(/-/g, '');
}

function toStored(image: Float32Array): {
  voxels: Uint16Array;
  window: { center: number; width: number };
} {
  const voxels = new Uint16Array(image.length);
  for (let i = 0; i < image.length; i++) {
    const v = Math.round(image[i]! * INTENSITY_SCALE);
    voxels[i] = v < 0 ? 0 : v > 65535 ? 65535 : v;
  }
  const hi = percentile(image, 0.995) * INTENSITY_SCALE;
  return { voxels, window: { center: Math.round(hi / 2), width: Math.max(1, Math.round(hi)) } };
}

async function writeStudyFiles(
  demoDir: string,
  study: DemoStudy,
  files: ArrayBuffer[],
): Promise<void> {
  const dir = path.join(demoDir, study.dicomDir);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  for (const [i, file] of files.entries()) {
    await writeFile(path.join(tmp, `${String(i).padStart(4, '0')}.dcm`), new Uint8Array(file));
  }
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
}

async function studyOnDisk(demoDir: string, study: DemoStudy): Promise<boolean> {
  const dir = path.join(demoDir, study.dicomDir);
  if (!existsSync(dir) || !existsSync(path.join(demoDir, study.groundTruth))) return false;
  const names = (await readdir(dir)).filter((n) => n.endsWith('.dcm'));
  return names.length === study.instanceCount;
}

function mrFiles(
  study: DemoStudy,
  vol: { image: Float32Array; geometry: VolumeGeometry },
  seriesDescription: string,
  seed: number,
): { files: ArrayBuffer[]; datasets: Record<string, unknown>[] } {
  const { voxels, window } = toStored(vol.image);
  const key = study.role === 'atlas' ? 'atlas' : `subject-${study.index}`;
  const nz = vol.geometry.dims[2];
  const s = writeImageSeries({
    modality: 'MR',
    geometry: vol.geometry,
    voxels,
    window,
    patient: { name: study.patientName, id: study.patientID, sex: 'O' },
    study: {
      studyInstanceUID: study.studyUID,
      studyId: study.role === 'atlas' ? 'DEMO-ATLAS' : `DEMO-${pad2(study.index)}`,
      studyDate: studyDate(study.index),
      studyTime: '090000',
      description: study.studyDescription,
      accessionNumber: study.role === 'atlas' ? 'SYNATLAS' : `SYN${pad2(study.index)}`,
    },
    series: {
      seriesInstanceUID: study.seriesUID,
      seriesNumber: 1,
      description: seriesDescription,
      frameOfReferenceUID: demoUid(seed, `${key}/frame-of-reference`),
      bodyPartExamined: 'BRAIN',
      sopInstanceUIDs: Array.from({ length: nz }, (_, z) => demoUid(seed, `${key}/mr/${z}`)),
    },
    manufacturer: 'RRL-MedSAM demo generator',
    institutionName: 'SYNTHETIC DEMO',
    synthetic: true,
  });
  return { files: s.files, datasets: s.datasets };
}

async function generateAtlas(
  demoDir: string,
  atlas: DemoVolume,
  study: DemoStudy,
  seed: number,
): Promise<void> {
  const mr = mrFiles(study, atlas, 'T1 Colin27 (ch2bet), demo atlas', seed);
  const seg = writeBinarySeg({
    sourceInstances: mr.datasets,
    labelmap: atlas.labels,
    segments: demoSegments('MANUAL'),
    seriesDescription: 'AAL structures (demo atlas)',
    seriesNumber: 2,
    contentLabel: 'DEMO_ATLAS',
    contentDescription: 'Hippocampus, thalamus, caudate, putamen (AAL), left and right',
    contentCreatorName: 'AAL^Atlas',
    seriesInstanceUID: study.segSeriesUID,
    sopInstanceUID: demoUid(seed, 'atlas/seg/0'),
    dimensionOrganizationUID: demoUid(seed, 'atlas/seg/dimension-organization'),
    contentDate: studyDate(0),
    contentTime: '090000',
  });
  await writeNifti(
    path.join(demoDir, study.groundTruth),
    atlas.geometry.dims,
    atlas.labels,
    atlas.affineRas,
    'demo atlas labels (AAL) 1..8',
  );
  await writeStudyFiles(demoDir, study, [...mr.files, seg.bytes]);
}

async function generateSubject(
  demoDir: string,
  atlas: DemoVolume,
  study: DemoStudy,
  seed: number,
): Promise<void> {
  const g = atlas.geometry;
  const subj = synthesizeSubject(
    atlas.image,
    atlas.labels,
    g.dims,
    g.spacing,
    (seed ^ (study.index * 0x9e3779b1)) >>> 0,
  );
  await writeNifti(
    path.join(demoDir, study.groundTruth),
    g.dims,
    subj.labels,
    atlas.affineRas,
    `synthetic subject ${study.index} labels 1..8`,
  );
  const mr = mrFiles(
    study,
    { image: subj.image, geometry: g },
    'T1 synthetic (warped Colin27 + bias + noise)',
    seed,
  );
  await writeStudyFiles(demoDir, study, mr.files);
}

function resolveDemoDir(options: { dataDir?: string; outDir?: string }): string {
  if (options.outDir) return path.resolve(options.outDir);
  if (options.dataDir) return path.join(path.resolve(options.dataDir), 'demo');
  throw new Error('The demo needs a folder: give dataDir (files go to <dataDir>/demo) or outDir.');
}

async function readManifest(demoDir: string): Promise<DemoManifest | undefined> {
  try {
    return JSON.parse(await readFile(path.join(demoDir, 'manifest.json'), 'utf8')) as DemoManifest;
  } catch {
    return undefined;
  }
}

/**
 * Generates (or reuses) the demo files under `<dataDir>/demo/` without touching a PACS.
 * Returns the manifest.
 */
export async function generateDemo(options: {
  dataDir?: string;
  outDir?: string;
  subjects?: number;
  seed?: number;
  templatesDir?: string;
  log?: (message: string) => void;
}): Promise<DemoManifest> {
  const seed = options.seed ?? DEFAULT_DEMO_SEED;
  const nSubjects = options.subjects ?? DEFAULT_DEMO_SUBJECTS;
  const log = options.log ?? (() => undefined);
  const demoDir = resolveDemoDir(options);
  await mkdir(path.join(demoDir, 'dicom'), { recursive: true });
  await mkdir(path.join(demoDir, 'ground-truth'), { recursive: true });
  const old = await readManifest(demoDir);
  if (old && (old.version !== DEMO_VERSION || old.seed !== seed)) {
    log(`demo: cached files are of another version or seed; regenerating in ${demoDir}`);
    await rm(path.join(demoDir, 'dicom'), { recursive: true, force: true });
    await rm(path.join(demoDir, 'ground-truth'), { recursive: true, force: true });
    await mkdir(path.join(demoDir, 'dicom'), { recursive: true });
    await mkdir(path.join(demoDir, 'ground-truth'), { recursive: true });
  }
  let atlas: DemoVolume | undefined;
  const getAtlas = async (): Promise<DemoVolume> =>
    (atlas ??= await loadDemoAtlas(options.templatesDir));
  // The grid is known without loading the atlas once a manifest exists.
  const known = old && old.version === DEMO_VERSION && old.seed === seed ? old.studies : [];
  const geometry = known[0]?.geometry ?? (await getAtlas()).geometry;

  const studies: DemoStudy[] = [studyIdentity(seed, 'atlas', 0, geometry)];
  for (let i = 1; i <= nSubjects; i++) studies.push(studyIdentity(seed, 'subject', i, geometry));
  // keep subjects generated earlier beyond nSubjects in the manifest
  for (const s of known) if (!studies.some((x) => x.studyUID === s.studyUID)) studies.push(s);

  for (const study of studies) {
    if (await studyOnDisk(demoDir, study)) continue;
    const t0 = Date.now();
    const a = await getAtlas();
    if (study.role === 'atlas') await generateAtlas(demoDir, a, study, seed);
    else await generateSubject(demoDir, a, study, seed);
    log(
      `demo: generated ${study.role === 'atlas' ? 'the atlas' : `subject ${study.index}`} ` +
        `(study ${study.studyUID}) in ${Date.now() - t0} ms`,
    );
  }
  studies.sort((a, b) => a.index - b.index);
  const manifest: DemoManifest = { version: DEMO_VERSION, seed, studies };
  await writeFile(path.join(demoDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  await writeFile(
    path.join(demoDir, 'ground-truth', 'index.json'),
    JSON.stringify(
      {
        description:
          'Ground-truth labels of the SYNTHETIC demo studies (not stored in the PACS). Each file is a ' +
          'NIfTI-1 label volume on the grid of the study MR series (voxel order: DICOM columns, rows, ' +
          'slices in instance order; RAS affine).',
        labels: DEMO_LABELS.map((l) => ({ value: l.value, name: l.name, aal: l.aal })),
        studies: studies.map((s) => ({
          role: s.role,
          index: s.index,
          studyInstanceUID: s.studyUID,
          seriesInstanceUID: s.seriesUID,
          ...(s.segSeriesUID ? { segSeriesInstanceUID: s.segSeriesUID } : {}),
          file: path.basename(s.groundTruth),
          dims: s.geometry.dims,
          spacing: s.geometry.spacing,
          origin: s.geometry.origin,
          direction: s.geometry.direction,
        })),
      },
      null,
      2,
    ),
  );
  return manifest;
}

async function pacsInstanceCount(client: DicomWebClient, studyUID: string): Promise<number> {
  const found = await client.qidoStudies({ StudyInstanceUID: studyUID, includefield: '00201208' });
  const [study] = found;
  return study ? Number(jsonValue(study, '00201208') ?? 0) : 0;
}

/**
 * Generates (or reuses) the demo studies and stores in the PACS those it does not have yet.
 * Idempotent: a study already complete in the PACS (same StudyInstanceUID, same instance count) is
 * not sent again.
 */
export async function seedDemo(options: SeedDemoOptions): Promise<SeedDemoResult> {
  const log = options.log ?? (() => undefined);
  const client =
    options.client ??
    (options.dicomWebRoot
      ? new DicomWebClient({
          root: options.dicomWebRoot,
          username: options.username,
          password: options.password,
        })
      : undefined);
  if (!client) throw new Error('seedDemo needs a DICOMweb client (or dicomWebRoot).');
  // Fail fast (PACS down, wrong credentials) before spending a minute on generation.
  await client.qidoStudies({ limit: 1 });
  const manifest = await generateDemo(options);
  const demoDir = resolveDemoDir(options);
  const nSubjects = options.subjects ?? DEFAULT_DEMO_SUBJECTS;
  const wanted = manifest.studies.filter((s) => s.role === 'atlas' || s.index <= nSubjects);
  const stored: string[] = [];
  for (const study of wanted) {
    const have = await pacsInstanceCount(client, study.studyUID);
    if (have >= study.instanceCount) continue;
    const t0 = Date.now();
    const dir = path.join(demoDir, study.dicomDir);
    const names = (await readdir(dir)).filter((n) => n.endsWith('.dcm')).sort();
    const batch = 48;
    for (let i = 0; i < names.length; i += batch) {
      const parts = await Promise.all(
        names.slice(i, i + batch).map(async (n) => {
          const b = await readFile(path.join(dir, n));
          return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
        }),
      );
      await client.stow(parts);
    }
    stored.push(study.studyUID);
    log(
      `demo: stored ${study.role === 'atlas' ? 'the atlas' : `subject ${study.index}`} ` +
        `(study ${study.studyUID}, ${names.length} instances) in ${Date.now() - t0} ms`,
    );
  }
  const atlas = manifest.studies.find((s) => s.role === 'atlas');
  if (!atlas || !atlas.segSeriesUID) throw new Error('demo manifest has no atlas study');
  return {
    atlas: {
      studyUID: atlas.studyUID,
      seriesUID: atlas.seriesUID,
      segSeriesUID: atlas.segSeriesUID,
    },
    subjects: wanted
      .filter((s) => s.role === 'subject')
      .map((s) => ({ studyUID: s.studyUID, seriesUID: s.seriesUID })),
    stored,
    demoDir,
    manifest,
  };
}
