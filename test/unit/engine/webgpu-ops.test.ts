/**
 * The WebGPU op list (models/src/engine/export/webgpuOps.ts): every shipped plan's inference
 * graph uses listed operations only; every entry has a probe that contains it and nothing
 * unlisted (the e2e test runs the probes on WebGPU); an export with an unlisted operation fails
 * and names it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import {
  checkWebGpuOps,
  opSignatures,
  WEBGPU_OPS,
  WebGpuOpError,
} from '@rrl/models/engine/export/webgpuOps.js';
import { exportRrlModel, registrationFallbackGraph } from '@rrl/models/rrl/export.js';
import { rrlInferenceNet, rrlNetArgsFromPlan } from '@rrl/models/rrl/networks.js';
import { parsePlan, registrationArgsFromPlan } from '@rrl/models/rrl/plan.js';
import { webgpuOpProbe } from '../../fixtures/webgpu-op-probes.js';

const plansDir = new URL('../../../models/plans/', import.meta.url);
const listed = new Set(WEBGPU_OPS.map((o) => `${o.op}@${o.rank}`));

test('every shipped plan exports a graph of listed WebGPU operations only (both heads and the registration fallback)', () => {
  const plans = readdirSync(plansDir).filter((f) => f.endsWith('.json'));
  assert.ok(plans.length >= 5, plans.join(', '));
  const used = new Set<string>();
  for (const f of plans) {
    const plan = parsePlan(JSON.parse(readFileSync(new URL(f, plansDir), 'utf8')));
    const net = rrlInferenceNet(rrlNetArgsFromPlan(plan), plan.grid);
    for (const out of [net.logits, net.medicalLogits]) {
      assert.doesNotThrow(() => checkWebGpuOps(net.graph, [out]), f);
      for (const s of opSignatures(net.graph, [out])) used.add(`${s.op}@${s.rank}`);
    }
    const m = plan.grid[0] * plan.grid[1] * plan.grid[2];
    const fallback = registrationFallbackGraph(
      registrationArgsFromPlan(plan),
      plan.grid,
      plan.classes,
      new Float32Array(m),
      new Uint8Array(m),
    );
    assert.doesNotThrow(() => checkWebGpuOps(fallback.graph, [fallback.output]), f);
    for (const s of opSignatures(fallback.graph, [fallback.output])) used.add(`${s.op}@${s.rank}`);
  }
  // the list holds what the networks use (no stale entries without a reason to keep them)
  assert.deepEqual([...listed].sort(), [...used].sort());
});

test('every list entry has a probe that contains it and only listed operations', () => {
  for (const entry of WEBGPU_OPS) {
    const probe = webgpuOpProbe(entry);
    assert.ok(probe, `${entry.op}@${entry.rank} has no probe in test/fixtures/webgpu-op-probes.ts`);
    const sigs = opSignatures(probe.graph, [probe.output]).map((s) => `${s.op}@${s.rank}`);
    assert.ok(sigs.includes(`${entry.op}@${entry.rank}`), `${entry.op}: probe has ${sigs}`);
    assert.ok(
      sigs.every((s) => listed.has(s)),
      `${entry.op}: probe uses unlisted ${sigs.filter((s) => !listed.has(s))}`,
    );
  }
});

test('an unlisted operation or rank fails the export and is named', () => {
  const g = new Graph();
  const x = g.input('image', [1, 1, 4, 4, 4]);
  const [y] = g.node('Hardmax', [x], [{ dtype: 'float32', shape: [1, 1, 4, 4, 4] }], {});
  const flat = g.maxPool(g.reshape(x, [1, 1, 4, 16]), { kernel: 2, strides: 2 });
  assert.throws(
    () => checkWebGpuOps(g, [y!, flat]),
    (e: Error) =>
      e instanceof WebGpuOpError &&
      /Hardmax on rank-5 tensors/.test(e.message) &&
      /MaxPool on rank-4 tensors/.test(e.message) &&
      /webgpuOps\.ts/.test(e.message),
  );
  // the RRL export runs the check: a network of listed ops passes (exportRrlModel succeeds)
  const plan = parsePlan(JSON.parse(readFileSync(new URL('tiny.json', plansDir), 'utf8')));
  const args = rrlNetArgsFromPlan(plan);
  const net = rrlInferenceNet(args, plan.grid);
  const out = exportRrlModel({
    args,
    grid: plan.grid,
    params: net.graph.initialParams(1),
    spacing: [1, 1, 1],
    info: {
      id: 'probe@0.0.1',
      name: 'probe',
      version: '0.0.1',
      task: 'probe',
      modalities: ['MR'],
      intensity: { method: 'zscore' },
      labels: [1, 2].map((value) => ({
        value,
        name: `l${value}`,
        color: [200, 100, 140] as [number, number, number],
        category: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
        type: { value: '5976005', scheme: 'SCT', meaning: 'Hippocampus' },
      })),
      provenance: { createdAt: '2026-12-07T00:00:00Z', trainer: 'unit test' },
      changelog: [{ version: '0.0.1', date: '2026-12-07', changes: 'test' }],
    },
  });
  assert.ok(out.onnx.length > 1000);
});

test('a warp with int64 gather indices fails the check (WebGPU has no Cast to int64); int32 passes', () => {
  const build = (index: 'int64' | 'int32') => {
    const g = new Graph();
    const x = g.input('image', [1, 1, 4, 4, 4]);
    return { g, y: g.warp3d(x, g.concat([x, x, x], 1), index) };
  };
  const wide = build('int64');
  assert.throws(() => checkWebGpuOps(wide.g, [wide.y]), /Cast to int64 on rank-3 tensors/);
  const narrow = build('int32');
  assert.doesNotThrow(() => checkWebGpuOps(narrow.g, [narrow.y]));
});
