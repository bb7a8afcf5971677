/** Main-thread side of the inference worker: start, await the result, cancel (terminate). */
import type {
  ExecutionProvider,
  InferenceProgress,
  InferenceRequest,
  InferenceResult,
} from './protocol.js';
import { isInferenceReply } from './protocol.js';

export class InferenceCancelled extends Error {
  constructor() {
    super('Segmentation was cancelled.');
    this.name = 'InferenceCancelled';
  }
}

export interface RunningInference {
  result: Promise<InferenceResult>;
  cancel(): void;
}

let nextId = 1;

/** URL of the worker bundle beside the extension's index.js. */
export function defaultWorkerUrl(extensionBaseUrl: string): string {
  return new URL('inference-worker.js', extensionBaseUrl).href;
}

/** One worker, kept between runs (it caches the last model's session); replaced after a cancel or crash. */
let shared: { url: string; worker: Worker } | undefined;

function getWorker(workerUrl: string): Worker {
  if (shared && shared.url !== workerUrl) disposeWorker();
  if (!shared) {
    shared = {
      url: workerUrl,
      worker: new Worker(workerUrl, { type: 'module', name: 'oneshot-inference' }),
    };
  }
  return shared.worker;
}

/** Terminates the inference worker (cancel; leaving the mode). */
export function disposeWorker(): void {
  shared?.worker.terminate();
  shared = undefined;
}

export function startInference(
  workerUrl: string,
  args: Omit<InferenceRequest, 'type' | 'requestId'>,
  onProgress: (p: InferenceProgress) => void,
): RunningInference {
  const requestId = nextId++;
  const worker = getWorker(workerUrl);
  let settle: { reject(e: unknown): void } | undefined;
  const result = new Promise<InferenceResult>((resolve, reject) => {
    settle = { reject };
    worker.onmessage = (e: MessageEvent<unknown>) => {
      const msg = e.data;
      if (!isInferenceReply(msg) || msg.requestId !== requestId) return;
      if (msg.type === 'progress') onProgress(msg);
      else if (msg.type === 'result') {
        resolve(msg);
      } else {
        // A failed session may leave the worker in a bad state: start a fresh one next time.
        disposeWorker();
        reject(new Error(msg.message));
      }
    };
    worker.onerror = (e: ErrorEvent) => {
      disposeWorker();
      reject(
        new Error(
          `The inference worker failed to start or crashed (${e.message || 'no detail'}). Check that ${workerUrl} is served, then reload the viewer.`,
        ),
      );
    };
  });
  const request: InferenceRequest = { ...args, type: 'run', requestId };
  worker.postMessage(request, [request.input.buffer]);
  return {
    result,
    cancel() {
      if (shared?.worker === worker) disposeWorker();
      settle?.reject(new InferenceCancelled());
    },
  };
}

export type { ExecutionProvider };
