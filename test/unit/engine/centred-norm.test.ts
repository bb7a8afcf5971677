// Graph.centreInstanceNorm: each channel's mean is subtracted before InstanceNormalization (the
// graphs the browser runs), which must leave the function unchanged — checked against float64 on
// inputs whose mean is far from zero — and must add only operations of the WebGPU op list.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { buildForwardGraph } from '@rrl/models/engine/autodiff/training.js';
import { checkWebGpuOps } from '@rrl/models/engine/export/webgpuOps.js';
import { runInNode, runInWebWasm } from '@rrl/models/engine/export/parity.js';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { rrlInferenceNet, rrlNetArgsFromPlan } from '@rrl/models/rrl/networks.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';

const SHAPE = [1, 2, 6, 5, 4];
const N = 6 * 5 * 4;

function model(centre: boolean): Uint8Array {
  const g = new Graph();
  g.centreInstanceNorm = centre;
  const x = g.input('image', SHAPE);
  const y = g.instanceNorm(
    x,
    g.param('s', [2], { kind: 'ones' }),
    g.param('t', [2], { kind: 'zeros' }),
  );
  checkWebGpuOps(g, [y]);
  return buildForwardGraph({ graph: g, outputs: { y }, params: g.initialParams(1) }).model;
}

/** (x − mean) / sqrt(var + 1e-5) per channel, in float64. */
function reference(x: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let c = 0; c < 2; c++) {
    let m = 0;
    for (let i = 0; i < N; i++) m += x[c * N + i]!;
    m /= N;
    let v = 0;
    for (let i = 0; i < N; i++) v += (x[c * N + i]! - m) ** 2;
    v /= N;
    for (let i = 0; i < N; i++) out[c * N + i] = (x[c * N + i]! - m) / Math.sqrt(v + 1e-5);
  }
  return out;
}

test(
  'a centred instance norm is the same function (float64 reference, mean 40 × the spread)',
  { timeout: 60_000 },
  async (t) => {
    const x = Float32Array.from(
      { length: 2 * N },
      (_, i) => (i < N ? 20 : -8) + 0.5 * Math.sin(i * 1.37),
    );
    const want = reference(x);
    const feeds = { image: { data: x, dims: SHAPE } };
    for (const [name, run] of [
      ['onnxruntime-node', (m: Uint8Array) => runInNode(m, feeds, 'y')],
      ['onnxruntime-web wasm', (m: Uint8Array) => runInWebWasm(m, feeds, 'y')],
    ] as const) {
      const errors: number[] = [];
      for (const centre of [false, true]) {
        const got = await run(model(centre));
        let err = 0;
        for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
        t.diagnostic(
          `${name}, ${centre ? 'centred' : 'plain'}: max |error| ${err.toExponential(2)}`,
        );
        assert.ok(err < 1e-4, `${name} ${centre ? 'centred' : 'plain'}: ${err}`);
        errors.push(err);
      }
      assert.ok(errors[1]! <= errors[0]!, `${name}: centred ${errors[1]} vs plain ${errors[0]}`);
    }
  },
);

test(
  'the exported RRL network centres every instance norm; training graphs do not',
  { timeout: 60_000 },
  () => {
    const args = rrlNetArgsFromPlan(
      parsePlan({
        grid: [8, 8, 8],
        channels: [8, 16],
        convsPerLevel: [1, 1],
        decoderChannels: [4, 8],
      }),
    );
    const count = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;
    const exported = rrlInferenceNet(args, [8, 8, 8], { centreInstanceNorm: true }).graph;
    const plain = rrlInferenceNet(args, [8, 8, 8]).graph;
    const norms = count(exported, 'InstanceNormalization');
    assert.ok(norms > 0);
    assert.equal(count(exported, 'ReduceSum') - count(plain, 'ReduceSum'), norms);
    assert.equal(count(plain, 'InstanceNormalization'), norms);
  },
);
