// Support for the end-to-end tests: building the browser bundles when they are stale, dciodvfy,
// direct (non-proxied) QIDO/WADO against the test Orthanc, polling without fixed sleeps, seeding
// the demo studies, the skip reason, and the viewer waits and per-test screenshots the e2e tests use.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';

import { first, items, numbers, readPart10 } from '@rrl/core/dicom/dcmjs.js';
import type { VolumeGeometry } from '@rrl/core/dicom/series.js';
import { dice } from '@rrl/models/rrl/metrics.js';
import { DEMO_LABELS } from '@rrl/server/demo/labels.js';
import { readNifti } from '@rrl/server/demo/nifti.js';
import { seedDemo, type SeedDemoResult } from '@rrl/server/demo/seed.js';
import { MRICRON_DIR } from '../fixtures/test-model.js';
import { chromiumAvailable, type BrowserSession } from '../helpers/browser.js';
import type { TestOrthanc } from '../helpers/orthanc.js';

const run = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, await newestMtime(p));
    else newest = Math.max(newest, (await stat(p)).mtimeMs);
  }
  return newest;
}

async function mtime(file: string): Promise<number> {
  try {
    return (await stat(file)).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Builds dist/extension and dist/mode with the repository's webpack config when a bundle is
 * missing or older than its sources (the full test command builds them first anyway).
 */
export async function ensureBundles(): Promise<{ built: boolean; ms: number }> {
  const started = Date.now();
  const bundles = ['dist/extension/index.js', 'dist/mode/index.js'].map((f) =>
    path.join(REPO_ROOT, f),
  );
  const sources = ['core/src', 'extension/src', 'mode/src'];
  const newestSource = Math.max(
    ...(await Promise.all(sources.map((s) => newestMtime(path.join(REPO_ROOT, s))))),
    await mtime(path.join(REPO_ROOT, 'webpack.config.js')),
  );
  // webpack does not rewrite unchanged files, so a bundle can stay older than a touched source:
  // a stamp written after our own build counts as the bundles' time too.
  const stamp = path.join(REPO_ROOT, 'node_modules', '.cache', 'rrl-e2e-bundles.stamp');
  const stampTime = await mtime(stamp);
  const built = await Promise.all(bundles.map(mtime));
  if (built.every((t) => t > 0 && Math.max(t, stampTime) >= newestSource)) {
    return { built: false, ms: 0 };
  }
  await run('npx', ['webpack', '--mode', 'production'], {
    cwd: REPO_ROOT,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=4096' },
  });
  await mkdir(path.dirname(stamp), { recursive: true });
  await writeFile(stamp, new Date().toISOString());
  return { built: true, ms: Date.now() - started };
}

export interface DciodvfyResult {
  errors: string[];
  warnings: string[];
  output: string;
}

/** Runs dicom3tools' dciodvfy on a Part 10 file; lines starting with "Error" are errors. */
export async function dciodvfy(bytes: ArrayBuffer): Promise<DciodvfyResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'rrl-dciodvfy-'));
  try {
    const file = path.join(dir, 'object.dcm');
    await writeFile(file, Buffer.from(bytes));
    let output: string;
    try {
      const r = await run('dciodvfy', [file], { maxBuffer: 16 * 1024 * 1024 });
      output = r.stdout + r.stderr;
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      output = (err.stdout ?? '') + (err.stderr ?? '');
    }
    const lines = output.split('\n');
    return {
      errors: lines.filter((l) => /^Error/.test(l)),
      warnings: lines.filter((l) => /^Warning/.test(l)),
      output,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export type DicomJson = Record<string, { vr?: string; Value?: unknown[] }>;

export function tagString(ds: DicomJson, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object' && 'Alphabetic' in (v as object)) {
    return String((v as { Alphabetic: unknown }).Alphabetic);
  }
  return String(v);
}

/** Direct DICOMweb access to Orthanc with its credentials (not through the viewer's proxy). */
export class OrthancDirect {
  constructor(
    private readonly root: string,
    private readonly username: string,
    private readonly password: string,
  ) {}

  private headers(accept: string): Record<string, string> {
    const auth = Buffer.from(`${this.username}:${this.password}`).toString('base64');
    return { Authorization: `Basic ${auth}`, Accept: accept };
  }

  async json(pathAndQuery: string): Promise<DicomJson[]> {
    const res = await fetch(`${this.root}${pathAndQuery}`, {
      headers: this.headers('application/dicom+json'),
    });
    if (res.status === 204) return [];
    if (!res.ok) {
      throw new Error(`Orthanc ${pathAndQuery}: expected 200, found ${res.status}.`);
    }
    return (await res.json()) as DicomJson[];
  }

  /** QIDO-RS: the series of a study with the given modality. */
  async seriesOfStudy(studyUID: string, modality?: string): Promise<DicomJson[]> {
    const q = modality ? `?Modality=${encodeURIComponent(modality)}` : '';
    return this.json(`/studies/${studyUID}/series${q}`);
  }

  /** WADO-RS of one instance as Part 10 bytes (multipart/related; type=application/dicom). */
  async instance(studyUID: string, seriesUID: string, sopUID: string): Promise<ArrayBuffer> {
    const res = await fetch(
      `${this.root}/studies/${studyUID}/series/${seriesUID}/instances/${sopUID}`,
      { headers: this.headers('multipart/related; type="application/dicom"') },
    );
    if (!res.ok) throw new Error(`Orthanc WADO of ${sopUID}: expected 200, found ${res.status}.`);
    const type = res.headers.get('content-type') ?? '';
    const body = new Uint8Array(await res.arrayBuffer());
    const m = /boundary="?([^";]+)"?/i.exec(type);
    if (!m) throw new Error(`Orthanc WADO: expected a multipart answer, found "${type}".`);
    const boundary = Buffer.from(`--${m[1]}`);
    const buf = Buffer.from(body);
    const start = buf.indexOf(boundary);
    const headerEnd = buf.indexOf('\r\n\r\n', start);
    const next = buf.indexOf(boundary, headerEnd + 4);
    const part = buf.subarray(headerEnd + 4, next - 2); // drop the CRLF before the boundary
    return part.buffer.slice(part.byteOffset, part.byteOffset + part.byteLength) as ArrayBuffer;
  }
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}.`,
  );
}

/** Why the e2e suites skip (what is not installed: Chromium, mricron-data), or false. */
export function e2eSkipReason(): string | false {
  const missing: string[] = [];
  if (!chromiumAvailable()) missing.push('Chromium (/usr/bin/chromium)');
  if (!existsSync(path.join(MRICRON_DIR, 'ch2bet.nii.gz'))) missing.push('mricron-data');
  return missing.length ? `not installed: ${missing.join(', ')}` : false;
}

/** Seeds the test Orthanc with the demo atlas and two demo subjects (files written under `outDir`). */
export function seedDemoSubjects(
  pacs: Pick<TestOrthanc, 'dicomWebRoot' | 'username' | 'password'>,
  outDir: string,
): Promise<SeedDemoResult> {
  const { dicomWebRoot, username, password } = pacs;
  return seedDemo({ dicomWebRoot, username, password, outDir, subjects: 2 });
}

/**
 * An afterEach hook: a screenshot `<prefix>-<test name>` of the last view, and the browser errors
 * new since the previous test: each is reported, and one that no test said it expects
 * (`browser.expectErrors`) fails the step — a console error or an uncaught rejection in the viewer
 * is a defect.
 */
export function afterEachStep(
  prefix: string,
  current: () => { browser?: BrowserSession; page?: Page },
): (t: unknown) => Promise<void> {
  let errorsSeen = 0;
  return async (t) => {
    const { browser, page } = current();
    const test = t as TestContext;
    if (browser && page) await browser.screenshot(page, `${prefix}-${test.name}`).catch(() => '');
    const fresh = browser?.errors.slice(errorsSeen) ?? [];
    errorsSeen += fresh.length;
    for (const e of fresh.slice(0, 5))
      test.diagnostic(`browser ${e.type}: ${e.text.slice(0, 300)}`);
    const unexpected = fresh.filter((e) => !browser?.isExpected(e));
    if (unexpected.length > 0) {
      throw new Error(
        `${unexpected.length} unexpected browser error(s) during "${test.name}": ` +
          unexpected.map((e) => `${e.type}: ${e.text.slice(0, 200)}`).join(' | '),
      );
    }
  };
}

/** Waits until a display set of this modality is active (the tool can then read the volume). */
export async function waitForActiveModality(
  page: Page,
  modality: string,
  ms: number,
): Promise<void> {
  await waitFor(
    `the ${modality} series in the viewport`,
    () =>
      page.evaluate(
        (m) =>
          (
            window as unknown as {
              services?: {
                displaySetService: { getActiveDisplaySets(): { Modality: string }[] };
              };
            }
          ).services?.displaySetService
            .getActiveDisplaySets()
            .some((d) => d.Modality === m),
        modality,
      ),
    ms,
  );
}

/** Waits until the panel's status is one of `final`, and returns it. */
export async function waitForPanelStatus(
  page: Page,
  what: string,
  final: readonly string[],
  ms: number,
): Promise<string> {
  const status = page.locator('[data-testid="oneshot-status"]');
  return waitFor(
    what,
    async () => {
      const s = await status.getAttribute('data-status');
      return s !== null && final.includes(s) ? s : undefined;
    },
    ms,
  );
}

interface SegFrames {
  rows: number;
  columns: number;
  bits: Uint8Array;
  /** label value per frame (from the segment's label, else its number) */
  frameLabel: number[];
  framePosition: number[][];
}

function readSegFrames(bytes: ArrayBuffer): SegFrames {
  const ds = readPart10(bytes);
  const rows = Number(first(ds.Rows));
  const columns = Number(first(ds.Columns));
  const segNumberToLabel = new Map<number, number>();
  for (const seg of items(ds.SegmentSequence)) {
    const n = Number(first(seg.SegmentNumber));
    const name = String(first(seg.SegmentLabel) ?? '');
    const known = DEMO_LABELS.find((l) => l.name === name);
    segNumberToLabel.set(n, known ? known.value : n);
  }
  const frames = items(ds.PerFrameFunctionalGroupsSequence);
  const frameLabel = frames.map((f) => {
    const n = Number(first(items(f.SegmentIdentificationSequence)[0]?.ReferencedSegmentNumber));
    return segNumberToLabel.get(n) ?? n;
  });
  const framePosition = frames.map((f) =>
    numbers(items(f.PlanePositionSequence)[0]?.ImagePositionPatient),
  );
  const pd = ds.PixelData as ArrayBuffer | ArrayBuffer[];
  const buf = Array.isArray(pd) ? pd[0] : pd;
  return { rows, columns, bits: new Uint8Array(buf), frameLabel, framePosition };
}

/** Voxel count per label value in a BINARY SEG (decoded independently of our SEG reader). */
export function segLabelCounts(bytes: ArrayBuffer): Map<number, number> {
  const f = readSegFrames(bytes);
  const size = f.rows * f.columns;
  const counts = new Map<number, number>();
  f.frameLabel.forEach((label, k) => {
    let n = 0;
    for (let i = 0; i < size; i++) {
      const bit = k * size + i;
      if (f.bits[bit >> 3] & (1 << (bit & 7))) n++;
    }
    counts.set(label, (counts.get(label) ?? 0) + n);
  });
  return counts;
}

/** A BINARY SEG as a labelmap on the source volume's grid (x fastest), placed by frame position. */
export function segToVolume(bytes: ArrayBuffer, g: VolumeGeometry): Uint8Array {
  const f = readSegFrames(bytes);
  const [nx, ny, nz] = g.dims;
  if (f.columns !== nx || f.rows !== ny) {
    throw new Error(`SEG frames are ${f.columns}x${f.rows}, expected the source's ${nx}x${ny}.`);
  }
  const normal = g.direction.slice(6, 9);
  const out = new Uint8Array(nx * ny * nz);
  const size = nx * ny;
  f.frameLabel.forEach((label, k) => {
    const p = f.framePosition[k];
    const d =
      (p[0] - g.origin[0]) * normal[0] +
      (p[1] - g.origin[1]) * normal[1] +
      (p[2] - g.origin[2]) * normal[2];
    const z = Math.round(d / g.spacing[2]);
    if (z < 0 || z >= nz) throw new Error(`SEG frame ${k + 1} lies outside the source volume.`);
    for (let i = 0; i < size; i++) {
      const bit = k * size + i;
      if (f.bits[bit >> 3] & (1 << (bit & 7))) out[z * size + i] = label;
    }
  });
  return out;
}

/**
 * The whole One-Shot panel as one picture (`test-artifacts/panel-<name>.png`, the README's user
 * guide pictures): the page is made tall enough for the panel for the shot, then restored.
 */
export async function panelShot(browser: BrowserSession, page: Page, name: string): Promise<void> {
  const vp = page.viewportSize();
  const needed = await page.evaluate(() => {
    const p = document.querySelector('[data-testid="oneshot-panel"]');
    return p ? p.scrollHeight + 160 : 0;
  });
  if (vp && needed > vp.height) await page.setViewportSize({ width: vp.width, height: needed });
  try {
    await browser.screenshot(page, `panel-${name}`, '[data-testid="oneshot-panel"]');
  } finally {
    if (vp && needed > vp.height) await page.setViewportSize(vp);
  }
}

/**
 * Dice of a saved SEG against the demo study's ground truth, per demo label and their mean (the
 * labels share their values with the SEG's segments).
 */
export async function segDiceAgainstTruth(
  bytes: ArrayBuffer,
  demo: SeedDemoResult,
  studyUID: string,
): Promise<{ mean: number; perLabel: Record<string, number> }> {
  const study = demo.manifest.studies.find((s) => s.studyUID === studyUID);
  if (!study) throw new Error(`study ${studyUID} is not a demo study`);
  const gt = await readNifti(path.join(demo.demoDir, study.groundTruth));
  const pred = segToVolume(bytes, study.geometry);
  const perLabel: Record<string, number> = {};
  for (const l of DEMO_LABELS) perLabel[l.name] = dice(pred, gt.data, l.value);
  const values = Object.values(perLabel);
  return { mean: values.reduce((x, y) => x + y, 0) / values.length, perLabel };
}

/** Per-label voxel counts of the (last) cornerstone segmentation, summed over its labelmap layers. */
export async function cornerstoneLabelCounts(
  page: Page,
  segmentationId?: string,
): Promise<{
  id: string;
  segments: { label: string; index: number }[];
  counts: Record<number, number>;
} | null> {
  return page.evaluate((wanted) => {
    interface Seg {
      segmentationId: string;
      segments: Record<string, { label: string; segmentIndex: number } | undefined>;
      representationData: { Labelmap?: { imageIds?: string[]; volumeId?: string } };
    }
    interface VoxelSource {
      voxelManager?: {
        getScalarData?(): ArrayLike<number>;
        getCompleteScalarDataArray?(): ArrayLike<number>;
      };
      getPixelData?(): ArrayLike<number>;
    }
    const w = window as unknown as {
      services: { segmentationService: { getSegmentations(): Seg[] } };
      cornerstone: {
        cache: { getImage(id: string): VoxelSource; getVolume(id: string): VoxelSource };
      };
    };
    const all = w.services.segmentationService.getSegmentations();
    const seg = wanted ? all.find((s) => s.segmentationId === wanted) : all[all.length - 1];
    if (!seg) return null;
    const counts: Record<number, number> = {};
    // (no inner helper functions: the bundler would wrap them in a helper the page lacks)
    const arrays: ArrayLike<number>[] = [];
    const lm = seg.representationData.Labelmap;
    if (lm?.imageIds) {
      for (const id of lm.imageIds) {
        const img = w.cornerstone.cache.getImage(id);
        if (!img) return null; // not loaded yet
        const d = img.voxelManager?.getScalarData?.() ?? img.getPixelData?.();
        if (d) arrays.push(d);
      }
    } else if (lm?.volumeId) {
      const vol = w.cornerstone.cache.getVolume(lm.volumeId);
      const d = vol?.voxelManager?.getCompleteScalarDataArray?.();
      if (!d) return null;
      arrays.push(d);
    }
    for (const d of arrays) {
      for (let i = 0; i < d.length; i++) if (d[i]) counts[d[i]] = (counts[d[i]] ?? 0) + 1;
    }
    const segments = Object.values(seg.segments)
      .filter((s): s is { label: string; segmentIndex: number } => !!s)
      .map((s) => ({ label: s.label, index: s.segmentIndex }));
    return { id: seg.segmentationId, segments, counts };
  }, segmentationId);
}
