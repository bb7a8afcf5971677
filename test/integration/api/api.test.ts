/**
 * The companion server's REST API against a real Orthanc and the real server: security (token,
 * origin, limits), the OpenAPI document, tasks from an atlas in the PACS (and the 4xx cases),
 * series search, the job queue (order, cancel, SSE progress, log with skipped series), publishing
 * a model version with its card and ONNX download, and persistence across a server restart.
 *
 * Jobs run the smoothing task (smoothingTask.ts: real PACS reads and a real computation in a
 * worker thread, not training) until the training pipeline lands.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Api } from '@rrl/server/api/index.js';
import { loadConfig } from '@rrl/server/config.js';
import { createLogger } from '@rrl/server/log.js';
import { Sessions } from '@rrl/server/http/guard.js';
import { ModelRegistry } from '@rrl/server/models/registry.js';
import type { JobRecord, TaskRecord } from '@rrl/server/store/db.js';
import { startTestOrthanc, type TestOrthanc } from '../../helpers/orthanc.js';
import {
  SECRET_PATIENT_ID,
  SECRET_PATIENT_NAME,
  pacsClient,
  storeSeg,
  storeSeries,
} from './data.js';
import {
  TOKEN,
  readEvents,
  startApiServer,
  tmpDir,
  waitForJob,
  type ApiServer,
} from './helpers.js';
import { CHECKPOINT_EVERY } from './smoothingTask.js';

const LONG = 'smoothing-1000000000';

describe('companion server API', () => {
  let pacs: TestOrthanc;
  let dir: { dir: string; remove(): Promise<void> };
  let api: ApiServer;
  const d: Record<string, { studyUID: string; seriesUID: string }> = {};
  let segUID = '';
  let otherSegUID = '';

  before(async () => {
    pacs = await startTestOrthanc();
    dir = await tmpDir();
    const client = pacsClient(pacs);
    const atlas = await storeSeries(client, { description: 'T1 atlas' });
    d.atlas = atlas;
    segUID = await storeSeg(client, atlas, atlas.labels);
    d.u1 = await storeSeries(client, {
      shift: 1,
      description: 'T1 unlabelled',
      studyDate: '20260310',
    });
    d.u2 = await storeSeries(client, {
      shift: -1,
      description: 'T1 unlabelled',
      studyDate: '20260320',
    });
    d.tiny = await storeSeries(client, {
      dims: [32, 32, 3],
      description: 'T1 scout',
      studyDate: '20250101',
    });
    const deep = await storeSeries(client, {
      dims: [32, 32, 20],
      description: 'T1 deeper atlas',
      studyDate: '20250101',
    });
    await storeSeg(client, deep, deep.labels);
    d.deep = deep;
    d.noSeg = await storeSeries(client, { description: 'T1 no seg', studyDate: '20250101' });
    const other = await storeSeries(client, {
      studyUID: d.noSeg.studyUID,
      description: 'T1 other',
    });
    d.other = other;
    otherSegUID = await storeSeg(client, other, other.labels);
    api = await startApiServer(pacs, dir.dir);
  });

  after(async () => {
    await api?.server.close();
    await pacs?.stop();
    await dir?.remove();
  });

  test('every call needs the token; other origins are refused; limits apply', async () => {
    const none = await fetch(`${api.url}/api/tasks`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.match(
      ((await none.json()) as { error: { message: string } }).error.message,
      /needs a session/,
    );
    const wrong = await fetch(`${api.url}/api/tasks`, {
      headers: { Authorization: 'Bearer nope' },
    });
    assert.equal(wrong.status, 401);
    await wrong.arrayBuffer();
    for (const path of ['/api/jobs', '/api/capabilities', '/api/pacs/series', '/api/jobs/x/log']) {
      const r = await fetch(api.url + path);
      assert.equal(r.status, 401, path);
      await r.arrayBuffer();
    }
    // The token in the query string is only for the event stream.
    const q = await fetch(`${api.url}/api/tasks?access_token=${TOKEN}`);
    assert.equal(q.status, 401);
    await q.arrayBuffer();

    const evil = await api.call('/api/tasks', { headers: { Origin: 'http://evil.example' } });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    await evil.arrayBuffer();
    const crossSite = await api.call('/api/tasks', { headers: { 'Sec-Fetch-Site': 'cross-site' } });
    assert.equal(crossSite.status, 403);
    await crossSite.arrayBuffer();
    const pre = await fetch(`${api.url}/api/jobs`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(pre.status, 403);
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
    await pre.arrayBuffer();
    const own = await api.call('/api/tasks', { headers: { Origin: api.url } });
    assert.equal(own.status, 200);
    await own.arrayBuffer();

    // The viewer's bootstrap: same-origin browser requests that hold the session cookie set by
    // the viewer page; the token handed out is a session token, not the API token.
    const script = await fetch(`${api.url}/api/session`);
    assert.equal(script.status, 403);
    await script.arrayBuffer();
    const noCookie = await fetch(`${api.url}/api/session`, {
      headers: { 'Sec-Fetch-Site': 'same-origin' },
    });
    assert.equal(noCookie.status, 401);
    await noCookie.arrayBuffer();
    const page = await fetch(`${api.url}/`);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    await page.arrayBuffer();
    const viewer = await fetch(`${api.url}/api/session`, {
      headers: { 'Sec-Fetch-Site': 'same-origin', Cookie: cookie },
    });
    assert.equal(viewer.status, 200);
    const sessionToken = ((await viewer.json()) as { token: string }).token;
    assert.notEqual(sessionToken, TOKEN);
    const withSession = await fetch(`${api.url}/api/tasks`, {
      headers: { Authorization: `Bearer ${sessionToken}` },
    });
    assert.equal(withSession.status, 200);
    await withSession.arrayBuffer();

    const doc = await fetch(`${api.url}/api/openapi.json`);
    assert.equal(doc.status, 200);
    assert.equal(((await doc.json()) as { openapi: string }).openapi, '3.1.0');

    const big = await api.call('/api/tasks', {
      method: 'POST',
      json: { name: 'x'.repeat(300_000) },
    });
    assert.equal(big.status, 413);
    await big.arrayBuffer();
    const notJson = await api.call('/api/tasks', {
      method: 'POST',
      body: 'name=x',
      headers: { 'Content-Type': 'text/plain' },
    });
    assert.equal(notJson.status, 415);
    await notJson.arrayBuffer();
    const unknown = await api.call('/api/nothing-here');
    assert.equal(unknown.status, 404);
    await unknown.arrayBuffer();
    const method = await api.call('/api/tasks', { method: 'DELETE' });
    assert.equal(method.status, 405);
    await method.arrayBuffer();
  });

  test('without a configured token the server generates one and keeps it in <dataDir>/api-token; the viewer gets a session', async () => {
    const own = await tmpDir();
    try {
      const s = await startApiServer(pacs, own.dir, { apiToken: null });
      try {
        const file = path.join(own.dir, 'data', 'api-token');
        assert.ok(existsSync(file));
        const token = readFileSync(file, 'utf8').trim();
        assert.ok(token.length >= 32);
        const page = await fetch(`${s.url}/`);
        await page.arrayBuffer();
        const session = await fetch(`${s.url}/api/session`, {
          headers: {
            'Sec-Fetch-Site': 'same-origin',
            Cookie: (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '',
          },
        });
        assert.equal(session.status, 200, 'the viewer gets a session token');
        await session.arrayBuffer();
        const ok = await fetch(`${s.url}/api/tasks`, {
          headers: { Authorization: `Bearer ${token}` },
        });
        assert.equal(ok.status, 200);
        await ok.arrayBuffer();
        const test = await fetch(`${s.url}/api/tasks`, {
          headers: { Authorization: `Bearer ${TOKEN}` },
        });
        assert.equal(test.status, 401);
        await test.arrayBuffer();
      } finally {
        await s.server.close();
      }
    } finally {
      await own.remove();
    }
  });

  test('the OpenAPI document, generated from the route schemas, lists every route the router knows', async () => {
    const res = await fetch(`${api.url}/api/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown; responses?: unknown }>>;
      components: { schemas: Record<string, unknown> };
    };
    // The router's own list, from an Api of the same build.
    const own = await tmpDir();
    const cfg = loadConfig(
      {
        dataDir: own.dir,
        modelsDir: path.join(own.dir, 'models'),
        apiToken: TOKEN,
        pacs: { dicomWebRoot: pacs.dicomWebRoot },
      },
      {},
    );
    const log = createLogger('error', () => {});
    const a = new Api({
      config: cfg,
      log,
      models: new ModelRegistry(cfg.modelsDir, log),
      listenHost: () => '127.0.0.1:1',
      sessions: new Sessions({ secret: Buffer.alloc(32, 1), ttlSeconds: 60 }),
      authorized: () => false,
    });
    const routes = a.routes;
    await a.close();
    await own.remove();
    assert.ok(routes.length >= 15);
    for (const r of routes) {
      assert.ok(doc.paths[r.path], `route ${r.path} is missing from the OpenAPI document`);
      assert.ok(
        doc.paths[r.path]?.[r.method.toLowerCase()],
        `${r.method} ${r.path} is missing from the OpenAPI document`,
      );
    }
    // and the document lists nothing the router does not serve (health is answered by app.ts)
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const m of Object.keys(ops)) {
        if (p === '/api/health' || m === 'head') continue;
        assert.ok(
          routes.some((r) => r.path === p && r.method.toLowerCase() === m),
          `${m.toUpperCase()} ${p} is documented but not routed`,
        );
      }
    }
    // The bodies the server validates are the ones it documents.
    const create = JSON.stringify(doc.paths['/api/tasks']?.post?.requestBody);
    assert.match(create, /TaskCreate/);
    for (const name of ['Task', 'TaskCreate', 'Job', 'JobCreate', 'Error', 'SeriesRef']) {
      assert.ok(doc.components.schemas[name], `component ${name}`);
    }
  });

  test('a request the schemas refuse gets 400 naming the field, before any PACS call', async () => {
    const bad = await api.json<{ error: { message: string } }>('/api/tasks', {
      method: 'POST',
      json: { name: 'Bad', atlas: { studyUID: '1.2', seriesUID: 'not-a-uid' } },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /atlas\.seriesUID must be DICOM UID/);
    const unknown = await api.json<{ error: { message: string } }>('/api/tasks/x', {
      method: 'PATCH',
      json: { colour: 'red' },
    });
    assert.equal(unknown.status, 400);
    assert.match(
      unknown.body.error.message,
      /Unknown field colour; send name, plan, teacher, archived/,
    );
    const notObject = await api.json<{ error: { message: string } }>('/api/jobs', {
      method: 'POST',
      json: [1, 2],
    });
    assert.equal(notObject.status, 400);
    assert.match(notObject.body.error.message, /must be a JSON object/);
  });

  test('tasks: created from an atlas series and its SEG; clear 4xx for a missing or foreign SEG', async () => {
    const created = await api.json<TaskRecord>('/api/tasks', {
      method: 'POST',
      json: {
        name: 'Blobs (long)',
        plan: LONG,
        atlas: { studyUID: d.atlas.studyUID, seriesUID: d.atlas.seriesUID },
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const t = created.body;
    assert.equal(t.id, 'blobs-long');
    assert.equal(t.modality, 'MR');
    assert.equal(t.atlas.segSeriesUID, segUID, 'the SEG referencing the atlas series was found');
    assert.deepEqual(
      t.labels.map((l) => l.value),
      [1, 2],
    );
    assert.equal(t.labels[0].name, 'Left hippocampus');
    // Laterality travels with the labels (issue: Left and Right coded alike in saved SEGs).
    assert.equal(t.labels[0].modifier?.meaning, 'Left');
    assert.equal(t.labels[1]?.modifier?.meaning, 'Right');
    assert.equal(t.labels[0].type?.value, t.labels[1]?.type?.value, 'same structure, two sides');
    const stored = await api.json<TaskRecord>('/api/tasks/blobs-long');
    assert.deepEqual(stored.body.labels, t.labels, 'stored as created');

    const again = await api.json('/api/tasks', {
      method: 'POST',
      json: {
        name: 'Blobs (long)',
        plan: LONG,
        atlas: { studyUID: d.atlas.studyUID, seriesUID: d.atlas.seriesUID },
      },
    });
    assert.equal(again.status, 409);

    const noSeg = await api.json<{ error: { message: string } }>('/api/tasks', {
      method: 'POST',
      json: { name: 'no seg', atlas: { studyUID: d.noSeg.studyUID, seriesUID: d.noSeg.seriesUID } },
    });
    assert.equal(noSeg.status, 422, JSON.stringify(noSeg.body));
    assert.match(noSeg.body.error.message, /has no SEG that references series/);
    assert.ok(noSeg.body.error.message.includes(d.noSeg.seriesUID));

    const foreign = await api.json<{ error: { message: string } }>('/api/tasks', {
      method: 'POST',
      json: { name: 'foreign seg', atlas: { ...d.noSeg, segSeriesUID: otherSegUID } },
    });
    assert.equal(foreign.status, 422, JSON.stringify(foreign.body));
    assert.match(foreign.body.error.message, /does not reference the atlas series/);
    assert.ok(foreign.body.error.message.includes(d.other.seriesUID));

    const missing = await api.json('/api/tasks', {
      method: 'POST',
      json: { name: 'missing', atlas: { studyUID: d.atlas.studyUID, seriesUID: '1.2.3.4.5' } },
    });
    assert.equal(missing.status, 404);
    const bad = await api.json('/api/tasks', {
      method: 'POST',
      json: { name: 'bad', atlas: { studyUID: 'x', seriesUID: 'y' } },
    });
    assert.equal(bad.status, 400);

    const list = await api.json<{ tasks: TaskRecord[] }>('/api/tasks');
    assert.deepEqual(
      list.body.tasks.map((x) => x.id),
      ['blobs-long'],
    );
    const one = await api.json<TaskRecord>('/api/tasks/blobs-long');
    assert.equal(one.body.atlas.seriesUID, d.atlas.seriesUID);
  });

  test('plan "auto": derived from the atlas geometry, previewed before the task exists, stored with it; a too-small atlas is refused with the reason', async () => {
    type Derived = {
      name: string;
      classes: number;
      grid: number[];
      spacing: number[];
      steps: number;
      reasons: string[];
      content?: unknown;
    };
    const preview = await api.json<Derived>('/api/plans/derive', {
      method: 'POST',
      json: { atlas: { studyUID: d.deep!.studyUID, seriesUID: d.deep!.seriesUID } },
    });
    assert.equal(preview.status, 200, JSON.stringify(preview.body));
    const p = preview.body;
    // 32×32×20 voxels at 1×1×2 mm: spacing as acquired, grid [D, H, W] = [20, 32, 32], 3 scales
    assert.equal(p.name, 'auto');
    assert.equal(p.classes, 3, 'two labels in the SEG + background');
    assert.deepEqual(p.grid, [20, 32, 32]);
    assert.deepEqual(p.spacing, [1, 1, 2]);
    assert.ok(p.steps > 0);
    assert.equal(p.content, undefined, 'the preview is not the stored content');
    assert.ok(
      p.reasons.some((r) => /^spacing \[1, 1, 2\] mm/.test(r)),
      p.reasons.join(' | '),
    );
    assert.ok(
      p.reasons.some((r) => /^grid \[20, 32, 32\].*3 scales/.test(r)),
      p.reasons.join(' | '),
    );
    assert.equal((await api.json('/api/tasks/deep-auto')).status, 404, 'nothing created');

    const created = await api.json<TaskRecord>('/api/tasks', {
      method: 'POST',
      json: {
        name: 'Deep auto',
        plan: 'auto',
        atlas: { studyUID: d.deep!.studyUID, seriesUID: d.deep!.seriesUID },
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.plan, 'auto');
    const content = created.body.planContent as {
      grid: number[];
      classes: number;
      preprocess: { spacing: number[] };
    };
    assert.deepEqual(content.grid, p.grid, 'the task trains the plan the preview showed');
    assert.deepEqual(content.preprocess.spacing, p.spacing);
    assert.equal(content.classes, 3);
    const repatched = await api.json<TaskRecord>('/api/tasks/deep-auto', {
      method: 'PATCH',
      json: { plan: 'auto' },
    });
    assert.equal(repatched.status, 200, JSON.stringify(repatched.body));
    assert.equal(repatched.body.planVersion, 2);
    assert.deepEqual(repatched.body.planContent, created.body.planContent, 'derived again alike');

    // 12 slices: fewer than 16 voxels on an axis
    for (const [url, json] of [
      [
        '/api/plans/derive',
        { atlas: { studyUID: d.atlas!.studyUID, seriesUID: d.atlas!.seriesUID } },
      ],
      [
        '/api/tasks',
        {
          name: 'Thin auto',
          plan: 'auto',
          atlas: { studyUID: d.atlas!.studyUID, seriesUID: d.atlas!.seriesUID },
        },
      ],
    ] as const) {
      const refused = await api.json<{ error: { message: string } }>(url, { method: 'POST', json });
      assert.equal(refused.status, 422, `${url}: ${JSON.stringify(refused.body)}`);
      assert.match(
        refused.body.error.message,
        /No plan can be derived from this atlas: .*fewer than 16 voxels on an axis/,
      );
    }
    assert.equal((await api.json('/api/tasks/thin-auto')).status, 404, 'nothing created');
  });

  test('series search (QIDO) gives a count preview by modality, description and date range', async () => {
    const all = await api.json<{ count: number; series: { seriesUID: string }[] }>(
      '/api/pacs/series?modality=MR&description=unlabelled',
    );
    assert.equal(all.status, 200);
    assert.equal(all.body.count, 2);
    assert.deepEqual(
      new Set(all.body.series.map((s) => s.seriesUID)),
      new Set([d.u1.seriesUID, d.u2.seriesUID]),
    );
    const range = await api.json<{ count: number }>(
      '/api/pacs/series?modality=MR&description=unlabelled&from=2026-03-15&to=2026-03-31',
    );
    assert.equal(range.body.count, 1);
    const badDate = await api.json('/api/pacs/series?from=March');
    assert.equal(badDate.status, 400);
  });

  test('jobs: one at a time in queue order, SSE progress, cancel (queued and running), skipped series in the log', async () => {
    const uids = [d.u1, d.tiny].map((s) => ({ studyUID: s.studyUID, seriesUID: s.seriesUID }));
    const post = (): Promise<{ status: number; body: JobRecord }> =>
      api.json<JobRecord>('/api/jobs', {
        method: 'POST',
        json: { taskId: 'blobs-long', series: { uids } },
      });
    const j1 = (await post()).body;
    const j2 = (await post()).body;
    const j3r = await post();
    assert.equal(j3r.status, 201);
    const j3 = j3r.body;
    assert.ok(j1.seq < j2.seq && j2.seq < j3.seq);
    assert.equal((await api.json<JobRecord>(`/api/jobs/${j2.id}`)).body.status, 'queued');
    assert.equal((await api.json<JobRecord>(`/api/jobs/${j3.id}`)).body.status, 'queued');

    // Progress as server-sent events (token in the query, as EventSource sends it).
    let sawHeartbeat = false;
    const stream = await readEvents(
      api,
      j1.id,
      (e, all) => {
        if (e.event === ':heartbeat') sawHeartbeat = true;
        return (
          sawHeartbeat &&
          all.some((x) => x.event === 'progress' && (x.data as { step: number }).step >= 5)
        );
      },
      'query',
    );
    assert.match(stream.contentType ?? '', /^text\/event-stream/);
    assert.equal(stream.events[0].event, 'status');
    const prog = stream.events
      .filter((e) => e.event === 'progress')
      .map((e) => e.data as Record<string, unknown>);
    const last = prog[prog.length - 1];
    assert.equal(last.phase, 'smoothing');
    assert.equal(last.total, 1_000_000_000);
    assert.equal(typeof last.loss, 'number');
    assert.ok((last.loss as number) > 0);
    assert.ok(sawHeartbeat);
    // The kept progress rows (for the panel's loss plot after a reload): oldest first, with losses.
    const hist = await api.json<{ progress: { phase?: string; step?: number; loss?: number }[] }>(
      `/api/jobs/${j1.id}/progress`,
    );
    assert.equal(hist.status, 200);
    assert.ok(hist.body.progress.length >= 1, 'at least the first progress row is kept');
    const steps = hist.body.progress.map((p) => p.step ?? 0);
    assert.deepEqual(
      steps,
      [...steps].sort((a, b) => a - b),
      'rows in step order',
    );
    assert.ok(
      hist.body.progress.every((p) => p.phase === 'smoothing' && typeof p.loss === 'number'),
    );
    assert.equal(
      (await api.json<JobRecord>(`/api/jobs/${j2.id}`)).body.status,
      'queued',
      'one job at a time',
    );

    // Status answers while the job computes in its worker thread.
    const times: number[] = [];
    for (let i = 0; i < 21; i++) {
      const t0 = performance.now();
      const r = await api.json<JobRecord>(`/api/jobs/${j1.id}`);
      times.push(performance.now() - t0);
      assert.equal(r.body.status, 'running');
    }
    times.sort((a, b) => a - b);
    console.log(
      `# status request while a job computes: median ${times[10].toFixed(1)} ms, max ${times[20].toFixed(1)} ms`,
    );
    assert.ok(times[10] < 1000);

    const c2 = await api.json<JobRecord>(`/api/jobs/${j2.id}/cancel`, {
      method: 'POST',
      json: { reason: 'not needed' },
    });
    assert.equal(c2.status, 202, JSON.stringify(c2.body));
    assert.equal(c2.body.status, 'cancelled');
    assert.match(c2.body.reason ?? '', /Cancelled by the user: not needed/);

    const c1 = await api.json<JobRecord>(`/api/jobs/${j1.id}/cancel`, { method: 'POST' });
    assert.equal(c1.status, 202);
    const done1 = await waitForJob(api, j1.id, (j) => j.status === 'cancelled', 'cancelled');
    assert.match(done1.reason ?? '', /Cancelled by the user/);
    assert.equal(done1.modelId, undefined);
    const running3 = await waitForJob(api, j3.id, (j) => j.status === 'running', 'running');
    assert.ok(
      Date.parse(running3.startedAt ?? '') >= Date.parse(done1.finishedAt ?? ''),
      'job 3 starts after job 1 ends',
    );
    assert.equal(
      (await api.json<JobRecord>(`/api/jobs/${j2.id}`)).body.startedAt,
      undefined,
      'the cancelled queued job never ran',
    );
    const again = await api.json(`/api/jobs/${j1.id}/cancel`, { method: 'POST' });
    assert.equal(again.status, 409);
    await api.json(`/api/jobs/${j3.id}/cancel`, { method: 'POST' });
    await waitForJob(api, j3.id, (j) => j.status === 'cancelled', 'cancelled');

    const log = await api.json<{ lines: { line: string }[] }>(`/api/jobs/${j1.id}/log`);
    const lines = log.body.lines.map((l) => l.line);
    assert.ok(lines.includes(`series ${d.u1.seriesUID} ok`), lines.join('\n'));
    assert.ok(
      lines.some((l) => l.startsWith(`skipped series ${d.tiny.seriesUID}: 3 slices`)),
      lines.join('\n'),
    );
    assert.ok(lines.includes('job cancelled; no model was published'));
    const models = await api.json<{ models: unknown[] }>('/api/tasks/blobs-long/models');
    assert.deepEqual(models.body.models, []);
    const listed = await api.json<{ jobs: JobRecord[] }>('/api/jobs?task=blobs-long');
    assert.deepEqual(
      listed.body.jobs.map((j) => j.id),
      [j1.id, j2.id, j3.id],
    );

    const byQuery = await api.json<JobRecord>('/api/jobs', {
      method: 'POST',
      json: { taskId: 'blobs-long', series: { query: { description: 'unlabelled' } } },
    });
    assert.equal(byQuery.status, 201);
    assert.deepEqual(
      new Set(byQuery.body.series.map((s) => s.seriesUID)),
      new Set([d.u1.seriesUID, d.u2.seriesUID]),
    );
    await api.json(`/api/jobs/${byQuery.body.id}/cancel`, { method: 'POST' });
    await waitForJob(api, byQuery.body.id, (j) => j.status === 'cancelled', 'cancelled');
    const none = await api.json('/api/jobs', {
      method: 'POST',
      json: {
        taskId: 'blobs-long',
        series: { uids: [{ studyUID: d.atlas.studyUID, seriesUID: d.atlas.seriesUID }] },
      },
    });
    assert.equal(none.status, 422, 'the atlas itself is no unlabelled series');
    const tooMany = await api.json<{ error: { message: string } }>('/api/jobs', {
      method: 'POST',
      json: {
        taskId: 'blobs-long',
        series: {
          uids: Array.from({ length: 201 }, (_, i) => ({ studyUID: '1.2', seriesUID: `1.2.${i}` })),
        },
      },
    });
    assert.equal(tooMany.status, 422);
    assert.match(tooMany.body.error.message, /at most 200/);
  });

  test('a finished job publishes the next model version with its card and a verifiable ONNX download', async () => {
    const t = await api.json<TaskRecord>('/api/tasks', {
      method: 'POST',
      json: {
        name: 'Blobs short',
        plan: `smoothing-${2 * CHECKPOINT_EVERY}`,
        atlas: { studyUID: d.atlas.studyUID, seriesUID: d.atlas.seriesUID, segSeriesUID: segUID },
      },
    });
    assert.equal(t.status, 201);
    /** Starts a job of the task on one series and waits until it has finished. */
    const trainOn = async (s: { studyUID: string; seriesUID: string }): Promise<JobRecord> => {
      const job = await api.json<JobRecord>('/api/jobs', {
        method: 'POST',
        json: {
          taskId: 'blobs-short',
          series: { uids: [{ studyUID: s.studyUID, seriesUID: s.seriesUID }] },
        },
      });
      return waitForJob(
        api,
        job.body.id,
        (j) => j.status !== 'queued' && j.status !== 'running',
        'finished',
      );
    };
    const done = await trainOn(d.u2);
    assert.equal(done.status, 'succeeded', done.reason);
    assert.equal(done.modelId, 'blobs-short@1');
    assert.equal(done.progress?.step, 2 * CHECKPOINT_EVERY);

    const versions = await api.json<{ models: { id: string; version: string }[] }>(
      '/api/tasks/blobs-short/models',
    );
    assert.deepEqual(
      versions.body.models.map((m) => [m.id, m.version]),
      [['blobs-short@1', '1']],
    );
    const card = await api.json<{
      metadata: { id: string; task: string };
      card: Record<string, unknown>;
    }>('/api/models/blobs-short@1');
    assert.equal(card.status, 200);
    assert.equal(card.body.metadata.id, 'blobs-short@1');
    assert.equal(card.body.metadata.task, 'blobs-short');
    const training = card.body.card.trainingData as {
      atlas: { seriesUID: string };
      unlabeledSeries: { seriesUID: string }[];
    };
    assert.equal(training.atlas.seriesUID, d.atlas.seriesUID);
    assert.deepEqual(
      training.unlabeledSeries.map((s) => s.seriesUID),
      [d.u2.seriesUID],
    );
    assert.equal(card.body.card.job, done.id);
    assert.equal(typeof card.body.card.trainingSeconds, 'number');

    const onnx = await api.call('/api/models/blobs-short@1/model.onnx');
    assert.equal(onnx.status, 200);
    const bytes = Buffer.from(await onnx.arrayBuffer());
    const sha = createHash('sha256').update(bytes).digest('hex');
    assert.equal(onnx.headers.get('x-content-sha256'), sha);
    assert.equal(onnx.headers.get('etag'), `"${sha}"`);
    const cached = await api.call('/api/models/blobs-short@1/model.onnx', {
      headers: { 'If-None-Match': `"${sha}"` },
    });
    assert.equal(cached.status, 304);
    await cached.arrayBuffer();
    const index = (await (await fetch(`${api.url}/models/index.json`)).json()) as { id: string }[];
    assert.ok(
      index.some((m) => m.id === 'blobs-short@1'),
      'the viewer sees the published model',
    );

    const done2 = await trainOn(d.u1);
    assert.equal(done2.modelId, 'blobs-short@2');
    const v2 = await api.json<{ models: { id: string }[] }>('/api/tasks/blobs-short/models');
    assert.deepEqual(
      v2.body.models.map((m) => m.id),
      ['blobs-short@1', 'blobs-short@2'],
    );

    const caps = await api.json<{
      providers: { name: string; available: boolean }[];
      configured: string;
    }>('/api/capabilities');
    assert.deepEqual(
      caps.body.providers.map((p) => p.name),
      ['cpu', 'webgpu', 'cuda'],
    );
    assert.equal(caps.body.providers[0].available, true);
    assert.equal(caps.body.configured, 'cpu');
  });

  test('no patient identifiers in the server log or job records', async () => {
    const text = JSON.stringify(api.logs);
    assert.ok(!text.includes(SECRET_PATIENT_NAME.split('^')[0]));
    assert.ok(!text.includes(SECRET_PATIENT_ID));
    const jobs = JSON.stringify((await api.json('/api/jobs')).body);
    assert.ok(!jobs.includes(SECRET_PATIENT_ID));
    const tasks = JSON.stringify((await api.json('/api/tasks')).body);
    assert.ok(!tasks.includes(SECRET_PATIENT_ID));
  });

  test('a running job survives a server restart and resumes from its checkpoint', async () => {
    const own = await tmpDir();
    try {
      let s = await startApiServer(pacs, own.dir);
      let jobId = '';
      try {
        const t = await s.json('/api/tasks', {
          method: 'POST',
          json: {
            name: 'restart',
            plan: LONG,
            atlas: { studyUID: d.atlas.studyUID, seriesUID: d.atlas.seriesUID },
          },
        });
        assert.equal(t.status, 201);
        const j = await s.json<JobRecord>('/api/jobs', {
          method: 'POST',
          json: {
            taskId: 'restart',
            series: { uids: [{ studyUID: d.u1.studyUID, seriesUID: d.u1.seriesUID }] },
          },
        });
        jobId = j.body.id;
        // A checkpoint is written before the progress of its iteration is reported.
        await waitForJob(
          s,
          jobId,
          (x) => (x.progress?.step ?? 0) > CHECKPOINT_EVERY,
          'past the first checkpoint',
        );
      } finally {
        await s.server.close();
      }
      s = await startApiServer(pacs, own.dir);
      try {
        const first = await s.json<JobRecord>(`/api/jobs/${jobId}`);
        assert.equal(first.status, 200, 'the job record survived the restart');
        assert.equal(first.body.taskId, 'restart');
        const stepBefore = first.body.progress?.step ?? 0;
        assert.ok(stepBefore > CHECKPOINT_EVERY, 'its progress survived too');
        await waitForJob(s, jobId, (x) => x.status === 'running' && x.attempts === 2, 'resumed');
        const lines = async (): Promise<string[]> =>
          (await s.json<{ lines: { line: string }[] }>(`/api/jobs/${jobId}/log`)).body.lines.map(
            (l) => l.line,
          );
        const deadline = Date.now() + 60_000;
        let found: string | undefined;
        while (!found && Date.now() < deadline) {
          found = (await lines()).find((l) => l.startsWith('resumed from checkpoint at iteration'));
          if (!found) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(found, (await lines()).join('\n'));
        const k = Number(/iteration (\d+)/.exec(found)?.[1]);
        assert.ok(k >= CHECKPOINT_EVERY && k % CHECKPOINT_EVERY === 0);
        const all = await lines();
        assert.ok(
          all.includes('server stopping: job interrupted, it resumes on restart'),
          all.join('\n'),
        );
        assert.ok(all.includes('job resumed (attempt 2)'), all.join('\n'));
        await waitForJob(
          s,
          jobId,
          (x) => (x.progress?.step ?? 0) > stepBefore,
          'progress after resume',
        );
        await s.json(`/api/jobs/${jobId}/cancel`, { method: 'POST' });
        await waitForJob(s, jobId, (x) => x.status === 'cancelled', 'cancelled');
      } finally {
        await s.server.close();
      }
    } finally {
      await own.remove();
    }
  });
});
