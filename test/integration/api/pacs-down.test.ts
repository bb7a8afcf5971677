/**
 * The PACS goes down in the middle of a training job's fetch: the job must stop with a reason
 * that names the PACS (not "skip" every remaining series as if they were bad and train on what
 * was fetched), and publish nothing.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';

import type { ExecutorProgress } from '@rrl/server/jobs/runner.js';
import { pacsTrainingTask } from '@rrl/server/jobs/trainTask.js';
import type { JobRecord } from '@rrl/server/store/db.js';
import { pacsClient, storeSeg, storeSeries } from './data.js';
import { createTask, startApiTestEnv, type ApiTestEnv } from './helpers.js';

let env: ApiTestEnv;

before(async () => {
  env = await startApiTestEnv();
});

after(() => env?.stop());

test('PACS down while a job fetches its series: the job stops with a clear reason, nothing trained or published', async () => {
  const { pacs, api } = env;
  const client = pacsClient(pacs);
  const atlas = await storeSeries(client, { description: 'T1 atlas' });
  await storeSeg(client, atlas, atlas.labels);
  const u1 = await storeSeries(client, { shift: 1, description: 'T1 unlabelled' });
  const u2 = await storeSeries(client, { shift: -1, description: 'T1 unlabelled' });
  const created = await createTask(api, 'Outage', 'tiny', atlas);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const task = created.body;

  const workDir = path.join(env.dir, 'outage-job');
  const job: JobRecord = {
    id: 'outage-job',
    taskId: task.id,
    status: 'running',
    seq: 1,
    series: [u1, u2].map((s) => ({ studyUID: s.studyUID, seriesUID: s.seriesUID })),
    selection: { uids: 2 },
    provider: 'cpu',
    createdAt: new Date().toISOString(),
    attempts: 1,
  };
  const log: string[] = [];
  const phases: string[] = [];
  let killed = false;
  const run = pacsTrainingTask(job, {
    signal: new AbortController().signal,
    progress: (p: ExecutorProgress) => {
      phases.push(p.phase);
      // The atlas has been read; the PACS dies before the first unlabelled series is fetched.
      if (p.phase === 'fetch' && p.step === 1 && !killed) {
        killed = true;
        process.kill(pacs.pid, 'SIGKILL');
      }
    },
    log: (l) => log.push(l),
    workDir,
    task,
    pacs: { dicomWebRoot: pacs.dicomWebRoot, username: pacs.username, password: pacs.password },
    provider: 'cpu',
  });
  await assert.rejects(run, (e: Error) => {
    assert.match(e.message, /The PACS stopped answering while series .* was fetched \(0 of 2/);
    assert.match(e.message, /published nothing; start it again when the PACS is reachable/);
    return true;
  });
  assert.ok(killed, 'the PACS was stopped during the fetch');
  assert.ok(!log.some((l) => l.startsWith('skipped series')), log.join('\n'));
  assert.ok(!phases.includes('registration'), 'no training started');
  // Nothing trained, nothing exported.
  const files = existsSync(workDir) ? await readdir(workDir, { recursive: true }) : [];
  assert.ok(
    !files.some((f) => String(f).endsWith('model.onnx')),
    `no model in the job folder: ${files.join(', ')}`,
  );
});
