/** Stage 1 of the dual-stage distillation: the SAM teacher's features → the general encoder E_g (skipped, with a notice, without a teacher). */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { distillationTask, resampleFeatureVolume } from '../distill.js';
import { stageLr } from '../plan.js';
import { loadTeacher, teacherFeatureVolume } from '../teacher.js';
import type { Run, StageOutcome } from './run.js';
import { NO_TEACHER_NOTICE, atomicWrite, safeId } from './run.js';

export async function distillSamStage(run: Run): Promise<StageOutcome> {
  const p = run.plan;
  const sched = p.schedule.distillSam;
  if (!p.teacher) {
    if (!run.state.notices.includes(NO_TEACHER_NOTICE)) run.state.notices.push(NO_TEACHER_NOTICE);
    return { steps: 0, skipped: NO_TEACHER_NOTICE };
  }
  if (sched.steps === 0) return { steps: 0, skipped: 'schedule.distillSam.steps is 0' };
  const task = distillationTask(run.args, run.grid, { weight: p.loss.distillation });
  const tdims = task.target.shape;
  const tShape: [number, number, number] = [tdims[2]!, tdims[3]!, tdims[4]!];
  // Teacher features of the atlas (index −1) and of every unlabelled volume, cached on disk.
  await mkdir(run.paths.teacherFeatures, { recursive: true });
  const feats = new Map<number, Float32Array>();
  const vols = [
    { index: -1, id: 'atlas', image: run.input.atlas.image },
    ...run.input.unlabeled.map((u, k) => ({
      index: k,
      id: `u-${safeId(u.id)}`,
      image: u.image,
    })),
  ];
  const need = vols.filter((v) => !existsSync(join(run.paths.teacherFeatures, `${v.id}.f32`)));
  if (need.length > 0) {
    const teacher = await loadTeacher(p.teacher);
    try {
      for (const [n, v] of need.entries()) {
        run.checkAbort('distill-sam');
        const fv = await teacherFeatureVolume(
          teacher,
          { data: v.image, dims: run.grid },
          { sliceStride: p.teacherSliceStride },
        );
        const r = resampleFeatureVolume(fv, tShape);
        await atomicWrite(join(run.paths.teacherFeatures, `${v.id}.f32`), new Uint8Array(r.buffer));
        run.say(`[distill-sam] teacher features ${n + 1}/${need.length}`);
      }
    } finally {
      await teacher.session.release();
    }
  }
  for (const v of vols) {
    const b = await readFile(join(run.paths.teacherFeatures, `${v.id}.f32`));
    feats.set(v.index, new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice());
  }
  await run.trainStage({
    stage: 'distill-sam',
    task,
    steps: sched.steps,
    lr: stageLr(sched),
    batch: (rng) => {
      const s = run.sample(rng, { synthetic: false });
      return {
        image: { data: s.image, dims: [1, 1, ...run.grid] },
        target: { data: feats.get(s.index)!, dims: [...tdims] },
      };
    },
  });
  return { steps: sched.steps };
}
