/**
 * The companion server against a real Orthanc: viewer + app-config, plugin files, models, the
 * DICOMweb proxy (auth added server-side, Host kept for BulkDataURIs, STOW streamed), PACS errors
 * and logs without query strings or patient identifiers.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import vm from 'node:vm';

import { makeTestModel } from '../../fixtures/test-model.js';
import {
  authedFetch as fetch,
  startTestStack,
  TEST_API_TOKEN,
  type TestStack,
} from '../../helpers/server.js';
import { raw } from '../../security/probe.js';
import {
  makeTinySeries,
  SECRET_PATIENT_ID,
  SECRET_PATIENT_NAME,
  stowBody,
  stowThrough,
} from './dicom-data.js';

function assertIsolation(res: Response, what: string): void {
  assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin', `COOP on ${what}`);
  assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp', `COEP on ${what}`);
  assert.equal(res.headers.get('cross-origin-resource-policy'), 'same-origin', `CORP on ${what}`);
}

/**
 * A raw GET that keeps the path exactly as written (fetch would normalise `..`) and may set Host
 * (fetch may not).
 */
function rawGet(
  url: string,
  rawPath: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return raw(url, {
    path: rawPath,
    headers: { Authorization: `Bearer ${TEST_API_TOKEN}`, ...headers },
  });
}

interface WindowConfig {
  extensions: string[];
  modes: string[];
  showStudyList: boolean;
  investigationalUseDialog: { option: string };
  defaultDataSourceName: string;
  dataSources: { sourceName: string; configuration: Record<string, unknown> }[];
}

async function loadAppConfig(url: string, host?: string): Promise<WindowConfig> {
  const res = await rawGet(url, '/app-config.js', host ? { Host: host } : {});
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/javascript/);
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal(res.headers['cross-origin-embedder-policy'], 'require-corp');
  assert.equal(res.headers['cross-origin-opener-policy'], 'same-origin');
  const sandbox = { window: {} as { config?: WindowConfig } };
  vm.runInNewContext(res.body, sandbox);
  assert.ok(sandbox.window.config, 'app-config.js sets window.config');
  // Copy out of the sandbox's realm (deepStrictEqual compares prototypes).
  return JSON.parse(JSON.stringify(sandbox.window.config)) as WindowConfig;
}

describe('companion server with a real Orthanc', () => {
  let stack: TestStack;
  let pluginsDir: string;

  before(async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const os = await import('node:os');
    pluginsDir = await mkdtemp(path.join(os.tmpdir(), 'rrl-plugins-'));
    stack = await startTestStack({ pluginsDir, config: { allowedHosts: ['viewer.example'] } });
  });
  after(async () => {
    await stack?.stop();
    const { rm } = await import('node:fs/promises');
    if (pluginsDir) await rm(pluginsDir, { recursive: true, force: true });
  });

  test('serves the OHIF index.html with COOP/COEP/CORP, and SPA routes fall back to it', async () => {
    const root = await fetch(`${stack.url}/`);
    assert.equal(root.status, 200);
    assert.match(root.headers.get('content-type') ?? '', /^text\/html/);
    assertIsolation(root, '/');
    const html = await root.text();
    assert.match(html, /<script[^>]+src="\/app-config\.js"/);
    assert.match(html, /app\.bundle\.[0-9a-f]+\.js/);

    for (const route of [
      '/viewer?StudyInstanceUIDs=1.2.3',
      '/segmentation',
      '/oneshot/x',
      '/viewer/1.2.840.10008.5.1.4',
    ]) {
      const res = await fetch(`${stack.url}${route}`);
      assert.equal(res.status, 200, route);
      assert.equal(await res.text(), html, `${route} serves index.html`);
    }
    const missing = await fetch(`${stack.url}/no-such-bundle.js`);
    assert.equal(missing.status, 404);
    assert.equal((await fetch(`${stack.url}/assets/none.png`)).status, 404);
    assertIsolation(missing, 'a 404');
  });

  test('hashed viewer bundles are cacheable for a year and answer If-None-Match with 304', async () => {
    const html = await (await fetch(`${stack.url}/`)).text();
    const bundle = /src="(\/app\.bundle\.[0-9a-f]+\.js)"/.exec(html)?.[1];
    assert.ok(bundle, 'index.html names the app bundle');
    const res = await fetch(`${stack.url}${bundle}`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(res.headers.get('cache-control') ?? '', /immutable/);
    const etag = res.headers.get('etag');
    assert.ok(etag);
    const again = await fetch(`${stack.url}${bundle}`, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
  });

  test('app-config.js points the dicomweb data source at this origin and loads our plugins', async () => {
    let cfg = await loadAppConfig(stack.url);
    assert.deepEqual(cfg.extensions, [], 'no extension bundle built yet → none listed');
    assert.deepEqual(cfg.modes, []);
    assert.equal(cfg.showStudyList, true);
    assert.equal(cfg.investigationalUseDialog.option, 'never');
    const ds = cfg.dataSources.find((d) => d.sourceName === cfg.defaultDataSourceName);
    assert.ok(ds, 'the default data source exists');
    assert.equal(ds.configuration.qidoRoot, `${stack.url}/dicom-web`);
    assert.equal(ds.configuration.wadoRoot, `${stack.url}/dicom-web`);

    // The origin follows the browser's Host header (e.g. a LAN name).
    cfg = await loadAppConfig(stack.url, 'viewer.example:8080');
    const ds2 = cfg.dataSources.find((d) => d.sourceName === cfg.defaultDataSourceName);
    assert.equal(ds2?.configuration.qidoRoot, 'http://viewer.example:8080/dicom-web');

    await mkdir(path.join(pluginsDir, 'extension'), { recursive: true });
    await mkdir(path.join(pluginsDir, 'mode'), { recursive: true });
    await writeFile(path.join(pluginsDir, 'extension', 'index.js'), 'export default {};\n');
    await writeFile(path.join(pluginsDir, 'mode', 'index.js'), 'export default {};\n');
    cfg = await loadAppConfig(stack.url);
    assert.deepEqual(cfg.extensions, ['/plugins/extension/index.js']);
    assert.deepEqual(cfg.modes, ['/plugins/mode/index.js']);
  });

  test('plugin files are served with the right content types', async () => {
    const ext = path.join(pluginsDir, 'extension');
    await mkdir(path.join(ext, 'ort'), { recursive: true });
    await mkdir(path.join(pluginsDir, 'mode'), { recursive: true });
    await writeFile(path.join(ext, 'index.js'), 'export default {};\n');
    await writeFile(path.join(pluginsDir, 'mode', 'index.js'), 'export default {};\n');
    await writeFile(path.join(ext, 'inference-worker.js'), 'self.onmessage = () => {};\n');
    await writeFile(path.join(ext, 'ort', 'ort-wasm-simd-threaded.mjs'), 'export {};\n');
    const wasm = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    await writeFile(path.join(ext, 'ort', 'ort-wasm-simd-threaded.wasm'), wasm);
    await writeFile(path.join(ext, '123.chunk.0123456789abcdef.js'), '/* chunk */\n');
    const cases: [string, RegExp][] = [
      ['/plugins/extension/index.js', /^text\/javascript/],
      ['/plugins/extension/inference-worker.js', /^text\/javascript/],
      ['/plugins/extension/ort/ort-wasm-simd-threaded.mjs', /^text\/javascript/],
      ['/plugins/extension/ort/ort-wasm-simd-threaded.wasm', /^application\/wasm$/],
      ['/plugins/mode/index.js', /^text\/javascript/],
    ];
    for (const [p, type] of cases) {
      const res = await fetch(stack.url + p);
      assert.equal(res.status, 200, p);
      assert.match(res.headers.get('content-type') ?? '', type, p);
      assertIsolation(res, p);
      assert.equal(res.headers.get('cache-control'), 'no-cache', `${p} revalidates`);
      await res.arrayBuffer();
    }
    const wasmRes = await fetch(`${stack.url}/plugins/extension/ort/ort-wasm-simd-threaded.wasm`);
    assert.deepEqual(Buffer.from(await wasmRes.arrayBuffer()), wasm);
    const hashed = await fetch(`${stack.url}/plugins/extension/123.chunk.0123456789abcdef.js`);
    assert.match(hashed.headers.get('cache-control') ?? '', /immutable/);
    await hashed.arrayBuffer();

    const missing = await fetch(`${stack.url}/plugins/extension/nope.js`);
    assert.equal(missing.status, 404);
    const body = (await missing.json()) as { error: { message: string } };
    assert.match(body.error.message, /webpack/);
    const escape = await rawGet(stack.url, '/plugins/extension/../../package.json');
    assert.equal(escape.status, 404);
    const escapeEncoded = await rawGet(stack.url, '/plugins/extension/%2e%2e/%2e%2e/package.json');
    assert.equal(escapeEncoded.status, 404);
  });

  test('models: index.json lists valid models only; model.onnx has a sha256 ETag', async () => {
    const empty = await fetch(`${stack.url}/models/index.json`);
    assert.equal(empty.status, 200);
    assert.deepEqual(await empty.json(), []);

    // A real (small) test-fixture model in the published format.
    const model = await makeTestModel({ outDir: stack.modelsDir, grid: [16, 16, 16] });
    const id = model.id;
    const onnx = await readFile(path.join(model.dir, 'model.onnx'));
    const sha = createHash('sha256').update(onnx).digest('hex');
    const meta = JSON.parse(await readFile(path.join(model.dir, 'metadata.json'), 'utf8')) as {
      id: string;
      onnx: { sha256: string };
      labels: unknown[];
    };
    assert.equal(meta.onnx.sha256, sha);

    // Broken copies, each with its own id: none of them may be listed.
    const broken = async (
      name: string,
      edit: (m: typeof meta) => unknown,
      bytes: Buffer | undefined,
    ): Promise<void> => {
      const dir = path.join(stack.modelsDir, name);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(edit({ ...meta, id: name })));
      if (bytes) await writeFile(path.join(dir, 'model.onnx'), bytes);
    };
    await broken('mismatch@1.0.0', (m) => ({ ...m, id: 'other@1.0.0' }), onnx);
    await broken('no-onnx@1.0.0', (m) => m, undefined);
    await broken('damaged@1.0.0', (m) => m, onnx.subarray(0, onnx.length - 10));
    await broken('no-labels@1.0.0', (m) => ({ ...m, labels: undefined }), onnx);

    const index = await fetch(`${stack.url}/models/index.json`);
    assertIsolation(index, '/models/index.json');
    assert.deepEqual(await index.json(), [meta]);
    // Listing again does not repeat the warnings.
    assert.deepEqual(await (await fetch(`${stack.url}/models/index.json`)).json(), [meta]);
    const skipped = stack.logs.filter((l) => l.msg === 'model skipped');
    for (const [folder, why] of [
      ['mismatch@1.0.0', /does not match the folder name/],
      ['no-onnx@1.0.0', /missing/],
      ['damaged@1.0.0', /does not match the sha256/],
      ['no-labels@1.0.0', /labels/],
    ] as const) {
      const entries = skipped.filter((l) => l.folder === folder);
      assert.equal(entries.length, 1, `${folder} is logged as skipped, once`);
      const entry = entries[0] as Record<string, unknown>;
      assert.match(String(entry.problem), why, folder);
    }

    const modelUrl = `${stack.url}/models/${encodeURIComponent(id)}/model.onnx`;
    const res = await fetch(modelUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('etag'), `"${sha}"`);
    assert.equal(res.headers.get('x-content-sha256'), sha);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assertIsolation(res, 'model.onnx');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), onnx);
    const cached = await fetch(modelUrl, { headers: { 'If-None-Match': `"${sha}"` } });
    assert.equal(cached.status, 304);

    const metaRes = await fetch(`${stack.url}/models/${id}/metadata.json`);
    assert.deepEqual(await metaRes.json(), meta);
    assert.equal((await fetch(`${stack.url}/models/${id}/nothing.onnx`)).status, 404);
    assert.equal((await rawGet(stack.url, `/models/${id}/../../package.json`)).status, 404);
    assert.equal((await rawGet(stack.url, `/models/..%2f..%2fpackage.json/x`)).status, 404);
  });

  test('DICOMweb proxy: STOW, QIDO and WADO through the server with server-side credentials', async () => {
    const series = makeTinySeries(3);
    // Orthanc itself refuses requests without credentials.
    const direct = await globalThis.fetch(`${stack.pacs.dicomWebRoot}/studies`);
    assert.equal(direct.status, 401);
    await direct.arrayBuffer();

    const { body, contentType } = stowBody(series.files);
    const stow = await fetch(`${stack.url}/dicom-web/studies`, {
      method: 'POST',
      headers: { 'Content-Type': contentType, Accept: 'application/dicom+json' },
      body,
    });
    assert.equal(stow.status, 200, await stow.clone().text());
    assertIsolation(stow, 'STOW');
    await stow.arrayBuffer();

    const qido = await fetch(
      `${stack.url}/dicom-web/studies?PatientName=${encodeURIComponent(SECRET_PATIENT_NAME.slice(0, 8))}*&PatientID=${SECRET_PATIENT_ID}`,
      { headers: { Accept: 'application/dicom+json' } },
    );
    assert.equal(qido.status, 200);
    assertIsolation(qido, 'QIDO');
    const studies = (await qido.json()) as Record<string, { Value?: unknown[] }>[];
    assert.equal(studies.length, 1);
    assert.equal(studies[0]?.['0020000D']?.Value?.[0], series.studyUID);

    const instances = (await (
      await fetch(
        `${stack.url}/dicom-web/studies/${series.studyUID}/series/${series.seriesUID}/instances`,
      )
    ).json()) as unknown[];
    assert.equal(instances.length, 3);

    // OHIF's study list asks for descriptions with an encoded comma list (Orthanc needs literal
    // commas; the proxy fixes that up).
    const withFields = (await (
      await fetch(
        `${stack.url}/dicom-web/studies?StudyInstanceUID=${series.studyUID}&includefield=00081030%2C00080060`,
      )
    ).json()) as Record<string, { Value?: unknown[] }>[];
    assert.equal(withFields[0]?.['00081030']?.Value?.[0], 'RRL server test study');

    // WADO-RS: the whole instance, byte for byte what was stored.
    const wado = await fetch(
      `${stack.url}/dicom-web/studies/${series.studyUID}/series/${series.seriesUID}/instances/${series.sopUIDs[0]}`,
      { headers: { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } },
    );
    assert.equal(wado.status, 200);
    assert.match(wado.headers.get('content-type') ?? '', /^multipart\/related/);
    const wadoBytes = Buffer.from(await wado.arrayBuffer());
    assert.ok(
      wadoBytes.includes(Buffer.from(series.files[0] as ArrayBuffer).subarray(132, 400)),
      'the retrieved instance contains the stored dataset',
    );
  });

  test('proxy keeps Host: BulkDataURIs in metadata point at the viewer origin and work', async () => {
    const series = makeTinySeries(2);
    await stowThrough(stack.url, series.files);
    const meta = (await (
      await fetch(
        `${stack.url}/dicom-web/studies/${series.studyUID}/series/${series.seriesUID}/metadata`,
      )
    ).json()) as Record<string, { BulkDataURI?: string }>[];
    assert.equal(meta.length, 2);
    const uri = meta[0]?.['7FE00010']?.BulkDataURI;
    assert.ok(uri, 'PixelData is given as a BulkDataURI');
    assert.ok(
      uri.startsWith(`${stack.url}/dicom-web/`),
      `BulkDataURI ${uri} starts with the viewer origin ${stack.url}`,
    );
    const bulk = await fetch(uri, {
      headers: { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
    });
    assert.equal(bulk.status, 200);
    const bytes = Buffer.from(await bulk.arrayBuffer());
    assert.ok(bytes.length >= series.rows * series.columns * 2, 'the pixel data came back');

    // Behind a TLS-terminating proxy (X-Forwarded-Proto: https, another Host), the URIs follow the
    // browser's origin: an https page could not load http BulkDataURIs.
    const behindTls = await rawGet(
      stack.url,
      `/dicom-web/studies/${series.studyUID}/series/${series.seriesUID}/metadata`,
      { Host: 'viewer.example:8443', 'X-Forwarded-Proto': 'https' },
    );
    assert.equal(behindTls.status, 200);
    const tlsMeta = JSON.parse(behindTls.body) as Record<string, { BulkDataURI?: string }>[];
    const tlsUri = tlsMeta[0]?.['7FE00010']?.BulkDataURI ?? '';
    assert.ok(
      tlsUri.startsWith('https://viewer.example:8443/dicom-web/'),
      `BulkDataURI ${tlsUri} follows the forwarded origin`,
    );
  });

  test('proxy: a large STOW body streams through (64 slices of 256×256)', async () => {
    const series = makeTinySeries(64, 256, 256);
    const { body, contentType } = stowBody(series.files);
    assert.ok(body.length > 8_000_000);
    const stow = await fetch(`${stack.url}/dicom-web/studies`, {
      method: 'POST',
      headers: { 'Content-Type': contentType },
      body,
    });
    assert.equal(stow.status, 200);
    await stow.arrayBuffer();
    const instances = (await (
      await fetch(
        `${stack.url}/dicom-web/studies/${series.studyUID}/series/${series.seriesUID}/instances`,
      )
    ).json()) as unknown[];
    assert.equal(instances.length, 64);
  });

  test("proxy passes the PACS's error status and refuses anything but DICOMweb resources", async () => {
    const notFound = await fetch(`${stack.url}/dicom-web/studies/1.2.3/series/4.5/instances/6.7`);
    assert.equal(notFound.status, 404);
    assert.match(await notFound.text(), /inexistent instance/, "Orthanc's reason is passed on");
    const badStow = await fetch(`${stack.url}/dicom-web/studies`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.ok(badStow.status >= 400 && badStow.status < 500, `STOW of JSON → ${badStow.status}`);
    await badStow.arrayBuffer();

    for (const p of ['/dicom-web/../system', '/dicom-web/%2e%2e/system', '/dicom-web/servers']) {
      const res = await rawGet(stack.url, p);
      assert.equal(res.status, 404, p);
      assert.doesNotMatch(
        res.body,
        /"ApiVersion"|DatabaseVersion/,
        `${p} must not reach Orthanc's REST API`,
      );
    }
    const del = await fetch(`${stack.url}/dicom-web/studies/1.2.3`, { method: 'DELETE' });
    assert.equal(del.status, 405);
    await del.arrayBuffer();
  });

  test('/api/health reports the PACS as reachable', async () => {
    const res = await fetch(`${stack.url}/api/health`);
    assert.equal(res.status, 200);
    assertIsolation(res, '/api/health');
    const body = (await res.json()) as {
      status: string;
      version: string;
      pacs: { reachable: boolean };
      plugins: { extension: boolean; mode: boolean };
      models: { count: number; skipped: number };
    };
    assert.equal(body.status, 'ok');
    assert.equal(body.pacs.reachable, true);
    assert.match(body.version, /^\d+\.\d+\.\d+/);
    // Earlier tests wrote the plugin entry points and one valid + four broken model folders.
    assert.deepEqual(body.plugins, { extension: true, mode: true });
    assert.deepEqual(body.models, { count: 1, skipped: 4 });
  });

  test('a browser that goes away mid-download does not disturb the server', async () => {
    const series = makeTinySeries(8, 256, 256);
    await stowThrough(stack.url, series.files);
    const controller = new AbortController();
    const res = await fetch(
      `${stack.url}/dicom-web/studies/${series.studyUID}/series/${series.seriesUID}`,
      { signal: controller.signal },
    );
    assert.equal(res.status, 200);
    controller.abort();
    await assert.rejects(res.arrayBuffer());
    // The server keeps serving, the proxy included.
    const again = await fetch(`${stack.url}/dicom-web/studies/${series.studyUID}/series`);
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as unknown[]).length, 1);
  });

  test('an aborted download is logged as what happened (499, aborted), not as a 200', async () => {
    const series = makeTinySeries(40, 256, 256);
    await stowThrough(stack.url, series.files);
    const p = `/dicom-web/studies/${series.studyUID}/series/${series.seriesUID}`;
    const u = new URL(stack.url);
    // Read the status line, then hang up while megabytes are still to come.
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          path: p,
          headers: { Authorization: `Bearer ${TEST_API_TOKEN}` },
        },
        (res) => {
          assert.equal(res.statusCode, 200);
          res.socket.destroy();
          resolve();
        },
      );
      req.on('error', reject);
      req.end();
    });
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 40 && !line; i++) {
      await new Promise((r) => setTimeout(r, 50));
      line = stack.logs.find((l) => l.msg === 'request' && l.path === p);
    }
    assert.ok(line, 'the request was logged');
    assert.equal(line.status, 499);
    assert.equal(line.aborted, true);
    assert.equal(line.sentStatus, 200);
  });

  test('logs: one JSON line per request, no query strings, no patient identifiers', () => {
    const requests = stack.logs.filter((l) => l.msg === 'request');
    assert.ok(requests.length > 10);
    for (const l of requests) {
      assert.equal(typeof l.method, 'string');
      assert.equal(typeof l.path, 'string');
      assert.equal(typeof l.status, 'number');
      assert.equal(typeof l.ms, 'number');
      assert.ok(!String(l.path).includes('?'), `no query string in ${String(l.path)}`);
    }
    assert.ok(requests.some((l) => l.path === '/dicom-web/studies' && l.method === 'GET'));
    const all = stack.logs.map((l) => JSON.stringify(l)).join('\n');
    for (const secret of [
      SECRET_PATIENT_NAME,
      'Zzsecret',
      SECRET_PATIENT_ID,
      stack.pacs.password,
    ]) {
      assert.ok(!all.includes(secret), `logs must not contain ${secret}`);
    }
  });
});

describe('companion server when the PACS is down or refuses it', () => {
  test('PACS down: /dicom-web answers 502 with a clear JSON message; health says degraded', async () => {
    const stack = await startTestStack();
    try {
      await stack.pacs.stop();
      const res = await fetch(`${stack.url}/dicom-web/studies`);
      assert.equal(res.status, 502);
      assertIsolation(res, 'the 502');
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await res.json()) as { error: { status: number; message: string } };
      assert.equal(body.error.status, 502);
      assert.match(body.error.message, /PACS is not reachable/);
      assert.match(body.error.message, /ECONNREFUSED/);

      const stow = await fetch(`${stack.url}/dicom-web/studies`, {
        method: 'POST',
        headers: { 'Content-Type': 'multipart/related; type="application/dicom"; boundary=x' },
        body: new Uint8Array(100_000),
      });
      assert.equal(stow.status, 502);
      await stow.arrayBuffer();

      const health = (await (await fetch(`${stack.url}/api/health`)).json()) as {
        status: string;
        pacs: { reachable: boolean; error?: string };
      };
      assert.equal(health.status, 'degraded');
      assert.equal(health.pacs.reachable, false);
      assert.equal(health.pacs.error, 'ECONNREFUSED');
      // The viewer itself is still served.
      assert.equal((await fetch(`${stack.url}/`)).status, 200);
    } finally {
      await stack.stop();
    }
  });

  test('wrong server-side credentials: 401 with a message for the administrator, no login prompt', async () => {
    const stack = await startTestStack();
    const wrong = await startTestStack({
      pacs: { ...stack.pacs, password: 'not-the-password', stop: async () => {} },
    });
    try {
      const res = await fetch(`${wrong.url}/dicom-web/studies`);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), null, 'no browser login prompt');
      const body = (await res.json()) as { error: { message: string } };
      assert.match(body.error.message, /RRL_PACS_PASSWORD/);
      const health = (await (await fetch(`${wrong.url}/api/health`)).json()) as {
        pacs: { reachable: boolean; error?: string };
      };
      assert.equal(health.pacs.reachable, false);
      assert.match(health.pacs.error ?? '', /credentials/);
    } finally {
      await wrong.stop();
      await stack.stop();
    }
  });
});
