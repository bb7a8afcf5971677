/**
 * A small DICOMweb client for Node (QIDO-RS, WADO-RS, STOW-RS) used by the server, the demo
 * seeding and the tests. Every failure is a `PacsError` whose message says what failed and what to
 * do. Messages and errors carry UIDs and URLs only, never patient identifiers.
 */

/** A DICOM JSON model dataset: tag (8 hex digits) → { vr, Value?, BulkDataURI?, InlineBinary? }. */
export type DicomJsonDataset = Record<
  string,
  { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }
>;

export type PacsErrorKind =
  | 'unreachable' // connection refused, DNS, timeout
  | 'unauthorized' // 401
  | 'forbidden' // 403
  | 'not-found' // 404
  | 'conflict' // 409 (e.g. STOW refused an instance)
  | 'client' // other 4xx
  | 'server' // 5xx
  | 'bad-response'; // unparsable answer or partial STOW failure

export class PacsError extends Error {
  override name = 'PacsError';
  readonly kind: PacsErrorKind;
  readonly status?: number;
  readonly url: string;
  constructor(kind: PacsErrorKind, message: string, url: string, status?: number) {
    super(message);
    this.kind = kind;
    this.status = status;
    this.url = url;
  }
}

export interface DicomWebClientOptions {
  /** The DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web (no trailing slash needed). */
  root: string;
  username?: string;
  password?: string;
  /** Per-request timeout in milliseconds (default 120 s). */
  timeoutMs?: number;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

export type QidoQuery = Record<string, string | number | boolean | string[] | undefined>;

export interface StowResult {
  /** SOP Instance UIDs the PACS reports as stored. */
  stored: string[];
  /** Instances the PACS refused, with the failure reason code if given. */
  failed: { sopInstanceUID: string; reason?: number }[];
  /** The study's RetrieveURL if the PACS returned one. */
  retrieveUrl?: string;
}

/** Reads one element's first value from a DICOM JSON dataset. */
export function jsonValue(ds: DicomJsonDataset, tag: string): unknown {
  const el = ds[tag];
  return el?.Value?.[0];
}

/** Reads a string-like element (UI, LO, CS, DA, ...) from a DICOM JSON dataset. */
export function jsonString(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = jsonValue(ds, tag);
  return v === undefined || v === null ? undefined : String(v);
}

function redactUrl(u: string): string {
  // Query strings may hold PatientName/PatientID filters: never show them in messages.
  const q = u.indexOf('?');
  return q < 0 ? u : `${u.slice(0, q)}?…`;
}

function randomBoundary(): string {
  let s = '';
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return `rrl-boundary-${s}`;
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  const last = hay.length - needle.length;
  outer: for (let i = from; i <= last; i++) {
    if (hay[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Splits a multipart/related body into its parts' bodies. */
export function parseMultipart(body: ArrayBuffer, contentType: string): ArrayBuffer[] {
  const m = /boundary="?([^";]+)"?/i.exec(contentType);
  if (!m) throw new Error(`multipart answer without a boundary (Content-Type: ${contentType})`);
  const enc = new TextEncoder();
  const bytes = new Uint8Array(body);
  const delim = enc.encode(`--${m[1]}`);
  const headerEnd = enc.encode('\r\n\r\n');
  const parts: ArrayBuffer[] = [];
  let pos = indexOfBytes(bytes, delim, 0);
  while (pos >= 0) {
    const afterDelim = pos + delim.length;
    // "--" right after the delimiter closes the multipart body.
    if (bytes[afterDelim] === 0x2d && bytes[afterDelim + 1] === 0x2d) break;
    const hEnd = indexOfBytes(bytes, headerEnd, afterDelim);
    if (hEnd < 0) break;
    const start = hEnd + 4;
    const next = indexOfBytes(bytes, delim, start);
    if (next < 0) break;
    let end = next;
    if (bytes[end - 2] === 0x0d && bytes[end - 1] === 0x0a) end -= 2;
    parts.push(body.slice(start, end));
    pos = next;
  }
  return parts;
}

export class DicomWebClient {
  readonly root: string;
  private readonly auth?: string;
  private readonly timeoutMs: number;
  private readonly extraHeaders: Record<string, string>;

  constructor(options: DicomWebClientOptions) {
    this.root = options.root.replace(/\/+$/, '');
    if (options.username !== undefined || options.password !== undefined) {
      this.auth =
        'Basic ' +
        Buffer.from(`${options.username ?? ''}:${options.password ?? ''}`).toString('base64');
    }
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.extraHeaders = options.headers ?? {};
  }

  private async request(
    method: string,
    pathAndQuery: string,
    what: string,
    init: { headers?: Record<string, string>; body?: Uint8Array | ArrayBuffer } = {},
  ): Promise<Response> {
    const url = `${this.root}${pathAndQuery}`;
    const headers: Record<string, string> = { ...this.extraHeaders, ...init.headers };
    if (this.auth) headers.Authorization = this.auth;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: init.body as BodyInit | undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const cause =
        e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
      throw new PacsError(
        'unreachable',
        `Could not reach the PACS to ${what} (${redactUrl(url)}: ${cause}). ` +
          'Check that the PACS is running and that its DICOMweb URL is right, then try again.',
        url,
      );
    }
    if (res.ok) return res;
    const reason = await describeErrorBody(res);
    const where = `${method} ${redactUrl(url)}`;
    const status = res.status;
    if (status === 401) {
      throw new PacsError(
        'unauthorized',
        `The PACS refused the credentials while trying to ${what} (HTTP 401 on ${where}). ` +
          'Check the PACS username and password in the server configuration.',
        url,
        status,
      );
    }
    if (status === 403) {
      throw new PacsError(
        'forbidden',
        `The PACS does not allow this user to ${what} (HTTP 403 on ${where}${reason}). ` +
          'Ask the PACS administrator for the needed rights.',
        url,
        status,
      );
    }
    if (status === 404) {
      throw new PacsError(
        'not-found',
        `The PACS has no such resource: could not ${what} (HTTP 404 on ${where}${reason}). ` +
          'Check the UIDs, and that the PACS URL points at its DICOMweb root.',
        url,
        status,
      );
    }
    if (status === 409) {
      throw new PacsError(
        'conflict',
        `The PACS refused to ${what} (HTTP 409 on ${where}${reason}). ` +
          'The data may be invalid or already stored with different content.',
        url,
        status,
      );
    }
    if (status >= 500) {
      throw new PacsError(
        'server',
        `The PACS failed while trying to ${what} (HTTP ${status} on ${where}${reason}). ` +
          "Check the PACS's own log; try again later.",
        url,
        status,
      );
    }
    throw new PacsError(
      'client',
      `The PACS rejected the request to ${what} (HTTP ${status} on ${where}${reason}).`,
      url,
      status,
    );
  }

  private async json<T>(res: Response, what: string): Promise<T> {
    const text = await res.text();
    if (text.trim() === '') return [] as unknown as T; // QIDO: 204 / empty body = no matches
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new PacsError(
        'bad-response',
        `The PACS answered with something that is not JSON while trying to ${what} ` +
          `(${redactUrl(res.url)}). Check that the URL points at a DICOMweb root.`,
        res.url,
        res.status,
      );
    }
  }

  /** QIDO-RS /studies. */
  async qidoStudies(query: QidoQuery = {}): Promise<DicomJsonDataset[]> {
    const res = await this.request('GET', `/studies${toQuery(query)}`, 'search studies', {
      headers: { Accept: 'application/dicom+json' },
    });
    return this.json<DicomJsonDataset[]>(res, 'search studies');
  }

  /** QIDO-RS /series: series of every study (with study-level attributes as filters). */
  async qidoAllSeries(query: QidoQuery = {}): Promise<DicomJsonDataset[]> {
    const res = await this.request('GET', `/series${toQuery(query)}`, 'search series', {
      headers: { Accept: 'application/dicom+json' },
    });
    return this.json<DicomJsonDataset[]>(res, 'search series');
  }

  /** QIDO-RS /studies/{study}/series. */
  async qidoSeries(studyUID: string, query: QidoQuery = {}): Promise<DicomJsonDataset[]> {
    const what = `search the series of study ${studyUID}`;
    const res = await this.request(
      'GET',
      `/studies/${enc(studyUID)}/series${toQuery(query)}`,
      what,
      { headers: { Accept: 'application/dicom+json' } },
    );
    return this.json<DicomJsonDataset[]>(res, what);
  }

  /** QIDO-RS /studies/{study}/series/{series}/instances. */
  async qidoInstances(
    studyUID: string,
    seriesUID: string,
    query: QidoQuery = {},
  ): Promise<DicomJsonDataset[]> {
    const what = `search the instances of series ${seriesUID}`;
    const res = await this.request(
      'GET',
      `/studies/${enc(studyUID)}/series/${enc(seriesUID)}/instances${toQuery(query)}`,
      what,
      { headers: { Accept: 'application/dicom+json' } },
    );
    return this.json<DicomJsonDataset[]>(res, what);
  }

  /** WADO-RS series metadata (DICOM JSON model, one dataset per instance). */
  async seriesMetadata(studyUID: string, seriesUID: string): Promise<DicomJsonDataset[]> {
    const what = `read the metadata of series ${seriesUID}`;
    const res = await this.request(
      'GET',
      `/studies/${enc(studyUID)}/series/${enc(seriesUID)}/metadata`,
      what,
      { headers: { Accept: 'application/dicom+json' } },
    );
    return this.json<DicomJsonDataset[]>(res, what);
  }

  /** WADO-RS retrieval of one instance as a DICOM Part 10 file (original transfer syntax). */
  async retrieveInstance(
    studyUID: string,
    seriesUID: string,
    sopUID: string,
    transferSyntax = '*',
  ): Promise<ArrayBuffer> {
    const what = `retrieve instance ${sopUID}`;
    const res = await this.request(
      'GET',
      `/studies/${enc(studyUID)}/series/${enc(seriesUID)}/instances/${enc(sopUID)}`,
      what,
      { headers: { Accept: dicomAccept(transferSyntax) } },
    );
    const parts = await this.multipart(res, what);
    const [part] = parts;
    if (parts.length !== 1 || !part) {
      throw new PacsError(
        'bad-response',
        `Expected 1 DICOM part when trying to ${what}, found ${parts.length}.`,
        res.url,
        res.status,
      );
    }
    return part;
  }

  /** WADO-RS retrieval of every instance of a series as DICOM Part 10 files. */
  async retrieveSeries(
    studyUID: string,
    seriesUID: string,
    transferSyntax = '*',
  ): Promise<ArrayBuffer[]> {
    const what = `retrieve series ${seriesUID}`;
    const res = await this.request(
      'GET',
      `/studies/${enc(studyUID)}/series/${enc(seriesUID)}`,
      what,
      { headers: { Accept: dicomAccept(transferSyntax) } },
    );
    return this.multipart(res, what);
  }

  private async multipart(res: Response, what: string): Promise<ArrayBuffer[]> {
    const ct = res.headers.get('content-type') ?? '';
    const body = await res.arrayBuffer();
    if (ct.toLowerCase().startsWith('application/dicom')) return [body];
    try {
      return parseMultipart(body, ct);
    } catch (e) {
      throw new PacsError(
        'bad-response',
        `Could not read the PACS's answer when trying to ${what}: ${(e as Error).message}.`,
        res.url,
        res.status,
      );
    }
  }

  /**
   * STOW-RS: stores DICOM Part 10 files (multipart/related; type="application/dicom").
   * `studyUID` restricts the store to one study (POST /studies/{study}). Throws a PacsError if the
   * PACS refuses any instance.
   */
  async stow(parts: ArrayBuffer[], studyUID?: string): Promise<StowResult> {
    if (parts.length === 0) return { stored: [], failed: [] };
    const boundary = randomBoundary();
    const enc8 = new TextEncoder();
    const chunks: Uint8Array[] = [];
    let size = 0;
    const push = (c: Uint8Array): void => {
      chunks.push(c);
      size += c.length;
    };
    for (const p of parts) {
      push(enc8.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`));
      push(new Uint8Array(p));
      push(enc8.encode('\r\n'));
    }
    push(enc8.encode(`--${boundary}--\r\n`));
    const body = new Uint8Array(size);
    let off = 0;
    for (const c of chunks) {
      body.set(c, off);
      off += c.length;
    }
    const what = `store ${parts.length} instance(s)${studyUID ? ` in study ${studyUID}` : ''}`;
    const res = await this.request(
      'POST',
      studyUID ? `/studies/${enc(studyUID)}` : '/studies',
      what,
      {
        headers: {
          'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
          Accept: 'application/dicom+json',
        },
        body,
      },
    );
    const answer = await this.json<DicomJsonDataset | DicomJsonDataset[]>(res, what);
    const ds: DicomJsonDataset = Array.isArray(answer) ? (answer[0] ?? {}) : answer;
    const stored = seqItems(ds, '00081199')
      .map((it) => jsonString(it, '00081155'))
      .filter((s): s is string => !!s);
    const failed = seqItems(ds, '00081198').map((it) => {
      const reason = jsonValue(it, '00081197');
      return {
        sopInstanceUID: jsonString(it, '00081155') ?? '(unknown)',
        reason: typeof reason === 'number' ? reason : undefined,
      };
    });
    const result: StowResult = { stored, failed, retrieveUrl: jsonString(ds, '00081190') };
    const [first] = failed;
    if (first) {
      throw new PacsError(
        'bad-response',
        `The PACS refused ${failed.length} of ${parts.length} instance(s) while trying to ${what} ` +
          `(first: ${first.sopInstanceUID}, reason 0x${(first.reason ?? 0).toString(16)}). ` +
          'Nothing is wrong with the connection: the data was rejected; check the PACS log.',
        res.url,
        res.status,
      );
    }
    return result;
  }

  /** True when the study exists in the PACS (QIDO by StudyInstanceUID). */
  async hasStudy(studyUID: string): Promise<boolean> {
    const found = await this.qidoStudies({ StudyInstanceUID: studyUID });
    return found.some((s) => jsonString(s, '0020000D') === studyUID);
  }
}

/** Accept header for WADO-RS Part 10 retrieval; '*' keeps the stored transfer syntax. */
function dicomAccept(transferSyntax: string): string {
  return `multipart/related; type="application/dicom"; transfer-syntax=${transferSyntax}`;
}

function seqItems(ds: DicomJsonDataset, tag: string): DicomJsonDataset[] {
  const v = ds[tag]?.Value;
  return Array.isArray(v) ? (v as DicomJsonDataset[]) : [];
}

function enc(uid: string): string {
  return encodeURIComponent(uid);
}

function toQuery(query: QidoQuery): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) params.append(k, x);
    else params.append(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

async function describeErrorBody(res: Response): Promise<string> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    return '';
  }
  if (!text.trim()) return '';
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    const msg = [j.Message, j.Details].filter((x) => typeof x === 'string' && x).join(': ');
    if (msg) return `: ${msg}`;
  } catch {
    // not JSON
  }
  const short = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return short ? `: ${short}` : '';
}
