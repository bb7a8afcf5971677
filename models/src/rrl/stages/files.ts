/**
 * A pipeline run's folder: its paths, atomic writes, the parameter store's files, the input
 * checks and the loss summary read back from the training log.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../../engine/runtime/checkpoint.js';
import type { Params, PipelineInput } from './types.js';

export function safeId(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}

export interface PipelinePaths {
  plan: string;
  state: string;
  log: string;
  checkpoints: string;
  pseudoLabels: string;
  /** Atlas → volume displacements (plans with sampling.synthetic), `<id>.f32` [3, D, H, W]. */
  fields: string;
  registration: string;
  teacherFeatures: string;
  model: string;
  metadata: string;
  evalModel: string;
  /** `--profile`: one summary per training stage, `<stage>.json`. */
  profile: string;
}

export function pipelinePaths(outDir: string): PipelinePaths {
  return {
    plan: join(outDir, 'plan.json'),
    state: join(outDir, 'state.json'),
    log: join(outDir, 'training-log.jsonl'),
    checkpoints: join(outDir, 'checkpoints'),
    pseudoLabels: join(outDir, 'pseudo-labels'),
    fields: join(outDir, 'fields'),
    registration: join(outDir, 'registration'),
    teacherFeatures: join(outDir, 'teacher-features'),
    model: join(outDir, 'model.onnx'),
    metadata: join(outDir, 'metadata.json'),
    evalModel: join(outDir, 'eval-model.onnx'),
    profile: join(outDir, 'profile'),
  };
}

export async function atomicWrite(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

export async function saveParams(
  file: string,
  params: ReadonlyMap<string, Float32Array>,
): Promise<void> {
  await writeCheckpoint(
    file,
    { step: 0, seed: 0, rng: [1, 2, 3, 4], specHash: 'params', provider: 'none' },
    [...params].map(([name, data]) => ({
      name,
      kind: 'param' as const,
      tensor: { data, dims: [data.length] },
    })),
  );
}

export async function loadParams(file: string): Promise<Params> {
  const c = await readCheckpoint(file);
  const out: Params = new Map();
  for (const e of c.header.tensors)
    if (e.kind === 'param') out.set(e.name, c.tensors.get(e.name)!.data);
  return out;
}

export function checkInput(i: PipelineInput): number {
  const [D, H, W] = i.plan.grid;
  const m = D * H * W;
  const fix = 'resample it to the plan grid (prepareModelInput with planModelGrid(plan))';
  if (i.atlas.image.length !== m) {
    throw new Error(
      `runPipeline: the atlas image has ${i.atlas.image.length} voxels, expected ${m} for the plan grid [${i.plan.grid.join(', ')}]; ${fix}.`,
    );
  }
  if (i.atlas.labels.length !== m) {
    throw new Error(
      `runPipeline: the atlas labels have ${i.atlas.labels.length} voxels, expected ${m} for the plan grid [${i.plan.grid.join(', ')}]; resample them with labelsToModelGrid.`,
    );
  }
  let fg = 0;
  for (let k = 0; k < m; k++) {
    const l = i.atlas.labels[k]!;
    if (l >= i.plan.classes) {
      throw new Error(
        `runPipeline: atlas label ${l} at voxel ${k} is not a class index 0..${i.plan.classes - 1} (plan.classes = ${i.plan.classes}); map the label values to class indices or raise plan.classes.`,
      );
    }
    if (l > 0) fg++;
  }
  if (fg === 0) {
    throw new Error(
      'runPipeline: the atlas label volume is empty on the plan grid (no foreground voxel); check the label file and the grid.',
    );
  }
  if (i.unlabeled.length === 0) {
    throw new Error(
      'runPipeline: no unlabelled volumes were given; the registration stage needs at least one target to make pseudo labels for.',
    );
  }
  const ids = new Set<string>();
  for (const u of i.unlabeled) {
    if (u.image.length !== m) {
      throw new Error(
        `runPipeline: unlabelled volume ${u.id} has ${u.image.length} voxels, expected ${m} for the plan grid [${i.plan.grid.join(', ')}]; ${fix}.`,
      );
    }
    const key = safeId(u.id);
    if (ids.has(key)) throw new Error(`runPipeline: two unlabelled volumes share the id ${u.id}.`);
    ids.add(key);
  }
  return m;
}

/** Summary of the losses logged for `stage` (first and last step) in training-log.jsonl. */
export async function lossSummary(
  logFile: string,
  stage: string,
): Promise<{ firstLoss?: number; lastLoss?: number }> {
  if (!existsSync(logFile)) return {};
  const byStep = new Map<number, number>();
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as { stage?: string; step?: number; loss?: number };
      if (r.stage === stage && typeof r.step === 'number' && typeof r.loss === 'number') {
        byStep.set(r.step, r.loss);
      }
    } catch {
      // a line cut by a crash: ignore it
    }
  }
  if (byStep.size === 0) return {};
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  return { firstLoss: byStep.get(steps[0]!), lastLoss: byStep.get(steps[steps.length - 1]!) };
}
