import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TRAIN_SPEC } from '@rrl/models/cli/train.js';
import { EVAL_SPEC } from '@rrl/models/cli/eval.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function run(script: string, args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

for (const [name, script, spec] of [
  ['train', 'models/src/cli/train.ts', TRAIN_SPEC],
  ['eval', 'models/src/cli/eval.ts', EVAL_SPEC],
] as const) {
  test(`${name} --help exits 0 and lists every option and an example`, { timeout: 60_000 }, () => {
    const r = run(script, ['--help']);
    assert.equal(r.status, 0, r.err);
    assert.match(r.out, new RegExp(`Usage: npm run ${name} -- \\[options\\]`));
    assert.ok(spec.options.length >= 6);
    for (const o of spec.options) assert.ok(r.out.includes(`--${o.name}`), `--${o.name} missing`);
    assert.match(r.out, /Examples:\n {2}npm run /);
    // No path of this machine: the repository's location, a home or a temporary folder.
    assert.ok(!r.out.includes(root), 'the help names the repository’s absolute path');
    assert.doesNotMatch(r.out, /(^|[\s(=])\/(root|home|tmp|work|usr|var)\//m);
  });

  test(`${name} with an unknown option exits 2 and says so`, { timeout: 60_000 }, () => {
    const r = run(script, ['--no-such-option', 'x']);
    assert.equal(r.status, 2);
    assert.match(r.err, /no-such-option/);
    assert.match(r.err, /--help/);
  });
}
