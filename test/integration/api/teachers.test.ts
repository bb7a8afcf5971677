/**
 * SAM teachers through the API with the real training executor and a real Orthanc: a checkpoint
 * written by torch.save (a reduced SAM ViT under the official keys) is uploaded and imported, the
 * same file again is found, a checkpoint whose pickle names os.system and a foreign file are
 * refused with the reason; a task created with the teacher trains a model whose card names it
 * (variant, file, hash, size); a teacher in use cannot be removed until the task drops it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { JobRecord, TaskRecord } from '@rrl/server/store/db.js';
import type { TeacherCard } from '@rrl/core/api.js';
import { makeReference, writeEvilCheckpoint } from '../../unit/sam/torch.js';
import { pacsClient, storeAtlasAndUnlabelled, type StoredSeries } from './data.js';
import { startApiTestEnv, waitForJob, type ApiTestEnv } from './helpers.js';

let env: ApiTestEnv;

describe('SAM teachers', { timeout: 600_000 }, () => {
  let atlas: StoredSeries;
  let unlabelled: StoredSeries[] = [];
  let teacher: TeacherCard;
  let ckpt: string;

  before(async () => {
    env = await startApiTestEnv({ realTraining: true });
    ({ atlas, unlabelled } = await storeAtlasAndUnlabelled(pacsClient(env.pacs)));
    const ref = makeReference('tiny-vit-b', 64, path.join(env.dir, 'ref'), { name: 'upload.bin' });
    ckpt = path.join(ref.dir, 'upload.bin');
  });

  after(() => env?.stop());

  const upload = (file: string, query: string, type = 'application/octet-stream') =>
    env.api.json<{ teacher: TeacherCard; existed: boolean; error?: { message: string } }>(
      `/api/teachers?${query}`,
      { method: 'POST', headers: { 'Content-Type': type }, body: readFileSync(file) },
    );

  test('import an uploaded checkpoint; the same file again is found', async () => {
    const empty = await env.api.json<{ teachers: TeacherCard[] }>('/api/teachers');
    assert.deepEqual(empty.body.teachers, []);
    const r = await upload(ckpt, 'name=medsam_vit_b.pth&size=64');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    teacher = r.body.teacher;
    assert.match(teacher.variant, /^MedSAM ViT \(width 64, depth 4\)$/);
    assert.equal(teacher.sourceFile, 'medsam_vit_b.pth');
    assert.equal(teacher.inputSize, 64);
    const again = await upload(ckpt, 'name=medsam_vit_b.pth&size=64');
    assert.equal(again.status, 200);
    assert.equal(again.body.existed, true);
    const list = await env.api.json<{ teachers: TeacherCard[] }>('/api/teachers');
    assert.deepEqual(
      list.body.teachers.map((t) => t.id),
      [teacher.id],
    );
  });

  test('a pickle that names os.system, a foreign file and a wrong upload are refused', async () => {
    const evil = path.join(env.dir, 'evil.pth');
    writeEvilCheckpoint(evil, 'true');
    const r = await upload(evil, 'name=sam_vit_b_01ec64.pth');
    assert.equal(r.status, 422);
    assert.match(
      r.body.error?.message ?? '',
      /refused: the checkpoint's pickle names posix\.system/,
    );
    const foreign = await upload(path.join(env.dir, 'ref', 'reference.json'), 'name=x.pth');
    assert.equal(foreign.status, 422);
    assert.match(foreign.body.error?.message ?? '', /not a PyTorch checkpoint|too small/);
    assert.equal((await upload(ckpt, 'name=a.pth', 'application/json')).status, 415);
    assert.equal((await upload(ckpt, 'name=../../etc/passwd&size=99x')).status, 400);
    const list = await env.api.json<{ teachers: TeacherCard[] }>('/api/teachers');
    assert.equal(list.body.teachers.length, 1, 'nothing else was imported');
  });

  test('a task with the teacher trains a model whose card names it; a used teacher stays', async () => {
    const created = await env.api.json<TaskRecord>('/api/tasks', {
      method: 'POST',
      json: {
        name: 'Blobs with teacher',
        plan: 'tiny',
        teacher: teacher.id,
        atlas: { studyUID: atlas.studyUID, seriesUID: atlas.seriesUID },
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.teacher, teacher.id);
    assert.equal((created.body.planContent as { teacher?: string }).teacher, teacher.id);
    const bad = await env.api.json('/api/tasks/blobs-with-teacher', {
      method: 'PATCH',
      json: { teacher: 'nope-vit-00000000-64' },
    });
    assert.equal(bad.status, 422);

    const job = await env.api.json<JobRecord>('/api/jobs', {
      method: 'POST',
      json: {
        taskId: created.body.id,
        series: { uids: unlabelled.map((s) => ({ studyUID: s.studyUID, seriesUID: s.seriesUID })) },
      },
    });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    const done = await waitForJob(
      env.api,
      job.body.id,
      (j) => j.status !== 'running' && j.status !== 'queued',
      'finished',
      300_000,
    );
    assert.equal(done.status, 'succeeded', done.reason);
    const card = await env.api.json<{
      card: {
        parameters: { teacher: string | null };
        stages: { stages: { stage: string; skipped?: string }[] };
      };
    }>(`/api/models/${encodeURIComponent(done.modelId!)}`);
    assert.match(
      card.body.card.parameters.teacher ?? '',
      new RegExp(
        `^MedSAM ViT \\(width 64, depth 4\\) \\(medsam_vit_b\\.pth, sha256 ${teacher.sha256.slice(0, 12)}…, 64 px`,
      ),
    );
    const s1 = card.body.card.stages.stages.find((s) => s.stage === 'distill-sam');
    assert.ok(s1 && !s1.skipped, 'stage 1 ran');

    const inUse = await env.api.json(`/api/teachers/${teacher.id}`, { method: 'DELETE' });
    assert.equal(inUse.status, 409);
    const dropped = await env.api.json<TaskRecord>('/api/tasks/blobs-with-teacher', {
      method: 'PATCH',
      json: { teacher: null },
    });
    assert.equal(dropped.status, 200);
    assert.equal(dropped.body.teacher, null);
    assert.equal(dropped.body.planVersion, 2);
    const removed = await env.api.json(`/api/teachers/${teacher.id}`, { method: 'DELETE' });
    assert.equal(removed.status, 200);
    assert.deepEqual(
      (await env.api.json<{ teachers: TeacherCard[] }>('/api/teachers')).body.teachers,
      [],
    );
  });
});
