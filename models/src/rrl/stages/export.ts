/** Export: model.onnx + metadata.json (written last, atomically) and eval-model.onnx. */
import { exportRrlEvalModel, exportRrlModel } from '../export.js';
import { rrlInferenceNet } from '../networks.js';
import type { Run, StageOutcome } from './run.js';
import { type Params, atomicWrite } from './run.js';

export async function exportStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const net = rrlInferenceNet(run.args, run.grid);
  const init = net.graph.initialParams(p.seeds.init);
  const params: Params = new Map();
  for (const [k, v] of init) params.set(k, run.params.get(k) ?? v);
  const { onnx, metadata } = exportRrlModel({
    args: run.args,
    grid: run.grid,
    params,
    spacing: [...p.preprocess.spacing],
    info: { ...run.input.info, intensity: { ...p.preprocess.intensity } },
    notices: run.state.notices,
    resample: p.preprocess.resample,
  });
  run.progress('export', { step: 1, total: 3 });
  await atomicWrite(
    run.paths.evalModel,
    exportRrlEvalModel({ args: run.args, grid: run.grid, params }),
  );
  run.progress('export', { step: 2, total: 3 });
  await atomicWrite(run.paths.model, onnx);
  await atomicWrite(run.paths.metadata, `${JSON.stringify(metadata, null, 2)}\n`);
  run.progress('export', { step: 3, total: 3 });
  return { steps: 0 };
}
