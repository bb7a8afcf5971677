/**
 * Stage 1 of the dual-stage distillation: the SAM teacher's features → the general encoder E_g
 * (skipped, with a notice, without a teacher).
 *
 * The teacher's features are computed once per training volume and kept on disk, keyed by the
 * teacher (its checkpoint's SHA-256 and input size), the volume's content and the slice stride:
 * in the teacher folder's feature cache when the teacher is an imported one (so every task and
 * every rerun that uses it reuses them), otherwise in the run folder. A volume's file is written
 * whole or not at all, so an interrupted run resumes at the first volume without features.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { distillationTask, resampleFeatureVolume } from '../distill.js';
import { stageLr } from '../plan.js';
import { teacherFeatureDir, teacherSummary } from '../../sam/store.js';
import { importedTeacher, isTeacherId, loadTeacher, teacherFeatureVolume } from '../teacher.js';
import type { Run, StageOutcome } from './run.js';
import { NO_TEACHER_NOTICE, atomicWrite } from './run.js';
import { sample } from './sampling.js';

function contentKey(image: Float32Array): string {
  return createHash('sha256')
    .update(new Uint8Array(image.buffer, image.byteOffset, image.byteLength))
    .digest('hex')
    .slice(0, 24);
}

/** What the model card says of a teacher: which, and that its accuracy effect was not measured here. */
export function teacherNotice(description: string): string {
  return `Stage 1 distilled from ${description}. The accuracy a real SAM teacher adds was not measured by this project (no SAM weights could be obtained where it was built): compare with a model of the same plan trained without a teacher on your hold-out series.`;
}

function formatSeconds(s: number): string {
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

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
  const where = { teachersDir: run.input.teachersDir };
  // An imported teacher is known by its card: its encoder is loaded only when features are
  // missing. An ONNX file is loaded now (its hash and input size name its features).
  const card = isTeacherId(p.teacher)
    ? await importedTeacher(p.teacher, where.teachersDir)
    : undefined;
  let teacher = card ? undefined : await loadTeacher(p.teacher, {}, where);
  const description = card ? teacherSummary(card) : teacher!.description;
  const cacheDir =
    card && where.teachersDir
      ? teacherFeatureDir(where.teachersDir, card)
      : join(run.paths.teacherFeatures, teacher!.cacheKey);
  const vols = [
    { index: -1, image: run.input.atlas.image },
    ...run.input.unlabeled.map((u, k) => ({ index: k, image: u.image })),
  ].map((v) => ({
    ...v,
    file: join(
      cacheDir,
      `${contentKey(v.image)}-g${run.grid.join('x')}-s${p.teacherSliceStride}-t${tShape.join('x')}.f32`,
    ),
  }));
  try {
    run.state.teacher = description;
    const notice = teacherNotice(description);
    if (!run.state.notices.includes(notice)) run.state.notices.push(notice);
    await run.saveState();
    await mkdir(cacheDir, { recursive: true });
    const need = vols.filter((v) => !existsSync(v.file));
    if (need.length < vols.length) {
      run.say(
        `[distill-sam] teacher features of ${vols.length - need.length}/${vols.length} volumes found in the cache`,
      );
    }
    const slicesPerVolume = Math.ceil(run.grid[0] / p.teacherSliceStride);
    const started = performance.now();
    if (need.length > 0) teacher ??= await loadTeacher(p.teacher, {}, where);
    for (const [n, v] of need.entries()) {
      run.checkAbort('distill-sam');
      const fv = await teacherFeatureVolume(
        teacher!,
        { data: v.image, dims: run.grid },
        { sliceStride: p.teacherSliceStride },
      );
      const r = resampleFeatureVolume(fv, tShape);
      await atomicWrite(v.file, new Uint8Array(r.buffer, r.byteOffset, r.byteLength));
      const elapsed = (performance.now() - started) / 1000;
      const perSlice = elapsed / ((n + 1) * slicesPerVolume);
      const left = perSlice * (need.length - n - 1) * slicesPerVolume;
      run.progress('distill-sam', {
        step: n + 1,
        total: need.length,
        metrics: { teacherSecondsPerSlice: Math.round(perSlice * 1000) / 1000 },
      });
      run.say(
        `[distill-sam] teacher features ${n + 1}/${need.length} (${perSlice.toFixed(2)} s per slice, about ${formatSeconds(left)} left)`,
      );
    }
  } finally {
    await teacher?.session.release();
  }
  const feats = new Map<number, Float32Array>();
  for (const v of vols) {
    const b = await readFile(v.file);
    feats.set(v.index, new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice());
  }
  await run.trainStage({
    stage: 'distill-sam',
    task,
    steps: sched.steps,
    lr: stageLr(sched),
    batch: (rng) => {
      const s = sample(run, rng, { synthetic: false });
      return {
        image: { data: s.image, dims: [1, 1, ...run.grid] },
        target: { data: feats.get(s.index)!, dims: [...tdims] },
      };
    },
  });
  return { steps: sched.steps };
}
