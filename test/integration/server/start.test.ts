/**
 * The product start (scripts/start.ts, what `bash scripts/start.sh` runs after installing): Orthanc
 * + model + server come up and print the viewer URL; SIGINT/SIGTERM stop everything (Orthanc
 * included); a second start reuses var/ (same credentials, same studies, same model).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { cleanUpProducts, startProduct, startProductExpectingExit } from '../../helpers/product.js';
import { makeTinySeries, stowThrough } from './dicom-data.js';

test(
  'product start: comes up, refuses a second start on the same var/, stops cleanly on SIGINT/SIGTERM, reuses var/, cleans up after a hard kill',
  { timeout: 300_000 },
  async () => {
    const varDir = await mkdtemp(path.join(os.tmpdir(), 'rrl-var-'));
    try {
      // First start: fresh var/.
      const first = await startProduct(varDir);
      const orthancPid = Number((await readFile(path.join(varDir, 'orthanc.pid'), 'utf8')).trim());
      assert.ok(existsSync(`/proc/${orthancPid}`), 'Orthanc runs');
      const secretsFile = path.join(varDir, 'secrets.json');
      assert.equal((await stat(secretsFile)).mode & 0o777, 0o600, 'secrets.json is private');
      const secrets = await readFile(secretsFile, 'utf8');
      assert.ok(
        !first.output().includes(JSON.parse(secrets).orthanc.password),
        'password not printed',
      );

      const health = (await (await fetch(`${first.url}/api/health`)).json()) as {
        status: string;
      };
      assert.equal(health.status, 'ok');
      const models = (await (await fetch(`${first.url}/models/index.json`)).json()) as {
        id: string;
        kind: string;
      }[];
      assert.equal(
        models.length,
        1,
        'the test-fixture model was written into the empty models folder',
      );
      assert.equal(models[0]?.kind, 'test-fixture');
      const modelDir = path.join(varDir, 'models', models[0]?.id ?? '');
      const modelMtime = (await stat(path.join(modelDir, 'model.onnx'))).mtimeMs;

      // Scripts on the server machine use the API token the server keeps in its data folder.
      const token = (await readFile(path.join(varDir, 'server', 'api-token'), 'utf8')).trim();
      const series = makeTinySeries(2);
      await stowThrough(first.url, series.files, token);

      // A second start on the same data folder finds the running one, says where it is and exits
      // without touching it.
      const again = await startProductExpectingExit(varDir);
      assert.equal(again.code, 3, again.output);
      assert.match(again.output, /already runs on this data folder/);
      assert.match(again.output, new RegExp(first.url.replace(/[.]/g, '\\.')));
      assert.ok(existsSync(`/proc/${orthancPid}`), 'the running Orthanc was left alone');
      assert.equal((await fetch(`${first.url}/api/health`)).status, 200, 'still healthy');

      first.child.kill('SIGINT');
      const firstExit = await first.exit;
      assert.equal(firstExit.code, 0, first.output());
      assert.ok(!existsSync(`/proc/${orthancPid}`), 'Orthanc stopped with the product');
      assert.ok(!existsSync(path.join(varDir, 'orthanc.pid')), 'pid file removed');

      // What an earlier version left readable by others is made private on the next start.
      const onnx = path.join(modelDir, 'model.onnx');
      await chmod(onnx, 0o644);
      await chmod(modelDir, 0o755);
      // Second start: same var/.
      const second = await startProduct(varDir);
      assert.equal((await stat(onnx)).mode & 0o777, 0o600, 'model file tightened');
      assert.equal((await stat(modelDir)).mode & 0o777, 0o700, 'model folder tightened');
      assert.equal(await readFile(secretsFile, 'utf8'), secrets, 'same credentials');
      const qido = (await (
        await fetch(`${second.url}/dicom-web/studies?StudyInstanceUID=${series.studyUID}`, {
          headers: { Authorization: `Bearer ${token}` },
        })
      ).json()) as unknown[];
      assert.equal(qido.length, 1, 'the study stored in the first run is still there');
      assert.deepEqual(await readdir(path.join(varDir, 'models')), [models[0]?.id]);
      assert.equal((await stat(path.join(modelDir, 'model.onnx'))).mtimeMs, modelMtime);
      const secondPid = Number((await readFile(path.join(varDir, 'orthanc.pid'), 'utf8')).trim());
      // Killed hard (no chance to clean up): its Orthanc is left behind...
      second.child.kill('SIGKILL');
      await second.exit;
      assert.ok(existsSync(`/proc/${secondPid}`), 'the orphaned Orthanc still runs');

      // ...and the next start stops that orphan before starting its own.
      const third = await startProduct(varDir);
      assert.match(third.output(), new RegExp(`stopping the Orthanc \\(pid ${secondPid}\\)`));
      assert.ok(!existsSync(`/proc/${secondPid}`), 'the orphan is gone');
      const thirdPid = Number((await readFile(path.join(varDir, 'orthanc.pid'), 'utf8')).trim());
      assert.notEqual(thirdPid, secondPid);
      const thirdHealth = (await (await fetch(`${third.url}/api/health`)).json()) as {
        status: string;
      };
      assert.equal(thirdHealth.status, 'ok');
      third.child.kill('SIGTERM');
      assert.equal((await third.exit).code, 0, third.output());
      assert.ok(!existsSync(`/proc/${thirdPid}`), 'Orthanc stopped');
    } finally {
      // A failed assertion must not leave a product (and its Orthanc) running.
      await cleanUpProducts(varDir);
    }
  },
);
