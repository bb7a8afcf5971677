/**
 * Security catalogue — PACS faults (docs/security.md, family "PACS faults"): the PACS is down,
 * hangs, or dies under the running product. The server must say so clearly (without its internal
 * addresses), report it in /api/health with 503, keep serving the viewer, and — under
 * scripts/start.ts — bring Orthanc back by itself.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { cleanUpProducts, startProduct } from '../helpers/product.js';
import { startTestStack, TEST_API_TOKEN } from '../helpers/server.js';
import { raw, serverFor } from './probe.js';
import { labelmapKey, saveIdentityFor } from '@rrl/extension/seg/saveToPacs.js';
import { writeBinarySeg } from '@rrl/core/dicom/seg.js';
import { demoSegments } from '@rrl/server/demo/labels.js';
import { pacsClient, storeSeries } from '../integration/api/data.js';
import { stowBody } from '../integration/server/dicom-data.js';

const auth = { Authorization: `Bearer ${TEST_API_TOKEN}` };

describe('security: PACS faults', () => {
  test(
    'PACS down: 502 without internal addresses, health 503, the viewer still served',
    { timeout: 60_000 },
    async () => {
      const stack = await startTestStack();
      try {
        await stack.pacs.stop();
        const pacsPort = String(stack.pacs.httpPort);
        for (const p of ['/dicom-web/studies', '/api/pacs/series?modality=MR']) {
          const r = await raw(stack.url, { path: p, headers: auth });
          assert.equal(r.status, 502, `${p}: ${r.body}`);
          assert.match(r.body, /PACS/);
          assert.ok(
            !r.body.includes(pacsPort),
            `${p} must not reveal the PACS's address: ${r.body}`,
          );
          assert.doesNotMatch(r.body, /\/tmp\/|\/work\/|\/home\//, 'no file paths');
        }
        const health = await raw(stack.url, { path: '/api/health' });
        assert.equal(health.status, 503);
        const h = JSON.parse(health.body) as { status: string; problems: string[] };
        assert.equal(h.status, 'degraded');
        assert.ok(
          h.problems.some((x) => /PACS is not reachable/.test(x)),
          health.body,
        );
        assert.equal((await raw(stack.url, { path: '/' })).status, 200);
      } finally {
        await stack.stop();
      }
    },
  );

  test(
    'a retried Save to PACS (same content, so the same SOP Instance UID) stores one SEG',
    { timeout: 60_000 },
    async () => {
      const stack = await startTestStack();
      try {
        const client = pacsClient(stack.pacs);
        const atlas = await storeSeries(client, { description: 'T1 save retry' });
        const a = atlas.labels.slice();
        const identity = saveIdentityFor(undefined, labelmapKey('seg', a), () => 9001);
        const again = saveIdentityFor(identity, labelmapKey('seg', a.slice()), () => 9002);
        for (const id of [identity, again]) {
          const seg = writeBinarySeg({
            sourceInstances: atlas.datasets,
            labelmap: a,
            segments: demoSegments('MANUAL').slice(0, 2),
            seriesDescription: 'One-shot SEG',
            seriesNumber: id.seriesNumber,
            seriesInstanceUID: id.seriesInstanceUID,
            sopInstanceUID: id.sopInstanceUID,
          });
          // What the viewer does: STOW through the companion server.
          const { body, contentType } = stowBody([seg.bytes]);
          const r = await raw(stack.url, {
            method: 'POST',
            path: '/dicom-web/studies',
            headers: { ...auth, 'Content-Type': contentType },
            body,
          });
          assert.equal(r.status, 200, r.body);
        }
        const segs = await client.qidoSeries(atlas.studyUID, { Modality: 'SEG' });
        assert.equal(segs.length, 1, 'one SEG series');
        assert.equal(
          (await client.qidoInstances(atlas.studyUID, identity.seriesInstanceUID)).length,
          1,
          'one SEG instance',
        );
      } finally {
        await stack.stop();
      }
    },
  );

  test(
    'a PACS that accepts connections and never answers: 504 after the response timeout; the server answers meanwhile',
    { timeout: 60_000 },
    async () => {
      const sockets = new Set<net.Socket>();
      const silent = net.createServer((s) => {
        sockets.add(s);
        s.on('error', () => undefined);
      });
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      const port = (silent.address() as net.AddressInfo).port;
      const server = await serverFor(
        { dicomWebRoot: `http://127.0.0.1:${port}/dicom-web` },
        { proxy: { responseTimeoutMs: 1500 } },
      );
      try {
        const hung = raw(server.url, { path: '/dicom-web/studies', headers: auth });
        const page = await raw(server.url, { path: '/' });
        assert.equal(page.status, 200, 'the viewer is served while the PACS hangs');
        const r = await hung;
        assert.equal(r.status, 504);
        assert.match(r.body, /did not answer within/);
        assert.ok(!r.body.includes(String(port)));
      } finally {
        await server.close();
        for (const s of sockets) s.destroy();
        silent.close();
      }
    },
  );

  test(
    'Orthanc killed under the running product is restarted on the same ports; the data survives',
    { timeout: 180_000 },
    async () => {
      const varDir = await mkdtemp(path.join(os.tmpdir(), 'rrl-var-'));
      try {
        const product = await startProduct(varDir);
        const token = (await readFile(path.join(varDir, 'server', 'api-token'), 'utf8')).trim();
        const pidFile = path.join(varDir, 'orthanc.pid');
        const first = Number((await readFile(pidFile, 'utf8')).trim());
        process.kill(first, 'SIGKILL');
        // Down: the proxy says so; then the supervisor brings Orthanc back.
        let sawDown = false;
        let back = false;
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const h = await raw(product.url, { path: '/api/health' });
          if (h.status === 503) sawDown = true;
          const pid = Number((await readFile(pidFile, 'utf8').catch(() => '0')).trim());
          if (h.status === 200 && pid !== first && existsSync(`/proc/${pid}`)) {
            back = true;
            break;
          }
          await new Promise((r) => setTimeout(r, 250));
        }
        assert.ok(back, `Orthanc came back:\n${product.output()}`);
        assert.ok(sawDown || /restarting it/.test(product.output()), 'the outage was noticed');
        assert.match(product.output(), /Orthanc is back/);
        const qido = await raw(product.url, {
          path: '/dicom-web/studies',
          headers: { Authorization: `Bearer ${token}` },
        });
        assert.equal(qido.status, 200);
        product.child.kill('SIGTERM');
        assert.equal((await product.exit).code, 0, product.output());
      } finally {
        // A failed assertion must not leave a product (and its Orthanc) running.
        await cleanUpProducts(varDir);
      }
    },
  );
});
