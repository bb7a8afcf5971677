/**
 * Security catalogue — bad DICOM (docs/security.md, family "bad DICOM"): atlases whose series has
 * a missing slice, SEGs that do not fit their series, that contradict themselves, or that declare
 * 5000 segments. Task creation must answer 4xx with a message that names the series and what to
 * do, pick a valid SEG where one exists, store no task otherwise, and keep answering.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  items,
  newUid,
  readPart10,
  writePart10,
  type NaturalDataset,
} from '@rrl/core/dicom/dcmjs.js';
import { demoSegments } from '@rrl/server/demo/labels.js';
import { writeBinarySeg } from '@rrl/core/dicom/seg.js';
import type { TaskRecord } from '@rrl/server/store/db.js';
import { startTestOrthanc, type TestOrthanc } from '../helpers/orthanc.js';
import { pacsClient, storeSeries, type StoredSeries } from '../integration/api/data.js';
import { startApiServer, tmpDir, type ApiServer } from '../integration/api/helpers.js';

const T = { timeout: 60_000 };

type Atlas = StoredSeries & { labels: Uint8Array };

/** A valid SEG over `atlas`, then `mutate` applied to its dataset (new UIDs), stored. */
async function storeSegVariant(
  pacs: TestOrthanc,
  atlas: Atlas,
  mutate: (ds: NaturalDataset) => void = () => undefined,
): Promise<string> {
  const seg = writeBinarySeg({
    sourceInstances: atlas.datasets,
    labelmap: atlas.labels,
    segments: demoSegments('MANUAL').slice(0, 2),
    seriesDescription: 'Atlas labels',
  });
  const ds = readPart10(seg.bytes);
  const series = newUid();
  ds.SeriesInstanceUID = series;
  ds.SOPInstanceUID = newUid();
  mutate(ds);
  const r = await pacsClient(pacs).stow([writePart10(ds)]);
  assert.equal(r.failed.length, 0);
  return series;
}

async function orthanc(
  pacs: TestOrthanc,
  method: string,
  p: string,
  body?: string,
): Promise<unknown> {
  const res = await fetch(pacs.url + p, {
    method,
    headers: {
      Authorization: 'Basic ' + Buffer.from(`${pacs.username}:${pacs.password}`).toString('base64'),
    },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  return text ? (JSON.parse(text) as unknown) : undefined;
}

describe('security: bad DICOM', () => {
  let pacs: TestOrthanc;
  let dir: { dir: string; remove(): Promise<void> };
  let api: ApiServer;

  before(async () => {
    pacs = await startTestOrthanc();
    dir = await tmpDir();
    api = await startApiServer(pacs, dir.dir);
  });
  after(async () => {
    await api?.server.close();
    await pacs?.stop();
    await dir?.remove();
  });

  const create = (name: string, atlas: Atlas, segSeriesUID?: string) =>
    api.json<TaskRecord & { error?: { message: string } }>('/api/tasks', {
      method: 'POST',
      json: {
        name,
        plan: 'tiny',
        atlas: {
          studyUID: atlas.studyUID,
          seriesUID: atlas.seriesUID,
          ...(segSeriesUID ? { segSeriesUID } : {}),
        },
      },
    });

  test(
    'an atlas series with a missing slice: 422 that names the series and the gap',
    T,
    async () => {
      const atlas = await storeSeries(pacsClient(pacs), { description: 'T1 gap' });
      await storeSegVariant(pacs, atlas);
      const middle = String(atlas.datasets[5]?.SOPInstanceUID);
      const found = (await orthanc(pacs, 'POST', '/tools/lookup', middle)) as { ID: string }[];
      await orthanc(pacs, 'DELETE', `/instances/${found[0]?.ID ?? ''}`);
      const r = await create('Gap', atlas);
      assert.equal(r.status, 422, JSON.stringify(r.body));
      assert.match(r.body.error?.message ?? '', new RegExp(atlas.seriesUID.replace(/\./g, '\\.')));
      assert.match(r.body.error?.message ?? '', /missing 1 slice/);
      assert.match(r.body.error?.message ?? '', /Check in the viewer/);
    },
  );

  test('a newer SEG whose frames fit no slice does not block the valid older one', T, async () => {
    const atlas = await storeSeries(pacsClient(pacs), { description: 'T1 two segs' });
    const good = await storeSegVariant(pacs, atlas);
    const bad = await storeSegVariant(pacs, atlas, (ds) => {
      for (const f of items(ds.PerFrameFunctionalGroupsSequence)) {
        f.DerivationImageSequence = [];
        const pos = items(f.PlanePositionSequence)[0];
        if (pos) pos.ImagePositionPatient = [500, 500, 500];
      }
    });
    const r = await create('Two segs', atlas);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.atlas.segSeriesUID, good);
    // Asked for explicitly, the bad one is refused with a 4xx that says why.
    const only = await create('Bad seg only', atlas, bad);
    assert.equal(only.status, 422);
    assert.match(only.body.error?.message ?? '', /matches no slice/);
  });

  test(
    'a SEG whose frame count disagrees with its per-frame descriptions is refused',
    T,
    async () => {
      const atlas = await storeSeries(pacsClient(pacs), { description: 'T1 inconsistent' });
      await storeSegVariant(pacs, atlas, (ds) => {
        ds.PerFrameFunctionalGroupsSequence = items(ds.PerFrameFunctionalGroupsSequence).slice(1);
      });
      const r = await create('Inconsistent', atlas);
      assert.equal(r.status, 422, JSON.stringify(r.body));
      assert.match(r.body.error?.message ?? '', /declares \d+ frames but describes \d+/);
      const tasks = await api.json<{ tasks: TaskRecord[] }>('/api/tasks');
      assert.ok(!tasks.body.tasks.some((t) => t.name === 'Inconsistent'), 'no task stored');
    },
  );

  test(
    'a SEG bomb with 5000 segments is refused quickly; the server keeps answering',
    T,
    async () => {
      const atlas = await storeSeries(pacsClient(pacs), { description: 'T1 bomb' });
      await storeSegVariant(pacs, atlas, (ds) => {
        const one = items(ds.SegmentSequence)[0] ?? {};
        ds.SegmentSequence = Array.from({ length: 5000 }, (_, i) => ({
          ...one,
          SegmentNumber: i + 1,
          SegmentLabel: `s${i}`,
        }));
      });
      const t0 = Date.now();
      const r = await create('Bomb', atlas);
      assert.equal(r.status, 422, JSON.stringify(r.body).slice(0, 300));
      assert.match(r.body.error?.message ?? '', /5000 segments; at most 255/);
      assert.ok(Date.now() - t0 < 30_000, `answered in ${Date.now() - t0} ms`);
      assert.equal((await api.call('/api/health')).status, 200);
    },
  );
});
