/**
 * A task's life through the API with the server's real training executor (tiny plan) and a real
 * Orthanc: the plan stored with the task (versioned), a hold-out series that every new model is
 * evaluated on, the default model decided by that evaluation (and promoted or rolled back by
 * hand), a cancelled job resumed from its checkpoint, stage-weighted progress estimates learned
 * from the first job, rename, archive and delete (models, jobs and job folders removed).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { PLANS_DIR } from '@rrl/server/jobs/plans.js';
import type { JobProgress, JobRecord, TaskRecord } from '@rrl/server/store/db.js';
import {
  pacsClient,
  storeAtlasAndUnlabelled,
  storeSeg,
  storeSeries,
  type StoredSeries,
} from './data.js';
import { createTask, readEvents, startApiTestEnv, waitForJob, type ApiTestEnv } from './helpers.js';

let env: ApiTestEnv;

interface ModelList {
  defaultModel: string | null;
  models: { id: string; default: boolean; holdoutDice?: number }[];
}
interface Card {
  card: {
    evaluation: { meanDice: number; series: { seriesUID: string }[] } | null;
    promotion: { promote: boolean; reason: string };
    parameters: { plan: string; planVersion: number; provider: string; providerUsed: string };
  };
}

describe('task lifecycle', { timeout: 600_000 }, () => {
  let unlabelled: StoredSeries[] = [];
  let holdout: StoredSeries;
  let atlas: StoredSeries;
  let firstJob: JobRecord;

  before(async () => {
    env = await startApiTestEnv({ realTraining: true });
    const client = pacsClient(env.pacs);
    ({ atlas, unlabelled } = await storeAtlasAndUnlabelled(client));
    const h = await storeSeries(client, { shift: 2, description: 'T1 labelled hold-out' });
    await storeSeg(client, h, h.labels);
    holdout = h;
  });

  after(() => env?.stop());

  const startJob = (taskId: string) =>
    env.api.json<JobRecord>('/api/jobs', {
      method: 'POST',
      json: {
        taskId,
        series: {
          uids: unlabelled.map((s) => ({ studyUID: s.studyUID, seriesUID: s.seriesUID })),
        },
      },
    });
  const finished = (id: string) =>
    waitForJob(
      env.api,
      id,
      (j) => j.status !== 'running' && j.status !== 'queued',
      'finished',
      300_000,
    );

  test('the task stores its plan content as version 1; a misfit plan change is refused', async () => {
    const { api } = env;
    const created = await createTask(api, 'Blobs', 'tiny', atlas);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const task = (await api.json<TaskRecord>('/api/tasks/blobs')).body;
    assert.equal(task.planVersion, 1);
    const file = JSON.parse(await readFile(path.join(PLANS_DIR, 'tiny.json'), 'utf8')) as unknown;
    assert.deepEqual(task.planContent, file, 'the plan file’s content is stored with the task');
    const misfit = await api.json<{ error: { message: string } }>('/api/tasks/blobs', {
      method: 'PATCH',
      json: { plan: 'brain-aseg' },
    });
    assert.equal(misfit.status, 422);
    assert.match(misfit.body.error.message, /trains 30 labels but task blobs has 2/);
    const plans = await api.json<{ plans: { version: number; name: string }[] }>(
      '/api/tasks/blobs/plans',
    );
    assert.deepEqual(
      plans.body.plans.map((p) => [p.version, p.name]),
      [[1, 'tiny']],
    );
  });

  test('a hold-out series: the atlas and duplicates are refused', async () => {
    const { api } = env;
    const ref = { studyUID: holdout.studyUID, seriesUID: holdout.seriesUID };
    const added = await api.json<TaskRecord>('/api/tasks/blobs/holdout', {
      method: 'POST',
      json: ref,
    });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.deepEqual(
      added.body.holdout.map((h) => h.seriesUID),
      [holdout.seriesUID],
    );
    const again = await api.call('/api/tasks/blobs/holdout', { method: 'POST', json: ref });
    assert.equal(again.status, 409);
    const atlasAsHoldout = await api.call('/api/tasks/blobs/holdout', {
      method: 'POST',
      json: { studyUID: atlas.studyUID, seriesUID: atlas.seriesUID },
    });
    assert.equal(atlasAsHoldout.status, 422);
    const unlabelledAsHoldout = await api.call('/api/tasks/blobs/holdout', {
      method: 'POST',
      json: { studyUID: unlabelled[0]!.studyUID, seriesUID: unlabelled[0]!.seriesUID },
    });
    assert.equal(unlabelledAsHoldout.status, 422, 'a series without a SEG cannot be a hold-out');
  });

  test('the first model is evaluated on the hold-out and becomes the default', async () => {
    const { api } = env;
    const job = await startJob('blobs');
    assert.equal(job.status, 201);
    firstJob = await finished(job.body.id);
    assert.equal(firstJob.status, 'succeeded', firstJob.reason);
    const card = (await api.json<Card>('/api/models/blobs@1')).body.card;
    assert.ok(card.evaluation, 'the card holds the hold-out evaluation');
    assert.deepEqual(
      card.evaluation.series.map((s) => s.seriesUID),
      [holdout.seriesUID],
    );
    // The tiny plan (16³ grid, a few steps) is a smoke test, not a good model; a model that
    // finds nothing scores 0.
    assert.ok(card.evaluation.meanDice > 0.1, `hold-out Dice ${card.evaluation.meanDice}`);
    assert.equal(card.promotion.promote, true);
    assert.equal(card.parameters.planVersion, 1);
    assert.equal(card.parameters.providerUsed, 'cpu', 'the provider the job actually used');
    const list = (await api.json<ModelList>('/api/tasks/blobs/models')).body;
    assert.equal(list.defaultModel, 'blobs@1');
    assert.equal(list.models[0]?.holdoutDice, card.evaluation.meanDice);
    assert.equal((await api.json<TaskRecord>('/api/tasks/blobs')).body.defaultModel, 'blobs@1');
  });

  test('a cancelled job keeps its checkpoints and resumes; the estimate uses the first job’s durations', async () => {
    const { api } = env;
    // A plan change applies to the next job: version 2 (same plan file, stored again).
    const patched = await api.json<TaskRecord>('/api/tasks/blobs', {
      method: 'PATCH',
      json: { plan: 'tiny' },
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.planVersion, 2);
    const job = await startJob('blobs');
    assert.equal(job.body.planVersion, 2);
    const id = job.body.id;
    // Cancel once it trains.
    const events = await readEvents(
      api,
      id,
      (e) => e.event === 'progress' && (e.data as JobProgress).phase === 'registration',
    );
    const first = events.events.find((e) => e.event === 'progress')?.data as JobProgress;
    assert.equal(
      typeof first.etaSeconds,
      'number',
      'with the first job measured, the estimate is there from the first progress',
    );
    assert.equal(typeof first.fraction, 'number');
    const cancel = await api.json<JobRecord>(`/api/jobs/${id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    const cancelled = await finished(id);
    assert.equal(cancelled.status, 'cancelled');
    const workDir = path.join(env.dir, 'data', 'jobs', id);
    assert.ok(existsSync(path.join(workDir, 'plan.json')), 'the work folder is kept');
    const resumed = await api.json<JobRecord>(`/api/jobs/${id}/resume`, { method: 'POST' });
    assert.equal(resumed.status, 202, JSON.stringify(resumed.body));
    const done = await finished(id);
    assert.equal(done.status, 'succeeded', done.reason);
    assert.equal(done.modelId, 'blobs@2');
    const log = (await api.json<{ lines: { line: string }[] }>(`/api/jobs/${id}/log`)).body.lines;
    assert.ok(log.some((l) => /resume requested/.test(l.line)));
    const again = await api.call(`/api/jobs/${id}/resume`, { method: 'POST' });
    assert.equal(again.status, 409, 'only a cancelled job can be resumed');
  });

  test('the second model is the default only if its hold-out Dice is not worse; promote and roll back by hand', async () => {
    const { api } = env;
    const list = (await api.json<ModelList>('/api/tasks/blobs/models')).body;
    const [m1, m2] = list.models;
    assert.ok(m1 && m2 && m1.holdoutDice !== undefined && m2.holdoutDice !== undefined);
    const expected = m2.holdoutDice >= m1.holdoutDice ? 'blobs@2' : 'blobs@1';
    assert.equal(list.defaultModel, expected, `Dice ${m1.holdoutDice} then ${m2.holdoutDice}`);
    const card = (await api.json<Card>('/api/models/blobs@2')).body.card;
    assert.equal(card.promotion.promote, expected === 'blobs@2');
    assert.match(card.promotion.reason, /hold-out Dice \d\.\d{3}/);
    const other = expected === 'blobs@2' ? 'blobs@1' : 'blobs@2';
    const set = await api.json<TaskRecord>('/api/tasks/blobs/default', {
      method: 'POST',
      json: { modelId: other },
    });
    assert.equal(set.status, 200);
    assert.equal(set.body.defaultModel, other);
    assert.equal((await api.json<ModelList>('/api/tasks/blobs/models')).body.defaultModel, other);
    const unknown = await api.call('/api/tasks/blobs/default', {
      method: 'POST',
      json: { modelId: 'blobs@9' },
    });
    assert.equal(unknown.status, 404);
  });

  test('rename and archive: hidden from the list, models kept', async () => {
    const { api } = env;
    const renamed = await api.json<TaskRecord>('/api/tasks/blobs', {
      method: 'PATCH',
      json: { name: 'Blobs (renamed)' },
    });
    assert.equal(renamed.body.name, 'Blobs (renamed)');
    const archived = await api.json<TaskRecord>('/api/tasks/blobs', {
      method: 'PATCH',
      json: { archived: true },
    });
    assert.ok(archived.body.archivedAt);
    const visible = (await api.json<{ tasks: TaskRecord[] }>('/api/tasks')).body.tasks;
    assert.ok(!visible.some((t) => t.id === 'blobs'));
    const all = (await api.json<{ tasks: TaskRecord[] }>('/api/tasks?archived=1')).body.tasks;
    assert.ok(all.some((t) => t.id === 'blobs'));
    const index = (await (await api.call('/models/index.json')).json()) as { id: string }[];
    assert.ok(
      index.some((m) => m.id === 'blobs@1'),
      'an archived task keeps its models',
    );
    const bad = await api.call('/api/tasks/blobs', { method: 'PATCH', json: { colour: 'red' } });
    assert.equal(bad.status, 400);
  });

  test('delete needs the id repeated; it removes the models, jobs and job folders', async () => {
    const { api } = env;
    assert.equal((await api.call('/api/tasks/blobs', { method: 'DELETE' })).status, 400);
    const jobs = (await api.json<{ jobs: JobRecord[] }>('/api/jobs?task=blobs')).body.jobs;
    assert.equal(jobs.length, 2);
    const del = await api.json<{ removedModels: string[]; removedJobs: number }>(
      '/api/tasks/blobs?confirm=blobs',
      { method: 'DELETE' },
    );
    assert.equal(del.status, 200);
    assert.deepEqual(del.body.removedModels.sort(), ['blobs@1', 'blobs@2']);
    assert.equal(del.body.removedJobs, 2);
    assert.equal((await api.call('/api/tasks/blobs')).status, 404);
    for (const j of jobs) assert.equal((await api.call(`/api/jobs/${j.id}`)).status, 404);
    const left = await readdir(path.join(env.dir, 'data', 'jobs')).catch(() => [] as string[]);
    assert.ok(!jobs.some((j) => left.includes(j.id)), 'job folders removed');
    const index = (await (await api.call('/models/index.json')).json()) as { id: string }[];
    assert.ok(!index.some((m) => m.id.startsWith('blobs@')), 'the models are gone');
  });

  test('a task with a running job cannot be deleted', async () => {
    const { api } = env;
    const created = await createTask(api, 'Busy', 'tiny', atlas);
    assert.equal(created.status, 201);
    const job = await startJob('busy');
    const del = await api.json<{ error: { message: string } }>('/api/tasks/busy?confirm=busy', {
      method: 'DELETE',
    });
    assert.equal(del.status, 409);
    assert.match(del.body.error.message, /cancel it before deleting/);
    await api.call(`/api/jobs/${job.body.id}/cancel`, { method: 'POST' });
    await finished(job.body.id);
    assert.equal(
      (await api.call('/api/tasks/busy?confirm=busy', { method: 'DELETE' })).status,
      200,
    );
  });
});
