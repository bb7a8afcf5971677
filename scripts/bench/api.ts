/**
 * REST API latency (loopback, no PACS traffic): the companion server alone with an empty store,
 * one client after another and 16 at once, on a read (GET /api/tasks), a refused create
 * (POST /api/tasks with a bad UID: parsed and validated, answered 400) and a 404. Prints median
 * and p99 per request kind. `--root DIR` measures the server of another checkout (its
 * server/src/app.ts), for side-by-side numbers in one session.
 *
 *   npm run bench:api -- [--requests 2000] [--root DIR]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { REPO_ROOT } from '@rrl/server/config.js';
import type { startServer as StartServer } from '@rrl/server/app.js';

const { values } = parseArgs({
  options: { requests: { type: 'string' }, root: { type: 'string' } },
});
const n = Math.max(100, Math.min(20_000, Number(values.requests ?? 2000)));
const root = path.resolve(values.root ?? REPO_ROOT);
const { startServer } = (await import(
  pathToFileURL(path.join(root, 'server', 'src', 'app.ts')).href
)) as { startServer: typeof StartServer };

const TOKEN = 'bench-token-0123456789abcdef';
const dir = await mkdtemp(path.join(os.tmpdir(), 'rrl-bench-api-'));
const server = await startServer(
  {
    host: '127.0.0.1',
    port: 0,
    dataDir: path.join(dir, 'data'),
    modelsDir: path.join(dir, 'models'),
    apiToken: TOKEN,
    // Nothing listens there: these requests never reach the PACS.
    pacs: { dicomWebRoot: 'http://127.0.0.1:9/dicom-web' },
  },
  { env: {}, logSink: () => {} },
);
const auth = { Authorization: `Bearer ${TOKEN}` };
const kinds: Record<string, { expect: number; init: () => [string, RequestInit] }> = {
  'GET /api/tasks': { expect: 200, init: () => ['/api/tasks', { headers: auth }] },
  'POST /api/tasks (bad UID → 400)': {
    expect: 400,
    init: () => [
      '/api/tasks',
      {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'x', atlas: { studyUID: '1.2', seriesUID: 'bad' } }),
      },
    ],
  },
  'GET /api/nothing (404)': { expect: 404, init: () => ['/api/nothing', { headers: auth }] },
};

async function one(kind: string): Promise<number> {
  const [p, init] = kinds[kind]!.init();
  const t0 = performance.now();
  const r = await fetch(server.url + p, init);
  await r.arrayBuffer();
  const ms = performance.now() - t0;
  if (r.status !== kinds[kind]!.expect) throw new Error(`${kind}: HTTP ${r.status}`);
  return ms;
}
const stats = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return `${at(0.5).toFixed(2)} | ${at(0.99).toFixed(2)}`;
};

const rows: string[] = [];
try {
  for (const kind of Object.keys(kinds)) {
    for (let i = 0; i < 100; i++) await one(kind); // warm-up
    const serial: number[] = [];
    for (let i = 0; i < n; i++) serial.push(await one(kind));
    const parallel: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < n / 16; i++) parallel.push(await one(kind));
      }),
    );
    const rps = (parallel.length / (performance.now() - t0)) * 1000;
    rows.push(`| ${kind} | ${stats(serial)} | ${stats(parallel)} | ${rps.toFixed(0)} |`);
  }
} finally {
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
process.stdout.write(
  `API latency, ${n} requests per kind (${path.relative(process.cwd(), root) || '.'}):\n\n` +
    '| request | 1 client: median ms | p99 ms | 16 clients: median ms | p99 ms | requests/s (16) |\n' +
    '| --- | --- | --- | --- | --- | --- |\n' +
    rows.join('\n') +
    '\n',
);
