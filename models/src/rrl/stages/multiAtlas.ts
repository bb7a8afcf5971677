/**
 * Multi-atlas fusion at the end of the registration and/or the joint stage (`plan.multiAtlas`):
 * the pseudo-labelled unlabelled volumes serve as extra atlases. Every volume's labels are fused
 * by a vote with the labels of its most similar neighbours, each registered onto it with that
 * stage's registration network (and the per-pair refinement); the one atlas's registration
 * errors are then outvoted where the neighbours agree against them.
 */
import { existsSync } from 'node:fs';
import type { RegistrationArgs } from '../../engine/nn/registration.js';
import { multiAtlasNeighbours, type MultiAtlasStage } from '../plan.js';
import { ncc } from '../prealign.js';
import { pseudoLabelsParallel } from '../pseudoLabelPool.js';
import { argmaxClasses, type Grid } from '../pseudoLabels.js';
import { StageAbortedError } from './abort.js';
import { atomicWrite } from './files.js';
import { pseudoFile, switchPseudoLabels, type PseudoRound } from './pseudoLabelFiles.js';
import type { Params } from './types.js';
import type { Run } from './run.js';

/** The volume's own label outweighs one neighbour's full vote, so ties keep it. */
const OWN_WEIGHT = 1.001;

/**
 * For every image on `grid`, the indices of the `k` other images most like it (global NCC,
 * highest first; ties by index), at most all the others.
 */
export function nearestNeighbours(
  images: readonly Float32Array[],
  grid: Grid,
  k: number,
): number[][] {
  const n = images.length;
  const sim: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++)
      sim[i]![j] = sim[j]![i] = ncc(images[i]!, images[j]!, grid, [0, 0, 0]);
  }
  return sim.map((row, i) =>
    row
      .map((s, j) => ({ s, j }))
      .filter(({ j }) => j !== i)
      .sort((x, y) => y.s - x.s || x.j - y.j)
      .slice(0, k)
      .map(({ j }) => j),
  );
}

/**
 * The vote of one volume: its own labels one-hot (weight `OWN_WEIGHT`) plus each neighbour's
 * warped label probabilities; `add` a neighbour's, then `labels()` is the argmax.
 */
export class LabelVote {
  private readonly votes: Float32Array;
  constructor(
    own: Uint8Array,
    private readonly classes: number,
  ) {
    const m = own.length;
    this.votes = new Float32Array(classes * m);
    for (let v = 0; v < m; v++) this.votes[own[v]! * m + v] = OWN_WEIGHT;
  }
  add(probabilities: Float32Array): void {
    if (probabilities.length !== this.votes.length) {
      throw new Error(
        `LabelVote: a neighbour's probabilities have ${probabilities.length} values, expected ${this.votes.length}`,
      );
    }
    for (let i = 0; i < this.votes.length; i++) this.votes[i]! += probabilities[i]!;
  }
  labels(): Uint8Array {
    return argmaxClasses(this.votes, this.classes);
  }
}

/** The round each stage's fusion writes. */
const ROUND = {
  registration: 'registration-multi-atlas',
  joint: 'multi-atlas',
} as const satisfies Record<MultiAtlasStage, PseudoRound>;

/**
 * Fuses `stage`'s last pseudo labels (those in `run.pseudo`) with their neighbours' and saves
 * them as that stage's multi-atlas round, which the later stages then train on. Pairs run
 * several at a time (`pseudoLabelsParallel`); a volume's file is written when its last neighbour
 * is in, so a cancelled round resumes with the volumes still missing. `steps`: the stage's (for
 * the cancellation message).
 */
export async function multiAtlasRound(
  run: Run,
  stage: MultiAtlasStage,
  registration: { params: Params; args: RegistrationArgs },
  steps: number,
): Promise<void> {
  const p = run.plan;
  const C = p.classes;
  const volumes = run.input.unlabeled;
  const k = Math.min(multiAtlasNeighbours(p, stage), volumes.length - 1);
  const round = ROUND[stage];
  const file = (i: number): string => pseudoFile(run, volumes[i]!.id, round);
  // Every volume's own labels before the fusion (the stage's last round, in use until the
  // switch below): the neighbours vote with these, never with labels already fused.
  const own = run.pseudo;
  const neighbours = nearestNeighbours(
    volumes.map((u) => u.image),
    run.grid,
    k,
  );
  const todo = volumes.map((_, i) => i).filter((i) => !existsSync(file(i)));
  run.say(
    `[${stage}] multi-atlas fusion: every volume's labels with those of its ${k} most similar volume(s), registered onto it (${todo.length * k} pairs)`,
  );
  const total = volumes.length;
  let done = 0;
  const progress = (): void => run.progress('pseudo-labels', { step: ++done, total }, stage);
  for (let i = 0; i < total - todo.length; i++) progress();
  const pairs: [number, number][] = [];
  for (const i of todo) {
    if (k === 0) {
      // a single volume has no neighbour: its labels stay as they are
      await atomicWrite(file(i), own[i]!);
      progress();
    } else {
      for (const j of neighbours[i]!) pairs.push([i, j]);
    }
  }
  // A volume's vote ([classes, D, H, W]) exists only while its pairs are under way.
  const votes = new Map<number, { vote: LabelVote; left: number }>();
  const left = await pseudoLabelsParallel(
    pairs.map((_, q) => q),
    (q) => {
      const [i, j] = pairs[q]!;
      return {
        params: registration.params,
        args: registration.args,
        grid: run.grid,
        classes: C,
        atlasImage: volumes[j]!.image,
        atlasLabels: own[j]!,
        target: volumes[i]!.image,
        ...(p.registrationRefine ? { refine: p.registrationRefine } : {}),
      };
    },
    async (q, r) => {
      const i = pairs[q]![0];
      let v = votes.get(i);
      if (!v) votes.set(i, (v = { vote: new LabelVote(own[i]!, C), left: k }));
      v.vote.add(r.probabilities);
      if (--v.left === 0) {
        await atomicWrite(file(i), v.vote.labels());
        votes.delete(i);
        progress();
      }
    },
    run.input.signal ? { signal: run.input.signal } : {},
  );
  if (left.length > 0) {
    throw new StageAbortedError(
      `${stage} (multi-atlas fusion)`,
      steps,
      steps,
      run.paths.pseudoLabels,
    );
  }
  const changed = await switchPseudoLabels(run, round);
  run.say(`[${stage}] multi-atlas fusion: ${changed} of voxels changed`);
}
