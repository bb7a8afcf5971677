/**
 * Server memory after training jobs: runs N training jobs (plan `demo-tiny` by default) one after
 * the other on the demo studies and prints the server process's RSS at idle and after each job,
 * for jobs run in a child process (the default) and in a worker thread, side by side (each mode in
 * its own fresh Node process, so the two do not share a heap).
 *
 *   npm run bench:memory -- [--jobs 3] [--plan demo-tiny]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { trainingExecutor } from '@rrl/server/jobs/workerExecutor.js';
import { REPO_ROOT } from '@rrl/server/config.js';
import { queueDemoJob, startBenchStack, waitForJob } from './stack.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string' },
    plan: { type: 'string' },
    mode: { type: 'string' },
    help: { type: 'boolean' },
  },
});
const jobs = Number(values.jobs ?? 3);
const plan = values.plan ?? 'demo-tiny';
const say = (m: string): void => void process.stderr.write(`[bench:memory] ${m}\n`);
const mb = (b: number): number => Math.round(b / 1024 / 1024);

async function settle(): Promise<number> {
  await new Promise((r) => setTimeout(r, 3000));
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 500));
  return process.memoryUsage().rss;
}

async function one(mode: 'process' | 'thread'): Promise<void> {
  const stack = await startBenchStack({
    subjects: 4,
    demoDir: path.join(REPO_ROOT, 'var', 'bench-demo'),
    log: say,
    server: (pacs) => ({
      jobExecutor: trainingExecutor({ pacs, provider: 'cpu', isolation: mode }),
    }),
  });
  const rss: number[] = [await settle()];
  say(`${mode}: idle RSS ${mb(rss[0] ?? 0)} MB`);
  try {
    for (let i = 0; i < jobs; i++) {
      const t0 = Date.now();
      const job = await queueDemoJob(stack, plan, 'bench-memory');
      const done = await waitForJob(stack, job.id, 30 * 60_000);
      if (done.status !== 'succeeded')
        throw new Error(`job ${i + 1} ${done.status}: ${done.reason}`);
      rss.push(await settle());
      say(
        `${mode}: job ${i + 1} in ${((Date.now() - t0) / 1000).toFixed(0)} s, RSS ${mb(rss[i + 1] ?? 0)} MB`,
      );
    }
  } finally {
    await stack.stop();
  }
  process.stdout.write(JSON.stringify({ mode, rssMB: rss.map(mb) }) + '\n');
}

if (values.mode === 'process' || values.mode === 'thread') {
  await one(values.mode);
} else {
  const rows: { mode: string; rssMB: number[] }[] = [];
  for (const mode of ['process', 'thread']) {
    const r = spawnSync(
      process.execPath,
      [
        '--expose-gc',
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        '--mode',
        mode,
        '--jobs',
        String(jobs),
        '--plan',
        plan,
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`the ${mode} run failed (exit ${r.status})`);
    rows.push(
      JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { mode: string; rssMB: number[] },
    );
  }
  const head = [
    'jobs run in',
    'idle',
    ...Array.from({ length: jobs }, (_, i) => `after job ${i + 1}`),
  ];
  process.stdout.write(`\nServer RSS (MB), plan ${plan}, this machine, one run:\n\n`);
  process.stdout.write(`| ${head.join(' | ')} |\n| ${head.map(() => '---').join(' | ')} |\n`);
  for (const r of rows) process.stdout.write(`| ${r.mode} | ${r.rssMB.join(' | ')} |\n`);
}
