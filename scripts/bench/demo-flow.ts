/**
 * Issue #5 benchmark: the demo flow through the REST API, end to end, with its targets.
 *
 *   npm run bench:demo -- [--quick] [--server URL --token T --job-dir DIR] [--report FILE]
 *
 * 1. Starts a stack (a fresh Orthanc on free ports, the demo atlas + subjects seeded from the
 *    cached demo folder, the companion server in this process, training in its worker thread) or
 *    uses a running server (`--server`).
 * 2. Creates a task from the demo atlas's SEG (POST /api/tasks, plan `demo`, or `demo-tiny` with
 *    --quick), previews the series count of a QIDO query (GET /api/pacs/series), and queues a
 *    training job on that query (POST /api/jobs).
 * 3. While the job runs: every --interval seconds, --burst sequential GET /api/jobs/{id} (status
 *    latency: median / p95 / max), plus the job's SSE stream (time to the first event, number of
 *    progress events, longest gap between them).
 * 4. When the model is published: downloads it (sha256 checked against the server's header),
 *    fetches each demo subject from the PACS (through the server's DICOMweb proxy), runs (b)
 *    registration only (`loadRegistration` on the job's work folder) and (d) the published model
 *    (onnxruntime-node CPU), both mapped back to the subject's grid, and compares them with the
 *    ground truth in <demo-dir>/ground-truth (Dice per structure).
 * 5. Prints one table with the target verdicts; `--report FILE` writes the same as JSON.
 *
 * Output names subjects "DEMO-01"… and UIDs only.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import * as ort from 'onnxruntime-node';

import { validateMetadata, type ModelMetadata } from '@rrl/core/format/metadata.js';
import { gitCommit } from '@rrl/models/cli/train.js';
import { dice } from '@rrl/models/rrl/metrics.js';
import { percentile } from '@rrl/core/volume/normalize.js';
import { loadRegistration, type StageRecord } from '@rrl/models/rrl/pipeline.js';
import {
  labelsFromLogits,
  labelsToModelGrid,
  modelInputDims,
  prepareModelInput,
} from '@rrl/core/volume/preprocess.js';
import { readNifti } from '@rrl/server/demo/nifti.js';
import { seedDemo } from '@rrl/server/demo/seed.js';
import { loadAtlas } from '@rrl/server/jobs/atlas.js';
import { DicomWebClient } from '@rrl/server/pacs/dicomweb.js';
import { fetchSeriesVolume } from '@rrl/server/pacs/volume.js';
import { REPO_ROOT } from '@rrl/server/config.js';
// The API answers with the server's own records (server/src/api serialises them as they are).
import type { JobRecord as Job, TaskRecord as Task } from '@rrl/server/store/db.js';

const TARGET_MINUTES = 30;
const TARGET_MEDIAN_MS = 50;

interface Options {
  quick: boolean;
  plan: string;
  server?: string;
  token?: string;
  jobDir?: string;
  demoDir: string;
  report?: string;
  provider: string;
  interval: number;
  burst: number;
  subjects: number;
  query: string;
  timeoutMinutes: number;
  /** The running server's <dataDir>/api-token (with --server and --data-dir). */
  tokenFile?: string;
}

const HELP = `Usage: npm run bench:demo -- [options]

The issue #5 demo-flow benchmark: task from the demo atlas's SEG → training job on the demo
subjects (QIDO query) → published model; status latency while it trains; Dice of (b) registration
only and (d) the published model on the demo subjects' ground truth; target verdicts.

  --quick            tiny plan (demo-tiny), about 2-3 minutes: checks the flow, not the targets
  --plan NAME        plan in models/plans (default demo; demo-tiny with --quick)
  --server URL       use a running companion server (default: start Orthanc + server here)
  --token T          its API token (default: RRL_API_TOKEN, else <data-dir>/api-token via --data-dir)
  --data-dir DIR     the running server's data folder (token file, jobs/<id>/ work folders)
  --job-dir DIR      the job's work folder for (b) (default <data-dir>/jobs/<jobId>)
  --demo-dir DIR     demo folder with ground-truth/index.json (default var/demo; seeded from it)
  --subjects N       demo subjects to seed when starting the stack (default 6)
  --query TEXT       series description substring for the training data (default "synthetic")
  --provider P       training provider for the job: auto | cpu | webgpu | cuda (default cpu)
  --interval S       seconds between latency bursts (default 5)
  --burst N          status requests per burst (default 5)
  --timeout-min M    give up waiting for the job after M minutes (default 60)
  --report FILE      write the JSON report
  -h, --help         this text
`;

function readOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      plan: { type: 'string' },
      server: { type: 'string' },
      token: { type: 'string' },
      'data-dir': { type: 'string' },
      'job-dir': { type: 'string' },
      'demo-dir': { type: 'string' },
      subjects: { type: 'string' },
      query: { type: 'string' },
      provider: { type: 'string' },
      interval: { type: 'string' },
      burst: { type: 'string' },
      'timeout-min': { type: 'string' },
      report: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  const num = (name: string, v: string | undefined, d: number): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) {
      throw new Error(`--${name} must be a positive number; found "${v}".`);
    }
    return n;
  };
  const quick = values.quick ?? false;
  const token = values.token ?? process.env.RRL_API_TOKEN;
  const dataDir = values['data-dir'];
  return {
    quick,
    plan: values.plan ?? (quick ? 'demo-tiny' : 'demo'),
    ...(values.server ? { server: values.server.replace(/\/+$/, '') } : {}),
    ...(token ? { token } : {}),
    ...(values['job-dir']
      ? { jobDir: values['job-dir'] }
      : dataDir
        ? { jobDir: path.join(dataDir, 'jobs') + path.sep + '{job}' }
        : {}),
    demoDir: path.resolve(values['demo-dir'] ?? path.join(REPO_ROOT, 'var', 'demo')),
    ...(values.report ? { report: values.report } : {}),
    provider: values.provider ?? 'cpu',
    interval: num('interval', values.interval, 5),
    burst: Math.round(num('burst', values.burst, 5)),
    subjects: Math.round(num('subjects', values.subjects, 6)),
    query: values.query ?? 'synthetic',
    timeoutMinutes: num('timeout-min', values['timeout-min'], 60),
    ...(dataDir ? { tokenFile: path.join(dataDir, 'api-token') } : {}),
  };
}

const say = (line: string): void => {
  process.stderr.write(`[bench:demo ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

function latencyStats(ms: number[]): { n: number; median: number; p95: number; max: number } {
  const q = (p: number): number => (ms.length ? percentile(ms, p) : NaN);
  return { n: ms.length, median: q(50), p95: q(95), max: ms.length ? Math.max(...ms) : NaN };
}

/** A small typed REST client for the API (Bearer token). */
class Api {
  constructor(
    readonly base: string,
    private readonly token: string,
  ) {}

  async request<T>(method: string, p: string, body?: unknown): Promise<T> {
    const res = await fetch(this.base + p, {
      method,
      headers: {
        Authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) {
      throw new Error(`${method} ${p} answered HTTP ${res.status}: ${text.slice(0, 500)}`);
    }
    return JSON.parse(text) as T;
  }

  get<T>(p: string): Promise<T> {
    return this.request<T>('GET', p);
  }

  post<T>(p: string, body: unknown): Promise<T> {
    return this.request<T>('POST', p, body);
  }

  async download(p: string): Promise<{ bytes: Uint8Array; sha256Header: string | null }> {
    const res = await fetch(this.base + p, { headers: { Authorization: `Bearer ${this.token}` } });
    if (!res.ok) throw new Error(`GET ${p} answered HTTP ${res.status}: ${await res.text()}`);
    return {
      bytes: new Uint8Array(await res.arrayBuffer()),
      sha256Header: res.headers.get('x-content-sha256'),
    };
  }
}

interface ModelCard {
  id: string;
  metadata: unknown;
  card: { trainingSeconds?: number; stages?: { stages?: StageRecord[]; notices?: string[] } };
}
interface GtIndex {
  labels: { value: number; name: string }[];
  studies: {
    role: 'atlas' | 'subject';
    index: number;
    studyInstanceUID: string;
    seriesInstanceUID: string;
    segSeriesInstanceUID?: string;
    file: string;
    dims: [number, number, number];
  }[];
}

/** Follows the job's SSE stream: time to the first event, progress events and their gaps. */
function followEvents(
  api: Api,
  jobId: string,
  token: string,
  signal: AbortSignal,
): Promise<{ firstEventMs: number | null; progressEvents: number; maxGapMs: number }> {
  const out = { firstEventMs: null as number | null, progressEvents: 0, maxGapMs: 0 };
  const t0 = performance.now();
  let last = 0;
  return (async () => {
    try {
      const res = await fetch(`${api.base}/api/jobs/${jobId}/events`, {
        headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
        signal,
      });
      if (!res.ok || !res.body) throw new Error(`events answered HTTP ${res.status}`);
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          if (!ev) continue;
          const now = performance.now();
          out.firstEventMs ??= now - t0;
          if (ev === 'progress') {
            if (last > 0) out.maxGapMs = Math.max(out.maxGapMs, now - last);
            last = now;
            out.progressEvents += 1;
          }
          if (ev === 'end') return out;
        }
      }
    } catch (e) {
      if (!signal.aborted) say(`event stream: ${(e as Error).message}`);
    }
    return out;
  })();
}

/** Retries a PACS read twice (a reset connection under CPU load is not a result). */
async function withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= 3) throw e;
      say(`reading ${what} failed (${(e as Error).message}); retrying`);
      await new Promise((r) => setTimeout(r, 2000 * attempt));
    }
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

async function main(argv: string[]): Promise<number> {
  const opts = readOptions(argv);
  if (!opts) return 0;
  const indexFile = path.join(opts.demoDir, 'ground-truth', 'index.json');
  const cleanups: (() => Promise<void>)[] = [];
  const tStart = Date.now();
  try {
    // ---- the stack ------------------------------------------------------------------------
    let base: string;
    let token: string;
    let jobDirFor: (jobId: string) => string | undefined;
    // Where the evaluation reads the PACS: the PACS itself when we started it, else the server's
    // DICOMweb proxy (with the API token).
    let pacsClient: DicomWebClient | undefined;
    if (opts.server) {
      base = opts.server;
      token = opts.token ?? (opts.tokenFile ? (await readFile(opts.tokenFile, 'utf8')).trim() : '');
      if (!token) {
        throw new Error(
          'With --server the API token is needed: --token, RRL_API_TOKEN, or --data-dir <the ' +
            "server's data folder> (holding api-token).",
        );
      }
      if (!existsSync(indexFile)) {
        throw new Error(
          `No demo ground truth at ${indexFile}: pass --demo-dir <the folder the demo was seeded from>.`,
        );
      }
      jobDirFor = (id) => opts.jobDir?.replace('{job}', id);
    } else {
      const { startTestOrthanc } = await import('@rrl/test/helpers/orthanc.js');
      const { startTestStack } = await import('@rrl/test/helpers/server.js');
      say('starting Orthanc (temporary storage, free ports)');
      const pacs = await startTestOrthanc('RRL-Bench');
      cleanups.push(() => pacs.stop());
      say(`seeding the demo (atlas + ${opts.subjects} subjects) from ${opts.demoDir}`);
      const t0 = Date.now();
      await mkdir(opts.demoDir, { recursive: true });
      await seedDemo({
        dicomWebRoot: pacs.dicomWebRoot,
        username: pacs.username,
        password: pacs.password,
        outDir: opts.demoDir,
        subjects: opts.subjects,
        log: (m) => say(m),
      });
      say(`seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      token = randomBytes(24).toString('base64url');
      const stack = await startTestStack({
        pacs,
        config: { trainingProvider: opts.provider as 'cpu', apiToken: token, logLevel: 'warn' },
      });
      cleanups.unshift(() => stack.stop());
      pacsClient = new DicomWebClient({
        root: pacs.dicomWebRoot,
        username: pacs.username,
        password: pacs.password,
      });
      base = stack.url;
      const dataDir = stack.server.config.dataDir;
      jobDirFor = (id) => opts.jobDir?.replace('{job}', id) ?? path.join(dataDir, 'jobs', id);
      say(`server at ${base} (data ${dataDir})`);
    }
    const api = new Api(base, token);
    const gt = JSON.parse(await readFile(indexFile, 'utf8')) as GtIndex;
    const atlasGt = gt.studies.find((s) => s.role === 'atlas');
    if (!atlasGt?.segSeriesInstanceUID) throw new Error(`${indexFile} lists no atlas with a SEG.`);

    // ---- task -----------------------------------------------------------------------------
    const taskId = `bench-demo-${opts.plan}-${Date.now().toString(36)}`;
    const task = await api.post<Task>('/api/tasks', {
      id: taskId,
      name: `Demo structures (bench, plan ${opts.plan})`,
      plan: opts.plan,
      atlas: {
        studyUID: atlasGt.studyInstanceUID,
        seriesUID: atlasGt.seriesInstanceUID,
        segSeriesUID: atlasGt.segSeriesInstanceUID,
      },
    });
    say(`task ${task.id}: ${task.labels.length} labels, plan ${task.plan}`);

    // ---- count preview, then the job ------------------------------------------------------
    const query = { modality: 'MR', description: opts.query };
    const preview = await api.get<{ count: number }>(
      `/api/pacs/series?modality=MR&description=${encodeURIComponent(opts.query)}&limit=1`,
    );
    say(`query ${JSON.stringify(query)}: ${preview.count} series`);
    if (preview.count === 0) throw new Error('The training query matches no series.');
    const tJob = Date.now();
    const created = await api.post<Job>('/api/jobs', {
      taskId: task.id,
      series: { query },
      provider: opts.provider,
    });
    say(`job ${created.id} queued with ${created.series.length} series`);

    // ---- while it trains: status latency + event stream ------------------------------------
    const abort = new AbortController();
    const events = followEvents(api, created.id, token, abort.signal);
    const latencies: number[] = [];
    const phaseFirstSeen: Record<string, number> = {};
    let job: Job = created;
    let lastLine = '';
    const deadline = tJob + opts.timeoutMinutes * 60_000;
    while (job.status === 'queued' || job.status === 'running') {
      for (let i = 0; i < opts.burst; i++) {
        const s = performance.now();
        job = await api.get<Job>(`/api/jobs/${created.id}`);
        const ms = performance.now() - s;
        if (job.status === 'running') latencies.push(ms);
      }
      const p = job.progress;
      if (p && job.status === 'running') {
        phaseFirstSeen[p.phase] ??= (Date.now() - tJob) / 1000;
        const line =
          `${p.phase} ${p.step}/${p.total}` +
          (p.stageIndex !== undefined ? ` (stage ${p.stageIndex + 1}/${p.stageCount})` : '') +
          (p.loss !== undefined ? ` loss ${p.loss.toFixed(4)}` : '') +
          (p.etaSeconds !== undefined ? ` eta ${Math.round(p.etaSeconds)} s` : '');
        if (line !== lastLine) {
          const l = latencyStats(latencies.slice(-opts.burst * 12));
          say(`${line} | status ${f1(l.median)} ms median (last minute)`);
          lastLine = line;
        }
      }
      if (job.status !== 'queued' && job.status !== 'running') break;
      if (Date.now() > deadline) {
        await api.post(`/api/jobs/${created.id}/cancel`, { reason: 'benchmark timeout' });
        throw new Error(`The job did not finish within ${opts.timeoutMinutes} min; cancelled.`);
      }
      await new Promise((r) => setTimeout(r, opts.interval * 1000));
    }
    const trainingWallSeconds = (Date.now() - tJob) / 1000;
    abort.abort();
    const stream = await Promise.race([
      events,
      new Promise<Awaited<typeof events>>((r) =>
        setTimeout(() => r({ firstEventMs: null, progressEvents: 0, maxGapMs: 0 }), 2000),
      ),
    ]);
    if (job.status !== 'succeeded' || !job.modelId) {
      throw new Error(`The job ended ${job.status}: ${job.reason ?? 'no reason given'}`);
    }
    say(`job ${job.status} after ${trainingWallSeconds.toFixed(1)} s: model ${job.modelId}`);

    // ---- the published model --------------------------------------------------------------
    const card = await api.get<ModelCard>(`/api/models/${encodeURIComponent(job.modelId)}`);
    const meta: ModelMetadata = validateMetadata(card.metadata, `model ${job.modelId}`);
    const dl = await api.download(`/api/models/${encodeURIComponent(job.modelId)}/model.onnx`);
    const digest = sha256(dl.bytes);
    const shaOk = dl.sha256Header === digest;
    if (!shaOk) {
      throw new Error(
        `The downloaded model's sha256 ${digest} differs from the server's ${dl.sha256Header ?? '(none)'}.`,
      );
    }
    say(`model.onnx ${(dl.bytes.length / 1e6).toFixed(2)} MB, sha256 checked`);
    const stages = card.card.stages?.stages ?? [];

    // ---- evaluation on the demo subjects ---------------------------------------------------
    const jobDir = jobDirFor(job.id);
    if (!jobDir || !existsSync(path.join(jobDir, 'registration'))) {
      throw new Error(
        `The job's work folder ${jobDir ?? '(unknown)'} has no registration/: pass --job-dir ` +
          "(the server's <dataDir>/jobs/<jobId>) or --data-dir.",
      );
    }
    const client =
      pacsClient ??
      new DicomWebClient({
        root: `${base}/dicom-web`,
        headers: { Authorization: `Bearer ${token}` },
      });
    const atlas = await withRetry(`atlas ${task.atlas.seriesUID}`, () =>
      loadAtlas(client, task.atlas),
    );
    // SEG label value → class index (the task's order, as the training executor does).
    const segToClass = new Uint8Array(256);
    task.labels.forEach((l, i) => (segToClass[l.value] = i + 1));
    const atlasClasses = new Uint8Array(atlas.labelmap.length);
    for (let i = 0; i < atlasClasses.length; i++) atlasClasses[i] = segToClass[atlas.labelmap[i]!]!;
    const aDims = atlas.volume.geometry.dims;
    const aSpacing = atlas.volume.geometry.spacing;
    const atlasInput = prepareModelInput(atlas.volume.voxels, aDims, meta, aSpacing);
    const atlasGrid = labelsToModelGrid(atlasClasses, aDims, meta, aSpacing);
    // Ground-truth value → class index by structure name (value when the names differ).
    const gtToClass = new Uint8Array(256);
    for (const l of gt.labels) {
      const byName = task.labels.findIndex((t) => t.name.toLowerCase() === l.name.toLowerCase());
      const byValue = task.labels.findIndex((t) => t.value === l.value);
      gtToClass[l.value] = (byName >= 0 ? byName : byValue) + 1;
    }
    const names = task.labels.map((l) => l.name);
    const toClasses = (data: Float32Array): Uint8Array => {
      const out = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = gtToClass[Math.round(data[i]!)] ?? 0;
      return out;
    };
    // Orientation check: the atlas SEG as read from the PACS against the atlas ground truth.
    const atlasTruth = toClasses(
      (await readNifti(path.join(opts.demoDir, 'ground-truth', atlasGt.file))).data,
    );
    const atlasCheck =
      names.reduce((a, _n, i) => a + dice(atlasClasses, atlasTruth, i + 1), 0) / names.length;
    say(`orientation check: atlas SEG vs atlas ground truth mean Dice ${f3(atlasCheck)}`);

    const session = await ort.InferenceSession.create(dl.bytes, {
      executionProviders: ['cpu'],
      logSeverityLevel: 3,
    });
    // (c), for information: the medical branch alone (eval-model.onnx in the job's folder).
    const evalFile = path.join(jobDir, 'eval-model.onnx');
    const evalSession = existsSync(evalFile)
      ? await ort.InferenceSession.create(evalFile, {
          executionProviders: ['cpu'],
          logSeverityLevel: 3,
        })
      : undefined;
    const registration = await loadRegistration(jobDir);
    const inputDims = modelInputDims(meta);
    const trained = new Set(job.series.map((s) => s.seriesUID));
    const subjects = gt.studies.filter(
      (s) => s.role === 'subject' && trained.has(s.seriesInstanceUID),
    );
    const perSubject: {
      subject: string;
      seriesUID: string;
      diceB: Record<string, number>;
      diceC: Record<string, number>;
      diceD: Record<string, number>;
      modelMs: number;
    }[] = [];
    try {
      for (const s of subjects) {
        const label = `DEMO-${String(s.index).padStart(2, '0')}`;
        const v = await withRetry(`series ${s.seriesInstanceUID}`, () =>
          fetchSeriesVolume(client, s.studyInstanceUID, s.seriesInstanceUID),
        );
        const { dims, spacing } = v.geometry;
        const truthImg = await readNifti(path.join(opts.demoDir, 'ground-truth', s.file));
        const truth = toClasses(truthImg.data);
        if (truth.length !== v.voxels.length) {
          throw new Error(
            `Ground truth of series ${s.seriesInstanceUID} has ${truth.length} voxels, the series ${v.voxels.length}.`,
          );
        }
        const input = prepareModelInput(v.voxels, dims, meta, spacing);
        const reg = await registration.register(atlasInput, atlasGrid, input);
        const predB = labelsFromLogits(reg.probabilities, meta, dims, spacing);
        const t0 = performance.now();
        const out = await session.run({
          [meta.onnx.input.name]: new ort.Tensor('float32', input, inputDims),
        });
        const modelMs = performance.now() - t0;
        const logits = out[meta.onnx.output.name]!.data as Float32Array;
        const predD = labelsFromLogits(logits, meta, dims, spacing);
        let predC: Uint8Array | undefined;
        if (evalSession) {
          const ev = await evalSession.run(
            { [meta.onnx.input.name]: new ort.Tensor('float32', input, inputDims) },
            ['medicalLogits'],
          );
          predC = labelsFromLogits(ev.medicalLogits!.data as Float32Array, meta, dims, spacing);
        }
        const diceB: Record<string, number> = {};
        const diceC: Record<string, number> = {};
        const diceD: Record<string, number> = {};
        names.forEach((n, i) => {
          diceB[n] = dice(predB, truth, i + 1);
          diceC[n] = predC ? dice(predC, truth, i + 1) : NaN;
          diceD[n] = dice(predD, truth, i + 1);
        });
        const mean = (r: Record<string, number>): number =>
          Object.values(r).reduce((a, x) => a + x, 0) / names.length;
        say(
          `${label} (series ${s.seriesInstanceUID}): mean Dice (b) ${f3(mean(diceB))} (c) ${f3(mean(diceC))} (d) ${f3(mean(diceD))}`,
        );
        perSubject.push({
          subject: label,
          seriesUID: s.seriesInstanceUID,
          diceB,
          diceC,
          diceD,
          modelMs,
        });
      }
    } finally {
      await registration.release();
      await session.release();
      await evalSession?.release();
    }
    if (perSubject.length === 0) throw new Error('No demo subject of the job has ground truth.');

    // ---- summary --------------------------------------------------------------------------
    const meanOver = (k: 'diceB' | 'diceC' | 'diceD', n: string): number =>
      perSubject.reduce((a, s) => a + s[k][n]!, 0) / perSubject.length;
    const perStructure = names.map((n) => ({
      name: n,
      b: meanOver('diceB', n),
      c: meanOver('diceC', n),
      d: meanOver('diceD', n),
    }));
    const overallB = perStructure.reduce((a, s) => a + s.b, 0) / names.length;
    const overallC = perStructure.reduce((a, s) => a + s.c, 0) / names.length;
    const overallD = perStructure.reduce((a, s) => a + s.d, 0) / names.length;
    const status = latencyStats(latencies);
    const fetchSeconds =
      Object.entries(phaseFirstSeen)
        .filter(([ph]) => ph !== 'fetch')
        .reduce((m, [, t]) => Math.min(m, t), Infinity) - (phaseFirstSeen.fetch ?? 0);
    const targets = {
      trainingWithin30Min: trainingWallSeconds <= TARGET_MINUTES * 60,
      modelBeatsRegistration: overallD > overallB,
      statusMedianWithin50Ms: status.median <= TARGET_MEDIAN_MS,
    };

    const lines: string[] = [];
    lines.push('');
    lines.push(
      `Demo flow benchmark (plan ${opts.plan}${opts.quick ? ', QUICK mode: targets not meaningful' : ''})`,
    );
    lines.push(
      `  machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
    lines.push(
      `  training data: ${job.series.length} series (query ${JSON.stringify(query)}, preview ${preview.count})`,
    );
    lines.push(
      `  job → published: ${f1(trainingWallSeconds)} s (${f1(trainingWallSeconds / 60)} min); server's training time ${f1(card.card.trainingSeconds ?? NaN)} s`,
    );
    lines.push(
      `  fetch from the PACS (until the first training stage): ${Number.isFinite(fetchSeconds) ? f1(fetchSeconds) + ' s (±' + opts.interval + ' s)' : 'n/a'}`,
    );
    lines.push('  stages:');
    for (const st of stages) {
      lines.push(
        `    ${pad(st.stage, 14)} ${String(st.steps).padStart(5)} steps ${f1(st.seconds).padStart(8)} s` +
          (st.steps > 0
            ? `  ${((st.seconds / st.steps) * 1000).toFixed(0).padStart(6)} ms/step`
            : '') +
          (st.skipped ? `  skipped: ${st.skipped}` : ''),
      );
    }
    lines.push(
      `  GET /api/jobs/{id} while training: n ${status.n}, median ${f1(status.median)} ms, p95 ${f1(status.p95)} ms, max ${f1(status.max)} ms`,
    );
    lines.push(
      `  event stream: first event after ${stream.firstEventMs !== null ? f1(stream.firstEventMs) + ' ms' : 'n/a'}, ${stream.progressEvents} progress events, longest gap ${f1(stream.maxGapMs / 1000)} s`,
    );
    lines.push(
      `  model: ${job.modelId}, ${(dl.bytes.length / 1e6).toFixed(2)} MB, sha256 ${digest.slice(0, 16)}… (matches server), CPU inference median ${f1(latencyStats(perSubject.map((s) => s.modelMs)).median)} ms`,
    );
    lines.push(`  orientation check (atlas SEG vs atlas ground truth): ${f3(atlasCheck)}`);
    lines.push(`  Dice on ${perSubject.length} demo subjects (mean per structure):`);
    lines.push(
      `    ${pad('structure', 22)} ${pad('(b) registration', 17)} ${pad('(d) model', 10)} (c) medical branch, for information`,
    );
    for (const s of perStructure)
      lines.push(`    ${pad(s.name, 22)} ${pad(f3(s.b), 17)} ${pad(f3(s.d), 10)} ${f3(s.c)}`);
    lines.push(
      `    ${pad('overall', 22)} ${pad(f3(overallB), 17)} ${pad(f3(overallD), 10)} ${f3(overallC)}`,
    );
    lines.push('  targets:');
    const v = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');
    lines.push(
      `    trains to a published model in ≤ ${TARGET_MINUTES} min: ${v(targets.trainingWithin30Min)} (${f1(trainingWallSeconds / 60)} min)`,
    );
    lines.push(
      `    Dice (d) model > (b) registration only: ${v(targets.modelBeatsRegistration)} (${f3(overallD)} vs ${f3(overallB)})`,
    );
    lines.push(
      `    status median ≤ ${TARGET_MEDIAN_MS} ms while training: ${v(targets.statusMedianWithin50Ms)} (${f1(status.median)} ms)`,
    );
    lines.push('');
    process.stdout.write(lines.join('\n') + '\n');

    if (opts.report) {
      const report = {
        benchmark: 'demo-flow',
        date: new Date().toISOString(),
        gitCommit: gitCommit() ?? null,
        quick: opts.quick,
        plan: opts.plan,
        machine: {
          cpus: os.cpus().length,
          model: os.cpus()[0]?.model ?? null,
          loadavgAtEnd: os.loadavg(),
        },
        server:
          opts.server ??
          'started by the benchmark (in-process server, training in a worker thread)',
        provider: opts.provider,
        task: { id: task.id, labels: names },
        job: {
          id: job.id,
          series: job.series.map((s) => s.seriesUID),
          query,
          preview: preview.count,
        },
        timing: {
          jobToPublishedSeconds: trainingWallSeconds,
          serverTrainingSeconds: card.card.trainingSeconds ?? null,
          fetchSeconds: Number.isFinite(fetchSeconds) ? fetchSeconds : null,
          phaseFirstSeenSeconds: phaseFirstSeen,
          stages,
          wholeScriptSeconds: (Date.now() - tStart) / 1000,
        },
        statusLatencyMs: { ...status, samples: latencies },
        eventStream: stream,
        model: { id: job.modelId, bytes: dl.bytes.length, sha256: digest, sha256Matches: shaOk },
        orientationCheckDice: atlasCheck,
        dice: { perStructure, overall: { b: overallB, c: overallC, d: overallD }, perSubject },
        targets,
      };
      await mkdir(path.dirname(path.resolve(opts.report)), { recursive: true });
      await writeFile(opts.report, JSON.stringify(report, null, 2) + '\n');
      say(`report written to ${opts.report}`);
    }
    return 0;
  } finally {
    for (const c of cleanups)
      await c().catch((e: unknown) => say(`cleanup: ${(e as Error).message}`));
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    say(`failed: ${(e as Error).message}`);
    process.exit(1);
  },
);
