// The stage-weighted progress estimate and the default-model decision.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { estimateRemaining } from '@rrl/server/jobs/eta.js';
import { decideDefault } from '@rrl/server/models/promotion.js';

const planned = [
  { phase: 'fetch', steps: 3 },
  { phase: 'registration', steps: 100 },
  { phase: 'mutual', steps: 100 },
  { phase: 'export', steps: 1 },
];

test(
  'the estimate weighs phases by their learned durations; skipped stages cost nothing',
  { timeout: 10_000 },
  () => {
    const learned = { fetch: 2, registration: 40, mutual: 10, export: 1 };
    // Start of registration: its learned 40 s, then mutual 10 s and export 1 s.
    assert.equal(
      estimateRemaining({
        planned,
        phase: 'registration',
        step: 0,
        total: 100,
        phaseElapsed: 0,
        done: { fetch: 2 },
        learned,
      }),
      51,
    );
    // Half-way through registration at the learned pace: 20 s left in it, 11 s after.
    assert.equal(
      estimateRemaining({
        planned,
        phase: 'registration',
        step: 50,
        total: 100,
        phaseElapsed: 20,
        done: { fetch: 2 },
        learned,
      }),
      31,
    );
    // Equal weights per stage would give mutual as much time as registration: not here.
    const atMutual = estimateRemaining({
      planned,
      phase: 'mutual',
      step: 0,
      total: 100,
      phaseElapsed: 0,
      done: { fetch: 2, registration: 40 },
      learned,
    });
    assert.equal(atMutual, 11);
    // A stage that is not planned (skipped) adds nothing.
    const withSkipped = estimateRemaining({
      planned: [
        ...planned.slice(0, 2),
        { phase: 'distill-sam', steps: 0 },
        ...planned.slice(2),
      ].filter((p) => p.steps > 0),
      phase: 'mutual',
      step: 0,
      total: 100,
      phaseElapsed: 0,
      done: {},
      learned,
    });
    assert.equal(withSkipped, 11);
  },
);

test(
  'before anything was measured, steps at this job’s own pace; nothing known → no estimate',
  { timeout: 10_000 },
  () => {
    assert.equal(
      estimateRemaining({
        planned,
        phase: 'fetch',
        step: 0,
        total: 3,
        phaseElapsed: 0,
        done: {},
        learned: {},
      }),
      undefined,
    );
    // 10 registration steps in 5 s: 0.5 s/step → 45 s more of registration, 50 s of mutual, 0.5 s export.
    assert.equal(
      estimateRemaining({
        planned,
        phase: 'registration',
        step: 10,
        total: 100,
        phaseElapsed: 5,
        done: {},
        learned: {},
      }),
      95.5,
    );
  },
);

test(
  'a new model is the default only when its hold-out Dice is not worse on the same series',
  { timeout: 10_000 },
  () => {
    const ev = (d: number, ...series: string[]) => ({
      meanDice: d,
      series: series.map((s) => ({ seriesUID: s })),
    });
    assert.equal(decideDefault(undefined, {}).promote, true, 'the first model');
    const better = decideDefault(
      { id: 't@1', evaluation: ev(0.7, 'a') },
      { evaluation: ev(0.8, 'a') },
    );
    assert.equal(better.promote, true);
    assert.match(better.reason, /0\.800 ≥ 0\.700 of t@1/);
    const worse = decideDefault(
      { id: 't@1', evaluation: ev(0.8, 'a') },
      { evaluation: ev(0.5, 'a') },
    );
    assert.equal(worse.promote, false);
    assert.match(worse.reason, /0\.500 < 0\.800 of t@1: t@1 stays the default/);
    assert.equal(
      decideDefault({ id: 't@1', evaluation: ev(0.8, 'a') }, { evaluation: ev(0.8, 'a') }).promote,
      true,
      'equal is not worse',
    );
    assert.equal(
      decideDefault({ id: 't@1', evaluation: ev(0.5, 'a') }, { evaluation: ev(0.9, 'b') }).promote,
      false,
      'other hold-out series',
    );
    assert.equal(decideDefault({ id: 't@1' }, {}).promote, false, 'no hold-out: promote by hand');
    assert.equal(decideDefault({ id: 't@1' }, { evaluation: ev(0.9, 'a') }).promote, false);
  },
);
