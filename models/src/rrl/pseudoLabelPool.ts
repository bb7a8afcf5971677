/**
 * Pseudo labels of many pairs at once: one worker thread per core, each computing a pair's
 * labels (registration network, instance refinement, label warp; single-threaded ORT sessions,
 * `PSEUDO_LABEL_THREADS`). The results are those of `pseudoLabels` in-process, reported in the
 * order the pairs finish.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { siblingEntry } from '../io/installRoot.js';
import { startWorkerThread } from '../io/workerThread.js';
import { pseudoLabels, type PseudoLabelInput, type PseudoLabelResult } from './pseudoLabels.js';

const WORKER_URL = siblingEntry('pseudoLabelWorker', import.meta.url);

/** Worker threads for `count` pairs: one per core, at most one per pair. */
export function poolSize(count: number): number {
  return Math.max(1, Math.min(availableParallelism(), count));
}

type Reply = { id: number; result: PseudoLabelResult } | { id: number; error: string };

/** One worker thread that runs one pair at a time. */
class PairWorker {
  private readonly worker: Worker;
  private pending:
    { resolve: (r: PseudoLabelResult) => void; reject: (e: Error) => void } | undefined;
  private nextId = 0;
  private dead: Error | undefined;

  constructor() {
    this.worker = startWorkerThread(WORKER_URL);
    this.worker.on('message', (m: Reply) => {
      const p = this.pending;
      this.pending = undefined;
      if ('error' in m) p?.reject(new Error(m.error));
      else p?.resolve(m.result);
    });
    const fail = (e: Error): void => {
      this.dead = e;
      this.pending?.reject(e);
      this.pending = undefined;
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      if (!this.dead) fail(new Error(`the pseudo-label worker thread exited (code ${code})`));
    });
  }

  run(input: PseudoLabelInput): Promise<PseudoLabelResult> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage({ id: this.nextId++, input });
    });
  }

  async close(): Promise<void> {
    this.dead ??= new Error('closed');
    await this.worker.terminate();
  }
}

/**
 * Computes the pseudo labels of the pairs `todo` (indices; `inputFor` builds each pair's input)
 * with `workers` threads (1: in this thread), calling `onResult` as each pair finishes. Stops
 * handing out pairs when `signal` aborts or a pair fails; the pairs under way finish and are
 * reported first. Returns the pairs that were not done (empty when all were); a failure is
 * thrown after the others have finished.
 */
export async function pseudoLabelsParallel(
  todo: readonly number[],
  inputFor: (k: number) => PseudoLabelInput,
  onResult: (k: number, r: PseudoLabelResult) => Promise<void>,
  o: { workers?: number; signal?: AbortSignal } = {},
): Promise<number[]> {
  const size = Math.min(o.workers ?? poolSize(todo.length), todo.length);
  let next = 0;
  let failure: unknown;
  const drain = async (run: (input: PseudoLabelInput) => Promise<PseudoLabelResult>) => {
    while (next < todo.length && !o.signal?.aborted && failure === undefined) {
      const k = todo[next++]!;
      try {
        await onResult(k, await run(inputFor(k)));
      } catch (e) {
        failure ??= e;
      }
    }
  };
  if (size <= 1) {
    await drain(pseudoLabels);
  } else {
    const workers = Array.from({ length: size }, () => new PairWorker());
    try {
      await Promise.all(workers.map((w) => drain((input) => w.run(input))));
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  }
  if (failure !== undefined) throw failure;
  return todo.slice(next);
}
