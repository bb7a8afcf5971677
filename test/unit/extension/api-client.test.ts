// The panel's REST API client against a scripted fetch: token from /api/session (cached, fetched
// again on a 401), bearer header, JSON bodies, user-facing errors, the series query string.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ApiClient,
  ApiError,
  describeHttpError,
  seriesQueryString,
} from '@rrl/extension/api/client.js';

interface Call {
  url: string;
  method: string;
  auth?: string;
  body?: string;
}

/** A fetch that answers from `routes` (by "METHOD path") and records every call. */
function scriptedFetch(routes: Record<string, (call: Call, n: number) => Response>): {
  fetchFn: typeof fetch;
  calls: Call[];
} {
  const calls: Call[] = [];
  const counts = new Map<string, number>();
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const call: Call = {
      url,
      method: init?.method ?? 'GET',
      auth: headers.authorization,
      body: typeof init?.body === 'string' ? init.body : undefined,
    };
    calls.push(call);
    const key = `${call.method} ${new URL(url, 'http://x').pathname}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    const h = routes[key];
    if (!h) return new Response('{"error":{"status":404,"message":"no route"}}', { status: 404 });
    return h(call, n);
  }) as typeof fetch;
  return { fetchFn, calls };
}

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });

test('the token comes from /api/session once and is sent as a bearer token', async () => {
  const { fetchFn, calls } = scriptedFetch({
    'GET /api/session': () => json({ token: 'tok-1-abcdefghijklmnop', tokenType: 'Bearer' }),
    'GET /api/tasks': () => json({ tasks: [{ id: 't1' }] }),
    'GET /api/plans': () => json({ plans: [{ name: 'tiny', classes: 3, grid: [16, 16, 16] }] }),
  });
  const api = new ApiClient({ baseUrl: 'http://srv/', fetchFn });
  const [tasks, plans] = await Promise.all([api.tasks(), api.plans()]);
  assert.equal(tasks[0].id, 't1');
  assert.equal(plans[0].name, 'tiny');
  assert.equal(calls.filter((c) => c.url === 'http://srv/api/session').length, 1);
  for (const c of calls.filter((c) => c.url !== 'http://srv/api/session')) {
    assert.equal(c.auth, 'Bearer tok-1-abcdefghijklmnop');
  }
});

test('a 401 fetches a new token and retries once', async () => {
  const { fetchFn, calls } = scriptedFetch({
    'GET /api/session': (_c, n) => json({ token: `token-${n}-abcdefghijklmnop` }),
    'GET /api/jobs': (c) =>
      c.auth === 'Bearer token-2-abcdefghijklmnop'
        ? json({ jobs: [{ id: 'j1', status: 'running' }] })
        : json({ error: { status: 401, message: 'bad token' } }, 401),
  });
  const api = new ApiClient({ fetchFn });
  const jobs = await api.jobs('task-a');
  assert.equal(jobs[0].id, 'j1');
  assert.equal(calls.filter((c) => c.url.startsWith('/api/session')).length, 2);
  assert.equal(calls.find((c) => c.url.startsWith('/api/jobs'))?.url, '/api/jobs?task=task-a');
});

test('a second 401 becomes an error that says to reload the viewer', async () => {
  const { fetchFn } = scriptedFetch({
    'GET /api/session': () => json({ token: 'some-token-abcdefghijklmnop' }),
    'GET /api/tasks': () => json({ error: { status: 401, message: 'bad token' } }, 401),
  });
  const api = new ApiClient({ fetchFn });
  await assert.rejects(api.tasks(), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 401);
    assert.match(e.message, /Reload the viewer/);
    return true;
  });
});

test('422 reasons from the server reach the user; the body is sent as JSON', async () => {
  const { fetchFn, calls } = scriptedFetch({
    'GET /api/session': () => json({ token: 'some-token-abcdefghijklmnop' }),
    'POST /api/tasks': () =>
      json(
        { error: { status: 422, message: 'Study 1.2.3 has no SEG referencing series 1.2.3.4.' } },
        422,
      ),
  });
  const api = new ApiClient({ fetchFn });
  await assert.rejects(
    api.createTask({ name: 'A', plan: 'tiny', atlas: { studyUID: '1.2.3', seriesUID: '1.2.3.4' } }),
    /Creating the task: the server cannot use this input \(422\)\. The server said: Study 1\.2\.3 has no SEG/,
  );
  const post = calls.find((c) => c.method === 'POST');
  assert.deepEqual(JSON.parse(post?.body ?? ''), {
    name: 'A',
    plan: 'tiny',
    atlas: { studyUID: '1.2.3', seriesUID: '1.2.3.4' },
  });
});

test('a server that cannot be reached gives a message that says so', async () => {
  const fetchFn = (async () => {
    throw new TypeError('fetch failed');
  }) as typeof fetch;
  const api = new ApiClient({ fetchFn });
  await assert.rejects(api.tasks(), /cannot be reached \(fetch failed\)\. Is it running\?/);
  // The failed session is not cached: a later call asks again.
  let asked = 0;
  const api2 = new ApiClient({
    fetchFn: (async (input: RequestInfo | URL) => {
      if (String(input).endsWith('/api/session')) {
        asked++;
        if (asked === 1) throw new TypeError('fetch failed');
        return json({ token: 'some-token-abcdefghijklmnop' });
      }
      return json({ tasks: [] });
    }) as typeof fetch,
  });
  await assert.rejects(api2.tasks());
  assert.deepEqual(await api2.tasks(), []);
  assert.equal(asked, 2);
});

test('startJob sends the chosen series; the query string drops empty fields', async () => {
  const { fetchFn, calls } = scriptedFetch({
    'GET /api/session': () => json({ token: 'some-token-abcdefghijklmnop' }),
    'POST /api/jobs': () => json({ id: 'j2', status: 'queued' }, 201),
  });
  const api = new ApiClient({ fetchFn });
  const job = await api.startJob('t1', [{ studyUID: '1.2', seriesUID: '1.2.3' }]);
  assert.equal(job.id, 'j2');
  assert.deepEqual(JSON.parse(calls[1].body ?? ''), {
    taskId: 't1',
    series: { uids: [{ studyUID: '1.2', seriesUID: '1.2.3' }] },
  });
  assert.equal(
    seriesQueryString({ modality: 'MR', description: '  ', from: '2025-01-01' }, 50),
    'modality=MR&from=2025-01-01&limit=50',
  );
  assert.match(describeHttpError(503, 'Listing the tasks'), /server failed \(HTTP 503\)/);
});

test('the model card summary reads the plan, the stages and the notices defensively', async () => {
  const { cardInfo } = await import('@rrl/extension/panels/ModelsSection.js');
  assert.deepEqual(cardInfo(undefined), {
    grid: undefined,
    channels: undefined,
    stages: [],
    notices: [],
  });
  const info = cardInfo({
    id: 'demo@1',
    // metadata's notes: the trainer's own note, then the training's notices joined
    metadata: {
      provenance: {
        createdAt: 'x',
        notes: 'Our note. stage 1 skipped: no teacher trained on 2 series',
      },
    },
    card: {
      parameters: { plan: 'demo-tiny', planJson: { grid: [24, 24, 24], channels: [4, 8, 16] } },
      stages: {
        stages: [
          { stage: 'registration', steps: 10, seconds: 4.56, lastLoss: -0.7512 },
          { stage: 'distill-sam', steps: 0, seconds: 0, skipped: 'no teacher' },
        ],
        notices: ['stage 1 skipped: no teacher', 'trained on 2 series'],
      },
    },
  });
  assert.deepEqual(info, {
    grid: '24×24×24',
    channels: '4-8-16',
    stages: ['registration: 10 steps 4.6 s, loss -0.751', 'distill-sam: skipped'],
    // each notice once; of the notes only what no notice says
    notices: ['Our note.', 'stage 1 skipped: no teacher', 'trained on 2 series'],
  });
  // Unexpected shapes are ignored, not shown as [object Object].
  const odd = cardInfo({
    id: 'x',
    metadata: { provenance: 5 },
    card: { parameters: { planJson: { grid: 'big' } }, stages: { stages: 'none' } },
  });
  assert.deepEqual(odd, { grid: undefined, channels: undefined, stages: [], notices: [] });
});
