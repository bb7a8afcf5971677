/**
 * The SAM teachers through the API: list, import an uploaded checkpoint, remove. The import runs
 * `npm run teacher -- import` in a child process (a ViT-H conversion holds gigabytes and seconds
 * of CPU that the server's event loop must not), one at a time; the upload is streamed to the
 * teacher folder's `.uploads/` and removed afterwards, whatever happens.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { fileURLToPath } from 'node:url';

import type { TeacherCard } from '@rrl/core/api.js';
import { COMPILED } from '@rrl/models/io/installRoot.js';
import { isTeacherId } from '@rrl/models/rrl/teacher.js';
import { findTeacher, listTeachers, removeTeacher } from '@rrl/models/sam/store.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/db.js';
import { tsLoaderArgs } from '../jobs/workerExecutor.js';
import { HttpError } from './request.js';

/** A published checkpoint is at most ~2.6 GB (ViT-H); anything far larger is not one. */
export const MAX_CHECKPOINT_BYTES = 4 * 1024 ** 3;

// The teacher CLI: dist/node/teacher.js beside the compiled server, else its TypeScript source.
const CLI = COMPILED
  ? fileURLToPath(new URL('./teacher.js', import.meta.url))
  : fileURLToPath(import.meta.resolve('@rrl/models/cli/teacher.js'));

export interface TeacherDeps {
  dir: string;
  store: Store;
  log: Logger;
}

let importing = false;

export async function teacherList(d: TeacherDeps): Promise<{ teachers: TeacherCard[] }> {
  return { teachers: await listTeachers(d.dir) };
}

/** Throws 422 unless `id` is an imported teacher; returns its card. */
export async function requireTeacher(d: TeacherDeps, id: unknown): Promise<TeacherCard> {
  if (typeof id !== 'string' || !isTeacherId(id)) {
    throw new HttpError(
      400,
      `teacher must be an imported teacher's id (GET /api/teachers) or null; found ${JSON.stringify(id)}.`,
    );
  }
  const card = await findTeacher(d.dir, id);
  if (!card) {
    throw new HttpError(
      422,
      `No imported teacher ${id}. GET /api/teachers lists them; import one with POST /api/teachers.`,
    );
  }
  return card;
}

function runImport(
  file: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...tsLoaderArgs(CLI), CLI, 'import', file, ...args],
      { maxBuffer: 4 * 1024 * 1024, env: { ...process.env, NODE_OPTIONS: '' } },
      (e, out, err) => {
        const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
        resolve({ code, out: String(out), err: String(err) });
      },
    );
  });
}

/**
 * POST /api/teachers?name=<file name>&size=<pixels>: the request body is the checkpoint
 * (application/octet-stream). 201 with the card, or 200 when the same file was imported at this
 * size before.
 */
export async function teacherImport(
  d: TeacherDeps,
  req: IncomingMessage,
  query: URLSearchParams,
): Promise<{ status: number; body: { teacher: TeacherCard; existed: boolean } }> {
  const type = String(req.headers['content-type'] ?? '');
  if (!/^application\/octet-stream\b/i.test(type)) {
    req.resume();
    throw new HttpError(
      415,
      'Send the checkpoint file as the body with Content-Type: application/octet-stream.',
    );
  }
  const name = path.basename(query.get('name') ?? '');
  if (!/^[\w][\w .()+-]{0,199}$/.test(name)) {
    req.resume();
    throw new HttpError(400, "name must be the checkpoint's file name (e.g. medsam_vit_b.pth).");
  }
  const sizeText = query.get('size');
  if (sizeText !== null && !/^\d{2,4}$/.test(sizeText)) {
    req.resume();
    throw new HttpError(
      400,
      'size must be the input size in pixels (a multiple of 16 from 64 to 1024).',
    );
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > MAX_CHECKPOINT_BYTES) {
    req.resume();
    throw new HttpError(
      413,
      `The file is larger than ${MAX_CHECKPOINT_BYTES / 1024 ** 3} GiB: not a SAM checkpoint.`,
    );
  }
  if (importing) {
    req.resume();
    throw new HttpError(409, 'Another teacher is being imported; try again when it is done.');
  }
  importing = true;
  const uploads = path.join(d.dir, '.uploads');
  const tmp = path.join(uploads, `${randomUUID()}.upload`);
  try {
    await mkdir(uploads, { recursive: true });
    let received = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (received > MAX_CHECKPOINT_BYTES)
          cb(new HttpError(413, 'The upload passed the size limit.'));
        else cb(null, chunk);
      },
    });
    try {
      await pipeline(req, limit, createWriteStream(tmp, { mode: 0o600 }));
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, 'The upload was interrupted; nothing was imported.');
    }
    if (received === 0) throw new HttpError(400, 'The body is empty: send the checkpoint file.');
    const r = await runImport(tmp, [
      '--teachers-dir',
      d.dir,
      ...(sizeText !== null ? ['--size', sizeText] : []),
      '--source-name',
      name,
    ]);
    if (r.code !== 0) {
      const why = /error: (.*)/.exec(r.err)?.[1] ?? 'the conversion failed';
      d.log.warn('teacher import refused', { code: r.code });
      throw new HttpError(r.code === 2 ? 422 : 500, `${name}: ${why}`);
    }
    const id = /imported: (\S+)/.exec(r.out)?.[1];
    const card = id ? await findTeacher(d.dir, id) : undefined;
    if (!card) throw new HttpError(500, 'The import ended without a teacher card.');
    const existed = /already imported/.test(r.out);
    d.log.info('teacher imported', { teacher: card.id, existed });
    return { status: existed ? 200 : 201, body: { teacher: card, existed } };
  } finally {
    importing = false;
    await rm(tmp, { force: true });
  }
}

/** DELETE /api/teachers/{id}: refused while a task's current plan names it. */
export async function teacherRemove(
  d: TeacherDeps,
  id: string | undefined,
): Promise<{ removed: string }> {
  if (!id || !isTeacherId(id)) throw new HttpError(404, `No teacher ${id ?? ''}.`);
  const users = d.store
    .listTasks({ archived: true })
    .filter((t) => t.teacher === id)
    .map((t) => t.id);
  if (users.length > 0) {
    throw new HttpError(
      409,
      `Teacher ${id} is the teacher of task(s) ${users.join(', ')}: choose another teacher (or none) for them first.`,
    );
  }
  if (!(await removeTeacher(d.dir, id)))
    throw new HttpError(404, `No teacher ${id}. GET /api/teachers lists them.`);
  d.log.info('teacher removed', { teacher: id });
  return { removed: id };
}
