/**
 * Runs a job's task function in a child process (default) or a worker thread
 * (server/src/jobs/worker.ts) and adapts it to the runner's executor interface. Cancellation: the
 * task's signal is aborted; a task that has not stopped `graceMs` later is killed.
 *
 * A child process gives all of a job's memory back to the system when it ends (a worker thread's
 * native allocations stay in the server's heap arenas: RSS grew by ~150 MB per training job) and
 * confines a native crash to the job.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { siblingEntry } from '@rrl/models/io/installRoot.js';
import { startWorkerThread } from '@rrl/models/io/workerThread.js';
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
  /** Training provider setting: one of PROVIDER_SETTINGS (models/src/engine/runtime). */
  provider: string;
  /** Imported SAM teachers (a plan's teacher id is looked up there). */
  teachersDir?: string;
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
  teachersDir?: string;
}

export type FromWorker =
  | { type: 'progress'; progress: ExecutorProgress }
  | { type: 'log'; line: string }
  | { type: 'done'; modelDir: string }
  | { type: 'error'; message: string; aborted: boolean };

export type ToWorker = { type: 'abort'; reason: string } | { type: 'start'; data: WorkerData };

export interface WorkerExecutorOptions {
  /** Absolute path (or file: URL) of the module exporting the task. */
  modulePath: string;
  exportName: string;
  pacs: PacsConfig;
  provider: string;
  teachersDir?: string;
  /** How long a cancelled task may take to stop before the worker is terminated (default 10 s). */
  graceMs?: number;
  /** Where a job runs: its own process (default) or a worker thread of the server. */
  isolation?: 'process' | 'thread';
}

/** One running job, whichever way it is isolated. */
interface JobHost {
  send(m: ToWorker): void;
  kill(): void;
  on(event: 'message', fn: (m: FromWorker) => void): void;
  on(event: 'error', fn: (e: Error) => void): void;
  on(event: 'exit', fn: (code: number | null) => void): void;
}

/** Node flags that run `entry` (a path or URL) in a child process: the tsx loader for TypeScript sources. */
export function tsLoaderArgs(entry: string): string[] {
  return entry.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
}

function startChild(data: WorkerData): JobHost {
  const child: ChildProcess = fork(WORKER_URL, [], {
    execArgv: [
      ...process.execArgv.filter((a) => a.startsWith('--max-old-space-size')),
      ...tsLoaderArgs(WORKER_URL.pathname),
    ],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.send({ type: 'start', data } satisfies ToWorker);
  return {
    send: (m) => {
      if (child.connected) child.send(m);
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    on: (event: string, fn: (...a: never[]) => void) => {
      child.on(event, fn as (...a: unknown[]) => void);
    },
  } as JobHost;
}

function startThread(data: WorkerData): JobHost {
  const worker = startWorker(data);
  return {
    send: (m) => worker.postMessage(m),
    kill: () => void worker.terminate(),
    on: (event: string, fn: (...a: never[]) => void) => {
      worker.on(event, fn as (...a: unknown[]) => void);
    },
  } as JobHost;
}

// Sources: server/src/jobs/worker.ts; compiled: dist/node/worker.js beside this bundle's chunk.
const WORKER_URL = siblingEntry('worker', import.meta.url);

function startWorker(data: WorkerData): Worker {
  return startWorkerThread(WORKER_URL, { workerData: data }, { type: 'error', aborted: false });
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
        ...(o.teachersDir !== undefined ? { teachersDir: o.teachersDir } : {}),
      };
      const worker =
        (o.isolation ?? 'process') === 'process' ? startChild(data) : startThread(data);
      let settled = false;
      let killTimer: NodeJS.Timeout | undefined;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        ctx.signal.removeEventListener('abort', onAbort);
        if (killTimer) clearTimeout(killTimer);
        f();
        // A task's leftovers (sockets, native thread pools) must not keep the worker alive.
        worker.kill();
      };
      const onAbort = (): void => {
        const reason = ctx.signal.reason instanceof Error ? ctx.signal.reason.message : 'aborted';
        worker.send({ type: 'abort', reason } satisfies ToWorker);
        killTimer = setTimeout(() => worker.kill(), o.graceMs ?? 10_000);
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
      worker.on('exit', (code: number | null) =>
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

/** The real training job (trainTask.ts `pacsTrainingTask`), run by `workerExecutor`. */
export function trainingExecutor(
  o: Omit<WorkerExecutorOptions, 'modulePath' | 'exportName'>,
): JobExecutor {
  return workerExecutor({
    ...o,
    modulePath: fileURLToPath(siblingEntry('trainTask', import.meta.url)),
    exportName: 'pacsTrainingTask',
  });
}
