/** Server configuration: defaults < JSON file < RRL_* environment < argument, with clear errors. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { ConfigError, defaultConfig, loadConfig } from '@rrl/server/config.js';

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-config-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('defaults: 127.0.0.1:3000, local Orthanc, var/models, the installed OHIF dist', () => {
  const c = loadConfig({}, {});
  const d = defaultConfig();
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 3000);
  assert.equal(c.pacs.dicomWebRoot, 'http://127.0.0.1:8042/dicom-web');
  assert.equal(c.pacs.username, undefined);
  assert.equal(c.modelsDir, d.modelsDir);
  assert.match(c.modelsDir, /var[/\\]models$/);
  assert.match(c.viewerDir, /@ohif[/\\]app[/\\]dist$/);
  assert.equal(c.logLevel, 'info');
});

test('environment overrides defaults, the argument overrides the environment', () => {
  const env = {
    RRL_PORT: '4000',
    RRL_HOST: '0.0.0.0',
    RRL_BEHIND_PROXY: '1',
    RRL_ALLOWED_HOSTS: 'viewer.hospital.example, pacs-viewer',
    RRL_PACS_URL: 'http://127.0.0.1:9999/dicom-web/',
    RRL_PACS_USERNAME: 'svc',
    RRL_PACS_PASSWORD: 'pw',
    RRL_MODELS_DIR: '/srv/models',
    RRL_LOG_LEVEL: 'warn',
  };
  const c = loadConfig({}, env);
  assert.equal(c.port, 4000);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.behindProxy, true);
  assert.deepEqual(c.allowedHosts, ['viewer.hospital.example', 'pacs-viewer']);
  assert.equal(c.pacs.dicomWebRoot, 'http://127.0.0.1:9999/dicom-web', 'trailing slash dropped');
  assert.equal(c.pacs.username, 'svc');
  assert.equal(c.pacs.password, 'pw');
  assert.equal(c.modelsDir, '/srv/models');
  assert.equal(c.logLevel, 'warn');
  const o = loadConfig({ port: 0, pacs: { password: 'other' } }, env);
  assert.equal(o.port, 0);
  assert.equal(o.pacs.password, 'other');
  assert.equal(o.pacs.username, 'svc', 'pacs keys merge one by one');
});

test('a JSON config file (RRL_CONFIG) is read; relative folders resolve against the file', () =>
  withTmp(async (dir) => {
    const file = path.join(dir, 'server.json');
    await writeFile(
      file,
      JSON.stringify({
        port: 3100,
        modelsDir: 'models',
        pacs: { dicomWebRoot: 'https://pacs.example/dicom-web', username: 'a', password: 'b' },
      }),
    );
    const c = loadConfig({}, { RRL_CONFIG: file });
    assert.equal(c.port, 3100);
    assert.equal(c.modelsDir, path.join(dir, 'models'));
    assert.equal(c.pacs.dicomWebRoot, 'https://pacs.example/dicom-web');
    // The environment still wins over the file.
    assert.equal(loadConfig({}, { RRL_CONFIG: file, RRL_PORT: '3200' }).port, 3200);
  }));

test('invalid settings fail with a message naming the setting and the fix', () =>
  withTmp(async (dir) => {
    const cases: [() => unknown, RegExp][] = [
      [() => loadConfig({}, { RRL_PORT: 'abc' }), /RRL_PORT must be an integer.*"abc"/],
      [() => loadConfig({ port: 70000 }, {}), /port must be an integer from 0 to 65535.*70000/],
      [() => loadConfig({}, { RRL_PACS_URL: 'localhost:8042' }), /must use http or https/],
      [() => loadConfig({}, { RRL_PACS_URL: 'not a url' }), /RRL_PACS_URL.*absolute http/],
      [
        () => loadConfig({}, { RRL_PACS_URL: 'http://u:p@127.0.0.1:8042/dicom-web' }),
        /must not carry credentials.*RRL_PACS_USERNAME/,
      ],
      [() => loadConfig({}, { RRL_PACS_USERNAME: 'x' }), /username and pacs.password go together/],
      [() => loadConfig({}, { RRL_LOG_LEVEL: 'loud' }), /logLevel must be one of.*"loud"/],
      [
        () => loadConfig({ viewerDir: path.join(dir, 'missing') }, {}),
        /viewerDir must be an existing folder.*npm install/,
      ],
      [
        () => loadConfig({}, { RRL_CONFIG: path.join(dir, 'nope.json') }),
        /Cannot read the config file/,
      ],
    ];
    for (const [fn, message] of cases) {
      assert.throws(fn, (e: unknown) => e instanceof ConfigError && message.test(e.message));
    }
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, '{ "port": 1, ');
    assert.throws(() => loadConfig({}, { RRL_CONFIG: bad }), /not valid JSON/);
    await writeFile(bad, JSON.stringify({ prot: 1 }));
    assert.throws(() => loadConfig({}, { RRL_CONFIG: bad }), /Unknown key "prot".*expected one of/);
    await writeFile(bad, JSON.stringify({ pacs: { url: 'x' } }));
    assert.throws(() => loadConfig({}, { RRL_CONFIG: bad }), /Unknown key "pacs.url"/);
  }));
