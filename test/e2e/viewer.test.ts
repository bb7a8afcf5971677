// End to end in headless Chromium (Debian's chromium through playwright-core), against a real
// Orthanc seeded with the demo atlas and two demo subjects, and the companion server serving the
// prebuilt OHIF viewer with our extension and mode:
//   study list → open a demo subject in the One-Shot mode → run the tool (wasm) → the labelmap has
//   the expected named segments → save → the SEG series is in Orthanc (QIDO, directly) and passes
//   dciodvfy → reopening the study loads the SEG in the viewer with the same voxels.
// (The WebGPU-against-wasm check is in webgpu.test.ts.) Screenshots go to test-artifacts/.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';

import { launchBrowser, type BrowserSession } from '../helpers/browser.js';
import { TEST_PACS_PASSWORD, TEST_PACS_USER, type TestOrthanc } from '../helpers/orthanc.js';
import { startOrthanc } from '@rrl/server/pacs/orthanc.js';
import { startTestStack, type TestStack } from '../helpers/server.js';
import { DEMO_LABELS, makeTestModel } from '../fixtures/test-model.js';
import type { SeedDemoResult } from '@rrl/server/demo/seed.js';
import { DicomWebClient } from '@rrl/server/pacs/dicomweb.js';
import { writeImageSeries } from '@rrl/core/dicom/series.js';
import { newUid } from '@rrl/core/dicom/dcmjs.js';
import {
  OrthancDirect,
  afterEachStep,
  e2eSkipReason,
  dciodvfy,
  cornerstoneLabelCounts,
  ensureBundles,
  panelShot,
  seedDemoSubjects,
  segDiceAgainstTruth,
  segLabelCounts,
  tagString,
  waitFor,
  waitForActiveModality,
  waitForPanelStatus,
} from './support.js';

const skip = e2eSkipReason();

const MODE_NAME = 'One-Shot Segmentation';
const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const CT_MODEL_ID = 'test-fixture-ct-only@0.1.0';

/** How many segmentations the viewer's segmentation service holds. */
async function segmentationCount(page: Page): Promise<number> {
  return page.evaluate(
    () =>
      (
        window as unknown as {
          services: { segmentationService: { getSegmentations(): unknown[] } };
        }
      ).services.segmentationService.getSegmentations().length,
  );
}

/**
 * A small synthetic MR study that is NOT a usable volume: 'single-slice' (one 64×64 slice) or
 * 'missing-slice' (16 slices with the 9th left out). Returns its StudyInstanceUID.
 */
async function storeBadStudy(
  client: DicomWebClient,
  kind: 'single-slice' | 'missing-slice',
): Promise<string> {
  const nz = kind === 'single-slice' ? 1 : 16;
  const voxels = new Int16Array(64 * 64 * nz);
  for (let i = 0; i < voxels.length; i++) voxels[i] = 100 + ((i * 7919) % 400);
  const studyInstanceUID = newUid();
  const written = writeImageSeries({
    modality: 'MR',
    geometry: {
      dims: [64, 64, nz],
      spacing: [2, 2, 2],
      origin: [-64, -64, -16],
      direction: [1, 0, 0, 0, 1, 0, 0, 0, 1],
    },
    voxels,
    patient: { name: `SYNTHETIC^BAD-${kind.toUpperCase()}`, id: `SYNTHETIC-BAD-${nz}` },
    study: { studyInstanceUID, description: `SYNTHETIC bad input: ${kind}` },
    series: { description: `SYNTHETIC ${kind}`, bodyPartExamined: 'BRAIN' },
    synthetic: true,
  });
  const files = kind === 'missing-slice' ? written.files.filter((_, k) => k !== 8) : written.files;
  await client.stow(files);
  return studyInstanceUID;
}

describe('end to end: OHIF + One-Shot mode + companion server + Orthanc', { skip }, () => {
  let tmp: string;
  let pacs: TestOrthanc;
  let pacsStorage: string;
  /** Starts (or restarts, on the same ports and storage) our own Orthanc. */
  const startPacs = async (ports?: {
    httpPort: number;
    dicomPort: number;
  }): Promise<TestOrthanc> => {
    // A restart on the same ports may briefly find them still held by the old process.
    for (let attempt = 1; ; attempt++) {
      try {
        const proc = await startOrthanc({
          storageDir: pacsStorage,
          username: TEST_PACS_USER,
          password: TEST_PACS_PASSWORD,
          name: 'RRL-E2E',
          ...(ports ?? {}),
        });
        return { ...proc, storageDir: pacsStorage };
      } catch (e) {
        if (!ports || attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  let stack: TestStack;
  let browser: BrowserSession;
  let page: Page;
  let direct: OrthancDirect;
  let demo: SeedDemoResult;
  let studyUID: string;
  let fixtureId: string;
  const panelCounts: Record<number, number> = {};
  let savedSeg: { seriesUID: string; sopUID: string; bytes: ArrayBuffer } | undefined;
  const badStudies: Partial<Record<'single-slice' | 'missing-slice', string>> = {};

  before(async () => {
    const bundles = await ensureBundles();
    tmp = await mkdtemp(path.join(tmpdir(), 'rrl-e2e-'));
    const modelsDir = path.join(tmp, 'models');
    fixtureId = (await makeTestModel({ outDir: modelsDir })).id;
    // A valid model made for CT only: its metadata does not fit the MR demo series.
    const ct = await makeTestModel({ outDir: modelsDir, grid: [24, 28, 24], id: CT_MODEL_ID });
    await writeFile(
      path.join(ct.dir, 'metadata.json'),
      JSON.stringify({ ...ct.metadata, name: 'CT-only test fixture', modalities: ['CT'] }, null, 2),
    );
    pacsStorage = path.join(tmp, 'orthanc');
    pacs = await startPacs();
    direct = new OrthancDirect(pacs.dicomWebRoot, pacs.username, pacs.password);
    demo = await seedDemoSubjects(pacs, path.join(tmp, 'demo'));
    studyUID = demo.subjects[0].studyUID;
    const client = new DicomWebClient({
      root: pacs.dicomWebRoot,
      username: pacs.username,
      password: pacs.password,
    });
    badStudies['single-slice'] = await storeBadStudy(client, 'single-slice');
    badStudies['missing-slice'] = await storeBadStudy(client, 'missing-slice');
    stack = await startTestStack({ modelsDir, pacs });
    browser = await launchBrowser();
    page = await browser.newPage();
    if (bundles.built) console.log(`# built the browser bundles in ${bundles.ms} ms`);
  });

  // The last view of every step, kept as a test artifact (and to debug failures).
  afterEach(afterEachStep('e2e-after', () => ({ browser, page })));

  after(async () => {
    await browser?.close();
    await stack?.stop();
    await pacs?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('the study list shows the demo studies and offers the One-Shot mode', async () => {
    await page.goto(`${stack.url}/`);
    const subjectRow = page.getByText('SYNTHETIC DEMO subject 01', { exact: false }).first();
    await subjectRow.waitFor({ state: 'visible', timeout: 90_000 });
    const body = await page.locator('body').innerText();
    assert.match(body, /SYNTHETIC DEMO subject 02/);
    assert.match(body, /1-5 of 5/, 'the atlas, two subjects and two bad-input studies are listed');
    await subjectRow.click();
    await page
      .getByRole('button', { name: MODE_NAME })
      .first()
      .waitFor({ state: 'visible', timeout: 30_000 });
    await browser.screenshot(page, 'e2e-01-study-list');
  });

  test('opening the demo subject in the One-Shot mode shows the panel and the model', async () => {
    await page.getByRole('button', { name: MODE_NAME }).first().click();
    await page.waitForURL(/\/oneshot\?/, { timeout: 60_000 });
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('StudyInstanceUIDs'), studyUID);
    // COOP/COEP from the companion server: onnxruntime-web gets its wasm threads.
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    await page.locator('[data-testid="oneshot-panel"]').waitFor({ timeout: 90_000 });
    await page.locator('[data-testid="oneshot-model"]').waitFor({ timeout: 60_000 });
    await page.locator('[data-testid="oneshot-model"]').selectOption(fixtureId);
    const kind = page.locator('[data-testid="oneshot-model-kind"]');
    await kind.waitFor({ timeout: 60_000 });
    assert.equal(await kind.getAttribute('data-kind'), 'test-fixture');
    assert.match(await kind.innerText(), /fixture|not a trained/i);
    await browser.screenshot(page, 'e2e-02-mode');
  });

  test('the One-Shot mode shows axial, sagittal and coronal views', async () => {
    const planes = await waitFor(
      'three viewports with cameras',
      () =>
        page.evaluate(() => {
          const w = window as unknown as {
            services: {
              viewportGridService: { getState(): { viewports: Map<string, unknown> } };
            };
            cornerstone: {
              getEnabledElementByViewportId(
                id: string,
              ): { viewport: { getCamera(): { viewPlaneNormal?: number[] } } } | undefined;
            };
          };
          const ids = Array.from(w.services.viewportGridService.getState().viewports.keys());
          const out: string[] = [];
          for (const id of ids) {
            const n = w.cornerstone
              .getEnabledElementByViewportId(id)
              ?.viewport.getCamera().viewPlaneNormal;
            if (!n) return undefined;
            const a = n.map((v) => Math.abs(v));
            out.push(
              a[2] >= a[0] && a[2] >= a[1] ? 'axial' : a[0] >= a[1] ? 'sagittal' : 'coronal',
            );
          }
          return out.length >= 3 ? out : undefined;
        }),
      20_000,
    );
    assert.deepEqual([...planes].sort(), ['axial', 'coronal', 'sagittal']);
  });

  test('running the tool (wasm) gives a labelmap with the expected named segments', async () => {
    await page.locator('[data-testid="oneshot-model"]').selectOption(fixtureId);
    await page.locator('[data-testid="oneshot-provider-select"]').selectOption('wasm');
    const run = page.locator('[data-testid="oneshot-run"]');
    // The series must be in the viewports before the tool can read the volume.
    await waitForActiveModality(page, 'MR', 90_000);
    await waitFor('the run button to be enabled', async () => run.isEnabled(), 60_000);
    await run.click();
    const final = await waitForPanelStatus(
      page,
      'the panel to finish the segmentation',
      ['done', 'error'],
      240_000,
    );
    // The labelmap is shown in every view (axial, sagittal, coronal).
    await waitFor(
      'the labelmap in all three viewports',
      () =>
        page.evaluate(() => {
          const w = window as unknown as {
            services: {
              viewportGridService: { getState(): { viewports: Map<string, unknown> } };
              segmentationService: {
                getSegmentationRepresentations(id: string): { type: string; visible?: boolean }[];
              };
            };
          };
          const ids = Array.from(w.services.viewportGridService.getState().viewports.keys());
          return (
            ids.length === 3 &&
            ids.every((id) =>
              (w.services.segmentationService.getSegmentationRepresentations(id) ?? []).some(
                (r) => r.type === 'Labelmap' && r.visible !== false,
              ),
            )
          );
        }),
      30_000,
    );
    await browser.screenshot(page, 'e2e-03-segmented');
    await browser.screenshot(page, 'e2e-03-panel', '[data-testid="oneshot-panel"]');
    const message = await page
      .locator('[data-testid="oneshot-message"]')
      .innerText()
      .catch(() => '');
    assert.equal(final, 'done', `panel status ${final}: ${message}`);
    assert.equal(
      await page.locator('[data-testid="oneshot-provider"]').getAttribute('data-provider'),
      'wasm',
    );
    const items = page.locator('[data-testid="oneshot-segment"]');
    const shown = await items.evaluateAll((els) =>
      els.map((e) => ({
        value: Number(e.getAttribute('data-label-value')),
        voxels: Number(e.getAttribute('data-voxels')),
        text: e.textContent ?? '',
      })),
    );
    for (const l of DEMO_LABELS) {
      const item = shown.find((s) => s.value === l.value);
      assert.ok(item, `the panel lists segment ${l.value} (${l.name})`);
      assert.ok(item.text.includes(l.name), `segment ${l.value} is named ${l.name}: ${item.text}`);
      assert.ok(item.voxels > 500, `segment ${l.name} has ${item.voxels} voxels`);
      panelCounts[l.value] = item.voxels;
    }
    // What cornerstone holds agrees with what the panel shows.
    const cs = await waitFor('the labelmap in cornerstone', () => cornerstoneLabelCounts(page));
    for (const l of DEMO_LABELS) {
      const seg = cs.segments.find((s) => s.label === l.name);
      assert.ok(seg, `cornerstone segment ${l.name}`);
      assert.equal(cs.counts[seg.index] ?? 0, panelCounts[l.value], `voxels of ${l.name}`);
    }
  });

  test('with the PACS down, saving says so and keeps the labelmap; saving works once it is back', async () => {
    assert.ok(Object.keys(panelCounts).length > 0, 'the segmentation step succeeded');
    const ports = { httpPort: pacs.httpPort, dicomPort: pacs.dicomPort };
    // The browser logs the refused STOW (502 from the proxy) as a console error: expected here.
    browser.expectErrors(/status of 50[234]/);
    await pacs.stop();
    try {
      await page.locator('[data-testid="oneshot-save"]').click();
      const status = page.locator('[data-testid="oneshot-status"]');
      const message = page.locator('[data-testid="oneshot-message"]');
      const final = await waitFor(
        'the panel to report the failed save',
        async () => {
          const st = await status.getAttribute('data-status');
          if (st === 'saved') return 'saved';
          if (st === 'saving') return undefined;
          const kind = await message.getAttribute('data-kind').catch(() => null);
          return kind === 'error' ? 'error' : undefined;
        },
        60_000,
      );
      await browser.screenshot(page, 'e2e-04-pacs-down', '[data-testid="oneshot-panel"]');
      const text = await message.innerText();
      assert.equal(final, 'error', `the save failed with a message: ${text}`);
      // The segmentation is still the current result: the panel is back to "done".
      assert.equal(await status.getAttribute('data-status'), 'done');
      assert.match(text, /PACS/);
      assert.ok(!/undefined|\[object|TypeError/.test(text), `a user-facing message: ${text}`);
      // The labelmap stays, unchanged, and saving can be tried again.
      const cs = await cornerstoneLabelCounts(page);
      assert.ok(cs, 'the segmentation is still there');
      for (const l of DEMO_LABELS) {
        const entry: { label: string; index: number } | undefined = cs.segments.find(
          (x) => x.label === l.name,
        );
        assert.ok(entry, `segment ${l.name} is still there`);
        assert.equal(cs.counts[entry.index] ?? 0, panelCounts[l.value]);
      }
      assert.equal(await page.locator('[data-testid="oneshot-save"]').isEnabled(), true);
    } finally {
      pacs = await startPacs(ports);
    }
  });

  test('saving (again) stores a new SEG series in Orthanc that passes dciodvfy', async () => {
    assert.ok(Object.keys(panelCounts).length > 0, 'the segmentation step succeeded');
    const before = await direct.seriesOfStudy(studyUID, 'SEG');
    await page.locator('[data-testid="oneshot-save"]').click();
    const final = await waitForPanelStatus(
      page,
      'the panel to finish saving',
      ['saved', 'error'],
      120_000,
    );
    await browser.screenshot(page, 'e2e-04-saved-panel', '[data-testid="oneshot-panel"]');
    const message = await page.locator('[data-testid="oneshot-message"]').innerText();
    assert.equal(final, 'saved', `panel status ${final}: ${message}`);
    const seriesUID = await page
      .locator('[data-testid="oneshot-saved-series"]')
      .getAttribute('data-series-uid');
    assert.ok(seriesUID, 'the panel names the saved series');

    // Directly against Orthanc (not through the viewer's proxy).
    const after = await direct.seriesOfStudy(studyUID, 'SEG');
    assert.equal(after.length, before.length + 1, 'exactly one new SEG series');
    assert.ok(after.some((s) => tagString(s, '0020000E') === seriesUID));
    const instances = await direct.json(`/studies/${studyUID}/series/${seriesUID}/instances`);
    assert.equal(instances.length, 1);
    assert.equal(tagString(instances[0], '00080016'), SEG_SOP_CLASS);
    const sopUID = tagString(instances[0], '00080018');
    assert.ok(sopUID);
    const bytes = await direct.instance(studyUID, seriesUID, sopUID);
    const check = await dciodvfy(bytes);
    assert.deepEqual(check.errors, [], check.output);
    // The SEG holds exactly the voxels the panel showed, one segment per label.
    const counts = segLabelCounts(bytes);
    for (const l of DEMO_LABELS) assert.equal(counts.get(l.value) ?? 0, panelCounts[l.value]);
    savedSeg = { seriesUID, sopUID, bytes };
  });

  test('the saved SEG overlaps the subject ground truth (fixture quality, diagnostic)', async (t) => {
    assert.ok(savedSeg, 'the save step stored a SEG');
    const { mean, perLabel } = await segDiceAgainstTruth(savedSeg.bytes, demo, studyUID);
    const dice = Object.entries(perLabel).map(([n, d]) => `${n} ${d.toFixed(2)}`);
    t.diagnostic(
      `fixture model Dice on demo subject 01: mean ${mean.toFixed(3)} (${dice.join(', ')})`,
    );
    // The fixture is an atlas prior, not a trained model: it must land on the right structures
    // (a flipped or shifted result would score near 0), nothing more.
    assert.ok(mean > 0.3, `mean Dice ${mean}`);
  });

  test('reopening the study loads the saved SEG in the viewer with the same voxels', async () => {
    assert.ok(savedSeg, 'the save step stored a SEG');
    // Reopen the study in a fresh tab, as a reader coming back to it would.
    await page.close();
    page = await browser.newPage();
    await page.goto(`${stack.url}/oneshot?StudyInstanceUIDs=${studyUID}`);
    const segDisplaySet = await waitFor(
      'the saved SEG among the display sets',
      () =>
        page.evaluate((uid) => {
          const w = window as unknown as {
            services?: {
              displaySetService: {
                getActiveDisplaySets(): {
                  SeriesInstanceUID: string;
                  Modality: string;
                  displaySetInstanceUID: string;
                }[];
              };
            };
          };
          const ds = w.services?.displaySetService
            .getActiveDisplaySets()
            .find((d) => d.SeriesInstanceUID === uid);
          return ds?.displaySetInstanceUID;
        }, savedSeg!.seriesUID),
      90_000,
    );
    // Wait for the layout to show the MR series first (the grid is empty until then).
    await waitFor(
      'the viewports to show the MR series',
      () =>
        page.evaluate(() => {
          const w = window as unknown as {
            services: {
              viewportGridService: {
                getActiveViewportId(): string | undefined;
                getState(): { viewports: Map<string, { displaySetInstanceUIDs?: string[] }> };
              };
            };
          };
          const g = w.services.viewportGridService;
          const vps = Array.from(g.getState().viewports.values());
          return (
            !!g.getActiveViewportId() &&
            vps.some((v) => (v.displaySetInstanceUIDs ?? []).length > 0)
          );
        }),
      90_000,
    );
    // What a double click on the SEG thumbnail does: show it in the active viewport.
    await page.evaluate((dsUID) => {
      const w = window as unknown as {
        services: {
          viewportGridService: {
            getActiveViewportId(): string;
            setDisplaySetsForViewport(a: {
              viewportId: string;
              displaySetInstanceUIDs: string[];
            }): void;
          };
        };
      };
      const g = w.services.viewportGridService;
      g.setDisplaySetsForViewport({
        viewportId: g.getActiveViewportId(),
        displaySetInstanceUIDs: [dsUID],
      });
    }, segDisplaySet);
    // OHIF asks before hydrating a SEG into the viewport.
    const yes = page.locator('[data-cy="yes-hydrate-btn"]');
    await yes.waitFor({ state: 'visible', timeout: 60_000 });
    await yes.click();
    const loaded = await waitFor(
      'the SEG labelmap in cornerstone',
      async () => {
        const r = await cornerstoneLabelCounts(page, segDisplaySet);
        return r && Object.keys(r.counts).length > 0 ? r : undefined;
      },
      90_000,
    );
    await browser.screenshot(page, 'e2e-05-reloaded');
    for (const l of DEMO_LABELS) {
      const seg = loaded.segments.find((s) => s.label === l.name);
      assert.ok(seg, `reloaded segment ${l.name}`);
      assert.equal(loaded.counts[seg.index] ?? 0, panelCounts[l.value], `voxels of ${l.name}`);
    }
  });

  for (const kind of ['single-slice', 'missing-slice'] as const) {
    // The missing-slice case starts the run from the toolbar tool instead of the panel button.
    const via = kind === 'missing-slice' ? 'toolbar tool' : 'panel button';
    test(`bad input (${kind}, ${via}): the panel says why, nothing is created or saved`, async () => {
      const uid = badStudies[kind];
      assert.ok(uid);
      const segBefore = await direct.seriesOfStudy(uid, 'SEG');
      await page.goto(`${stack.url}/oneshot?StudyInstanceUIDs=${uid}`);
      await page.locator('[data-testid="oneshot-panel"]').waitFor({ timeout: 90_000 });
      await waitForActiveModality(page, 'MR', 60_000);
      const run = page.locator(
        via === 'toolbar tool' ? '[data-cy="OneShotSegment"]' : '[data-testid="oneshot-run"]',
      );
      await waitFor('the run control to be enabled', async () => run.first().isEnabled(), 60_000);
      await run.first().click();
      const final = await waitForPanelStatus(
        page,
        'the panel to finish',
        ['done', 'error'],
        60_000,
      );
      await browser.screenshot(page, `e2e-06-bad-${kind}`, '[data-testid="oneshot-panel"]');
      if (kind === 'missing-slice') await panelShot(browser, page, 'error');
      const message = page.locator('[data-testid="oneshot-message"]');
      const text = await message.innerText();
      assert.equal(final, 'error', `status ${final}: ${text}`);
      assert.equal(await message.getAttribute('data-kind'), 'error');
      assert.match(text, kind === 'single-slice' ? /slice/i : /missing/i);
      assert.ok(!/undefined|\[object|TypeError/.test(text), `a user-facing message: ${text}`);
      assert.equal(await segmentationCount(page), 0, 'no half-made segmentation');
      assert.equal(await page.locator('[data-testid="oneshot-save"]').isEnabled(), false);
      assert.equal((await direct.seriesOfStudy(uid, 'SEG')).length, segBefore.length);
    });
  }

  test('a model whose metadata does not fit the series (CT model, MR series): clear message, nothing created', async () => {
    const uid = demo.subjects[1].studyUID;
    await page.goto(`${stack.url}/oneshot?StudyInstanceUIDs=${uid}`);
    const select = page.locator('[data-testid="oneshot-model"]');
    await select.waitFor({ timeout: 90_000 });
    await waitForActiveModality(page, 'MR', 60_000);
    await select.selectOption(CT_MODEL_ID);
    const run = page.locator('[data-testid="oneshot-run"]');
    await waitFor('the run button to be enabled', async () => run.isEnabled(), 60_000);
    await run.click();
    const final = await waitForPanelStatus(page, 'the panel to finish', ['done', 'error'], 60_000);
    await browser.screenshot(page, 'e2e-07-model-does-not-fit', '[data-testid="oneshot-panel"]');
    const message = page.locator('[data-testid="oneshot-message"]');
    const text = await message.innerText();
    assert.equal(final, 'error', `status ${final}: ${text}`);
    assert.match(text, /CT/);
    assert.match(text, /MR/);
    assert.equal(await segmentationCount(page), 0, 'no half-made segmentation');
    assert.equal((await direct.seriesOfStudy(uid, 'SEG')).length, 0);
  });
});
