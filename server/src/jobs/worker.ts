/**
 * Worker-thread entry: runs one job's task function (named by module path and export) off the
 * server's event loop, so that status requests and event streams stay fast while a job trains.
 * Messages to the parent: progress, log, done, error. From the parent: abort.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';

import type { WorkerData, WorkerTask, FromWorker, ToWorker } from './workerExecutor.js';

const data = workerData as WorkerData;
const port = parentPort;
if (!port) throw new Error('server/src/jobs/worker.ts must run in a worker thread');
const post = (m: FromWorker): void => port.postMessage(m);
const controller = new AbortController();
port.on('message', (m: ToWorker) => {
  if (m.type === 'abort') controller.abort(new Error(m.reason));
});

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
