/**
 * Runs a job's task function in a worker thread (server/src/jobs/worker.ts) and adapts it to the
 * runner's executor interface. Cancellation: the worker's signal is aborted; a task that has not
 * stopped `graceMs` later is terminated.
 */
import { Worker } from 'node:worker_threads';

import type { PacsConfig } from '../config.js';
import type { JobRecord, TaskRecord } from '../store/db.js';
import type { ExecutorProgress, JobExecutor } from './runner.js';

export interface WorkerTaskContext {
  signal: AbortSignal;
  progress(p: ExecutorProgress): void;
  log(line: string): void;
  workDir: string;
  task: TaskRecord;
  pacs: PacsConfig;
  /** Training provider setting: 'auto' | 'cpu' | 'webgpu' | 'cuda'. */
  provider: string;
}

/** A function a worker runs: exported by name from a module. */
export type WorkerTask = (job: JobRecord, ctx: WorkerTaskContext) => Promise<{ modelDir: string }>;

export interface WorkerData {
  modulePath: string;
  exportName: string;
  job: JobRecord;
  task: TaskRecord;
  workDir: string;
  pacs: PacsConfig;
  provider: string;
}

export type FromWorker =
  | { type: 'progress'; progress: ExecutorProgress }
  | { type: 'log'; line: string }
  | { type: 'done'; modelDir: string }
  | { type: 'error'; message: string; aborted: boolean };

export type ToWorker = { type: 'abort'; reason: string };

export interface WorkerExecutorOptions {
  /** Absolute path (or file: URL) of the module exporting the task. */
  modulePath: string;
  exportName: string;
  pacs: PacsConfig;
  provider: string;
  /** How long a cancelled task may take to stop before the worker is terminated (default 10 s). */
  graceMs?: number;
}

const WORKER_URL = new URL('./worker.ts', import.meta.url);

/**
 * Starts the worker entry. Run from TypeScript sources (tsx), a worker thread does not inherit
 * the tsx loader: a small bootstrap registers it (`tsx/esm/api`) before importing the entry.
 */
function startWorker(data: WorkerData): Worker {
  if (!WORKER_URL.pathname.endsWith('.ts')) return new Worker(WORKER_URL, { workerData: data });
  const bootstrap =
    `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })` +
    `.catch((e) => { require('node:worker_threads').parentPort.postMessage({ type: 'error', message: String(e && e.message || e), aborted: false }); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

export function workerExecutor(o: WorkerExecutorOptions): JobExecutor {
  return (job, ctx) =>
    new Promise((resolve, reject) => {
      const data: WorkerData = {
        modulePath: o.modulePath,
        exportName: o.exportName,
        job,
        task: ctx.task,
        workDir: ctx.workDir,
        pacs: o.pacs,
        provider: o.provider,
      };
      const worker = startWorker(data);
      let settled = false;
      let killTimer: NodeJS.Timeout | undefined;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        ctx.signal.removeEventListener('abort', onAbort);
        if (killTimer) clearTimeout(killTimer);
        f();
        // A task's leftovers (sockets, native thread pools) must not keep the worker alive.
        void worker.terminate();
      };
      const onAbort = (): void => {
        const reason = ctx.signal.reason instanceof Error ? ctx.signal.reason.message : 'aborted';
        worker.postMessage({ type: 'abort', reason } satisfies ToWorker);
        killTimer = setTimeout(() => void worker.terminate(), o.graceMs ?? 10_000);
        killTimer.unref();
      };
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'progress') ctx.progress(m.progress);
        else if (m.type === 'log') ctx.log(m.line);
        else if (m.type === 'done') settle(() => resolve({ modelDir: m.modelDir }));
        else settle(() => reject(new Error(m.message)));
      });
      worker.on('error', (e) => settle(() => reject(e)));
      worker.on('exit', (code) =>
        settle(() =>
          reject(
            new Error(
              ctx.signal.aborted
                ? 'the job was stopped'
                : `the training worker exited unexpectedly (code ${code})`,
            ),
          ),
        ),
      );
    });
}
