/** Parameter counts and CPU forward time of the RRL inference network at 64³: `node --import tsx models/src/rrl/bench.ts`. */
import * as ort from 'onnxruntime-node';
import { buildForwardGraph } from '../engine/autodiff/training.js';
import { defaultPlan } from './plan.js';
import { countParams, rrlInferenceNet, rrlNetArgsFromPlan } from './networks.js';
const args = rrlNetArgsFromPlan(defaultPlan());
const net = rrlInferenceNet(args, [64, 64, 64]);
for (const p of ['eg.', 'eg_head.', 'em.', 'em_head.', 'ap.', ''])
  console.log(p || 'total', countParams(net.graph, p));
const { model } = buildForwardGraph({
  graph: net.graph,
  outputs: { logits: net.logits },
  params: net.graph.initialParams(1),
});
console.log('model bytes', model.length);
const s = await ort.InferenceSession.create(model, {
  executionProviders: ['cpu'],
  intraOpNumThreads: 2,
});
const x = new ort.Tensor(
  'float32',
  new Float32Array(64 ** 3).map(() => Math.random()),
  [1, 1, 64, 64, 64],
);
for (let i = 0; i < 3; i++) {
  const c = process.cpuUsage();
  const t = Date.now();
  await s.run({ image: x });
  const u = process.cpuUsage(c);
  console.log('forward 64^3 wall ms', Date.now() - t, 'cpu ms', (u.user + u.system) / 1000);
}
