/**
 * Security catalogue — job faults (docs/security.md, family "job faults"): plans that are absurd or
 * do not fit the atlas, two tasks created at once, a job that crash-loops the server, a job that
 * finds the PACS down. Jobs run a stand-in executor (the real server, store and runner; no
 * training), so each fault is caused on purpose and its outcome checked: the right status and
 * message, nothing half-written in the database or the models folder, the server still answering.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PLAN_BOUNDS, planBoundsProblem } from '@rrl/server/jobs/plans.js';
import { startServer, type RunningServer } from '@rrl/server/app.js';
import type { JobExecutor } from '@rrl/server/jobs/runner.js';
import type { JobRecord } from '@rrl/server/store/db.js';
import { startTestOrthanc, type TestOrthanc } from '../helpers/orthanc.js';
import { pacsClient, storeSeg, storeSeries, type StoredSeries } from '../integration/api/data.js';
import { tmpDir } from '../integration/api/helpers.js';

const TOKEN = 'job-faults-token-0123456789';
const T = { timeout: 90_000 };

interface Env {
  server: RunningServer;
  call<B = Record<string, unknown>>(
    p: string,
    init?: { method?: string; json?: unknown },
  ): Promise<{ status: number; body: B }>;
}

async function start(dir: string, pacs: TestOrthanc, executor: JobExecutor): Promise<Env> {
  const server = await startServer(
    {
      host: '127.0.0.1',
      port: 0,
      dataDir: path.join(dir, 'data'),
      modelsDir: path.join(dir, 'models'),
      apiToken: TOKEN,
      pacs: { dicomWebRoot: pacs.dicomWebRoot, username: pacs.username, password: pacs.password },
    },
    { env: {}, logSink: () => {}, jobExecutor: executor, jobRetryDelayMs: 200 },
  );
  return {
    server,
    async call(p, init = {}) {
      const res = await fetch(server.url + p, {
        method: init.method ?? (init.json !== undefined ? 'POST' : 'GET'),
        headers: {
          Authorization: `Bearer ${TOKEN}`,
          ...(init.json !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
        ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
      });
      return { status: res.status, body: (await res.json()) as never };
    },
  };
}

async function waitFor(
  env: Env,
  id: string,
  ok: (j: JobRecord) => boolean,
  ms = 30_000,
): Promise<JobRecord> {
  const deadline = Date.now() + ms;
  for (;;) {
    const j = (await env.call<JobRecord>(`/api/jobs/${id}`)).body;
    if (ok(j)) return j;
    if (Date.now() > deadline) throw new Error(`job ${id} stayed ${j.status}: ${j.reason ?? ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('security: job faults', () => {
  let pacs: TestOrthanc;
  let atlas: StoredSeries & { labels: Uint8Array };
  let u1: StoredSeries;

  before(async () => {
    pacs = await startTestOrthanc();
    const client = pacsClient(pacs);
    atlas = await storeSeries(client, { description: 'T1 atlas' });
    await storeSeg(client, atlas, atlas.labels);
    u1 = await storeSeries(client, { shift: 1, description: 'T1 unlabelled' });
  });
  after(async () => {
    await pacs?.stop();
  });

  const taskBody = (name: string, plan: string): unknown => ({
    name,
    plan,
    atlas: { studyUID: atlas.studyUID, seriesUID: atlas.seriesUID },
  });
  const jobBody = (taskId: string): unknown => ({
    taskId,
    series: { uids: [{ studyUID: u1.studyUID, seriesUID: u1.seriesUID }] },
  });

  test(
    'plans: unknown, not fitting the atlas, or out of bounds are refused at creation (422); nothing stored',
    T,
    async () => {
      const dir = await tmpDir();
      const env = await start(dir.dir, pacs, () => Promise.reject(new Error('never runs')));
      try {
        const unknown = await env.call<{ error: { message: string } }>('/api/tasks', {
          json: taskBody('Unknown plan', 'no-such-plan'),
        });
        assert.equal(unknown.status, 422);
        assert.match(unknown.body.error.message, /no plan no-such-plan.*tiny/);
        // The atlas holds 3 labels; brain-aseg trains 30.
        const misfit = await env.call<{ error: { message: string } }>('/api/tasks', {
          json: taskBody('Wrong plan', 'brain-aseg'),
        });
        assert.equal(misfit.status, 422);
        assert.match(misfit.body.error.message, /trains \d+ labels but the atlas SEG holds \d+/);
        assert.match(misfit.body.error.message, /choose a plan for \d+ labels: .*tiny/);
        const tasks = await env.call<{ tasks: unknown[] }>('/api/tasks');
        assert.deepEqual(tasks.body.tasks, [], 'no task was stored');
        // Plan bounds: what a plan file could ask for is checked before any job starts.
        assert.match(
          planBoundsProblem({ classes: 4, grid: [512, 512, 512], schedule: {} }) ?? '',
          /voxels/,
        );
        assert.match(
          planBoundsProblem({
            classes: 4,
            grid: [8, 8, 8],
            schedule: { mutual: { steps: 1e9 } },
          }) ?? '',
          /mutual asks for/,
        );
        assert.match(
          planBoundsProblem({ classes: 500, grid: [8, 8, 8], schedule: {} }) ?? '',
          /classes/,
        );
        assert.equal(
          planBoundsProblem({ classes: 4, grid: [48, 64, 48], schedule: { a: { steps: 100 } } }),
          undefined,
        );
        assert.ok(PLAN_BOUNDS.gridVoxels >= 160 ** 3, 'the shipped plans fit the bounds');
      } finally {
        await env.server.close();
        await dir.remove();
      }
    },
  );

  test('two tasks with the same name at once: one 201, the other a clean 409', T, async () => {
    const dir = await tmpDir();
    const env = await start(dir.dir, pacs, () => Promise.reject(new Error('never runs')));
    try {
      const results = await Promise.all(
        [0, 1, 2].map(() => env.call('/api/tasks', { json: taskBody('Same name', 'tiny') })),
      );
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [201, 409, 409], JSON.stringify(results.map((r) => r.body)));
      assert.equal((await env.call<{ tasks: unknown[] }>('/api/tasks')).body.tasks.length, 1);
    } finally {
      await env.server.close();
      await dir.remove();
    }
  });

  test(
    'a job that keeps taking the server down is failed after 3 attempts, with the reason',
    T,
    async () => {
      const dir = await tmpDir();
      // Never finishes: each "crash" is a server stop while it runs.
      const hang: JobExecutor = (_job, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        });
      let env = await start(dir.dir, pacs, hang);
      let jobId = '';
      try {
        assert.equal(
          (await env.call('/api/tasks', { json: taskBody('Crashy', 'tiny') })).status,
          201,
        );
        const job = await env.call<JobRecord>('/api/jobs', { json: jobBody('crashy') });
        assert.equal(job.status, 201);
        jobId = job.body.id;
        for (let i = 0; i < 3; i++) {
          await waitFor(env, jobId, (j) => j.status === 'running');
          await env.server.close();
          env = await start(dir.dir, pacs, hang);
        }
        const failed = await waitFor(env, jobId, (j) => j.status === 'failed');
        assert.equal(failed.attempts, 3);
        assert.match(failed.reason ?? '', /started 3 times .* not retried again/);
        assert.equal(
          (await readdir(path.join(dir.dir, 'models'))).filter((f) => !f.startsWith('.')).length,
          0,
        );
        assert.equal((await env.call('/api/health')).status, 200, 'the server answers');
      } finally {
        await env.server.close();
        await dir.remove();
      }
    },
  );

  test(
    'a job that finds the PACS unreachable waits and retries, then fails with the reason; nothing published',
    T,
    async () => {
      const dir = await tmpDir();
      let calls = 0;
      const outage: JobExecutor = async (_job, ctx) => {
        calls += 1;
        // What a training job leaves: a checkpoint (large) and its stage state (small).
        await mkdir(path.join(ctx.workDir, 'cache'), { recursive: true });
        await writeFile(path.join(ctx.workDir, 'cache', 'subject-1.bin'), Buffer.alloc(3_000_000));
        await writeFile(path.join(ctx.workDir, 'state.json'), JSON.stringify({ stage: 'fetch' }));
        return Promise.reject(
          new Error('Could not reach the PACS to read series 1.2.3 (ECONNREFUSED). Check it runs.'),
        );
      };
      const env = await start(dir.dir, pacs, outage);
      try {
        assert.equal(
          (await env.call('/api/tasks', { json: taskBody('Outage', 'tiny') })).status,
          201,
        );
        const job = await env.call<JobRecord>('/api/jobs', { json: jobBody('outage') });
        const failed = await waitFor(env, job.body.id, (j) => j.status === 'failed');
        assert.equal(calls, 3, 'tried three times');
        assert.match(failed.reason ?? '', /Could not reach the PACS/);
        assert.doesNotMatch(
          failed.reason ?? '',
          /127\.0\.0\.1|\/tmp\//,
          'no internal address or path',
        );
        const log = await env.call<{ lines: { line: string }[] }>(`/api/jobs/${job.body.id}/log`);
        assert.equal(log.body.lines.filter((l) => /retries in/.test(l.line)).length, 2);
        assert.equal(failed.modelId, undefined);
        // Retention: the finished job keeps its text records only (pruned right after the
        // status is recorded: a client may see "failed" a moment before).
        const folder = path.join(dir.dir, 'data', 'jobs', job.body.id);
        let left: string[] = [];
        for (let i = 0; i < 100; i++) {
          left = (await readdir(folder, { recursive: true })).map(String).sort();
          if (left.length === 1) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.deepEqual(left, ['state.json'], 'pruned to its records');
      } finally {
        await env.server.close();
        await dir.remove();
      }
    },
  );
});
