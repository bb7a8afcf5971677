/**
 * The atlas of a task from the PACS: an image series and the SEG that labels it. Finds the SEG(s)
 * referencing a series, checks that a given SEG references it, and reads both onto the series
 * grid. Errors are `AtlasError`s (a 4xx for the API) that name UIDs only.
 */
import type { SegmentDescription } from '../../../models/src/dicom/seg.js';
import { DicomWebClient, jsonString, type DicomJsonDataset } from '../pacs/dicomweb.js';
import { fetchSegLabelmap, fetchSeriesVolume, type SeriesVolume } from '../pacs/volume.js';

export class AtlasError extends Error {
  override name = 'AtlasError';
  constructor(
    message: string,
    readonly status = 422,
  ) {
    super(message);
  }
}

const MODALITY = '00080060';
const SERIES_UID = '0020000E';
const REFERENCED_SERIES_SEQ = '00081115';

/** The series UIDs a SEG instance's ReferencedSeriesSequence names. */
export function referencedSeries(ds: DicomJsonDataset): string[] {
  const items = (ds[REFERENCED_SERIES_SEQ]?.Value ?? []) as DicomJsonDataset[];
  return items.map((it) => jsonString(it, SERIES_UID)).filter((u): u is string => !!u);
}

/** SEG series of the study that reference `seriesUID` (newest last, as the PACS lists them). */
export async function findSegsFor(
  client: DicomWebClient,
  studyUID: string,
  seriesUID: string,
): Promise<string[]> {
  const segs = await client.qidoSeries(studyUID, { Modality: 'SEG' });
  const out: string[] = [];
  for (const s of segs) {
    const uid = jsonString(s, SERIES_UID);
    if (!uid) continue;
    const meta = await client.seriesMetadata(studyUID, uid);
    if (meta.some((m) => referencedSeries(m).includes(seriesUID))) out.push(uid);
  }
  return out;
}

export interface LoadedAtlas {
  volume: SeriesVolume;
  /** Label values on the series grid (SEG label values, 0 = background). */
  labelmap: Uint8Array;
  segments: SegmentDescription[];
  segSeriesUID: string;
}

/**
 * Reads the atlas series and its SEG. With `segSeriesUID` the SEG must reference the series; without
 * it, the study's SEG referencing the series is used (the newest when there are several).
 */
export async function loadAtlas(
  client: DicomWebClient,
  ref: { studyUID: string; seriesUID: string; segSeriesUID?: string },
): Promise<LoadedAtlas> {
  const { studyUID, seriesUID } = ref;
  const series = await client.qidoSeries(studyUID, { SeriesInstanceUID: seriesUID });
  if (series.length === 0) {
    throw new AtlasError(
      `The PACS has no series ${seriesUID} in study ${studyUID}. Check the atlas UIDs.`,
      404,
    );
  }
  const modality = jsonString(series[0], MODALITY);
  if (modality === 'SEG') {
    throw new AtlasError(
      `Series ${seriesUID} is a SEG; the atlas series must be the image series the SEG labels.`,
    );
  }
  let segSeriesUID = ref.segSeriesUID;
  if (segSeriesUID) {
    const meta = await client.seriesMetadata(studyUID, segSeriesUID).catch(() => []);
    if (meta.length === 0) {
      throw new AtlasError(
        `The PACS has no SEG series ${segSeriesUID} in study ${studyUID}. Check the SEG UID.`,
        404,
      );
    }
    if (jsonString(meta[0], MODALITY) !== 'SEG') {
      throw new AtlasError(
        `Series ${segSeriesUID} is not a SEG (modality ${jsonString(meta[0], MODALITY) ?? 'missing'}).`,
      );
    }
    const refs = meta.flatMap(referencedSeries);
    if (!refs.includes(seriesUID)) {
      throw new AtlasError(
        `SEG series ${segSeriesUID} does not reference the atlas series ${seriesUID} ` +
          `(it references ${refs.length ? refs.join(', ') : 'no series'}). Choose the SEG made on the atlas series.`,
      );
    }
  } else {
    const found = await findSegsFor(client, studyUID, seriesUID);
    if (found.length === 0) {
      throw new AtlasError(
        `Study ${studyUID} has no SEG that references series ${seriesUID}: the atlas needs a ` +
          'segmentation. Segment the series in the viewer and save it to the PACS, then try again.',
      );
    }
    segSeriesUID = found[found.length - 1];
  }
  const volume = await fetchSeriesVolume(client, studyUID, seriesUID);
  const seg = await fetchSegLabelmap(client, volume, segSeriesUID);
  let count = 0;
  for (let i = 0; i < seg.labelmap.length; i++) if (seg.labelmap[i] !== 0) count++;
  if (count === 0) {
    throw new AtlasError(`SEG series ${segSeriesUID} labels no voxel of series ${seriesUID}.`);
  }
  return { volume, labelmap: seg.labelmap, segments: seg.segments, segSeriesUID };
}
