/**
 * A real, small job for the runner tests (it does NOT train a segmentation model and does not
 * pretend to): in a worker thread it reads the task's atlas series and the job's series from the
 * PACS over WADO-RS, validates each series like the training job does (a bad one is skipped with
 * a reason in the job log), then runs Jacobi smoothing iterations on the atlas volume (upsampled
 * to 64³ so that each iteration costs a few milliseconds), reporting each iteration's mean
 * absolute change as the "loss". Every CHECKPOINT_EVERY iterations it writes its state to the
 * job's work folder, and a rerun resumes from there (as the pipeline does). At the end it builds
 * the project's test-fixture model (test/fixtures/test-model.ts: a real engine-trained ONNX model
 * in the published format, 1 training step) and returns that folder for publishing.
 *
 * Iterations: the task's plan name `smoothing-<N>`.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { makeTestModel } from '../../fixtures/test-model.js';
import { DicomWebClient } from '@rrl/server/pacs/dicomweb.js';
import { fetchSeriesVolume } from '@rrl/server/pacs/volume.js';
import type { JobRecord } from '@rrl/server/store/db.js';
import { seriesProblem } from '@rrl/server/jobs/validate.js';
import type { WorkerTaskContext } from '@rrl/server/jobs/workerExecutor.js';

export const CHECKPOINT_EVERY = 20;
const N = 64;

function upsample(src: Float32Array, dims: [number, number, number]): Float32Array {
  const out = new Float32Array(N * N * N);
  for (let z = 0; z < N; z++)
    for (let y = 0; y < N; y++)
      for (let x = 0; x < N; x++) {
        const sx = Math.min(dims[0] - 1, Math.floor((x * dims[0]) / N));
        const sy = Math.min(dims[1] - 1, Math.floor((y * dims[1]) / N));
        const sz = Math.min(dims[2] - 1, Math.floor((z * dims[2]) / N));
        out[(z * N + y) * N + x] = src[(sz * dims[1] + sy) * dims[0] + sx];
      }
  return out;
}

/** One Jacobi iteration (6-neighbour mean, clamped borders); returns the mean |change|. */
function smooth(a: Float32Array, b: Float32Array): number {
  let change = 0;
  for (let z = 0; z < N; z++)
    for (let y = 0; y < N; y++)
      for (let x = 0; x < N; x++) {
        const i = (z * N + y) * N + x;
        const s =
          a[x > 0 ? i - 1 : i] +
          a[x < N - 1 ? i + 1 : i] +
          a[y > 0 ? i - N : i] +
          a[y < N - 1 ? i + N : i] +
          a[z > 0 ? i - N * N : i] +
          a[z < N - 1 ? i + N * N : i];
        b[i] = s / 6;
        change += Math.abs(b[i] - a[i]);
      }
  return change / a.length;
}

export async function smoothingTask(
  job: JobRecord,
  ctx: WorkerTaskContext,
): Promise<{ modelDir: string }> {
  const m = /^smoothing-(\d+)$/.exec(ctx.task.plan);
  if (!m) throw new Error(`smoothingTask needs a plan "smoothing-<N>", found ${ctx.task.plan}`);
  const total = Number(m[1]);
  const client = new DicomWebClient({
    root: ctx.pacs.dicomWebRoot,
    ...(ctx.pacs.username !== undefined ? { username: ctx.pacs.username } : {}),
    ...(ctx.pacs.password !== undefined ? { password: ctx.pacs.password } : {}),
  });
  for (const s of job.series) {
    try {
      const v = await fetchSeriesVolume(client, s.studyUID, s.seriesUID);
      const problem = seriesProblem(
        { seriesUID: s.seriesUID, modality: v.modality, geometry: v.geometry },
        ctx.task.modality,
      );
      ctx.log(problem ? `skipped series ${s.seriesUID}: ${problem}` : `series ${s.seriesUID} ok`);
    } catch (e) {
      ctx.log(`skipped series ${s.seriesUID}: ${(e as Error).message}`);
    }
  }
  const ckptFile = path.join(ctx.workDir, 'checkpoint.json');
  const stateFile = path.join(ctx.workDir, 'state.f32');
  let start = 0;
  let a: Float32Array<ArrayBufferLike>;
  try {
    start = (JSON.parse(await readFile(ckptFile, 'utf8')) as { iteration: number }).iteration;
    const buf = await readFile(stateFile);
    a = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    ctx.log(`resumed from checkpoint at iteration ${start}`);
  } catch {
    const atlas = await fetchSeriesVolume(
      client,
      ctx.task.atlas.studyUID,
      ctx.task.atlas.seriesUID,
    );
    a = upsample(atlas.voxels, atlas.geometry.dims);
    ctx.log('started from the atlas volume');
  }
  let b: Float32Array<ArrayBufferLike> = new Float32Array(a.length);
  for (let it = start + 1; it <= total; it++) {
    if (ctx.signal.aborted) throw new Error('stopped');
    const change = smooth(a, b);
    [a, b] = [b, a];
    if (it % CHECKPOINT_EVERY === 0) {
      await writeFile(stateFile + '.tmp', new Uint8Array(a.buffer));
      await rename(stateFile + '.tmp', stateFile);
      await writeFile(ckptFile + '.tmp', JSON.stringify({ iteration: it }));
      await rename(ckptFile + '.tmp', ckptFile);
    }
    ctx.progress({
      phase: 'smoothing',
      stageIndex: 0,
      stageCount: 1,
      step: it,
      total,
      loss: change,
    });
    // Let the abort message in between iterations.
    if (it % 10 === 0) await new Promise((r) => setImmediate(r));
  }
  const outDir = path.join(ctx.workDir, 'model');
  await mkdir(outDir, { recursive: true });
  const model = await makeTestModel({ outDir, grid: [16, 16, 16], trainSteps: 1, id: 'fixture@1' });
  return { modelDir: model.dir };
}
