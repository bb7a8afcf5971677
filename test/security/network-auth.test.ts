/**
 * Security catalogue — network and authentication (docs/security.md, family "network/auth").
 * Each test is one probe an attacker would try against the companion server in front of a real
 * Orthanc, and checks that it is refused, that nothing reached or changed the PACS, and that the
 * server still answers afterwards.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '@rrl/server/app.js';
import { loadConfig } from '@rrl/server/config.js';
import { parseModalities, startOrthanc } from '@rrl/server/pacs/orthanc.js';
import { Sessions } from '@rrl/server/http/guard.js';
import { makeTinySeries, stowBody } from '../integration/server/dicom-data.js';
import { startTestStack, TEST_API_TOKEN, type TestStack } from '../helpers/server.js';
import {
  capturingPacs,
  listeningSockets,
  raw,
  viewerCookie,
  pacsStudyCount,
  serverFor,
} from './probe.js';

const T = { timeout: 60_000 };

const studyCount = (stack: TestStack): Promise<number> => pacsStudyCount(stack.pacs);

describe('security: network and authentication', () => {
  let stack: TestStack;
  let host: string; // 127.0.0.1:PORT
  let studyUID = '';

  before(async () => {
    stack = await startTestStack({ config: { allowedHosts: ['viewer.hospital.example'] } });
    host = new URL(stack.url).host;
    const series = makeTinySeries(2);
    studyUID = series.studyUID;
    const { body, contentType } = stowBody(series.files);
    const r = await raw(stack.url, {
      method: 'POST',
      path: '/dicom-web/studies',
      headers: { 'Content-Type': contentType, Authorization: `Bearer ${TEST_API_TOKEN}` },
      body,
    });
    assert.equal(r.status, 200, r.body);
  });
  after(async () => {
    await stack?.stop();
  });

  test('DNS rebinding: a foreign Host gets 421 on every door, and stores nothing', T, async () => {
    const before = await studyCount(stack);
    const cookie = await viewerCookie(stack.url);
    const { body, contentType } = stowBody(makeTinySeries(1).files);
    const probes: { method: string; path: string; body?: Uint8Array; type?: string }[] = [
      { method: 'GET', path: '/' },
      { method: 'GET', path: '/app-config.js' },
      { method: 'GET', path: `/dicom-web/studies?StudyInstanceUID=${studyUID}` },
      { method: 'GET', path: '/api/session' },
      { method: 'GET', path: '/api/tasks' },
      { method: 'GET', path: '/models/index.json' },
      { method: 'POST', path: '/dicom-web/studies', body, type: contentType },
    ];
    for (const p of probes) {
      for (const evil of [
        'attacker.example',
        `attacker.example:${new URL(stack.url).port}`,
        '10.0.0.7',
      ]) {
        const r = await raw(stack.url, {
          method: p.method,
          path: p.path,
          headers: {
            Host: evil,
            Cookie: cookie,
            Authorization: `Bearer ${TEST_API_TOKEN}`,
            'Sec-Fetch-Site': 'same-origin',
            Origin: `http://${evil}`,
            ...(p.type ? { 'Content-Type': p.type } : {}),
          },
          ...(p.body ? { body: p.body } : {}),
        });
        assert.equal(r.status, 421, `${p.method} ${p.path} with Host ${evil}`);
        assert.doesNotMatch(r.body, new RegExp(studyUID.replace(/\./g, '\\.')), 'no study data');
        assert.doesNotMatch(r.body, /"token"/);
        assert.equal(r.headers['set-cookie'], undefined, 'no session for a foreign host');
      }
    }
    assert.equal(await studyCount(stack), before, 'nothing was stored');
    // Configured names and loopback names still work.
    for (const h of ['viewer.hospital.example', `localhost:${new URL(stack.url).port}`, host]) {
      assert.equal((await raw(stack.url, { path: '/', headers: { Host: h } })).status, 200, h);
    }
  });

  test('nothing that reads or writes patient data is anonymous', T, async () => {
    const qido = await raw(stack.url, { path: `/dicom-web/studies?StudyInstanceUID=${studyUID}` });
    assert.equal(qido.status, 401);
    assert.doesNotMatch(qido.body, new RegExp(studyUID.replace(/\./g, '\\.')));
    assert.match(qido.body, /open the viewer page/);
    const wado = await raw(stack.url, { path: `/dicom-web/studies/${studyUID}/series` });
    assert.equal(wado.status, 401);
    const stow = await raw(stack.url, {
      method: 'POST',
      path: '/dicom-web/studies',
      headers: { 'Content-Type': 'multipart/related; type="application/dicom"; boundary=x' },
      body: Buffer.alloc(1000),
    });
    assert.equal(stow.status, 401);
    for (const p of ['/api/tasks', '/api/jobs', '/api/pacs/series', '/api/capabilities']) {
      assert.equal((await raw(stack.url, { path: p })).status, 401, p);
    }
    // With the viewer's session cookie the same requests work.
    const cookie = await viewerCookie(stack.url);
    const ok = await raw(stack.url, {
      path: `/dicom-web/studies?StudyInstanceUID=${studyUID}`,
      headers: { Cookie: cookie },
    });
    assert.equal(ok.status, 200);
    assert.match(ok.body, new RegExp(studyUID.replace(/\./g, '\\.')));
  });

  test(
    'the session cookie is HttpOnly, SameSite=Strict, and not Secure over plain loopback http',
    T,
    async () => {
      const page = await raw(stack.url, { path: '/viewer?StudyInstanceUIDs=1.2.3' });
      const c = (page.headers['set-cookie'] ?? []).find((x) => x.startsWith('rrl_session='));
      assert.ok(c, 'a viewer route sets the session cookie');
      assert.match(c, /; HttpOnly/);
      assert.match(c, /; SameSite=Strict/);
      assert.match(c, /; Path=\//);
      assert.match(c, /; Max-Age=\d+/);
      assert.doesNotMatch(c, /Secure/);
      // Behind an HTTPS proxy (X-Forwarded-Proto: https) the cookie is Secure.
      const tls = await raw(stack.url, { path: '/', headers: { 'X-Forwarded-Proto': 'https' } });
      assert.match((tls.headers['set-cookie'] ?? []).join('\n'), /; Secure/);
    },
  );

  test(
    '/api/session: same-origin page with the cookie only; its token expires with the session',
    T,
    async () => {
      const cookie = await viewerCookie(stack.url);
      const cases: [Record<string, string>, number][] = [
        [{}, 403],
        [{ 'Sec-Fetch-Site': 'same-origin' }, 401], // no cookie
        [{ Cookie: cookie, 'Sec-Fetch-Site': 'cross-site' }, 403],
        [{ Cookie: cookie, 'Sec-Fetch-Site': 'same-site' }, 403],
        [{ Cookie: cookie, Origin: 'http://attacker.example' }, 403],
        [{ Cookie: cookie, Origin: 'null' }, 403],
        [{ Cookie: cookie, Referer: 'http://attacker.example/x' }, 403],
      ];
      for (const [headers, status] of cases) {
        const r = await raw(stack.url, { path: '/api/session', headers });
        assert.equal(r.status, status, JSON.stringify(headers));
        assert.doesNotMatch(r.body, /"token"/);
      }
      const r = await raw(stack.url, {
        path: '/api/session',
        headers: { Cookie: cookie, 'Sec-Fetch-Site': 'same-origin' },
      });
      assert.equal(r.status, 200);
      const body = JSON.parse(r.body) as { token: string; expiresAt: string };
      assert.notEqual(body.token, TEST_API_TOKEN, 'the API token itself is never handed out');
      assert.ok(Date.parse(body.expiresAt) > Date.now());
      const use = await raw(stack.url, {
        path: '/api/tasks',
        headers: { Authorization: `Bearer ${body.token}` },
      });
      assert.equal(use.status, 200);
    },
  );

  test('forged, expired and clock-skewed sessions are refused', T, async () => {
    const secret = Buffer.from(
      readFileSync(path.join(stack.tmpDir, 'data', 'session-secret'), 'utf8').trim(),
      'base64',
    );
    const ttl = stack.server.config.sessionTtlSeconds;
    const hour = 3600_000;
    const at = (shiftMs: number): Sessions =>
      new Sessions({ secret, ttlSeconds: ttl, now: () => Date.now() + shiftMs });
    const genuine = at(0).issue('c');
    const [p0, kind, exp, nonce, mac] = genuine.split('.');
    const cases: [string, string][] = [
      ['expired', at(-(ttl * 1000 + hour)).issue('c')],
      ['issued by a clock far ahead (lives too long)', at(10 * 24 * hour).issue('c')],
      ['expiry edited', `${p0}.${kind}.${Number(exp) + 86400}.${nonce}.${mac}`],
      [
        'signed with another key',
        new Sessions({ secret: Buffer.alloc(32, 7), ttlSeconds: ttl }).issue('c'),
      ],
      ['bearer token used as cookie', at(0).issue('b')],
      ['garbage', 'x'.repeat(150)],
    ];
    for (const [what, value] of cases) {
      const r = await raw(stack.url, {
        path: '/dicom-web/studies',
        headers: { Cookie: `rrl_session=${value}` },
      });
      assert.equal(r.status, 401, what);
    }
    const ok = await raw(stack.url, {
      path: '/dicom-web/studies',
      headers: { Cookie: `rrl_session=${genuine}` },
    });
    assert.equal(ok.status, 200, 'the genuine cookie works');
  });

  test(
    'cross-site writes with a valid session are refused (CSRF), and no CORS is granted',
    T,
    async () => {
      const before = await studyCount(stack);
      const cookie = await viewerCookie(stack.url);
      const { body, contentType } = stowBody(makeTinySeries(1).files);
      const cases: Record<string, string>[] = [
        { 'Sec-Fetch-Site': 'cross-site' },
        { Origin: 'http://attacker.example' },
        { 'Sec-Fetch-Site': 'same-site', Origin: 'http://sub.127.0.0.1.nip.example' },
      ];
      for (const headers of cases) {
        const r = await raw(stack.url, {
          method: 'POST',
          path: '/dicom-web/studies',
          headers: { ...headers, Cookie: cookie, 'Content-Type': contentType },
          body,
        });
        assert.equal(r.status, 403, JSON.stringify(headers));
        assert.equal(r.headers['access-control-allow-origin'], undefined);
      }
      assert.equal(await studyCount(stack), before, 'nothing stored');
      const pre = await raw(stack.url, {
        method: 'OPTIONS',
        path: '/api/tasks',
        headers: { Origin: 'http://attacker.example', 'Access-Control-Request-Method': 'POST' },
      });
      assert.equal(pre.status, 403);
      assert.equal(pre.headers['access-control-allow-origin'], undefined);
    },
  );

  test('the API token travels in the query string only for the event stream', T, async () => {
    const q = await raw(stack.url, { path: `/api/tasks?access_token=${TEST_API_TOKEN}` });
    assert.equal(q.status, 401);
    const d = await raw(stack.url, { path: `/dicom-web/studies?access_token=${TEST_API_TOKEN}` });
    assert.equal(d.status, 401);
  });

  test(
    'oversized URLs and headers are refused before routing; the server keeps answering',
    T,
    async () => {
      const long = await raw(stack.url, {
        path: `/dicom-web/studies?PatientName=${'A'.repeat(100_000)}`,
        headers: { Authorization: `Bearer ${TEST_API_TOKEN}` },
      }).catch((e: Error) => ({ status: -1, body: e.message, headers: {} }));
      assert.ok(
        long.status === 431 || long.status === 414 || long.status === 400,
        `got ${long.status}`,
      );
      const bigHeader = await raw(stack.url, {
        path: '/',
        headers: { 'X-Filler': 'b'.repeat(40_000) },
      }).catch((e: Error) => ({ status: -1, body: e.message, headers: {} }));
      assert.ok(bigHeader.status === 431 || bigHeader.status === 400, `got ${bigHeader.status}`);
      assert.equal((await raw(stack.url, { path: '/api/health' })).status, 200);
    },
  );

  test("Orthanc's HTTP and DICOM ports listen on the loopback address only", T, () => {
    const sockets = listeningSockets(stack.pacs.pid);
    const ports = new Set(sockets.map((s) => s.port));
    assert.ok(ports.has(stack.pacs.httpPort), `HTTP port listed (${JSON.stringify(sockets)})`);
    assert.ok(ports.has(stack.pacs.dicomPort), `DICOM port listed (${JSON.stringify(sockets)})`);
    for (const s of sockets) {
      assert.ok(
        s.address === '127.0.0.1' || s.address === '::1',
        `${s.address}:${s.port} is loopback`,
      );
    }
  });
});

describe('security: what reaches the PACS through the proxy', () => {
  test(
    'method overrides, spoofed forwarding headers and CRLF in UIDs never reach the PACS',
    T,
    async () => {
      const pacs = await capturingPacs();
      const server = await serverFor({
        dicomWebRoot: pacs.root,
        username: 'svc',
        password: 'secret-pw',
      });
      try {
        const auth = { Authorization: `Bearer ${TEST_API_TOKEN}` };
        const override = await raw(server.url, {
          path: '/dicom-web/studies/1.2.3',
          headers: {
            ...auth,
            'X-HTTP-Method-Override': 'DELETE',
            'X-HTTP-Method': 'DELETE',
            'X-Method-Override': 'DELETE',
            'X-Forwarded-Host': 'attacker.example',
            Forwarded: 'host=attacker.example;proto=https',
            Cookie: 'other=1',
          },
        });
        assert.equal(override.status, 200);
        const injected = await raw(server.url, {
          path: '/dicom-web/studies/1.2.3%0d%0aX-Injected:%20yes/series',
          headers: auth,
        });
        assert.ok(injected.status === 200 || injected.status === 404, String(injected.status));
        assert.ok(pacs.seen.length >= 1);
        for (const r of pacs.seen) {
          assert.equal(r.method, 'GET');
          for (const h of [
            'x-http-method-override',
            'x-http-method',
            'x-method-override',
            'x-injected',
            'cookie',
          ]) {
            assert.equal(r.headers[h], undefined, `${h} must not reach the PACS`);
          }
          assert.equal(
            r.headers['x-forwarded-host'],
            new URL(server.url).host,
            'our Host, not the spoofed one',
          );
          assert.doesNotMatch(String(r.headers.forwarded), /attacker/);
          assert.equal(
            r.headers.authorization,
            'Basic ' + Buffer.from('svc:secret-pw').toString('base64'),
          );
          assert.doesNotMatch(r.url, /[\r\n]/);
        }
        // The API refuses a UID with CR/LF before anything is asked of the PACS.
        const before = pacs.seen.length;
        const task = await fetch(`${server.url}/api/tasks`, {
          method: 'POST',
          headers: { ...auth, 'Content-Type': 'application/json' },
          body: JSON.stringify({
            name: 'x',
            plan: 'tiny',
            atlas: { studyUID: '1.2\r\nX-Injected: yes', seriesUID: '1.2' },
          }),
        });
        assert.equal(task.status, 400);
        assert.equal(pacs.seen.length, before);
      } finally {
        await server.close();
        await pacs.close();
      }
    },
  );
});

describe('security: listening off loopback', () => {
  test(
    'a non-loopback host is refused without TLS or --behind-proxy, with one clear message',
    T,
    () => {
      for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
        assert.throws(
          () => loadConfig({ host }, {}),
          /Refusing to listen on .*HTTPS.*behind-proxy/s,
          host,
        );
      }
      assert.throws(
        () => loadConfig({ host: '0.0.0.0', behindProxy: true }, {}),
        /allowedHosts/,
        'all interfaces need the names clients use',
      );
      const ok = loadConfig(
        { host: '0.0.0.0', behindProxy: true, allowedHosts: ['viewer.hospital.example'] },
        {},
      );
      assert.equal(ok.behindProxy, true);
      assert.equal(loadConfig({ host: '127.0.0.2' }, {}).host, '127.0.0.2');
    },
  );

  test(
    'with a key and certificate the server speaks HTTPS and its cookie is Secure',
    T,
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-tls-'));
      try {
        const key = path.join(dir, 'key.pem');
        const cert = path.join(dir, 'cert.pem');
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'rsa:2048',
            '-nodes',
            '-keyout',
            key,
            '-out',
            cert,
            '-days',
            '1',
            '-subj',
            '/CN=localhost',
          ],
          { stdio: 'ignore' },
        );
        const server = await startServer(
          {
            host: '127.0.0.1',
            port: 0,
            dataDir: path.join(dir, 'data'),
            modelsDir: path.join(dir, 'models'),
            tls: { keyFile: key, certFile: cert },
            pacs: { dicomWebRoot: 'http://127.0.0.1:9/dicom-web' },
          },
          { env: {}, logSink: () => {} },
        );
        try {
          assert.match(server.url, /^https:\/\//);
          const res = await new Promise<{ status: number; cookie: string }>((resolve, reject) => {
            https
              .get(`${server.url}/`, { rejectUnauthorized: false }, (r) => {
                r.resume();
                resolve({
                  status: r.statusCode ?? 0,
                  cookie: (r.headers['set-cookie'] ?? []).join('\n'),
                });
              })
              .on('error', reject);
          });
          assert.equal(res.status, 200);
          assert.match(res.cookie, /rrl_session=.*; Secure/);
        } finally {
          await server.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('security: the PACS DICOM port', () => {
  test(
    'exposed only on request, and then only to the listed modality AE titles',
    { timeout: 60_000 },
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-dicom-'));
      const pacs = await startOrthanc({
        storageDir: dir,
        username: 'u',
        password: 'secret-pw',
        name: 'RRL-Test',
        dicomModalities: parseModalities(['CT01@127.0.0.1:11112']),
      });
      try {
        const sockets = listeningSockets(pacs.pid);
        const dicom = sockets.find((s) => s.port === pacs.dicomPort);
        const web = sockets.find((s) => s.port === pacs.httpPort);
        assert.equal(dicom?.address, '0.0.0.0', 'the DICOM port is on the network');
        assert.equal(web?.address, '127.0.0.1', 'the HTTP port stays on loopback');
        const echo = (calling: string, called: string): boolean => {
          try {
            execFileSync(
              'echoscu',
              ['-aet', calling, '-aec', called, '127.0.0.1', String(pacs.dicomPort)],
              {
                stdio: 'pipe',
                timeout: 20_000,
              },
            );
            return true;
          } catch {
            return false;
          }
        };
        assert.equal(echo('CT01', 'RRL_TEST'), true, 'the listed modality is accepted');
        assert.equal(echo('INTRUDER', 'RRL_TEST'), false, 'an unlisted AE title is refused');
        assert.equal(echo('CT01', 'SOMEONE_ELSE'), false, 'a wrong called AE title is refused');
        assert.throws(() => parseModalities(['CT01@host']), /AET@HOST:PORT/);
      } finally {
        await pacs.stop();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
