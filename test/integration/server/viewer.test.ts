/**
 * The prebuilt OHIF viewer really works through the companion server in headless Chromium:
 * cross-origin isolated (COOP/COEP), the study list shows a study stored in Orthanc, and the basic
 * viewer renders its images with every DICOMweb request answered through the proxy.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { launchBrowser } from '../../helpers/browser.js';
import { startTestStack } from '../../helpers/server.js';
import { makeTinySeries, stowThrough } from './dicom-data.js';

test('OHIF loads through the server: isolated, study list from Orthanc, images rendered', async () => {
  // No plugin bundles: this checks the host viewer and the server alone.
  const pluginsDir = await mkdtemp(path.join(os.tmpdir(), 'rrl-noplugins-'));
  const stack = await startTestStack({ pluginsDir });
  const browser = await launchBrowser();
  try {
    const series = makeTinySeries(12, 64, 64, 'RRL viewer smoke study');
    await stowThrough(stack.url, series.files);

    const page = await browser.newPage();
    const dicomWeb: { url: string; status: number }[] = [];
    const failed: string[] = [];
    page.on('response', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/dicom-web/'))
        dicomWeb.push({ url: u.pathname, status: r.status() });
      else if (r.status() >= 400) failed.push(`${r.status()} ${u.pathname}`);
    });
    page.on('requestfailed', (r) =>
      failed.push(`${r.failure()?.errorText ?? 'failed'} ${r.url()}`),
    );

    await page.goto(`${stack.url}/`, { waitUntil: 'load' });
    await page.getByText('RRL viewer smoke study').first().waitFor({ timeout: 90_000 });
    assert.equal(await page.evaluate(() => globalThis.crossOriginIsolated), true);
    await browser.screenshot(page, 'server-study-list');

    await page.goto(`${stack.url}/viewer?StudyInstanceUIDs=${series.studyUID}`, {
      waitUntil: 'load',
    });
    // The viewport's overlay shows "(current/total)" once the stack has loaded.
    await page.getByText('/12)').first().waitFor({ timeout: 90_000 });
    await browser.screenshot(page, 'server-basic-viewer');

    assert.deepEqual(failed, [], 'no failed or refused requests');
    assert.ok(dicomWeb.length > 0);
    assert.deepEqual(
      dicomWeb.filter((r) => r.status >= 400),
      [],
      'every DICOMweb request succeeded through the proxy',
    );
    assert.ok(
      dicomWeb.some((r) => /\/(frames|bulk)\//.test(r.url) || /\/instances\/[^/]+$/.test(r.url)),
      `pixel data was retrieved through /dicom-web (saw ${dicomWeb.map((r) => r.url).join(', ')})`,
    );
    assert.deepEqual(
      browser.errors.map((e) => e.text),
      [],
      'no console errors',
    );
  } finally {
    await browser.close();
    await stack.stop();
    await rm(pluginsDir, { recursive: true, force: true });
  }
});
