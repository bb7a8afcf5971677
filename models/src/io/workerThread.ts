/**
 * Worker threads for our entry modules. The compiled entries (dist/node/*.js) start as they are;
 * from the TypeScript sources (tsx) a worker thread does not inherit the tsx loader, so a small
 * bootstrap registers it (`tsx/esm/api`) before importing the entry.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts `entry` in a worker thread. `bootError`: a message the bootstrap posts (with `message`
 * added) when the entry fails to load; without it the failure is the Worker's 'error' event.
 */
export function startWorkerThread(
  entry: URL,
  options: WorkerOptions = {},
  bootError?: Record<string, unknown>,
): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const onError = bootError
    ? `.catch((e) => { require('node:worker_threads').parentPort.postMessage({ ...${JSON.stringify(bootError)}, message: String((e && e.message) || e) }); })`
    : '';
  const bootstrap =
    `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})` +
    `.then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })${onError};`;
  return new Worker(bootstrap, { ...options, eval: true });
}
