/**
 * Registration stage: the registration network trained on atlas → unlabelled pairs
 * (`../registration.ts`), its weights and the displacements saved, and the atlas labels warped
 * onto every unlabelled volume (the first pseudo labels).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { multiAtlasNeighbours, registrationArgsFromPlan, stageLr } from '../plan.js';
import { runRegistrationStage } from '../registration.js';
import type { Run, StageOutcome } from './run.js';
import { atomicWrite, safeId } from './run.js';
import { multiAtlasRound } from './multiAtlas.js';
import { loadPseudoLabels } from './pseudoLabelFiles.js';
import { saveField, saveRegistration, warpAtlasAll } from './registrationFiles.js';

export async function registrationStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const sched = p.schedule.registration;
  const args = registrationArgsFromPlan(p);
  const targets = run.input.unlabeled.map((u) => u.image);
  const profiler = run.profiler('registration');
  const reg = await runRegistrationStage({
    grid: run.grid,
    classes: p.classes,
    atlasImage: run.input.atlas.image,
    atlasLabels: run.input.atlas.labels,
    targets,
    args,
    steps: sched.steps,
    lr: stageLr(sched),
    seed: p.seeds.init,
    provider: run.provider,
    checkpoint: {
      path: join(run.paths.checkpoints, 'registration.ckpt'),
      every: Math.max(1, Math.min(50, Math.ceil(sched.steps / 4))),
    },
    signal: run.input.signal,
    pseudoLabels: false,
    ...(profiler ? { profiler } : {}),
    spin: run.input.spin ?? false,
    ...(p.registrationPrealign ? { prealign: p.registrationPrealign } : {}),
    onProgress: (q) =>
      run.progress('registration', {
        step: q.step,
        total: q.total,
        loss: q.loss,
        metrics: q.metrics,
      }),
  });
  await run.reportProfile(profiler);
  await saveRegistration(run, reg.params, reg.args, { steps: sched.steps });
  await mkdir(run.paths.pseudoLabels, { recursive: true });
  const file = (k: number): string =>
    join(run.paths.pseudoLabels, `${safeId(run.input.unlabeled[k]!.id)}.u8`);
  await warpAtlasAll(run, reg.params, reg.args, {
    what: 'registration (pseudo labels)',
    of: 'registration',
    steps: sched.steps,
    exists: (k) => existsSync(file(k)),
    save: async (k, r, pre) => {
      await saveField(run, k, r.displacement, pre);
      await atomicWrite(file(k), r.labels);
    },
  });
  await loadPseudoLabels(run, 0);
  if (multiAtlasNeighbours(p, 'registration') > 0) {
    await multiAtlasRound(run, 'registration', reg, sched.steps);
  }
  return { steps: sched.steps };
}
