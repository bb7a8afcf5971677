/**
 * Profile summaries (models/src/engine/runtime/profile.ts): ORT trace events are summed per op
 * type and per node over the runs after the warm-up ones and averaged per run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProfile, summariseOrtProfile } from '@rrl/models/engine/runtime/profile.js';

test('summariseOrtProfile: per op and node, warm-up runs left out, averaged per run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrl-profile-'));
  try {
    const events: object[] = [];
    // three runs at ts 0, 1000, 2000; each runs a Conv (its cost grows) and a Slice node
    for (let r = 0; r < 3; r++) {
      events.push({ cat: 'Session', name: 'model_run', ts: r * 1000, dur: 900 });
      events.push({
        cat: 'Node',
        name: 'c1_kernel_time',
        ts: r * 1000 + 10,
        dur: 100 * (r + 1),
        args: { op_name: 'Conv' },
      });
      events.push({
        cat: 'Node',
        name: 's1_kernel_time',
        ts: r * 1000 + 20,
        dur: 50,
        args: { op_name: 'Slice' },
      });
      // not a kernel event: ignored
      events.push({ cat: 'Node', name: 'c1_fence_before', ts: r * 1000 + 5, dur: 7 });
    }
    const file = join(dir, 'trace.json');
    writeFileSync(file, JSON.stringify(events));
    const p = summariseOrtProfile(file, 1);
    assert.equal(p.runs, 2);
    // runs 2 and 3: Conv (200 + 300) / 2 = 250 µs, Slice 50 µs per run
    assert.deepEqual(
      p.ops.map((o) => [o.op, o.msPerStep]),
      [
        ['Conv', 0.25],
        ['Slice', 0.05],
      ],
    );
    assert.ok(Math.abs(p.kernelMsPerStep - 0.3) < 1e-12);
    assert.ok(Math.abs(p.ops[0]!.share - 0.25 / 0.3) < 1e-12);
    assert.deepEqual(p.nodes[0], { node: 'c1', op: 'Conv', msPerStep: 0.25 });
    const line = describeProfile({
      name: 'mutual',
      steps: 2,
      warmup: 1,
      wallMs: 1.2,
      sessionMs: 0.9,
      batchMs: 0.2,
      otherMs: 0.1,
      ...p,
    });
    assert.match(line, /^\[profile mutual\] 2 steps: wall 1\.2 ms\/step = session 0\.9 ms/);
    assert.match(line, /Conv 0\.3 ms \(83 %\), Slice 0\.1 ms \(17 %\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
