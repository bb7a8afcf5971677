/** Helpers for the API tests: a server with the smoothing job executor, calls, SSE, waiting. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadPlanOrThrow } from '@rrl/server/jobs/plans.js';
import { startServer, type RunningServer } from '@rrl/server/app.js';
import { workerExecutor } from '@rrl/server/jobs/workerExecutor.js';
import { REPO_ROOT } from '@rrl/server/config.js';
import type { JobRecord, TaskRecord } from '@rrl/server/store/db.js';
import { startTestOrthanc, type TestOrthanc } from '../../helpers/orthanc.js';
import { buildNode } from '../../helpers/product.js';

export const TOKEN = 'test-token-0123456789abcdef';
export const SMOOTHING_TASK = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'smoothingTask.ts',
);

export interface ApiServer {
  server: RunningServer;
  url: string;
  logs: Record<string, unknown>[];
  call(p: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  json<T = Record<string, unknown>>(
    p: string,
    init?: RequestInit & { json?: unknown },
  ): Promise<{ status: number; body: T }>;
}

export async function tmpDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-api-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The compiled server as production runs it (`node dist/node/server.js`, real training in its
 * compiled worker), configured through the environment; its JSON log lines go to `logs`.
 */
async function startCompiledServer(
  pacs: TestOrthanc,
  dir: string,
  logs: Record<string, unknown>[],
): Promise<RunningServer> {
  buildNode();
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'dist', 'node', 'server.js'), '--port', '0'],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        RRL_PACS_URL: pacs.dicomWebRoot,
        RRL_PACS_USERNAME: pacs.username,
        RRL_PACS_PASSWORD: pacs.password,
        RRL_MODELS_DIR: path.join(dir, 'models'),
        RRL_DATA_DIR: path.join(dir, 'data'),
        RRL_API_TOKEN: TOKEN,
        RRL_TRAINING_PROVIDER: 'cpu',
      },
    },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    for (const line of c.toString('utf8').split('\n').filter(Boolean)) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        out += line + '\n';
      }
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const m = /open (http:\/\/\S+?)\/?\s/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    void exited.then(() => reject(new Error(`dist/node/server.js exited:\n${out}`)));
  });
  return {
    url,
    port: Number(new URL(url).port),
    config: undefined as never,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function startApiServer(
  pacs: TestOrthanc,
  dir: string,
  opts: { apiToken?: string | null; realTraining?: boolean; compiled?: boolean } = {},
): Promise<ApiServer> {
  const pacsCfg = {
    dicomWebRoot: pacs.dicomWebRoot,
    username: pacs.username,
    password: pacs.password,
  };
  const logs: Record<string, unknown>[] = [];
  const server = opts.compiled
    ? await startCompiledServer(pacs, dir, logs)
    : await startServer(
        {
          host: '127.0.0.1',
          port: 0,
          modelsDir: path.join(dir, 'models'),
          dataDir: path.join(dir, 'data'),
          pacs: pacsCfg,
          ...(opts.apiToken === null ? {} : { apiToken: opts.apiToken ?? TOKEN }),
          trainingProvider: 'cpu',
        },
        {
          env: {},
          logSink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>),
          ...(opts.realTraining
            ? {}
            : {
                jobExecutor: workerExecutor({
                  modulePath: SMOOTHING_TASK,
                  exportName: 'smoothingTask',
                  pacs: pacsCfg,
                  provider: 'cpu',
                }),
                // The smoothing executor's "plans" are `smoothing-<iterations>`, besides the real ones.
                checkPlan: async (name: string) =>
                  /^smoothing-\d+$/.test(name) ? {} : loadPlanOrThrow(name),
              }),
          sseHeartbeatMs: 100,
        },
      );
  const call = (p: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    if (!headers.has('Authorization')) headers.set('Authorization', `Bearer ${TOKEN}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('Content-Type', 'application/json');
      body = JSON.stringify(init.json);
    }
    return fetch(server.url + p, { ...init, headers, body });
  };
  return {
    server,
    url: server.url,
    logs,
    call,
    async json<T>(p: string, init?: RequestInit & { json?: unknown }) {
      const r = await call(p, init);
      return { status: r.status, body: (await r.json()) as T };
    },
  };
}

/** A test Orthanc, a temporary folder and the API server on both, for one test file. */
export interface ApiTestEnv {
  pacs: TestOrthanc;
  dir: string;
  api: ApiServer;
  /** Stops the server and Orthanc and removes the folder. */
  stop(): Promise<void>;
}

export async function startApiTestEnv(
  opts: Parameters<typeof startApiServer>[2] = {},
): Promise<ApiTestEnv> {
  const pacs = await startTestOrthanc();
  const dir = await tmpDir();
  let api: ApiServer | undefined;
  const stop = async (): Promise<void> => {
    await api?.server.close();
    await pacs.stop();
    await dir.remove();
  };
  try {
    api = await startApiServer(pacs, dir.dir, opts);
  } catch (e) {
    await stop();
    throw e;
  }
  return { pacs, dir: dir.dir, api, stop };
}

/** POST /api/tasks: a task on `plan` from an atlas series whose SEG is in the PACS. */
export function createTask(
  api: ApiServer,
  name: string,
  plan: string,
  atlas: { studyUID: string; seriesUID: string },
): Promise<{ status: number; body: TaskRecord }> {
  return api.json<TaskRecord>('/api/tasks', {
    method: 'POST',
    json: { name, plan, atlas: { studyUID: atlas.studyUID, seriesUID: atlas.seriesUID } },
  });
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/**
 * Reads a job's event stream until `until` returns true for an event (or the stream ends);
 * returns the events and the number of heartbeat comments seen.
 */
export async function readEvents(
  api: ApiServer,
  jobId: string,
  until: (e: SseEvent, all: SseEvent[]) => boolean,
  auth: 'header' | 'query' = 'header',
): Promise<{ events: SseEvent[]; heartbeats: number; contentType: string | null }> {
  const controller = new AbortController();
  const p = `/api/jobs/${jobId}/events${auth === 'query' ? `?access_token=${TOKEN}` : ''}`;
  const res = await fetch(api.url + p, {
    headers: auth === 'header' ? { Authorization: `Bearer ${TOKEN}` } : {},
    signal: controller.signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`events: HTTP ${res.status}`);
  const events: SseEvent[] = [];
  let heartbeats = 0;
  let buf = '';
  const decoder = new TextDecoder();
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let k: number;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (block.startsWith(':')) {
          heartbeats++;
          if (until({ event: ':heartbeat', data: heartbeats }, events)) {
            return { events, heartbeats, contentType: res.headers.get('content-type') };
          }
          continue;
        }
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (!data) continue;
        const e = { event, data: JSON.parse(data) as unknown };
        events.push(e);
        if (until(e, events))
          return { events, heartbeats, contentType: res.headers.get('content-type') };
      }
    }
  } finally {
    controller.abort();
  }
  return { events, heartbeats, contentType: res.headers.get('content-type') };
}

/** Polls a job until `pred` holds (60 s at most: a deadline, not an expected duration). */
export async function waitForJob(
  api: ApiServer,
  id: string,
  pred: (j: JobRecord) => boolean,
  what: string,
  deadlineMs = 60_000,
): Promise<JobRecord> {
  const deadline = Date.now() + deadlineMs;
  let last: JobRecord | undefined;
  while (Date.now() < deadline) {
    const { body } = await api.json<JobRecord>(`/api/jobs/${id}`);
    last = body;
    if (pred(body)) return body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${id} never reached: ${what}; last ${JSON.stringify(last)}`);
}
