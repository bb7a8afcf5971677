/**
 * Load run (bounded, loopback only): while a training job runs on the server and 20 clients
 * query the PACS through the proxy, a "viewer" client loads image frames the way OHIF does
 * (WADO-RS `/frames/1`, one instance after another). Prints frame and query latencies (median,
 * p99) and whether frame p99 stays under 250 ms. Everything stops by itself after `--seconds`.
 *
 *   npm run bench:load -- [--seconds 60] [--clients 20] [--plan demo]
 */
import path from 'node:path';
import { parseArgs } from 'node:util';

import { REPO_ROOT } from '@rrl/server/config.js';
import { percentile } from '@rrl/core/volume/normalize.js';
import { queueDemoJob, startBenchStack } from './stack.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    clients: { type: 'string' },
    plan: { type: 'string' },
  },
});
const seconds = Math.min(600, Number(values.seconds ?? 60));
const clients = Math.min(64, Number(values.clients ?? 20));
const plan = values.plan ?? 'demo';
const say = (m: string): void => void process.stderr.write(`[bench:load] ${m}\n`);
/** Each query client sends at most this many requests (a bound besides the time). */
const MAX_REQUESTS_PER_CLIENT = 5000;

const stack = await startBenchStack({
  subjects: 4,
  demoDir: path.join(REPO_ROOT, 'var', 'bench-demo'),
  log: say,
});
const auth = { Authorization: `Bearer ${stack.token}` };
const dw = `${stack.url}/dicom-web`;
try {
  const job = await queueDemoJob(stack, plan, 'bench-load');
  for (;;) {
    const j = await stack.api<{ status: string; progress?: { phase?: string } }>(
      'GET',
      `/api/jobs/${job.id}`,
    );
    if (j.status === 'running' && j.progress?.phase && j.progress.phase !== 'fetch') break;
    if (j.status !== 'queued' && j.status !== 'running') throw new Error(`job ${j.status}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  say(
    `job ${job.id} is training (plan ${plan}); ${clients} query clients + 1 viewer for ${seconds} s`,
  );

  const { studyUID, seriesUID } = stack.demo.subjects[0] ?? stack.demo.atlas;
  const instances = (await (
    await fetch(`${dw}/studies/${studyUID}/series/${seriesUID}/instances`, { headers: auth })
  ).json()) as Record<string, { Value?: string[] }>[];
  const sops = instances.map((i) => i['00080018']?.Value?.[0]).filter((u): u is string => !!u);

  const deadline = Date.now() + seconds * 1000;
  const frameMs: number[] = [];
  const queryMs: number[] = [];
  let errors = 0;
  const timed = async (url: string, headers: Record<string, string>, into: number[]) => {
    const t0 = performance.now();
    const res = await fetch(url, { headers: { ...auth, ...headers } });
    await res.arrayBuffer();
    if (!res.ok) errors += 1;
    into.push(performance.now() - t0);
  };
  const viewer = (async () => {
    for (let k = 0; Date.now() < deadline; k++) {
      const sop = sops[k % sops.length] ?? '';
      await timed(
        `${dw}/studies/${studyUID}/series/${seriesUID}/instances/${sop}/frames/1`,
        { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
        frameMs,
      );
    }
  })();
  const queries = Array.from({ length: clients }, async (_, c) => {
    const urls = [
      `${dw}/studies?limit=50&includefield=00081030,00080060`,
      `${dw}/series?Modality=MR&limit=50`,
      `${dw}/studies/${studyUID}/series`,
    ];
    for (let n = 0; n < MAX_REQUESTS_PER_CLIENT && Date.now() < deadline; n++) {
      await timed(urls[(n + c) % urls.length] ?? '', { Accept: 'application/dicom+json' }, queryMs);
    }
  });
  await Promise.all([viewer, ...queries]);
  await stack.api('POST', `/api/jobs/${job.id}/cancel`).catch(() => undefined);

  const f = (v: number): string => v.toFixed(1);
  const p99 = percentile(frameMs, 99);
  process.stdout.write(
    `\nLoad run, ${seconds} s, ${clients} query clients + 1 viewer, training job (plan ${plan}) running:\n\n` +
      '| requests | count | median ms | p99 ms |\n| --- | --- | --- | --- |\n' +
      `| viewer frames (WADO-RS /frames/1) | ${frameMs.length} | ${f(percentile(frameMs, 50))} | ${f(p99)} |\n` +
      `| PACS queries (QIDO-RS) | ${queryMs.length} | ${f(percentile(queryMs, 50))} | ${f(percentile(queryMs, 99))} |\n` +
      `\nerrors: ${errors}; frame p99 < 250 ms: ${p99 < 250 ? 'yes' : 'NO'}\n`,
  );
  process.exitCode = p99 < 250 && errors === 0 ? 0 : 1;
} finally {
  await stack.stop();
}
