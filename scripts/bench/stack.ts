/**
 * For the server benchmarks (job-memory.ts, load.ts): a fresh Orthanc on free ports seeded with
 * the demo studies, the companion server in this process (loopback only), and a task on the
 * demo atlas. Everything is removed by `stop()`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { startServer, type RunningServer, type StartServerOptions } from '@rrl/server/app.js';
import type { PacsConfig } from '@rrl/server/config.js';
import { seedDemo, type SeedDemoResult } from '@rrl/server/demo/seed.js';
import { startTestOrthanc, type TestOrthanc } from '@rrl/test/helpers/orthanc.js';

export interface BenchStack {
  url: string;
  token: string;
  server: RunningServer;
  pacs: TestOrthanc;
  demo: SeedDemoResult;
  /** A JSON API call with the token; throws on a non-2xx answer. */
  api<T>(method: 'GET' | 'POST', p: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

export async function startBenchStack(opts: {
  subjects: number;
  demoDir: string;
  /** Extra server options (a job executor, say), given the PACS the stack started. */
  server?: (pacs: PacsConfig) => StartServerOptions;
  log: (m: string) => void;
}): Promise<BenchStack> {
  const pacs = await startTestOrthanc('RRL-Bench');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-bench-'));
  try {
    const demo = await seedDemo({
      dicomWebRoot: pacs.dicomWebRoot,
      username: pacs.username,
      password: pacs.password,
      outDir: opts.demoDir,
      subjects: opts.subjects,
      log: () => undefined,
    });
    opts.log(`seeded the demo atlas + ${demo.subjects.length} subjects`);
    const token = randomBytes(24).toString('base64url');
    const pacsConfig: PacsConfig = {
      dicomWebRoot: pacs.dicomWebRoot,
      username: pacs.username,
      password: pacs.password,
    };
    const server = await startServer(
      {
        host: '127.0.0.1',
        port: 0,
        apiToken: token,
        logLevel: 'warn',
        trainingProvider: 'cpu',
        dataDir: path.join(dir, 'data'),
        modelsDir: path.join(dir, 'models'),
        pacs: pacsConfig,
      },
      { env: {}, logSink: () => undefined, ...opts.server?.(pacsConfig) },
    );
    const api = async <T>(method: 'GET' | 'POST', p: string, body?: unknown): Promise<T> => {
      const res = await fetch(server.url + p, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text) as T;
    };
    return {
      url: server.url,
      token,
      server,
      pacs,
      demo,
      api,
      async stop() {
        await server.close();
        await pacs.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await pacs.stop();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Creates a task on the demo atlas and queues a training job on the demo subjects. */
export async function queueDemoJob(
  stack: BenchStack,
  plan: string,
  taskId: string,
): Promise<{ id: string }> {
  await stack
    .api('POST', '/api/tasks', {
      id: taskId,
      name: `bench ${taskId}`,
      plan,
      atlas: stack.demo.atlas,
    })
    .catch((e: Error) => {
      if (!/409/.test(e.message)) throw e;
    });
  return stack.api<{ id: string }>('POST', '/api/jobs', {
    taskId,
    series: { uids: stack.demo.subjects },
    provider: 'cpu',
  });
}

/** Polls a job until it is final; returns its record. */
export async function waitForJob(
  stack: BenchStack,
  id: string,
  timeoutMs: number,
): Promise<{ status: string; reason?: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const j = await stack.api<{ status: string; reason?: string }>('GET', `/api/jobs/${id}`);
    if (['succeeded', 'failed', 'cancelled'].includes(j.status)) return j;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${j.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
