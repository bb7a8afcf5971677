/**
 * The real training job end to end: a task whose atlas (MR series + SEG) is in a real Orthanc,
 * a job on two unlabelled series and one unusable series (3 slices), run by the server's own
 * executor (PACS → plan grid → runPipeline on the tiny plan, in its worker) and published as the
 * task's first model version — by the compiled server (dist/node), as production runs it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { validateMetadata } from '@rrl/core/format/metadata.js';
import type { JobRecord } from '@rrl/server/store/db.js';
import { pacsClient, storeSeg, storeSeries } from './data.js';
import { createTask, readEvents, startApiTestEnv, waitForJob, type ApiTestEnv } from './helpers.js';

let env: ApiTestEnv;

before(async () => {
  env = await startApiTestEnv({ realTraining: true, compiled: true });
});

after(() => env?.stop());

test(
  'a training job on the tiny plan reads the PACS, skips a bad series, trains and publishes a model',
  { timeout: 120_000 },
  async () => {
    const { pacs, api } = env;
    const client = pacsClient(pacs);
    const atlas = await storeSeries(client, { description: 'T1 atlas' });
    await storeSeg(client, atlas, atlas.labels);
    const u1 = await storeSeries(client, { shift: 1, description: 'T1 unlabelled' });
    const u2 = await storeSeries(client, { shift: -1, description: 'T1 unlabelled' });
    const scout = await storeSeries(client, { dims: [32, 32, 3], description: 'T1 scout' });

    const task = await createTask(api, 'Blobs', 'tiny', atlas);
    assert.equal(task.status, 201, JSON.stringify(task.body));
    const job = await api.json<JobRecord>('/api/jobs', {
      method: 'POST',
      json: {
        taskId: 'blobs',
        series: {
          uids: [u1, scout, u2].map((s) => ({ studyUID: s.studyUID, seriesUID: s.seriesUID })),
        },
      },
    });
    assert.equal(job.status, 201);
    // Status answers while the job trains in its worker thread (printed; asserted only loosely).
    const times: number[] = [];
    for (let i = 0; i < 200 && times.length < 21; i++) {
      const t0 = performance.now();
      const r = await api.json<JobRecord>(`/api/jobs/${job.body.id}`);
      const ms = performance.now() - t0;
      if (r.body.status !== 'running') {
        if (r.body.status === 'queued') continue;
        break;
      }
      times.push(ms);
    }
    if (times.length > 0) {
      times.sort((a, b) => a - b);
      const median = times[times.length >> 1];
      console.log(
        `# status request while a job trains: median ${median.toFixed(1)} ms over ${times.length}, max ${times[times.length - 1].toFixed(1)} ms`,
      );
      assert.ok(median < 1000);
    }
    const stream = await readEvents(api, job.body.id, (e) => e.event === 'end');
    const phases = new Set(
      stream.events
        .filter((e) => e.event === 'progress')
        .map((e) => (e.data as { phase: string }).phase),
    );
    for (const p of ['fetch', 'registration', 'mutual', 'decoder'])
      assert.ok(phases.has(p), `phase ${p} in ${[...phases].join(', ')}`);
    const withLoss = stream.events.find(
      (e) => e.event === 'progress' && typeof (e.data as { loss?: number }).loss === 'number',
    );
    assert.ok(withLoss, 'progress carries losses');
    const withEta = stream.events.find(
      (e) =>
        e.event === 'progress' &&
        typeof (e.data as { etaSeconds?: number }).etaSeconds === 'number',
    );
    assert.ok(withEta, 'progress carries an ETA');

    const done = await waitForJob(
      api,
      job.body.id,
      (j) => j.status !== 'running' && j.status !== 'queued',
      'finished',
      300_000,
    );
    assert.equal(done.status, 'succeeded', done.reason);
    assert.equal(done.modelId, 'blobs@1');
    const log = await api.json<{ lines: { line: string }[] }>(`/api/jobs/${done.id}/log`);
    const lines = log.body.lines.map((l) => l.line);
    assert.ok(
      lines.some((l) => l.startsWith(`skipped series ${scout.seriesUID}: 3 slices`)),
      lines.join('\n'),
    );
    assert.ok(lines.includes('training on the atlas and 2 series (1 skipped)'), lines.join('\n'));

    const card = await api.json<{
      metadata: Record<string, unknown>;
      card: Record<string, unknown>;
    }>('/api/models/blobs@1');
    assert.equal(card.status, 200);
    const meta = validateMetadata(card.body.metadata);
    assert.equal(meta.kind, 'rrl-medsam');
    assert.equal(meta.task, 'blobs');
    assert.deepEqual(
      meta.labels.map((l) => [l.value, l.name]),
      [
        [1, 'Left hippocampus'],
        [2, 'Right hippocampus'],
      ],
    );
    assert.deepEqual(meta.grid.size, [16, 16, 16]);
    const stages = card.body.card.stages as { stages: { stage: string }[] } | null;
    assert.ok(stages && stages.stages.some((s) => s.stage === 'mutual'), JSON.stringify(stages));
    assert.equal((card.body.card.parameters as { plan: string }).plan, 'tiny');
    const onnx = await api.call('/api/models/blobs@1/model.onnx');
    assert.equal(onnx.status, 200);
    assert.ok((await onnx.arrayBuffer()).byteLength > 1000);
  },
);

test('a task whose plan does not exist is refused at creation with the installed plans named', async () => {
  const { pacs, api } = env;
  const client = pacsClient(pacs);
  const atlas = await storeSeries(client, { description: 'T1 atlas 2' });
  await storeSeg(client, atlas, atlas.labels);
  const task = await createTask(api, 'No plan', 'no-such-plan', atlas);
  assert.equal(task.status, 422);
  const message = (task.body as unknown as { error: { message: string } }).error.message;
  assert.match(message, /no plan no-such-plan/);
  assert.match(message, /tiny/, 'the installed plans are named');
  assert.equal((await api.call('/api/tasks/no-plan')).status, 404, 'no task was stored');
});
