/**
 * The pseudo labels of a run's unlabelled volumes: their files per round (registration, joint
 * refinement, self-training), loading and switching rounds, and the network's predictions that
 * the refinement rounds fuse with the registration.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildForwardGraph } from '../../engine/autodiff/training.js';
import { rrlInferenceNet } from '../networks.js';
import { multiAtlasNeighbours } from '../plan.js';
import { relabelRoundSteps } from './distill-task.js';
import { safeId } from './files.js';
import type { Params, StageName } from './types.js';
import type { Run } from './run.js';

/**
 * A pseudo-label round: 0 (registration), 'registration-multi-atlas' (those fused with their
 * neighbours', `multiAtlas.stages` with `registration`), 1 (joint refinement, fused), 'relabel'
 * (the joint stage's relabelling by held-out students, `crossFit.relabelSteps`), 'multi-atlas'
 * (the joint stage's last labels fused with their neighbours', `multiAtlas`) or 2
 * (self-training, fused with the model). 'joint-registration' is not a round the training uses:
 * the joint stage's registration alone, before the fusion, kept for
 * `crossFit.ignoreDisagreement`.
 */
export type PseudoRound =
  0 | 'registration-multi-atlas' | 1 | 'relabel' | 'multi-atlas' | 2 | 'joint-registration';

const ROUND_SUFFIX: Record<PseudoRound, string> = {
  0: '',
  'registration-multi-atlas': '.r0-multi-atlas',
  1: '.r1',
  relabel: '.r1-relabel',
  'multi-atlas': '.r1-multi-atlas',
  2: '.r2',
  'joint-registration': '.r1-registration',
};

/** Pseudo-label file of one volume in a round. */
export function pseudoFile(run: Run, id: string, round: PseudoRound): string {
  return join(run.paths.pseudoLabels, `${safeId(id)}${ROUND_SUFFIX[round]}.u8`);
}

/**
 * Loads the pseudo labels in use into `run.pseudo`: those of `round`, or by default the last
 * round of the stages recorded done.
 */
export async function loadPseudoLabels(run: Run, round?: PseudoRound): Promise<void> {
  run.pseudo = [];
  const done = (s: StageName): boolean => {
    const r = run.done(s);
    return r !== undefined && !r.skipped;
  };
  round ??= done('self-training')
    ? 2
    : done('joint')
      ? multiAtlasNeighbours(run.plan, 'joint') > 0
        ? 'multi-atlas'
        : jointLabelsRound(run)
      : multiAtlasNeighbours(run.plan, 'registration') > 0
        ? 'registration-multi-atlas'
        : 0;
  for (const u of run.input.unlabeled) {
    const file = pseudoFile(run, u.id, round);
    if (!existsSync(file)) {
      throw new Error(
        `runPipeline: the pseudo labels of ${u.id} are missing (${file}) although the registration stage is recorded as done; the unlabelled volumes differ from the first run — use a new output folder.`,
      );
    }
    const b = new Uint8Array(await readFile(file));
    if (b.length !== run.voxels) {
      throw new Error(
        `runPipeline: ${file} has ${b.length} voxels, expected ${run.voxels}; use a new output folder.`,
      );
    }
    run.pseudo.push(b);
  }
}

/** The round of the joint stage's labels before any multi-atlas fusion. */
function jointLabelsRound(run: Run): 1 | 'relabel' {
  return relabelRoundSteps(run) > 0 ? 'relabel' : 1;
}

/**
 * Softmax of the inference net's `outputs` (current parameters, or `o.params`) for every
 * unlabelled volume (or those of `o.volumes`, in that order), [C, D, H, W]; with several outputs,
 * the mean of their softmaxes.
 */
export async function predictions(
  run: Run,
  outputs: readonly ('generalLogits' | 'medicalLogits' | 'logits')[],
  stage: StageName,
  o: { params?: ReadonlyMap<string, Float32Array>; volumes?: readonly number[] } = {},
): Promise<Float32Array[]> {
  const net = rrlInferenceNet(run.args, run.grid);
  const init = net.graph.initialParams(run.plan.seeds.init);
  const params: Params = new Map();
  const source = o.params ?? run.params;
  for (const [k, v] of init) params.set(k, source.get(k) ?? v);
  const { model } = buildForwardGraph({
    graph: net.graph,
    outputs: Object.fromEntries(outputs.map((o) => [o, net[o]])),
    params,
  });
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 2,
  });
  const C = run.plan.classes;
  const m = run.voxels;
  const out: Float32Array[] = [];
  try {
    const volumes = o.volumes ?? run.input.unlabeled.map((_, k) => k);
    for (const k of volumes) {
      const u = run.input.unlabeled[k]!;
      run.checkAbort(stage);
      const r = await session.run(
        { image: new ort.Tensor('float32', u.image, [1, 1, ...run.grid]) },
        [...outputs],
      );
      const prob = new Float32Array(C * m);
      for (const o of outputs) {
        const logits = r[o]!.data as Float32Array;
        for (let i = 0; i < m; i++) {
          let mx = -Infinity;
          for (let c = 0; c < C; c++) mx = Math.max(mx, logits[c * m + i]!);
          let sum = 0;
          for (let c = 0; c < C; c++) sum += Math.exp(logits[c * m + i]! - mx);
          for (let c = 0; c < C; c++) {
            prob[c * m + i]! += Math.exp(logits[c * m + i]! - mx) / sum / outputs.length;
          }
        }
      }
      out.push(prob);
    }
  } finally {
    await session.release();
  }
  return out;
}

/**
 * Replaces the pseudo labels in use by the saved round `round` and says what share of their
 * voxels changed (e.g. "1.25 %").
 */
export async function switchPseudoLabels(
  run: Run,
  round: Exclude<PseudoRound, 0 | 'joint-registration'>,
): Promise<string> {
  const old = run.pseudo;
  run.pseudo = [];
  for (const u of run.input.unlabeled) {
    run.pseudo.push(new Uint8Array(await readFile(pseudoFile(run, u.id, round))));
  }
  let changed = 0;
  for (const [k, a] of old.entries()) {
    const b = run.pseudo[k]!;
    for (let i = 0; i < run.voxels; i++) if (a[i] !== b[i]) changed++;
  }
  return `${((100 * changed) / (run.voxels * Math.max(1, old.length))).toFixed(2)} %`;
}
