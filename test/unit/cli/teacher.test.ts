/**
 * `npm run teacher`: import a checkpoint, list, import again (found), remove; a refused or foreign
 * file exits 2 with the reason; the help names no path of this machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeReference, writeEvilCheckpoint } from '../sam/torch.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function teacher(args: string[], dir: string): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'models/src/cli/teacher.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '', RRL_TEACHERS_DIR: dir },
    timeout: 120_000,
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('teacher import / list / remove, and clear refusals', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'teacher-cli-'));
  try {
    const teachers = join(dir, 'teachers');
    const help = teacher(['--help'], teachers);
    assert.equal(help.status, 0, help.err);
    assert.match(help.out, /Usage: npm run teacher -- <import FILE \| list \| remove ID>/);
    assert.ok(!help.out.includes(root));
    assert.doesNotMatch(help.out, /(^|[\s(=])\/(root|home|tmp|work|usr|var)\//m);

    const empty = teacher(['list'], teachers);
    assert.equal(empty.status, 0);
    assert.match(empty.out, /No teacher imported: stage 1 \(SAM distillation\) is skipped/);

    const ref = makeReference('tiny-vit-b', 128, join(dir, 'ref'), { name: 'medsam_vit_b.pth' });
    const imp = teacher(['import', join(ref.dir, 'medsam_vit_b.pth'), '--size', '128'], teachers);
    assert.equal(imp.status, 0, imp.err);
    const id = /imported: (\S+)/.exec(imp.out)?.[1];
    assert.ok(id && /^medsam-vit-width-64-depth-4-[0-9a-f]{8}-128$/.test(id), imp.out);
    const list = teacher(['list'], teachers);
    assert.match(
      list.out,
      new RegExp(
        `${id}\\tMedSAM ViT \\(width 64, depth 4\\) \\(medsam_vit_b\\.pth, sha256 [0-9a-f]{12}…, 128 px`,
      ),
    );
    const again = teacher(['import', join(ref.dir, 'medsam_vit_b.pth'), '--size', '128'], teachers);
    assert.match(again.out, new RegExp(`already imported: ${id}`));

    const evil = join(dir, 'evil.pth');
    writeEvilCheckpoint(evil, 'true');
    const refused = teacher(['import', evil], teachers);
    assert.equal(refused.status, 2);
    assert.match(refused.err, /error: refused: the checkpoint's pickle names posix\.system/);
    const badSize = teacher(['import', evil, '--size', '100'], teachers);
    assert.equal(badSize.status, 2);
    assert.match(badSize.err, /--size: a multiple of 16/);
    assert.equal(teacher(['remove', 'nope-00000000-256'], teachers).status, 2);
    const rm = teacher(['remove', id], teachers);
    assert.equal(rm.status, 0);
    assert.match(teacher(['list'], teachers).out, /No teacher imported/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
