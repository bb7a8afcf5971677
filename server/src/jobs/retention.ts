/**
 * Retention of job folders: a finished job (succeeded, failed for good, cancelled) keeps its small
 * text records — plan, stage states, reports, logs (`*.json`, `*.txt`, `*.log` up to 1 MiB) — and
 * loses the rest (fetched volumes, pseudo labels, checkpoints, intermediate models: ~78 MB a job).
 * The published model lives in the models folder, not here.
 */
import { readdir, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';

const KEEP = /\.(json|txt|log)$/i;
const KEEP_MAX_BYTES = 1024 * 1024;

/** Prunes `dir` as above; returns the bytes freed and the files kept. */
export async function pruneJobFolder(dir: string): Promise<{ freed: number; kept: number }> {
  let freed = 0;
  let kept = 0;
  const walk = async (d: string): Promise<boolean> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return true;
    }
    let empty = true;
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (await walk(p)) await rmdir(p).catch(() => undefined);
        else empty = false;
        continue;
      }
      const size = (await stat(p).catch(() => undefined))?.size ?? 0;
      if (e.isFile() && KEEP.test(e.name) && size <= KEEP_MAX_BYTES) {
        kept += 1;
        empty = false;
        continue;
      }
      await rm(p, { force: true });
      freed += size;
    }
    return empty;
  };
  await walk(dir);
  return { freed, kept };
}
