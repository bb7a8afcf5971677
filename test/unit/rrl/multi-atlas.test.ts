/**
 * Multi-atlas fusion after the joint or registration stage (models/src/rrl/stages/multiAtlas.ts): the
 * neighbours are the most similar volumes; a volume whose own labels are wrong is outvoted by its
 * correctly labelled neighbours registered onto it, correct volumes keep theirs; a cancelled
 * round resumes with the volumes still missing and gives the same files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '@rrl/models/engine/graph/graph.js';
import { registrationNet, type RegistrationArgs } from '@rrl/models/engine/nn/registration.js';
import { parsePlan } from '@rrl/models/rrl/plan.js';
import { ncc } from '@rrl/models/rrl/prealign.js';
import { Run } from '@rrl/models/rrl/stages/run.js';
import { loadPseudoLabels, pseudoFile } from '@rrl/models/rrl/stages/pseudoLabelFiles.js';
import {
  LabelVote,
  multiAtlasRound,
  nearestNeighbours,
} from '@rrl/models/rrl/stages/multiAtlas.js';
import type { RrlModelInfo } from '@rrl/models/rrl/export.js';
import { dice as diceOf } from '@rrl/models/rrl/metrics.js';
import { texturedBlob } from './helpers.js';

const N = 16;
const m = N ** 3;
const grid: [number, number, number] = [N, N, N];
const args: RegistrationArgs = { base: 4, smoothness: 1, similarity: 'lncc', channels: 1 };
const g = new Graph();
registrationNet(g, g.input('moving', [1, 1, ...grid]), g.input('fixed', [1, 1, ...grid]), args);
const params = g.initialParams(3);

/** Mean Dice of the two halves (metrics.ts). */
const dice = (a: Uint8Array, b: Uint8Array): number => (diceOf(a, b, 1) + diceOf(a, b, 2)) / 2;

test('nearestNeighbours (global NCC) and the vote', () => {
  const a = texturedBlob(grid, [7, 7, 7]).image;
  const near = texturedBlob(grid, [7, 7, 8]).image;
  const far = texturedBlob(grid, [11, 4, 10]).image;
  assert.ok(Math.abs(ncc(a, a, grid, [0, 0, 0]) - 1) < 1e-9);
  assert.ok(ncc(a, near, grid, [0, 0, 0]) > ncc(a, far, grid, [0, 0, 0]));
  assert.deepEqual(nearestNeighbours([a, far, near], grid, 1), [[2], [2], [0]]);
  assert.deepEqual(nearestNeighbours([a, far, near], grid, 5), [
    [2, 1],
    [2, 0],
    [0, 1],
  ]);
  // [classes, voxels]: own label 1 at both voxels; each neighbour below votes class 2 at voxel 0
  const vote = new LabelVote(Uint8Array.from([1, 1]), 3);
  const twoAtFirst = Float32Array.from([0, 0, 0, 1, 1, 0]);
  vote.add(twoAtFirst);
  assert.deepEqual(
    [...vote.labels()],
    [1, 1],
    'one neighbour against the own label: a tie keeps it',
  );
  vote.add(twoAtFirst);
  assert.deepEqual([...vote.labels()], [2, 1], 'two neighbours outvote it');
  assert.throws(() => vote.add(new Float32Array(3)), /expected 6/);
});

test('multi-atlas round: wrong own labels are outvoted by registered neighbours; resumes after a cancel', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrl-multi-atlas-'));
  try {
    const centres: [number, number, number][] = [
      [8, 7, 8],
      [7, 8, 7],
      [8, 8, 7],
      [7, 7, 8],
    ];
    const blobs = centres.map((c) => texturedBlob(grid, c));
    const plan = parsePlan({
      grid,
      channels: [4, 8],
      convsPerLevel: [1, 1],
      decoderChannels: [4, 8],
      classes: 3,
      registrationBase: 4,
      registrationRefine: { steps: 12, lr: 0.2, smoothness: 1, window: 5, downsample: 2 },
      schedule: { joint: { steps: 2, lr: 0.003 } },
      multiAtlas: { neighbours: 2 },
    });
    assert.deepEqual(plan.multiAtlas, { neighbours: 2 });
    const atlas = texturedBlob(grid, [7, 7, 7]);
    const info = { id: 'x', labels: [] } as unknown as RrlModelInfo;
    const runFor = (signal?: AbortSignal): Run =>
      new Run({
        plan,
        outDir: dir,
        atlas: { image: atlas.image, labels: atlas.halves },
        unlabeled: blobs.map((b, k) => ({ id: `v${k}`, image: b.image })),
        info,
        provider: 'cpu',
        ...(signal ? { signal } : {}),
      });
    // the joint stage's labels (round 1, no relabelling round): volume 0's halves swapped
    const run = runFor();
    mkdirSync(run.paths.pseudoLabels, { recursive: true });
    const own = blobs.map((b) => b.halves.slice());
    for (let i = 0; i < m; i++) if (own[0]![i]) own[0]![i] = 3 - own[0]![i]!;
    for (const [k, labels] of own.entries()) writeFileSync(pseudoFile(run, `v${k}`, 1), labels);
    run.pseudo = own.map((o) => o.slice());
    assert.ok(dice(own[0]!, blobs[0]!.halves) < 0.05);

    // cancelled after the first volume: that one is written, the rest are not
    const ctrl = new AbortController();
    const cancelled = runFor(ctrl.signal);
    cancelled.pseudo = run.pseudo;
    cancelled.input.onProgress = (p) => {
      if (p.phase === 'pseudo-labels') ctrl.abort();
    };
    await assert.rejects(
      multiAtlasRound(cancelled, 'joint', { params, args }, 2),
      (e: Error) => e.name === 'AbortError' && /multi-atlas/.test(e.message),
    );
    const written = blobs.filter((_, k) =>
      existsSync(pseudoFile(run, `v${k}`, 'multi-atlas')),
    ).length;
    assert.ok(written >= 1 && written < blobs.length, `${written} written`);

    const lines: string[] = [];
    const resumed = runFor();
    resumed.pseudo = run.pseudo;
    resumed.input.log = (l) => lines.push(l);
    await multiAtlasRound(resumed, 'joint', { params, args }, 2);
    const fused = blobs.map(
      (_, k) => new Uint8Array(readFileSync(pseudoFile(run, `v${k}`, 'multi-atlas'))),
    );
    assert.deepEqual(resumed.pseudo, fused, 'the fused labels are the ones in use');
    assert.ok(
      dice(fused[0]!, blobs[0]!.halves) > 0.6,
      `volume 0: ${dice(fused[0]!, blobs[0]!.halves)}`,
    );
    for (let k = 1; k < blobs.length; k++) {
      // at most one of a correct volume's two neighbours is the wrong one: its own label holds
      assert.ok(
        dice(fused[k]!, blobs[k]!.halves) > 0.9,
        `volume ${k}: ${dice(fused[k]!, blobs[k]!.halves)}`,
      );
    }
    assert.ok(
      lines.some((l) => /its 2 most similar volume\(s\)/.test(l)),
      lines.join('\n'),
    );

    // a fresh round over the same labels gives the same files (no fused label votes again)
    for (let k = 0; k < blobs.length; k++) unlinkSync(pseudoFile(run, `v${k}`, 'multi-atlas'));
    const again = runFor();
    again.pseudo = own.map((o) => o.slice());
    await multiAtlasRound(again, 'joint', { params, args }, 2);
    for (let k = 0; k < blobs.length; k++) {
      assert.deepEqual(
        new Uint8Array(readFileSync(pseudoFile(run, `v${k}`, 'multi-atlas'))),
        fused[k],
      );
    }

    // the same vote after the registration stage (round 0's labels): its own round, its own
    // log tag, the same labels; once the registration stage is recorded done, a resumed run
    // loads them
    const regPlan = parsePlan({ ...plan, multiAtlas: { neighbours: 2, stages: ['registration'] } });
    const afterReg = new Run({ ...runFor().input, plan: regPlan });
    afterReg.pseudo = own.map((o) => o.slice());
    const regLines: string[] = [];
    afterReg.input.log = (l) => regLines.push(l);
    await multiAtlasRound(afterReg, 'registration', { params, args }, 2);
    for (let k = 0; k < blobs.length; k++) {
      assert.deepEqual(
        new Uint8Array(readFileSync(pseudoFile(run, `v${k}`, 'registration-multi-atlas'))),
        fused[k],
      );
    }
    assert.ok(
      regLines.some((l) => /^\[registration\] multi-atlas fusion/.test(l)),
      regLines.join('\n'),
    );
    afterReg.state.stages.push({ stage: 'registration', steps: 2, seconds: 1 });
    afterReg.pseudo = [];
    await loadPseudoLabels(afterReg);
    assert.deepEqual(afterReg.pseudo, fused);

    // one unlabelled volume: no neighbour, its labels stay as they are
    const single = new Run({
      plan,
      outDir: join(dir, 'single'),
      atlas: { image: atlas.image, labels: atlas.halves },
      unlabeled: [{ id: 'v0', image: blobs[0]!.image }],
      info,
      provider: 'cpu',
    });
    mkdirSync(single.paths.pseudoLabels, { recursive: true });
    writeFileSync(pseudoFile(single, 'v0', 1), own[0]!);
    single.pseudo = [own[0]!.slice()];
    await multiAtlasRound(single, 'joint', { params, args }, 2);
    assert.deepEqual(single.pseudo, [own[0]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
