import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  defaultPlan,
  parsePlan,
  planModelGrid,
  PlanError,
  relabelSteps,
  ignoresDisagreement,
  multiAtlasNeighbours,
  calibratesVolumes,
  stageLr,
} from '@rrl/models/rrl/plan.js';

test('defaults: an empty plan gives the default plan; given values are kept', () => {
  assert.deepEqual(parsePlan({}), defaultPlan());
  const p = parsePlan({
    grid: [32, 48, 64],
    schedule: { mutual: { steps: 10, emaAlpha: 0.9 } },
    teacher: '/models/sam_vit_b_encoder.onnx',
    seeds: { init: 1 },
  });
  assert.deepEqual(p.grid, [32, 48, 64]);
  assert.equal(p.schedule.mutual.steps, 10);
  assert.equal(p.schedule.mutual.emaAlpha, 0.9);
  assert.equal(p.schedule.mutual.lr, defaultPlan().schedule.mutual.lr);
  assert.equal(p.teacher, '/models/sam_vit_b_encoder.onnx');
  assert.deepEqual(p.seeds, { init: 1, data: defaultPlan().seeds.data });
  assert.equal(parsePlan({}).teacher, undefined);
});

test('custom channels get one conv block at the deepest scale unless given', () => {
  const p = parsePlan({ channels: [8, 16, 32] });
  assert.deepEqual(p.convsPerLevel, [2, 2, 1]);
  assert.deepEqual(p.decoderChannels, [4, 8, 16]);
});

function rejects(plan: unknown, ...patterns: RegExp[]): void {
  assert.throws(
    () => parsePlan(plan),
    (e: unknown) => {
      assert.ok(e instanceof PlanError, `expected PlanError, got ${String(e)}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    },
  );
}

test('validation errors name the field, what was expected and what was found', () => {
  rejects([1, 2], /plan: expected a JSON object, found \[1,2\]/);
  rejects({ gird: [64, 64, 64] }, /unknown field "gird"/, /grid/);
  rejects({ grid: [64, 64] }, /plan\.grid: expected 3 integers/);
  rejects(
    { grid: [64, 60, 64] },
    /plan\.grid: \[64, 60, 64\] must be divisible by 8/,
    /\[64, 64, 64\]/,
  );
  rejects({ grid: [64, 64, 64.5] }, /plan\.grid\[2\]: expected an integer ≥ 1, found 64\.5/);
  rejects({ channels: [32, 64], convsPerLevel: [2, 2, 2] }, /convsPerLevel: expected 2 entries/);
  rejects(
    { schedule: { registration: { lr: -1 } } },
    /schedule\.registration\.lr: expected a number > 0/,
    /found -1/,
  );
  rejects({ schedule: { decoder: { steps: 'many' } } }, /schedule\.decoder\.steps/, /found "many"/);
  rejects(
    { schedule: { mutual: { emaAlpha: 1.5 } } },
    /emaAlpha: expected a number ≥ 0 and ≤ 1, found 1\.5/,
  );
  rejects({ loss: { dice: 0, crossEntropy: 0 } }, /both 0/);
  rejects({ loss: { distillation: -0.1 } }, /loss\.distillation/);
  rejects({ loss: { decoderConsistency: -1 } }, /loss\.decoderConsistency/);
  assert.equal('decoderConsistency' in parsePlan({}).loss, false, 'absent unless given');
  assert.equal(parsePlan({ loss: { decoderConsistency: 2 } }).loss.decoderConsistency, 2);
  rejects(
    { teacher: '' },
    /plan\.teacher: expected the id of an imported teacher .* or the path or file: URL/,
    /skip stage 1/,
  );
  rejects({ classes: 1 }, /plan\.classes: expected an integer ≥ 2, found 1/);
  // A plan may say what it is for (shown where plans are chosen).
  assert.equal(parsePlan({ description: 'smoke test' }).description, 'smoke test');
  assert.equal('description' in parsePlan({}), false);
  rejects({ description: 5 }, /plan\.description: expected a string/);
});

test('plan preprocess and sampling: defaults, validation, planModelGrid', () => {
  const d = parsePlan({});
  assert.deepEqual(d.preprocess, {
    resample: 'fit-extent',
    spacing: [1, 1, 1],
    intensity: { method: 'percentile', low: 1, high: 99 },
  });
  assert.equal(d.sampling.atlasProbability, 0.2);
  const p = parsePlan({
    grid: [48, 56, 40],
    preprocess: {
      resample: 'fixed-spacing',
      spacing: [1, 1, 1.5],
      intensity: { method: 'zscore', clip: [-4, 4] },
    },
  });
  assert.deepEqual(planModelGrid(p), {
    grid: { size: [40, 56, 48], spacing: [1, 1, 1.5], resample: 'fixed-spacing' },
    intensity: { method: 'zscore', clip: [-4, 4] },
  });
  assert.throws(
    () => parsePlan({ preprocess: { resample: 'stretch' } }),
    /"fit-extent" or "fixed-spacing"/,
  );
  assert.throws(
    () => parsePlan({ preprocess: { spacing: [1, 0, 1] } }),
    /preprocess\.spacing\[1\]/,
  );
  assert.throws(
    () => parsePlan({ preprocess: { intensity: { method: 'percentile', low: 99, high: 1 } } }),
    /low < high/,
  );
  assert.throws(
    () => parsePlan({ sampling: { atlasProbability: 2 } }),
    /sampling\.atlasProbability/,
  );
  for (const f of ['tiny', 'hippocampus', 'brain-aseg']) {
    const json = JSON.parse(
      readFileSync(new URL(`../../../models/plans/${f}.json`, import.meta.url), 'utf8'),
    );
    assert.doesNotThrow(() => parsePlan(json), `models/plans/${f}.json parses`);
  }
});

test('plan registrationPrealign, schedule.joint and jointFusion: defaults and validation', () => {
  const d = parsePlan({});
  assert.equal(d.registrationPrealign, undefined, 'no pre-alignment by default');
  assert.deepEqual(d.schedule.joint, { steps: 0, lr: 1e-3 }, 'joint stage skipped by default');
  assert.equal(d.jointFusion, 0.5);
  const p = parsePlan({
    registrationPrealign: { maxShift: 8 },
    schedule: { joint: { steps: 200, lr: 0.001 } },
    jointFusion: 0.3,
  });
  assert.deepEqual(p.registrationPrealign, { maxShift: 8 });
  assert.deepEqual(p.schedule.joint, { steps: 200, lr: 0.001 });
  assert.equal(p.jointFusion, 0.3);
  assert.throws(() => parsePlan({ jointFusion: 1.5 }), /plan\.jointFusion/);
  assert.throws(
    () => parsePlan({ registrationPrealign: { maxShift: 2.5 } }),
    /registrationPrealign\.maxShift/,
  );
  assert.throws(() => parsePlan({ registrationPrealign: { shift: 2 } }), /unknown field "shift"/);
  const hip = parsePlan(
    JSON.parse(
      readFileSync(new URL('../../../models/plans/hippocampus.json', import.meta.url), 'utf8'),
    ),
  );
  assert.equal(hip.registrationPrealign, undefined, 'pre-alignment lowered the hippocampus Dice');
  assert.ok(hip.schedule.joint.steps > 0);
});

test('plan selfTraining: absent by default, defaults for missing fields, validation', () => {
  assert.equal(parsePlan({}).selfTraining, undefined, 'no self-training round by default');
  assert.deepEqual(parsePlan({ selfTraining: {} }).selfTraining, {
    fusion: 0.5,
    mutual: { steps: 300, lr: 5e-4 },
    decoder: { steps: 300, lr: 1e-3 },
  });
  const p = parsePlan({ selfTraining: { fusion: 0.7, mutual: { steps: 10 } } });
  assert.equal(p.selfTraining?.fusion, 0.7);
  assert.deepEqual(p.selfTraining?.mutual, { steps: 10, lr: 5e-4 });
  assert.throws(() => parsePlan({ selfTraining: { fusion: 2 } }), /plan\.selfTraining\.fusion/);
  assert.throws(
    () => parsePlan({ selfTraining: { decoder: { steps: -1 } } }),
    /plan\.selfTraining\.decoder\.steps/,
  );
  assert.throws(() => parsePlan({ selfTraining: { rounds: 2 } }), /unknown field "rounds"/);
  assert.throws(() => parsePlan({ selfTraining: 3 }), /plan\.selfTraining: expected an object/);
});

test('plan crossFit: absent by default, folds 2..10', () => {
  assert.equal(parsePlan({}).crossFit, undefined, 'no cross-fitting by default');
  assert.deepEqual(parsePlan({ crossFit: {} }).crossFit, { folds: 2 });
  assert.deepEqual(parsePlan({ crossFit: { folds: 4 } }).crossFit, { folds: 4 });
  assert.throws(() => parsePlan({ crossFit: { folds: 1 } }), /plan\.crossFit\.folds/);
  assert.throws(() => parsePlan({ crossFit: { folds: 2.5 } }), /plan\.crossFit\.folds/);
  assert.throws(() => parsePlan({ crossFit: { k: 2 } }), /unknown field "k"/);
  assert.throws(() => parsePlan({ crossFit: 2 }), /plan\.crossFit: expected an object/);
  // the relabelling round: only when given (earlier plans keep their plan.json), steps ≥ 0
  assert.deepEqual(parsePlan({ crossFit: { relabelSteps: 600 } }).crossFit, {
    folds: 2,
    relabelSteps: 600,
  });
  assert.throws(
    () => parsePlan({ crossFit: { relabelSteps: -1 } }),
    /plan\.crossFit\.relabelSteps/,
  );
  const joint = { joint: { steps: 200, lr: 0.001 } };
  assert.equal(relabelSteps(parsePlan({ crossFit: { relabelSteps: 600 }, schedule: joint })), 600);
  assert.equal(relabelSteps(parsePlan({ crossFit: {}, schedule: joint })), 0);
  // the relabelling round's flags — leaving out the voxels where relabelling and registration
  // disagree, volume calibration of the relabelled labels: booleans, only with the relabelling
  // round, and in force only when that round runs
  for (const [flag, inForce] of [
    ['ignoreDisagreement', ignoresDisagreement],
    ['calibrateVolumes', calibratesVolumes],
  ] as const) {
    const on = parsePlan({ crossFit: { relabelSteps: 600, [flag]: true }, schedule: joint });
    assert.deepEqual(on.crossFit, { folds: 2, relabelSteps: 600, [flag]: true });
    assert.equal(inForce(on), true, flag);
    assert.equal(
      inForce(parsePlan({ crossFit: { relabelSteps: 600 }, schedule: joint })),
      false,
      flag,
    );
    assert.equal(
      inForce(
        parsePlan({
          crossFit: { relabelSteps: 600, [flag]: true },
          schedule: { joint: { steps: 0, lr: 0.001 } },
        }),
      ),
      false,
      flag,
    );
    assert.throws(
      () => parsePlan({ crossFit: { [flag]: true } }),
      new RegExp(`${flag} needs crossFit\\.relabelSteps > 0`),
    );
    assert.throws(
      () => parsePlan({ crossFit: { relabelSteps: 600, [flag]: 1 } }),
      new RegExp(`plan\\.crossFit\\.${flag}: expected true or false`),
    );
  }
  // multi-atlas fusion: neighbours 1..16 (default 3), in force only with the joint stage, never
  // with left-out voxels (they carry no label to register)
  assert.deepEqual(parsePlan({ multiAtlas: {} }).multiAtlas, { neighbours: 3 });
  assert.equal(
    multiAtlasNeighbours(parsePlan({ multiAtlas: { neighbours: 4 }, schedule: joint })),
    4,
  );
  assert.equal(multiAtlasNeighbours(parsePlan({ schedule: joint })), 0);
  assert.equal(
    multiAtlasNeighbours(
      parsePlan({ multiAtlas: { neighbours: 4 }, schedule: { joint: { steps: 0, lr: 0.001 } } }),
    ),
    0,
  );
  assert.throws(() => parsePlan({ multiAtlas: { neighbours: 0 } }), /plan\.multiAtlas\.neighbours/);
  assert.throws(
    () => parsePlan({ multiAtlas: { neighbours: 2.5 } }),
    /plan\.multiAtlas\.neighbours/,
  );
  assert.throws(() => parsePlan({ multiAtlas: { atlases: 3 } }), /multiAtlas/);
  assert.throws(
    () =>
      parsePlan({
        crossFit: { relabelSteps: 600, ignoreDisagreement: true },
        multiAtlas: { neighbours: 3 },
      }),
    /multiAtlas at the joint stage cannot be used with crossFit\.ignoreDisagreement/,
  );
  // after the registration stage (round 0): without the joint stage, and beside left-out voxels
  const off = { joint: { steps: 0, lr: 0.001 } };
  const atRegistration = parsePlan({
    multiAtlas: { neighbours: 2, stages: ['registration'] },
    schedule: off,
  });
  assert.deepEqual(atRegistration.multiAtlas, { neighbours: 2, stages: ['registration'] });
  assert.equal(multiAtlasNeighbours(atRegistration, 'registration'), 2);
  assert.equal(multiAtlasNeighbours(atRegistration, 'joint'), 0);
  assert.equal(multiAtlasNeighbours(atRegistration), 0, 'the joint stage is the default');
  const both = parsePlan({ multiAtlas: { stages: ['joint', 'registration'] }, schedule: joint });
  assert.deepEqual(both.multiAtlas?.stages, ['registration', 'joint'], 'pipeline order');
  assert.equal(multiAtlasNeighbours(both, 'registration'), 3);
  assert.equal(multiAtlasNeighbours(both, 'joint'), 3);
  assert.equal(
    multiAtlasNeighbours(parsePlan({ multiAtlas: { neighbours: 4 } }), 'registration'),
    0,
    'the registration stage only when named',
  );
  assert.deepEqual(
    parsePlan({
      crossFit: { relabelSteps: 600, ignoreDisagreement: true },
      multiAtlas: { stages: ['registration'] },
    }).multiAtlas,
    { neighbours: 3, stages: ['registration'] },
  );
  for (const stages of [[], ['decoder'], ['joint', 'joint'], 'joint']) {
    assert.throws(
      () => parsePlan({ multiAtlas: { stages } }),
      /plan\.multiAtlas\.stages: expected a list of distinct stages out of "registration", "joint"/,
      JSON.stringify(stages),
    );
  }
  // without the joint stage there are no students to relabel with
  assert.equal(
    relabelSteps(
      parsePlan({
        crossFit: { relabelSteps: 600 },
        schedule: { joint: { steps: 0, lr: 0.001 } },
      }),
    ),
    0,
  );
});

test('schedule finalLr: absent = constant rate; half-cosine decay from lr to finalLr; validation', () => {
  const constant = parsePlan({ schedule: { mutual: { steps: 100, lr: 1e-3 } } }).schedule.mutual;
  assert.equal('finalLr' in constant, false, 'no finalLr key unless given (plan.json unchanged)');
  assert.equal(stageLr(constant), 1e-3);
  const s = parsePlan({ schedule: { decoder: { steps: 101, lr: 1e-3, finalLr: 1e-4 } } }).schedule
    .decoder;
  assert.deepEqual(s, { steps: 101, lr: 1e-3, finalLr: 1e-4 });
  const f = stageLr(s);
  assert.equal(typeof f, 'function');
  const at = f as (step: number) => number;
  assert.ok(Math.abs(at(1) - 1e-3) < 1e-12, 'lr at the first step');
  assert.ok(Math.abs(at(51) - 5.5e-4) < 1e-12, 'halfway: the mean of lr and finalLr');
  assert.ok(Math.abs(at(101) - 1e-4) < 1e-12, 'finalLr at the last step');
  for (let k = 2; k <= 101; k++) assert.ok(at(k) < at(k - 1), `falls at step ${k}`);
  assert.equal(stageLr({ steps: 1, lr: 1e-3, finalLr: 1e-4 }) instanceof Function, true);
  assert.equal((stageLr({ steps: 1, lr: 1e-3, finalLr: 1e-4 }) as (k: number) => number)(1), 1e-4);
  assert.equal(stageLr({ steps: 10, lr: 1e-3, finalLr: 1e-3 }), 1e-3, 'equal rates: constant');
  assert.throws(
    () => parsePlan({ schedule: { mutual: { lr: 1e-3, finalLr: 2e-3 } } }),
    /plan\.schedule\.mutual\.finalLr: 0\.002 is above the stage's lr 0\.001/,
  );
  assert.throws(
    () => parsePlan({ schedule: { joint: { finalLr: 0 } } }),
    /plan\.schedule\.joint\.finalLr: expected a number > 0/,
  );
  const st = parsePlan({ selfTraining: { mutual: { steps: 10, lr: 5e-4, finalLr: 5e-5 } } });
  assert.equal(st.selfTraining?.mutual.finalLr, 5e-5);
});
