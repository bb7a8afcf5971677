/**
 * Finds series in the PACS for a training job (QIDO-RS): by modality, series description (a
 * substring, case-insensitive) and study date range. Returns UIDs and non-identifying attributes
 * only (no patient names or IDs).
 */
import { DicomWebClient, jsonString, jsonValue } from '../pacs/dicomweb.js';

export interface SeriesQuery {
  modality?: string;
  /** Substring of the series description (case-insensitive). */
  description?: string;
  /** Study date range, YYYY-MM-DD or YYYYMMDD, inclusive. */
  from?: string;
  to?: string;
}

export interface FoundSeries {
  studyUID: string;
  seriesUID: string;
  modality: string;
  description: string;
  studyDate: string;
  instances: number;
}

export class QueryError extends Error {
  override name = 'QueryError';
}

function dicomDate(v: string | undefined, what: string): string {
  if (v === undefined || v === '') return '';
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(v);
  if (!m) throw new QueryError(`${what} must be a date YYYY-MM-DD; found ${JSON.stringify(v)}.`);
  return `${m[1]}${m[2]}${m[3]}`;
}

/** Checks a query's fields; throws QueryError naming the bad field. */
export function parseSeriesQuery(q: Record<string, unknown>): SeriesQuery {
  const out: SeriesQuery = {};
  for (const k of ['modality', 'description', 'from', 'to'] as const) {
    const v = q[k];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' || v.length > 64) {
      throw new QueryError(`query.${k} must be a string of at most 64 characters.`);
    }
    out[k] = v;
  }
  if (out.modality && !/^[A-Z]{2,4}$/.test(out.modality)) {
    throw new QueryError(
      `query.modality must be a DICOM modality such as MR or CT; found ${JSON.stringify(out.modality)}.`,
    );
  }
  dicomDate(out.from, 'query.from');
  dicomDate(out.to, 'query.to');
  return out;
}

/** Series fetched per QIDO page. */
export const SERIES_PAGE = 500;
/** At most this many pages are read for one search (a query that matches more is refused). */
export const MAX_SERIES_PAGES = 200;

/**
 * One series-level QIDO query (`/series`, study date and modality as filters), read in pages of
 * SERIES_PAGE with `limit`/`offset` — not one query per study, which takes minutes on a large
 * archive. The description filter (substring, case-insensitive) is applied here.
 */
export async function searchSeries(
  client: DicomWebClient,
  q: SeriesQuery,
  limit: number,
  offset = 0,
): Promise<{ count: number; offset: number; series: FoundSeries[] }> {
  const from = dicomDate(q.from, 'from');
  const to = dicomDate(q.to, 'to');
  const query: Record<string, string | number> = {
    includefield: '0020000D,00080020,0008103E,00201209,00080060',
  };
  if (from || to) query.StudyDate = `${from}-${to}`;
  if (q.modality) query.Modality = q.modality;
  const needle = q.description?.toLowerCase();
  const found: FoundSeries[] = [];
  for (let page = 0; ; page++) {
    if (page >= MAX_SERIES_PAGES) {
      throw new QueryError(
        `The query matches more than ${MAX_SERIES_PAGES * SERIES_PAGE} series; narrow it (modality, date range).`,
      );
    }
    const rows = await client.qidoAllSeries({
      ...query,
      limit: SERIES_PAGE,
      offset: page * SERIES_PAGE,
    });
    for (const s of rows) {
      const studyUID = jsonString(s, '0020000D');
      const seriesUID = jsonString(s, '0020000E');
      const modality = jsonString(s, '00080060') ?? '';
      if (!studyUID || !seriesUID || modality === 'SEG' || modality === 'SR' || modality === 'PR') {
        continue;
      }
      if (q.modality && modality !== q.modality) continue;
      const description = jsonString(s, '0008103E') ?? '';
      if (needle && !description.toLowerCase().includes(needle)) continue;
      const studyDate = jsonString(s, '00080020') ?? '';
      if ((from && studyDate && studyDate < from) || (to && studyDate && studyDate > to)) continue;
      found.push({
        studyUID,
        seriesUID,
        modality,
        description,
        studyDate,
        instances: Number(jsonValue(s, '00201209') ?? 0),
      });
    }
    if (rows.length < SERIES_PAGE) break;
  }
  found.sort(
    (a, b) => a.studyDate.localeCompare(b.studyDate) || a.seriesUID.localeCompare(b.seriesUID),
  );
  return { count: found.length, offset, series: found.slice(offset, offset + limit) };
}
