/**
 * Parameter counts and CPU forward time of the RRL inference network (default plan widths):
 * `node --import tsx models/src/rrl/bench.ts [D H W]` (default 64 64 64); environment
 * `RRL_CHANNELS=16,32,64,128` sets the encoder channels (decoder = half of them).
 */
import * as ort from 'onnxruntime-node';
import { buildForwardGraph } from '../engine/autodiff/training.js';
import { parsePlan } from './plan.js';
import { countParams, rrlInferenceNet, rrlNetArgsFromPlan } from './networks.js';

const dims = process.argv.slice(2).map(Number);
const grid: [number, number, number] =
  dims.length === 3 && dims.every((d) => Number.isInteger(d) && d > 0)
    ? [dims[0]!, dims[1]!, dims[2]!]
    : [64, 64, 64];
const channels = process.env.RRL_CHANNELS?.split(',').map(Number);
const args = rrlNetArgsFromPlan(
  parsePlan(channels ? { channels, grid: [grid[0], grid[1], grid[2]] } : { grid: [...grid] }),
);
const net = rrlInferenceNet(args, grid);
for (const p of ['eg.', 'eg_head.', 'em.', 'em_head.', 'ap.', ''])
  console.log(`params ${p || 'total'} ${countParams(net.graph, p)}`);
const { model } = buildForwardGraph({
  graph: net.graph,
  outputs: { logits: net.logits },
  params: net.graph.initialParams(1),
});
console.log(`model bytes ${model.length}`);
const s = await ort.InferenceSession.create(model, {
  executionProviders: ['cpu'],
  intraOpNumThreads: 2,
});
const n = grid[0] * grid[1] * grid[2];
const x = new ort.Tensor(
  'float32',
  new Float32Array(n).map((_, i) => Math.sin(i)),
  [1, 1, ...grid],
);
for (let i = 0; i < 3; i++) {
  const c = process.cpuUsage();
  const t = performance.now();
  await s.run({ image: x });
  const u = process.cpuUsage(c);
  console.log(
    `forward [${grid.join('x')}] wall ${(performance.now() - t).toFixed(0)} ms, CPU ${((u.user + u.system) / 1000).toFixed(0)} ms`,
  );
}
await s.release();
