/**
 * The atlas of a task from the PACS: an image series and the SEG that labels it. Finds the SEG(s)
 * referencing a series, checks that a given SEG references it, and reads both onto the series
 * grid. Errors are `AtlasError`s (a 4xx for the API) that name UIDs only.
 */
import type { CodedLabel, SegmentDescription } from '@rrl/core/dicom/seg.js';
import { DicomWebClient, jsonString, PacsError, type DicomJsonDataset } from '../pacs/dicomweb.js';
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
 * it, the study's SEGs referencing the series are tried newest first, and the first that fits the
 * series is used (a broken or mismatched SEG does not block a valid one). A series that is not a
 * complete volume, or SEGs that do not fit it, give an AtlasError (422) that names the series.
 */
export async function loadAtlas(
  client: DicomWebClient,
  ref: { studyUID: string; seriesUID: string; segSeriesUID?: string },
): Promise<LoadedAtlas> {
  const { studyUID, seriesUID } = ref;
  const series = await client.qidoSeries(studyUID, { SeriesInstanceUID: seriesUID });
  const [found] = series;
  if (!found) {
    throw new AtlasError(
      `The PACS has no series ${seriesUID} in study ${studyUID}. Check the atlas UIDs.`,
      404,
    );
  }
  const modality = jsonString(found, MODALITY);
  if (modality === 'SEG') {
    throw new AtlasError(
      `Series ${seriesUID} is a SEG; the atlas series must be the image series the SEG labels.`,
    );
  }
  let segSeriesUID = ref.segSeriesUID;
  let candidates: string[] = [];
  if (segSeriesUID) {
    const meta = await client.seriesMetadata(studyUID, segSeriesUID).catch(() => []);
    const [instance] = meta;
    if (!instance) {
      throw new AtlasError(
        `The PACS has no SEG series ${segSeriesUID} in study ${studyUID}. Check the SEG UID.`,
        404,
      );
    }
    const segModality = jsonString(instance, MODALITY);
    if (segModality !== 'SEG') {
      throw new AtlasError(
        `Series ${segSeriesUID} is not a SEG (modality ${segModality ?? 'missing'}).`,
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
    segSeriesUID = undefined;
    candidates = [...found].reverse(); // newest first
  }
  let volume: SeriesVolume;
  try {
    volume = await fetchSeriesVolume(client, studyUID, seriesUID);
  } catch (e) {
    if (e instanceof PacsError) throw e;
    throw new AtlasError(
      `The atlas series ${seriesUID} cannot be used as a volume: ${(e as Error).message} ` +
        'Check in the viewer that the series is complete (no missing or duplicate slice), or ' +
        'choose another series.',
    );
  }
  const tried: string[] = [];
  for (const uid of segSeriesUID ? [segSeriesUID] : candidates) {
    let seg: Awaited<ReturnType<typeof fetchSegLabelmap>>;
    try {
      seg = await fetchSegLabelmap(client, volume, uid);
    } catch (e) {
      if (e instanceof PacsError) throw e;
      tried.push(`SEG ${uid}: ${(e as Error).message}`);
      continue;
    }
    let count = 0;
    for (let i = 0; i < seg.labelmap.length; i++) if (seg.labelmap[i] !== 0) count++;
    if (count === 0) {
      tried.push(`SEG ${uid} labels no voxel of the series`);
      continue;
    }
    return { volume, labelmap: seg.labelmap, segments: seg.segments, segSeriesUID: uid };
  }
  throw new AtlasError(
    (tried.length === 1
      ? `The atlas SEG does not fit series ${seriesUID}: ${tried[0]}.`
      : `None of the ${tried.length} SEGs that reference series ${seriesUID} fits it: ${tried.join('; ')}.`) +
      ' Segment the series again in the viewer and save the SEG, then try again.',
  );
}

/** What a task stores of an atlas SEG's segment (the shared coded-label shape). */
export type AtlasLabel = CodedLabel;

const DISTINCT: [number, number, number][] = [
  [230, 25, 75],
  [60, 180, 75],
  [0, 130, 200],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
  [210, 245, 60],
  [250, 190, 190],
  [0, 128, 128],
  [170, 110, 40],
  [128, 0, 0],
];

const colourDistance = (a: readonly number[], b: readonly number[]): number =>
  Math.hypot((a[0] ?? 0) - (b[0] ?? 0), (a[1] ?? 0) - (b[1] ?? 0), (a[2] ?? 0) - (b[2] ?? 0));

/** Colours closer than this (RGB distance) are hard to tell apart on an image. */
export const MIN_COLOUR_DISTANCE = 60;

/** The task's labels of a loaded atlas: its SEG's segments that label at least one voxel. */
export function atlasTaskLabels(atlas: LoadedAtlas): { labels: AtlasLabel[]; warnings: string[] } {
  const present = new Set<number>();
  for (let i = 0; i < atlas.labelmap.length; i++) present.add(atlas.labelmap[i]!);
  return taskLabelsFromSegments(atlas.segments, present);
}

/**
 * The task's labels from the atlas SEG's segments that label at least one voxel (`present`), in
 * label-value order: names, colours and codes including the laterality modifier. Two labels with
 * the same coded concept (type + modifier) give a warning (a SEG saved later could not tell them
 * apart); a colour too close to an earlier label's (Left/Right pairs often differ by a shade) is
 * replaced by a clearly different one, with a note.
 */
export function taskLabelsFromSegments(
  segments: readonly SegmentDescription[],
  present: ReadonlySet<number>,
): { labels: AtlasLabel[]; warnings: string[] } {
  const warnings: string[] = [];
  const labels: AtlasLabel[] = [];
  const concept = (l: AtlasLabel): string =>
    `${l.type.scheme}:${l.type.value}|${l.modifier ? `${l.modifier.scheme}:${l.modifier.value}` : ''}`;
  for (const s of [...segments]
    .filter((x) => present.has(x.labelValue))
    .sort((x, y) => x.labelValue - y.labelValue)) {
    const l: AtlasLabel = {
      value: s.labelValue,
      name: s.label,
      color: [...s.color] as [number, number, number],
      category: s.category,
      type: s.type,
      ...(s.modifier ? { modifier: s.modifier } : {}),
    };
    const same = labels.find((o) => o.type.value !== '' && concept(o) === concept(l));
    if (same) {
      warnings.push(
        `"${same.name}" and "${l.name}" have the same code (${l.type.meaning || l.type.value}` +
          `${l.modifier ? `, ${l.modifier.meaning}` : ', no laterality'}): a saved SEG cannot tell ` +
          'them apart. Code them differently in the atlas SEG (e.g. add Left/Right).',
      );
    }
    if (labels.some((o) => colourDistance(o.color, l.color) < MIN_COLOUR_DISTANCE)) {
      const replacement = DISTINCT.find((c) =>
        labels.every((o) => colourDistance(o.color, c) >= MIN_COLOUR_DISTANCE),
      );
      if (replacement) {
        warnings.push(
          `"${l.name}" had nearly the colour of another label; it is shown in RGB ${replacement.join(', ')}.`,
        );
        l.color = [...replacement];
      }
    }
    labels.push(l);
  }
  return { labels, warnings };
}
