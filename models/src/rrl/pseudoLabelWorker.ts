/**
 * Worker-thread entry of `pseudoLabelPool.ts`: computes the pseudo labels of one pair per message
 * ({ id, input } → { id, result } or { id, error }).
 */
import { parentPort } from 'node:worker_threads';
import { pseudoLabels, type PseudoLabelInput } from './pseudoLabels.js';

const port = parentPort;
if (!port) throw new Error('pseudoLabelWorker: start it as a worker thread (pseudoLabelPool.ts).');
port.on('message', (m: { id: number; input: PseudoLabelInput }) => {
  pseudoLabels(m.input).then(
    (result) => port.postMessage({ id: m.id, result }),
    (e: unknown) =>
      port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) }),
  );
});
