import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { blobVolume, writeNifti } from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test('train: Ctrl-C stops after the current step with exit 1 and a resumable checkpoint', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-cli-int-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const v = blobVolume([16, 16, 16], [8, 8, 8], [5, 5, 4]);
  await mkdir(path.join(dir, 'unl'));
  await writeNifti(path.join(dir, 'a.nii.gz'), [16, 16, 16], v.image);
  await writeNifti(path.join(dir, 'a_seg.nii.gz'), [16, 16, 16], v.labels);
  await writeNifti(path.join(dir, 'unl/u.nii.gz'), [16, 16, 16], v.image);
  // The tiny plan with a registration stage far too long to finish before the interrupt.
  const plan = JSON.parse(await readFile(path.join(root, 'models/plans/tiny.json'), 'utf8'));
  plan.schedule.registration.steps = 100000;
  await writeFile(path.join(dir, 'plan.json'), JSON.stringify(plan));
  const out = path.join(dir, 'out');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'models/src/cli/train.ts',
      '--plan',
      path.join(dir, 'plan.json'),
      '--labels',
      'models/labelsets/hippocampus.json',
      '--atlas-image',
      path.join(dir, 'a.nii.gz'),
      '--atlas-labels',
      path.join(dir, 'a_seg.nii.gz'),
      '--unlabeled',
      path.join(dir, 'unl'),
      '--out',
      out,
    ],
    { cwd: root, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  let sent = false;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    err += s;
    // Interrupt once training steps are being reported.
    if (!sent && /stage 1\/\d+ registration \[[#.]+\] [1-9]/.test(err)) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.ok(sent, `no progress line seen:\n${err}`);
  assert.equal(code, 1, err);
  assert.match(err, /interrupted: stopping after the current step/);
  assert.match(err, /stopped: training cancelled during stage "registration"/);
  assert.ok(existsSync(path.join(out, 'plan.json')));
  assert.ok(!existsSync(path.join(out, 'model.onnx')));
});
