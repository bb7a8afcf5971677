/**
 * The companion server's REST API under `/api/` (besides `/api/health`, which app.ts answers):
 * tasks, training jobs (queue, status, progress as server-sent events, cancel, log), models
 * (versions per task, model card, ONNX download), PACS series search with a count preview, and
 * capabilities. Every route is in `routeTable()`; routes.ts registers them on the Fastify server
 * with their schemas (schemas.ts: validation and the OpenAPI document served at
 * /api/openapi.json). Security: see auth.ts.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { chmodSync, rmSync } from 'node:fs';
import path from 'node:path';

import type { ServerConfig } from '../config.js';
import { sendJson } from '../http/headers.js';
import { CACHE_REVALIDATE, sendFile } from '../http/static.js';
import type { Logger } from '../log.js';
import type { ModelRegistry } from '../models/registry.js';
import { DicomWebClient } from '../pacs/dicomweb.js';
import { atlasTaskLabels, loadAtlas } from '../jobs/atlas.js';
import {
  DERIVED_PLAN,
  derivePlanForAtlas,
  planFromContent,
  planSummaries,
  readPlanFile,
} from '../jobs/plans.js';
import { type EvaluationSummary } from '../models/promotion.js';
import { makePublisher } from '../models/publish.js';
import { JobRunner, type JobExecutor, type RunnerEvent } from '../jobs/runner.js';
import { trainingExecutor } from '../jobs/workerExecutor.js';
import {
  FINAL_STATUSES,
  Store,
  type JobRecord,
  type SeriesRef,
  type TaskRecord,
} from '../store/db.js';
import type { Sessions } from '../http/guard.js';
import { isSameOriginBrowser } from './auth.js';
import {
  addHoldout,
  deleteTask,
  getTaskOr404,
  patchTask,
  removeHoldout,
  setDefaultModel,
  derivedCheck,
  type PlanCheck,
  type TaskLifecycleDeps,
} from './taskLifecycle.js';
import { parseSeriesQuery, searchSeries } from './pacsSearch.js';
import {
  requireTeacher,
  teacherImport,
  teacherList,
  teacherRemove,
  type TeacherDeps,
} from './teachers.js';
import { HttpError, TASK_ID, planMisfit, slug } from './request.js';
import type {
  HoldoutBody,
  JobCreateBody,
  PlanDeriveBody,
  TaskCreateBody,
  TaskPatchBody,
} from './schemas.js';

export interface ApiOptions {
  config: ServerConfig;
  log: Logger;
  models: ModelRegistry;
  /** host:port the server listens on (fallback when a request has no Host). */
  listenHost: () => string;
  /** The job executor (default: the PACS training pipeline in a worker thread). */
  executor?: JobExecutor;
  /** SSE heartbeat interval, ms (default 15 s). */
  heartbeatMs?: number;
  /** Retry delay of a job that found the PACS unreachable, ms per attempt (default 30 s). */
  jobRetryDelayMs?: number;
  /**
   * Checks a plan name before a task or job uses it (throws PlanRefusal); returns the labels it
   * trains when it knows them. Default: the plans of models/plans, parsed and within PLAN_BOUNDS.
   * A custom job executor brings its own.
   */
  checkPlan?: (name: string) => Promise<PlanCheck>;
  /** Session cookies and session tokens (http/guard.ts). */
  sessions: Sessions;
  /** Whether a request carries a valid session (cookie or token) or the API token. */
  authorized: (req: IncomingMessage, allowQuery: boolean) => boolean;
}

/** What a route's handler gets: the raw request and response, and the validated parts. */
export interface Req {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The JSON body, validated against the route's schema (schemas.ts); undefined without one. */
  body: unknown;
}

export interface RouteDef {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** OpenAPI path template, e.g. /api/jobs/{jobId}. */
  path: string;
  auth: boolean;
  /** The body is a stream the handler reads itself (an upload), not JSON. */
  stream?: boolean;
  /** A JSON body may be left out (validated as {}). */
  optionalBody?: boolean;
  handler: (r: Req) => Promise<void> | void;
}

export class Api {
  readonly store: Store;
  readonly runner: JobRunner;
  readonly routes: RouteDef[];
  private readonly streams = new Set<ServerResponse>();
  private readonly client: DicomWebClient;
  private providers?: { name: string; bundled: boolean }[];
  private readonly checkPlan: (name: string) => Promise<PlanCheck>;
  private readonly lifecycle: TaskLifecycleDeps;
  private readonly teachers: TeacherDeps;
  private closing?: Promise<void>;
  /** The OpenAPI document, built from the routes' schemas once they are registered (routes.ts). */
  openApi: () => unknown = () => ({});

  constructor(private readonly o: ApiOptions) {
    const c = o.config;
    this.checkPlan =
      o.checkPlan ??
      (async (name) => {
        const { plan, content } = await readPlanFile(name);
        return { classes: plan.classes, content };
      });
    // Versions half-assembled when a previous server stopped mid-publish (never listed as models).
    rmSync(path.join(c.modelsDir, '.staging'), { recursive: true, force: true });
    const dbFile = c.databaseFile ?? path.join(c.dataDir, 'state.sqlite');
    this.store = new Store(dbFile);
    for (const f of [dbFile, `${dbFile}-wal`, `${dbFile}-shm`]) {
      try {
        chmodSync(f, 0o600);
      } catch {
        /* not there (no WAL yet) */
      }
    }
    this.client = new DicomWebClient({
      root: c.pacs.dicomWebRoot,
      ...(c.pacs.username !== undefined ? { username: c.pacs.username } : {}),
      ...(c.pacs.password !== undefined ? { password: c.pacs.password } : {}),
    });
    const executor =
      o.executor ??
      trainingExecutor({
        pacs: c.pacs,
        provider: c.trainingProvider,
        teachersDir: c.teachersDir,
      });
    this.runner = new JobRunner({
      store: this.store,
      executor,
      jobsDir: path.join(c.dataDir, 'jobs'),
      log: o.log,
      slots: c.jobSlots,
      pruneFinished: !c.keepJobData,
      ...(o.jobRetryDelayMs !== undefined ? { retryDelayMs: o.jobRetryDelayMs } : {}),
      publish: makePublisher({ models: o.models, store: this.store, dataDir: c.dataDir }),
    });
    this.teachers = { dir: c.teachersDir, store: this.store, log: o.log };
    this.lifecycle = {
      teachers: this.teachers,
      store: this.store,
      models: o.models,
      client: this.client,
      log: o.log,
      dataDir: c.dataDir,
      checkPlan: this.checkPlan,
    };
    this.routes = this.routeTable();
    this.runner.start();
  }

  /** Ends event streams, stops running jobs (re-queued for the next start), closes the store. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const s of this.streams) s.end();
      this.streams.clear();
      await this.runner.stop();
      this.store.close();
    })();
    return this.closing;
  }

  /** For /api/health: the job runner's state. */
  workerHealth(): { ok: boolean; slots: number; running: number; queued: number } {
    return {
      ok: !this.closing,
      slots: this.o.config.jobSlots,
      running: this.store.listJobs({ status: 'running' }).length,
      queued: this.store.listJobs({ status: 'queued' }).length,
    };
  }

  private routeTable(): RouteDef[] {
    const r = (
      method: RouteDef['method'],
      p: string,
      handler: RouteDef['handler'],
      auth = true,
    ): RouteDef => ({ method, path: p, auth, handler });
    return [
      r('GET', '/api/openapi.json', ({ res }) => sendJson(res, 200, this.openApi()), false),
      r('GET', '/api/session', (x) => this.session(x), false),
      r('GET', '/api/capabilities', (x) => this.capabilities(x)),
      r('GET', '/api/plans', (x) => this.plans(x)),
      r('POST', '/api/plans/derive', (x) => this.derivePlan(x)),
      r('GET', '/api/pacs/series', (x) => this.searchSeries(x)),
      r('GET', '/api/tasks', ({ res, query }) =>
        sendJson(res, 200, {
          tasks: this.store.listTasks({ archived: query.get('archived') === '1' }),
        }),
      ),
      r('POST', '/api/tasks', (x) => this.createTask(x)),
      r('GET', '/api/tasks/{taskId}', ({ res, params }) =>
        sendJson(res, 200, this.task(params.taskId)),
      ),
      r('PATCH', '/api/tasks/{taskId}', async ({ res, params, body }) => {
        sendJson(res, 200, await patchTask(this.lifecycle, params.taskId, body as TaskPatchBody));
      }),
      r('DELETE', '/api/tasks/{taskId}', async ({ req, res, params, query }) => {
        req.resume();
        sendJson(res, 200, await deleteTask(this.lifecycle, params.taskId, query.get('confirm')));
      }),
      r('GET', '/api/tasks/{taskId}/plans', ({ res, params }) => {
        const t = this.task(params.taskId);
        sendJson(res, 200, {
          task: t.id,
          current: t.planVersion,
          plans: this.store.taskPlans(t.id),
        });
      }),
      r('POST', '/api/tasks/{taskId}/holdout', async ({ res, params, body }) => {
        sendJson(res, 200, await addHoldout(this.lifecycle, params.taskId, body as HoldoutBody));
      }),
      r('DELETE', '/api/tasks/{taskId}/holdout/{seriesUID}', ({ req, res, params }) => {
        req.resume();
        sendJson(res, 200, removeHoldout(this.lifecycle, params.taskId, params.seriesUID));
      }),
      r('POST', '/api/tasks/{taskId}/default', async ({ res, params, body }) => {
        const { modelId } = body as { modelId: string };
        sendJson(res, 200, await setDefaultModel(this.lifecycle, params.taskId, modelId.trim()));
      }),
      r('GET', '/api/tasks/{taskId}/models', (x) => this.taskModels(x)),
      r('GET', '/api/teachers', async ({ res }) =>
        sendJson(res, 200, await teacherList(this.teachers)),
      ),
      {
        ...r('POST', '/api/teachers', async ({ req, res, query }) => {
          const r = await teacherImport(this.teachers, req, query);
          sendJson(res, r.status, r.body);
        }),
        stream: true,
      },
      r('DELETE', '/api/teachers/{teacherId}', async ({ req, res, params }) => {
        req.resume();
        sendJson(res, 200, await teacherRemove(this.teachers, params.teacherId));
      }),
      r('GET', '/api/models/{modelId}', (x) => this.modelCard(x)),
      r('GET', '/api/models/{modelId}/model.onnx', (x) => this.modelOnnx(x)),
      r('GET', '/api/jobs', (x) => this.listJobs(x)),
      r('POST', '/api/jobs', (x) => this.createJob(x)),
      r('GET', '/api/jobs/{jobId}', ({ res, params }) =>
        sendJson(res, 200, this.job(params.jobId)),
      ),
      r('GET', '/api/jobs/{jobId}/events', (x) => this.events(x)),
      r('GET', '/api/jobs/{jobId}/log', (x) => this.jobLog(x)),
      r('GET', '/api/jobs/{jobId}/progress', (x) => this.jobProgress(x)),
      { ...r('POST', '/api/jobs/{jobId}/cancel', (x) => this.cancelJob(x)), optionalBody: true },
      r('POST', '/api/jobs/{jobId}/resume', ({ req, res, params }) => {
        req.resume();
        const r = this.runner.resume(params.jobId ?? '');
        if ('error' in r) throw new HttpError(r.status, r.error);
        sendJson(res, 202, r.job);
      }),
    ];
  }

  // ---- handlers
  /** The training plans in models/plans: name, classes (= labels + 1), grid, stage steps. */
  private async plans({ res }: Req): Promise<void> {
    sendJson(res, 200, { plans: await planSummaries() });
  }

  /**
   * The plan a task created from this atlas with plan "auto" would train (grid, spacing, depth and
   * why), without creating anything: the panel shows it before the task is created.
   */
  private async derivePlan({ res, body }: Req): Promise<void> {
    const ref = (body as PlanDeriveBody).atlas;
    const atlas = await loadAtlas(this.client, ref);
    const { labels } = atlasTaskLabels(atlas);
    const { content: _content, ...preview } = derivePlanForAtlas(
      atlas.volume.geometry,
      labels.length,
    );
    sendJson(res, 200, preview);
  }

  /**
   * A session token for the viewer's API calls: only to a same-origin page of this server that
   * holds a valid session cookie (set when the viewer page loads); it expires with that session.
   */
  private session({ req, res }: Req): void {
    if (!isSameOriginBrowser(req, this.o.listenHost())) {
      throw new HttpError(
        403,
        'The session token is given only to the viewer this server serves (same-origin browser requests). ' +
          "Scripts use the configured token (RRL_API_TOKEN) or the server's <dataDir>/api-token file.",
      );
    }
    const expires = this.o.sessions.fromCookie(req);
    if (expires === undefined) {
      throw new HttpError(
        401,
        'No viewer session: reload the viewer page of this server to start one.',
      );
    }
    sendJson(res, 200, {
      token: this.o.sessions.issue('b', expires),
      tokenType: 'Bearer',
      expiresAt: new Date(expires * 1000).toISOString(),
    });
  }

  private async capabilities({ res }: Req): Promise<void> {
    if (!this.providers) {
      try {
        const ort = (await import('onnxruntime-node')) as unknown as {
          listSupportedBackends?: () => { name: string; bundled: boolean }[];
        };
        this.providers = ort.listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
      } catch {
        this.providers = [];
      }
    }
    const bundled = (n: string): boolean =>
      this.providers?.some((p) => p.name === n && p.bundled) ?? false;
    const running = this.store.listJobs({ status: 'running' });
    const configured = this.o.config.trainingProvider;
    sendJson(res, 200, {
      providers: [
        { name: 'cpu', available: bundled('cpu'), note: 'onnxruntime-node CPU execution provider' },
        {
          name: 'webgpu',
          available: bundled('webgpu'),
          note: 'onnxruntime-node WebGPU execution provider (Dawn); needs a Vulkan/Metal/D3D12 adapter at run time',
        },
        {
          name: 'cuda',
          available: bundled('cuda'),
          note: bundled('cuda')
            ? 'onnxruntime-node CUDA execution provider'
            : 'the CUDA binaries of onnxruntime-node are not installed on this server',
        },
      ],
      configured,
      inUse: running.length > 0 ? running.map((j) => ({ job: j.id, provider: j.provider })) : [],
      slots: this.o.config.jobSlots,
      limits: {
        maxSeriesPerJob: this.o.config.maxSeriesPerJob,
        maxRequestBytes: this.o.config.maxRequestBytes,
      },
    });
  }

  private async searchSeries({ res, query }: Req): Promise<void> {
    const q = parseSeriesQuery(Object.fromEntries(query.entries()));
    const limit = Math.min(Number(query.get('limit') ?? this.o.config.maxSeriesPerJob) || 0, 1000);
    const offset = Math.max(0, Math.floor(Number(query.get('offset') ?? 0) || 0));
    const found = await searchSeries(this.client, q, Math.max(0, limit), offset);
    sendJson(res, 200, { ...found, limit: this.o.config.maxSeriesPerJob });
  }

  private task(id: string | undefined): TaskRecord {
    return getTaskOr404(this.store, id);
  }

  private job(id: string | undefined): JobRecord {
    const j = id ? this.runner.job(id) : undefined;
    if (!j) throw new HttpError(404, `No job ${id ?? ''}. GET /api/jobs lists the jobs.`);
    return j;
  }

  private async createTask({ res, body: b }: Req): Promise<void> {
    const body = b as TaskCreateBody;
    const name = body.name.trim();
    const id = body.id ?? slug(name);
    if (!TASK_ID.test(id)) {
      throw new HttpError(
        400,
        `id must be lower-case letters, digits and dashes (${TASK_ID.source}); found ${JSON.stringify(id)}.`,
      );
    }
    if (this.store.getTask(id))
      throw new HttpError(409, `A task ${id} exists already; choose another name or id.`);
    const plan = body.plan ?? 'hippocampus';
    const ref = body.atlas;
    // The plan (and the teacher) must exist and be sane before the PACS is even asked; a derived
    // plan needs the atlas's geometry, so it is made once the atlas is read.
    const derived = plan === DERIVED_PLAN;
    let planDef: PlanCheck = derived ? {} : await this.checkPlan(plan);
    const card =
      body.teacher !== undefined && body.teacher !== null
        ? await requireTeacher(this.teachers, body.teacher)
        : undefined;
    const atlas = await loadAtlas(this.client, ref);
    const modality = body.modality === undefined ? atlas.volume.modality : body.modality.trim();
    if (modality !== atlas.volume.modality) {
      throw new HttpError(
        422,
        `The task's modality is ${modality} but the atlas series ${ref.seriesUID} is ${atlas.volume.modality}.`,
      );
    }
    const { labels, warnings } = atlasTaskLabels(atlas);
    if (derived) {
      planDef = derivedCheck(derivePlanForAtlas(atlas.volume.geometry, labels.length));
    }
    if (card) {
      if (planDef.content === undefined || planDef.content === null) {
        throw new HttpError(422, `Plan ${plan} has no stored content to add a teacher to.`);
      }
      planDef.content = { ...(planDef.content as object), teacher: card.id };
    }
    const misfit = planMisfit(plan, planDef, labels.length);
    if (misfit) {
      const fitting = (await planSummaries())
        .filter((p) => p.classes === labels.length + 1)
        .map((p) => p.name);
      throw new HttpError(
        422,
        `${misfit} but the atlas SEG holds ${labels.length}; ` +
          (fitting.length > 0
            ? `choose a plan for ${labels.length} labels: ${fitting.join(', ')}.`
            : `no installed plan trains ${labels.length} labels; add one to models/plans.`),
      );
    }
    let task: TaskRecord = {
      id,
      name,
      modality,
      atlas: { studyUID: ref.studyUID, seriesUID: ref.seriesUID, segSeriesUID: atlas.segSeriesUID },
      plan,
      ...(planDef.content !== undefined ? { planContent: planDef.content } : {}),
      labels,
      createdAt: new Date().toISOString(),
      holdout: [],
    };
    try {
      this.store.insertTask(task);
      task = this.task(id);
    } catch (e) {
      // Two creations with the same name at once: the second loses the race on the primary key.
      if (/UNIQUE|PRIMARY KEY|constraint/i.test((e as Error).message)) {
        throw new HttpError(409, `A task ${id} exists already; choose another name or id.`);
      }
      throw e;
    }
    this.o.log.info('task created', { task: id, atlasSeries: ref.seriesUID });
    sendJson(res, 201, warnings.length > 0 ? { ...task, warnings } : task, {
      Location: `/api/tasks/${id}`,
    });
  }

  private async taskModels({ res, params }: Req): Promise<void> {
    const t = this.task(params.taskId);
    const versions = await this.o.models.versions(t.id);
    // The task's default: the one it names, else (older tasks) the newest version.
    const defaultId = versions.some((m) => m.id === t.defaultModel)
      ? t.defaultModel
      : versions[versions.length - 1]?.id;
    const models = [];
    for (const m of versions) {
      const card = await this.o.models.modelCard(m.id).catch(() => undefined);
      const evaluation = card?.evaluation as EvaluationSummary | null | undefined;
      models.push({
        id: m.id,
        version: m.version,
        name: m.name,
        createdAt: (m.provenance as { createdAt?: string } | undefined)?.createdAt,
        default: m.id === defaultId,
        ...(evaluation && typeof evaluation.meanDice === 'number'
          ? { holdoutDice: evaluation.meanDice }
          : {}),
        onnx: `/api/models/${encodeURIComponent(m.id)}/model.onnx`,
        card: `/api/models/${encodeURIComponent(m.id)}`,
      });
    }
    sendJson(res, 200, { task: t.id, defaultModel: defaultId ?? null, models });
  }

  private async modelCard({ res, params }: Req): Promise<void> {
    const id = params.modelId ?? '';
    const { models } = await this.o.models.list();
    const meta = models.find((m) => m.id === id);
    if (!meta)
      throw new HttpError(
        404,
        `No model ${id}. GET /models/index.json lists the published models.`,
      );
    const card = (await this.o.models.modelCard(id)) ?? {};
    sendJson(res, 200, { id, metadata: meta, card });
  }

  private async modelOnnx({ req, res, params }: Req): Promise<void> {
    const id = params.modelId ?? '';
    const { models } = await this.o.models.list();
    const meta = models.find((m) => m.id === id) as { onnx?: { file: string } } | undefined;
    const found = meta?.onnx ? await this.o.models.modelFile(id, meta.onnx.file) : undefined;
    if (!found) throw new HttpError(404, `No model ${id}.`);
    const sha = await this.o.models.sha256(found.file, found.info);
    await sendFile(req, res, found.file, found.info, {
      cacheControl: CACHE_REVALIDATE,
      etag: `"${sha}"`,
      extraHeaders: {
        'X-Content-SHA256': sha,
        'Content-Disposition': `attachment; filename="${id}.onnx"`,
      },
    });
  }

  private listJobs({ res, query }: Req): void {
    const status = query.get('status') ?? undefined;
    const taskId = query.get('task') ?? undefined;
    const jobs = this.store
      .listJobs({
        ...(taskId ? { taskId } : {}),
        ...(status ? { status: status as JobRecord['status'] } : {}),
      })
      .map((j) => this.runner.job(j.id) ?? j);
    sendJson(res, 200, { jobs });
  }

  private async createJob({ res, body: b }: Req): Promise<void> {
    const body = b as JobCreateBody;
    const task = this.task(body.taskId.trim());
    // The task's stored plan (its content when the task holds it, else the plan file by name).
    const planDef =
      task.planContent !== undefined
        ? { classes: planFromContent(task.planContent, task.plan).classes }
        : await this.checkPlan(task.plan);
    const misfit = planMisfit(task.plan, planDef, task.labels.length);
    if (misfit) {
      throw new HttpError(422, `${misfit} but task ${task.id} has ${task.labels.length}.`);
    }
    const sel = body.series;
    const max = this.o.config.maxSeriesPerJob;
    let series: SeriesRef[];
    let selection: Record<string, unknown>;
    if ('uids' in sel) {
      if (sel.uids.length > max) {
        throw new HttpError(
          422,
          `${sel.uids.length} series were given; a job may use at most ${max} (server setting maxSeriesPerJob).`,
        );
      }
      series = sel.uids.map((u) => ({ studyUID: u.studyUID, seriesUID: u.seriesUID }));
      selection = { kind: 'uids' };
    } else {
      const q = parseSeriesQuery(sel.query);
      const found = await searchSeries(this.client, { modality: task.modality, ...q }, max + 1);
      if (found.count > max) {
        throw new HttpError(
          422,
          `The query matches ${found.count} series; a job may use at most ${max}. Narrow the query (date range, description).`,
        );
      }
      series = found.series.map((s) => ({ studyUID: s.studyUID, seriesUID: s.seriesUID }));
      selection = { kind: 'query', query: q };
    }
    const seen = new Set<string>();
    series = series.filter((s) => {
      if (s.seriesUID === task.atlas.seriesUID || seen.has(s.seriesUID)) return false;
      seen.add(s.seriesUID);
      return true;
    });
    if (series.length === 0) {
      throw new HttpError(
        422,
        'No unlabelled series to train on (the atlas series itself does not count). Choose other series.',
      );
    }
    const provider = body.provider ?? this.o.config.trainingProvider;
    const job = this.store.insertJob({
      id: randomUUID(),
      taskId: task.id,
      series,
      selection,
      provider,
      createdAt: new Date().toISOString(),
      ...(task.planVersion !== undefined ? { planVersion: task.planVersion } : {}),
    });
    this.o.log.info('job queued', { job: job.id, task: task.id, series: series.length });
    this.runner.enqueued();
    sendJson(res, 201, this.runner.job(job.id), { Location: `/api/jobs/${job.id}` });
  }

  private jobLog({ res, params, query }: Req): void {
    const j = this.job(params.jobId);
    const after = Number(query.get('after') ?? 0) || 0;
    const lines = this.store.log(j.id, after);
    if (query.get('format') === 'text') {
      // The whole log to read in a browser tab (the panel links here).
      res.statusCode = 200;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.setHeader('Cache-Control', 'no-store');
      res.end(lines.map((l) => `${l.time}  ${l.line}`).join('\n') + '\n');
      return;
    }
    sendJson(res, 200, { job: j.id, status: j.status, lines });
  }

  /** The job's kept progress rows (at most one per second, plus phase changes), oldest first. */
  private jobProgress({ res, params }: Req): void {
    const j = this.job(params.jobId);
    sendJson(res, 200, { job: j.id, status: j.status, progress: this.store.progressHistory(j.id) });
  }

  private cancelJob({ res, params, body }: Req): void {
    const reason = (body as { reason?: string } | undefined)?.reason?.trim();
    const r = this.runner.cancel(params.jobId ?? '', reason);
    if ('error' in r) throw new HttpError(r.status, r.error);
    sendJson(res, 202, r.job);
  }

  private events({ req, res, params }: Req): void {
    const j = this.job(params.jobId);
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    const send = (event: string, data: unknown): void => {
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    res.write('retry: 3000\n\n');
    send('status', j);
    if (j.progress) send('progress', j.progress);
    const isFinal = (s: JobRecord['status']): boolean => FINAL_STATUSES.includes(s);
    if (isFinal(j.status)) {
      send('end', { status: j.status });
      res.end();
      return;
    }
    this.streams.add(res);
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), this.o.heartbeatMs ?? 15_000);
    const unsubscribe = this.runner.subscribe(j.id, (e: RunnerEvent) => {
      if (e.type === 'progress') send('progress', e.progress);
      else if (e.type === 'log') send('log', { n: e.n, time: e.time, line: e.line });
      else {
        send('status', e.job);
        if (isFinal(e.job.status)) {
          send('end', { status: e.job.status });
          res.end();
        }
      }
    });
    const cleanup = (): void => {
      clearInterval(heartbeat);
      unsubscribe();
      this.streams.delete(res);
    };
    res.on('close', cleanup);
    req.on('close', cleanup);
  }
}
