/**
 * The API's settings (config.ts: token, provider, slots, limits from RRL_* and the config file)
 * and the series checks every training series passes (jobs/validate.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError, loadConfig } from '@rrl/server/config.js';
import { seriesProblem } from '@rrl/server/jobs/validate.js';

test('API settings come from RRL_* variables and are validated', () => {
  const d = loadConfig({}, {});
  assert.equal(d.apiToken, undefined);
  assert.equal(d.trainingProvider, 'auto');
  assert.equal(d.jobSlots, 1);
  assert.equal(d.maxSeriesPerJob, 200);
  const c = loadConfig(
    {},
    {
      RRL_API_TOKEN: 'a-token-of-24-characters',
      RRL_TRAINING_PROVIDER: 'webgpu',
      RRL_JOB_SLOTS: '2',
      RRL_MAX_SERIES_PER_JOB: '50',
      RRL_DATABASE: '/tmp/x/state.sqlite',
    },
  );
  assert.equal(c.apiToken, 'a-token-of-24-characters');
  assert.equal(c.trainingProvider, 'webgpu');
  assert.equal(c.jobSlots, 2);
  assert.equal(c.maxSeriesPerJob, 50);
  assert.equal(c.databaseFile, '/tmp/x/state.sqlite');
  assert.throws(() => loadConfig({}, { RRL_API_TOKEN: 'short' }), /at least 16 characters/);
  assert.throws(
    () => loadConfig({}, { RRL_TRAINING_PROVIDER: 'tpu' }),
    /auto, cuda, webgpu, cpu.*"tpu"/,
  );
  assert.throws(() => loadConfig({}, { RRL_JOB_SLOTS: 'two' }), ConfigError);
  assert.throws(() => loadConfig({ jobSlots: 0 }, {}), /jobSlots must be an integer from 1/);
});

test('series checks: modality, slices, size, spacing, anisotropy, geometry', () => {
  const geometry = {
    dims: [64, 64, 40] as [number, number, number],
    spacing: [1, 1, 1.5] as [number, number, number],
    origin: [0, 0, 0] as [number, number, number],
    direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ],
  };
  const ok = { seriesUID: '1.2.3', modality: 'MR', geometry };
  assert.equal(seriesProblem(ok, 'MR'), undefined);
  assert.match(
    seriesProblem({ ...ok, modality: 'CT' }, 'MR') ?? '',
    /modality is CT, the task needs MR/,
  );
  assert.match(
    seriesProblem({ ...ok, geometry: { ...geometry, dims: [64, 64, 4] } }, 'MR') ?? '',
    /4 slices/,
  );
  assert.match(
    seriesProblem({ ...ok, geometry: { ...geometry, dims: [8, 64, 40] } }, 'MR') ?? '',
    /image size 8×64/,
  );
  assert.match(
    seriesProblem({ ...ok, geometry: { ...geometry, spacing: [1, 1, 12] } }, 'MR') ?? '',
    /at most 10 mm/,
  );
  assert.match(
    seriesProblem({ ...ok, geometry: { ...geometry, spacing: [0.5, 0.5, 6] } }, 'MR') ?? '',
    /too anisotropic/,
  );
  const s = Math.SQRT1_2;
  assert.match(
    seriesProblem(
      { ...ok, geometry: { ...geometry, direction: [1, 0, 0, 0, 1, 0, 0, s, s] } },
      'MR',
    ) ?? '',
    /not orthogonal/,
  );
});
