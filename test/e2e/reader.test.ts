// End to end, the reader's corrections in headless Chromium against a real Orthanc and the
// companion server (the test-fixture model, wasm): after an eraser stroke the panel's voxel
// counts and volumes follow the labelmap and say "not saved"; Segment then asks first (Cancel
// keeps everything, Keep both leaves two results, Replace can be undone and redone); closing the
// study warns; a save makes the result clean again. Screenshots go to test-artifacts/.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';

import { launchBrowser, type BrowserSession } from '../helpers/browser.js';
import { startTestOrthanc, type TestOrthanc } from '../helpers/orthanc.js';
import { startTestStack, type TestStack } from '../helpers/server.js';
import { makeTestModel } from '../fixtures/test-model.js';
import type { SeedDemoResult } from '@rrl/server/demo/seed.js';
import {
  afterEachStep,
  cornerstoneLabelCounts,
  e2eSkipReason,
  ensureBundles,
  panelShot,
  seedDemoSubjects,
  waitFor,
  waitForActiveModality,
  waitForPanelStatus,
} from './support.js';

const skip = e2eSkipReason();

interface Shown {
  value: number;
  voxels: number;
  ml: number;
}

/** The segments as the panel lists them. */
function panelSegments(page: Page): Promise<Shown[]> {
  return page.locator('[data-testid="oneshot-segment"]').evaluateAll((els) =>
    els.map((e) => ({
      value: Number(e.getAttribute('data-label-value')),
      voxels: Number(e.getAttribute('data-voxels')),
      ml: Number(e.getAttribute('data-ml')),
    })),
  );
}

const total = (xs: Shown[]) => xs.reduce((a, x) => a + x.voxels, 0);

/** Per-label voxel counts of a cornerstone segmentation (the last one when id is omitted). */
async function viewerCounts(page: Page, segmentationId?: string): Promise<Record<number, number>> {
  const cs = await cornerstoneLabelCounts(page, segmentationId);
  assert.ok(cs, 'the segmentation and its labelmap images are in the viewer');
  return cs.counts;
}

function segmentationIds(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    (
      window as unknown as {
        services: { segmentationService: { getSegmentations(): { segmentationId: string }[] } };
      }
    ).services.segmentationService
      .getSegmentations()
      .map((s) => s.segmentationId),
  );
}

/** A stroke with the viewer's circular eraser across the middle of the axial view. */
async function eraseStroke(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as {
      commandsManager: { runCommand(name: string, args: Record<string, unknown>): unknown };
    };
    w.commandsManager.runCommand('setToolActive', {
      toolName: 'CircularEraser',
      toolGroupId: 'mpr',
    });
  });
  const box = await page.locator('.cornerstone-viewport-element').first().boundingBox();
  assert.ok(box, 'the axial viewport is on the page');
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  await page.mouse.move(cx - box.width * 0.15, cy);
  await page.mouse.down();
  for (let i = 0; i <= 10; i++)
    await page.mouse.move(cx - box.width * 0.15 + i * box.width * 0.03, cy);
  await page.mouse.up();
}

describe(
  'end to end: the reader corrects, re-segments and saves without losing work',
  { skip },
  () => {
    let tmp: string;
    let pacs: TestOrthanc;
    let stack: TestStack;
    let browser: BrowserSession;
    let page: Page;
    let demo: SeedDemoResult;
    let fixtureId: string;
    let model: Shown[] = [];
    let edited: Shown[] = [];

    const segment = async () => {
      await page.locator('[data-testid="oneshot-run"]').click();
    };
    const waitDone = async () => {
      const final = await waitForPanelStatus(page, 'the segmentation', ['done', 'error'], 180_000);
      const msg = await page
        .locator('[data-testid="oneshot-message"]')
        .innerText()
        .catch(() => '');
      assert.equal(final, 'done', msg);
    };

    before(async () => {
      const bundles = await ensureBundles();
      tmp = await mkdtemp(path.join(tmpdir(), 'rrl-e2e-reader-'));
      const modelsDir = path.join(tmp, 'models');
      fixtureId = (await makeTestModel({ outDir: modelsDir })).id;
      pacs = await startTestOrthanc();
      demo = await seedDemoSubjects(pacs, path.join(tmp, 'demo'));
      stack = await startTestStack({ modelsDir, pacs });
      browser = await launchBrowser();
      page = await browser.newPage();
      if (bundles.built) console.log(`# built the browser bundles in ${bundles.ms} ms`);
    });

    afterEach(afterEachStep('reader-after', () => ({ browser, page })));

    after(async () => {
      await browser?.close();
      await stack?.stop();
      await pacs?.stop();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    test(
      'segment: counts and volumes in mL, nothing unsaved yet',
      { timeout: 300_000 },
      async () => {
        await page.goto(`${stack.url}/oneshot?StudyInstanceUIDs=${demo.subjects[0]!.studyUID}`);
        await page.locator('[data-testid="oneshot-panel"]').waitFor({ timeout: 90_000 });
        await waitForActiveModality(page, 'MR', 90_000);
        await page.locator('[data-testid="oneshot-model"]').selectOption(fixtureId);
        await page.locator('[data-testid="oneshot-provider-select"]').selectOption('wasm');
        const run = page.locator('[data-testid="oneshot-run"]');
        await waitFor('the run button', async () => run.isEnabled(), 60_000);
        await panelShot(browser, page, 'idle');
        await segment();
        const now = await page
          .locator('[data-testid="oneshot-status"]')
          .getAttribute('data-status');
        if (now === 'running') await panelShot(browser, page, 'segmenting');
        await waitDone();
        await panelShot(browser, page, 'result');
        model = await panelSegments(page);
        assert.ok(total(model) > 1000, `labelled voxels: ${total(model)}`);
        // Volume = voxels × the series' voxel size: one factor for every segment.
        const withVoxels = model.filter((g) => g.voxels > 0);
        const mm3 = (withVoxels[0]!.ml * 1000) / withVoxels[0]!.voxels;
        assert.ok(mm3 > 0.01 && mm3 < 100, `voxel size ${mm3} mm³`);
        for (const g of withVoxels)
          assert.ok(Math.abs(g.ml - (g.voxels * mm3) / 1000) < 0.002, `mL of segment ${g.value}`);
        assert.match(await page.locator('[data-testid="oneshot-segments"]').innerText(), /\d mL/);
        assert.equal(await page.locator('[data-testid="oneshot-unsaved"]').count(), 0);
      },
    );

    test(
      'an eraser stroke updates the counts and marks the result unsaved',
      { timeout: 120_000 },
      async () => {
        await eraseStroke(page);
        // Settled: fewer voxels than the model's, and the panel agrees with the viewer (under load
        // the stroke's last moves may land after the panel's first update).
        edited = await waitFor(
          'the counts to follow the edit',
          async () => {
            const now = await panelSegments(page);
            if (total(now) >= total(model)) return undefined;
            const cs = await viewerCounts(page);
            return now.every((g) => (cs[g.value] ?? 0) === g.voxels) ? now : undefined;
          },
          30_000,
        );
        await page.locator('[data-testid="oneshot-unsaved"]').waitFor({ timeout: 10_000 });
        // The panel counts what the viewer holds.
        const cs = await viewerCounts(page);
        for (const g of edited)
          assert.equal(cs[g.value] ?? 0, g.voxels, `voxels of segment ${g.value}`);
        await browser.screenshot(page, 'reader-01-edited', '[data-testid="oneshot-panel"]');
      },
    );

    test('Segment asks first; Cancel changes nothing', { timeout: 60_000 }, async () => {
      const before = await segmentationIds(page);
      await segment();
      await page.locator('[data-testid="oneshot-replace-ask"]').waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('[data-testid="oneshot-run"]').isEnabled(), false);
      await panelShot(browser, page, 'replace-ask');
      await page.locator('[data-testid="oneshot-replace-cancel"]').click();
      await page.locator('[data-testid="oneshot-replace-ask"]').waitFor({ state: 'detached' });
      assert.deepEqual(await segmentationIds(page), before);
      assert.deepEqual(await panelSegments(page), edited);
      await page.locator('[data-testid="oneshot-unsaved"]').waitFor({ timeout: 5000 });
    });

    test(
      'Keep both: two results, the edited one can be chosen again',
      { timeout: 240_000 },
      async () => {
        const [editedId] = await segmentationIds(page);
        await segment();
        await page.locator('[data-testid="oneshot-replace-keep"]').click();
        await waitDone();
        const ids = await segmentationIds(page);
        assert.equal(ids.length, 2, 'both results are in the viewer');
        assert.ok(ids.includes(editedId!));
        assert.deepEqual(await panelSegments(page), model, 'the new result is the model’s');
        assert.equal(await page.locator('[data-testid="oneshot-unsaved"]').count(), 0);
        const select = page.locator('[data-testid="oneshot-result-select"]');
        assert.equal(await select.locator('option').count(), 2);
        await select.selectOption(editedId!);
        await page.locator('[data-testid="oneshot-unsaved"]').waitFor({ timeout: 10_000 });
        assert.deepEqual(await panelSegments(page), edited);
      },
    );

    test(
      'Replace removes the edited result, and Undo brings it back',
      { timeout: 240_000 },
      async () => {
        const before = await segmentationIds(page);
        await segment();
        await page.locator('[data-testid="oneshot-replace-confirm"]').click();
        await waitDone();
        const after = await segmentationIds(page);
        assert.equal(after.length, 2, 'the edited result was replaced, the kept one stays');
        assert.deepEqual(await panelSegments(page), model);
        const undo = page.locator('[data-testid="oneshot-undo"]');
        assert.equal(await undo.innerText(), 'Undo replace');
        await browser.screenshot(page, 'reader-03-replaced', '[data-testid="oneshot-panel"]');
        await undo.click();
        await waitFor('the edited result back', async () => {
          const now = await panelSegments(page);
          return total(now) === total(edited) ? now : undefined;
        });
        assert.deepEqual(await panelSegments(page), edited);
        await page.locator('[data-testid="oneshot-unsaved"]').waitFor({ timeout: 10_000 });
        const restored = (await segmentationIds(page)).filter((id) => !before.includes(id));
        assert.equal(restored.length, 1);
        const cs = await viewerCounts(page, restored[0]);
        for (const g of edited)
          assert.equal(cs[g.value] ?? 0, g.voxels, `restored segment ${g.value}`);
        assert.equal(await undo.innerText(), 'Redo replace');
      },
    );

    test(
      'closing the study with unsaved corrections warns first',
      { timeout: 60_000 },
      async () => {
        const url = page.url();
        const seen: string[] = [];
        page.once('dialog', (d) => {
          seen.push(`${d.type()}: ${d.message()}`);
          void d.dismiss();
        });
        await page.locator('[data-cy="return-to-work-list"]').click();
        await waitFor('the confirmation', async () => seen.length > 0, 10_000);
        assert.match(seen[0]!, /^confirm: .*not saved to the PACS/);
        assert.equal(page.url(), url, 'the study stays open');
        // Closing the tab: the browser's own "leave site?" prompt.
        const prompts: string[] = [];
        page.once('dialog', (d) => {
          prompts.push(d.type());
          void d.dismiss();
        });
        await page.close({ runBeforeUnload: true });
        await waitFor('the leave-page prompt', async () => prompts.length > 0, 10_000);
        assert.deepEqual(prompts, ['beforeunload']);
        assert.equal(page.isClosed(), false, 'the tab stays open');
      },
    );

    test(
      'saving makes the result clean: Segment no longer asks',
      { timeout: 240_000 },
      async () => {
        await page.locator('[data-testid="oneshot-save"]').click();
        await page.locator('[data-testid="oneshot-saved-series"]').waitFor({ timeout: 60_000 });
        await waitFor(
          'the unsaved notice to go',
          async () => (await page.locator('[data-testid="oneshot-unsaved"]').count()) === 0,
          10_000,
        );
        await panelShot(browser, page, 'saved');
        await segment();
        await waitDone();
        assert.equal(await page.locator('[data-testid="oneshot-replace-ask"]').count(), 0);
        assert.deepEqual(await panelSegments(page), model);
      },
    );
  },
);
