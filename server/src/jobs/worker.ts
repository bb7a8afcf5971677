/**
 * Job entry: runs one job's task function (named by module path and export) off the server's
 * event loop, so that status requests and event streams stay fast while a job trains.
 *
 * It runs in a child process (the default: when the job ends, all of its memory — ORT arenas,
 * tensors, caches — goes back to the system, and a native crash takes down the job, not the
 * server) or in a worker thread. Messages to the parent: progress, log, done, error. From the
 * parent: start (process mode: the job's data) and abort.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';

import type { WorkerData, WorkerTask, FromWorker, ToWorker } from './workerExecutor.js';

const port = parentPort;
const post = (m: FromWorker): void => {
  if (port) port.postMessage(m);
  else process.send?.(m);
};
const controller = new AbortController();

async function run(data: WorkerData): Promise<void> {
  try {
    const url = data.modulePath.startsWith('file:')
      ? data.modulePath
      : pathToFileURL(data.modulePath).href;
    const mod = (await import(url)) as Record<string, unknown>;
    const fn = mod[data.exportName];
    if (typeof fn !== 'function') {
      throw new Error(`${data.modulePath} has no exported function ${data.exportName}`);
    }
    const result = await (fn as WorkerTask)(data.job, {
      signal: controller.signal,
      workDir: data.workDir,
      task: data.task,
      pacs: data.pacs,
      provider: data.provider,
      ...(data.teachersDir !== undefined ? { teachersDir: data.teachersDir } : {}),
      progress: (p) => post({ type: 'progress', progress: p }),
      log: (line) => post({ type: 'log', line }),
    });
    post({ type: 'done', modelDir: result.modelDir });
  } catch (e) {
    post({
      type: 'error',
      message: e instanceof Error ? e.message : String(e),
      aborted: controller.signal.aborted,
    });
  }
}

if (port) {
  port.on('message', (m: ToWorker) => {
    if (m.type === 'abort') controller.abort(new Error(m.reason));
  });
  await run(workerData as WorkerData);
} else if (process.send) {
  process.on('message', (m: ToWorker) => {
    if (m.type === 'abort') controller.abort(new Error(m.reason));
    else if (m.type === 'start') {
      void run(m.data).then(() => {
        // Let the last messages reach the parent, then leave (open handles must not keep us).
        process.disconnect?.();
        setTimeout(() => process.exit(0), 200).unref();
      });
    }
  });
  // The parent went away: nothing to report to any more.
  process.on('disconnect', () => controller.abort(new Error('the server stopped')));
} else {
  throw new Error('server/src/jobs/worker.ts runs in a worker thread or a forked child process');
}
