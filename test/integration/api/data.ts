/**
 * Synthetic studies for the API tests, written with the project's DICOM writers and stored in a
 * real Orthanc: an atlas (MR series + BINARY SEG with two labels), unlabelled MR series, a series
 * without SEG, and a SEG that references another series.
 */
import { writeBinarySeg } from '@rrl/core/dicom/seg.js';
import { writeImageSeries, type VolumeGeometry } from '@rrl/core/dicom/series.js';
import { newUid } from '@rrl/core/dicom/dcmjs.js';
import { demoSegments } from '@rrl/server/demo/labels.js';
import { DicomWebClient } from '@rrl/server/pacs/dicomweb.js';
import type { TestOrthanc } from '../../helpers/orthanc.js';
import { SECRET_PATIENT_ID, SECRET_PATIENT_NAME } from '../server/dicom-data.js';

export { SECRET_PATIENT_ID, SECRET_PATIENT_NAME };

export interface StoredSeries {
  studyUID: string;
  seriesUID: string;
  datasets: Record<string, unknown>[];
}

const DIMS: [number, number, number] = [32, 32, 12];

function geometry(dims = DIMS): VolumeGeometry {
  return {
    dims,
    spacing: [1, 1, 2],
    origin: [-16, -16, -12],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
  };
}

/** A blob phantom: two spheres brighter than the background, shifted by `shift` voxels. */
function phantom(
  dims: [number, number, number],
  shift: number,
): { voxels: Uint16Array; labels: Uint8Array } {
  const [nx, ny, nz] = dims;
  const voxels = new Uint16Array(nx * ny * nz);
  const labels = new Uint8Array(voxels.length);
  const centres: [number, number, number, number][] = [
    [10 + shift, 16, nz / 2, 1],
    [22 + shift, 16, nz / 2, 2],
  ];
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const i = (z * ny + y) * nx + x;
        voxels[i] = 100 + ((x * 7 + y * 3 + z * 5) % 11);
        for (const [cx, cy, cz, l] of centres) {
          if ((x - cx) ** 2 + (y - cy) ** 2 + ((z - cz) * 2) ** 2 <= 16) {
            voxels[i] = 400 + l * 100;
            labels[i] = l;
          }
        }
      }
  return { voxels, labels };
}

export function pacsClient(pacs: TestOrthanc): DicomWebClient {
  return new DicomWebClient({
    root: pacs.dicomWebRoot,
    username: pacs.username,
    password: pacs.password,
  });
}

async function stow(client: DicomWebClient, files: ArrayBuffer[]): Promise<void> {
  const r = await client.stow(files);
  if (r.failed.length > 0) throw new Error(`STOW failed for ${r.failed.length} instances`);
}

/** An MR series in a new study (or `studyUID`). */
export async function storeSeries(
  client: DicomWebClient,
  opts: {
    studyUID?: string;
    shift?: number;
    dims?: [number, number, number];
    description?: string;
    studyDate?: string;
  } = {},
): Promise<StoredSeries & { labels: Uint8Array }> {
  const studyUID = opts.studyUID ?? newUid();
  const dims = opts.dims ?? DIMS;
  const { voxels, labels } = phantom(dims, opts.shift ?? 0);
  const w = writeImageSeries({
    modality: 'MR',
    geometry: geometry(dims),
    voxels,
    patient: { name: SECRET_PATIENT_NAME, id: SECRET_PATIENT_ID, sex: 'O' },
    study: {
      studyInstanceUID: studyUID,
      studyDate: opts.studyDate ?? '20260301',
      description: 'RRL API test',
    },
    series: { description: opts.description ?? 'T1 phantom', seriesNumber: 1 },
    synthetic: true,
  });
  await stow(client, w.files);
  return { studyUID, seriesUID: w.seriesInstanceUID, datasets: w.datasets, labels };
}

/** A two-label BINARY SEG over `source` (labels of the phantom); returns its series UID. */
export async function storeSeg(
  client: DicomWebClient,
  source: StoredSeries,
  labelmap: Uint8Array,
): Promise<string> {
  const seg = writeBinarySeg({
    sourceInstances: source.datasets,
    labelmap,
    segments: demoSegments('MANUAL').slice(0, 2),
    seriesDescription: 'Atlas labels',
  });
  await stow(client, [seg.bytes]);
  return seg.seriesInstanceUID;
}

/** A labelled atlas (series + its SEG) and two unlabelled series shifted by ±1 voxel. */
export async function storeAtlasAndUnlabelled(
  client: DicomWebClient,
): Promise<{ atlas: StoredSeries; unlabelled: StoredSeries[] }> {
  const atlas = await storeSeries(client, { description: 'T1 atlas' });
  await storeSeg(client, atlas, atlas.labels);
  const unlabelled = [
    await storeSeries(client, { shift: 1, description: 'T1 unlabelled' }),
    await storeSeries(client, { shift: -1, description: 'T1 unlabelled' }),
  ];
  return { atlas, unlabelled };
}
