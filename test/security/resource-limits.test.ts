/**
 * Security catalogue — resource limits (docs/security.md, family "resource limits"): uploads that
 * are too large, too slow or too many, and the privacy of what the server writes to disk. Each
 * probe checks the refusal, that nothing half-written reached the PACS, and that the PACS and the
 * server still answer.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { makeTinySeries, stowBody } from '../integration/server/dicom-data.js';
import { startTestStack, TEST_API_TOKEN, type TestStack } from '../helpers/server.js';
import { raw, pacsStudyCount } from './probe.js';

const MAX_STOW = 2 * 1024 * 1024;
const MIN_RATE = 64 * 1024;

const studyCount = (stack: TestStack): Promise<number> => pacsStudyCount(stack.pacs);

/**
 * A STOW that sends `first` bytes at once and then one byte every `everyMs` (a slowloris), until
 * the server answers; resolves with the status (or -1 when the connection was cut).
 */
function dribbleStow(
  url: string,
  contentType: string,
  body: Uint8Array,
  everyMs: number,
  first = 1000,
): { done: Promise<{ status: number; body: string; ms: number }>; stop(): void } {
  const u = new URL(url);
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  let req: http.ClientRequest | undefined;
  const done = new Promise<{ status: number; body: string; ms: number }>((resolve) => {
    req = http.request(
      {
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path: '/dicom-web/studies',
        headers: {
          Authorization: `Bearer ${TEST_API_TOKEN}`,
          'Content-Type': contentType,
          'Content-Length': String(body.length),
        },
      },
      (res) => {
        clearInterval(timer);
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: text, ms: Date.now() - t0 }),
        );
        res.on('error', () =>
          resolve({ status: res.statusCode ?? -1, body: text, ms: Date.now() - t0 }),
        );
      },
    );
    req.on('error', () => {
      clearInterval(timer);
      resolve({ status: -1, body: '', ms: Date.now() - t0 });
    });
    req.write(body.subarray(0, first));
    let sent = first;
    timer = setInterval(() => {
      if (sent < body.length - 1) req?.write(body.subarray(sent, ++sent));
    }, everyMs);
  });
  return {
    done,
    stop: () => {
      clearInterval(timer);
      req?.destroy();
    },
  };
}

describe('security: resource limits', () => {
  let stack: TestStack;

  before(async () => {
    stack = await startTestStack({
      config: {
        maxStowBytes: MAX_STOW,
        minUploadBytesPerSecond: MIN_RATE,
        maxUploadsPerClient: 2,
        maxUploads: 4,
      },
    });
  });
  after(async () => {
    await stack?.stop();
  });

  test(
    'a STOW that declares more than maxStowBytes gets 413 at once; nothing is stored',
    { timeout: 30_000 },
    async () => {
      const before = await studyCount(stack);
      const { body, contentType } = stowBody(makeTinySeries(40, 256, 256).files);
      assert.ok(body.length > MAX_STOW);
      const r = await raw(stack.url, {
        method: 'POST',
        path: '/dicom-web/studies',
        headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': contentType },
        body,
      }).catch((e: Error) => ({ status: -1, body: e.message, headers: {} }));
      assert.equal(r.status, 413, r.body);
      assert.match(r.body, /maxStowBytes/);
      assert.equal(await studyCount(stack), before);
    },
  );

  test(
    'a chunked STOW that grows past maxStowBytes is cut off with 413; nothing is stored',
    { timeout: 30_000 },
    async () => {
      const before = await studyCount(stack);
      const { body, contentType } = stowBody(makeTinySeries(40, 256, 256).files);
      const u = new URL(stack.url);
      const status = await new Promise<number>((resolve) => {
        const req = http.request(
          {
            host: u.hostname,
            port: u.port,
            method: 'POST',
            path: '/dicom-web/studies',
            headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': contentType },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', () => resolve(-1));
        for (let i = 0; i < body.length; i += 256 * 1024)
          req.write(body.subarray(i, i + 256 * 1024));
        req.end();
      });
      assert.equal(status, 413);
      assert.equal(await studyCount(stack), before);
    },
  );

  test(
    'slowloris STOWs: a third concurrent upload gets 429, slow ones are cut off (408), the PACS stays responsive and stores nothing',
    { timeout: 60_000 },
    async () => {
      const before = await studyCount(stack);
      const { body, contentType } = stowBody(makeTinySeries(2).files);
      const slow = [0, 1].map(() => dribbleStow(stack.url, contentType, body, 200));
      await new Promise((r) => setTimeout(r, 500));
      const third = await raw(stack.url, {
        method: 'POST',
        path: '/dicom-web/studies',
        headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': contentType },
        body,
      }).catch((e: Error) => ({
        status: -1,
        body: e.message,
        headers: {} as http.IncomingHttpHeaders,
      }));
      assert.equal(third.status, 429, third.body);
      assert.equal(third.headers['retry-after'], '5');
      // Meanwhile the PACS answers promptly: the dribbled bytes never reached it.
      const t0 = Date.now();
      await studyCount(stack);
      assert.ok(Date.now() - t0 < 2000, `the PACS answered in ${Date.now() - t0} ms`);
      const results = await Promise.all(slow.map((s) => s.done));
      for (const r of results) {
        assert.equal(r.status, 408, r.body);
        assert.match(r.body, /too slowly/);
        assert.ok(r.ms < 20_000, `cut off after ${r.ms} ms`);
      }
      slow.forEach((s) => s.stop());
      assert.equal(await studyCount(stack), before, 'nothing half-written in the PACS');
      // Once they are gone the client may upload again.
      const ok = await raw(stack.url, {
        method: 'POST',
        path: '/dicom-web/studies',
        headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': contentType },
        body,
      });
      assert.equal(ok.status, 200, ok.body);
      assert.equal(await studyCount(stack), before + 1);
    },
  );

  test(
    'slowloris on the headers: a request whose headers dribble in is cut off (408) within 30 s',
    { timeout: 60_000 },
    async () => {
      const u = new URL(stack.url);
      const t0 = Date.now();
      const answer = await new Promise<string>((resolve) => {
        const sock = net.connect(Number(u.port), u.hostname);
        let got = '';
        let timer: NodeJS.Timeout | undefined;
        sock.on('connect', () => {
          sock.write(`GET /api/health HTTP/1.1\r\nHost: ${u.host}\r\n`);
          let n = 0;
          timer = setInterval(() => sock.write(`X-Slow-${n++}: 1\r\n`), 2000);
        });
        sock.on('data', (c: Buffer) => (got += c.toString('utf8')));
        const done = (): void => {
          clearInterval(timer);
          resolve(got);
        };
        sock.on('close', done);
        sock.on('error', done);
      });
      const ms = Date.now() - t0;
      assert.ok(ms < 30_000, `cut off after ${ms} ms`);
      assert.match(answer, /^HTTP\/1\.1 408/);
      assert.equal((await raw(stack.url, { path: '/api/health' })).status, 200);
    },
  );

  test('an API body over maxRequestBytes gets 413', { timeout: 30_000 }, async () => {
    const r = await raw(stack.url, {
      method: 'POST',
      path: '/api/tasks',
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(600_000) }),
    });
    assert.equal(r.status, 413);
    assert.equal((await raw(stack.url, { path: '/api/health' })).status, 200);
  });

  test(
    'what the server writes is private: folders 0700, secrets and the database 0600',
    { timeout: 30_000 },
    async () => {
      // Create a task-less job store entry and a session so that every kind of file exists.
      await raw(stack.url, { path: '/' });
      const data = path.join(stack.tmpDir, 'data');
      const mode = (p: string): number => statSync(p).mode & 0o777;
      assert.equal(mode(data), 0o700, 'data folder');
      assert.equal(mode(stack.modelsDir), 0o700, 'models folder');
      for (const f of ['session-secret', 'state.sqlite']) {
        assert.equal(mode(path.join(data, f)), 0o600, f);
      }
    },
  );
});
