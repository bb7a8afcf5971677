/**
 * A small typed client of the companion server's REST API (server/src/api/README.md), used by the
 * panel's training workflow. The token comes from the same-origin `/api/session` (cached, fetched
 * again once on a 401); errors become `ApiError`s whose message says what the user can do.
 */

import type {
  DerivedPlan,
  Job,
  JobProgress,
  JobStatus,
  LogLine,
  ModelDetails,
  ModelVersion,
  Plan,
  SeriesQuery,
  SeriesRef,
  SeriesSearch,
  Task,
  TeacherCard,
} from '@rrl/core/api.js';

// The HTTP types are the server's (core/src/api.ts); re-exported for the panel.
export type * from '@rrl/core/api.js';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The user-facing message for an HTTP error answer (`{ error: { message } }` or text). */
export function describeHttpError(status: number, what: string, serverMessage?: string): string {
  const said = serverMessage ? ` The server said: ${serverMessage}` : '';
  if (status === 401)
    return `${what}: the server refused the viewer's token (401). Reload the viewer page to get a new one.${said}`;
  if (status === 403)
    return `${what}: refused (403). Open the viewer from the companion server's own address.${said}`;
  if (status === 404) return `${what}: not found (404).${said}`;
  if (status === 409) return `${what}: conflict (409).${said}`;
  if (status === 422) return `${what}: the server cannot use this input (422).${said}`;
  if (status >= 500)
    return `${what}: the server failed (HTTP ${status}). Check the companion server's log.${said}`;
  return `${what}: HTTP ${status}.${said}`;
}

export interface ApiClientOptions {
  /** Origin of the companion server (default: the page's). */
  baseUrl?: string;
  fetchFn?: typeof fetch;
}

export class ApiClient {
  private token?: Promise<string>;
  private readonly base: string;
  private readonly fetchFn: typeof fetch;

  constructor(opts: ApiClientOptions = {}) {
    this.base = (opts.baseUrl ?? '').replace(/\/$/, '');
    this.fetchFn = opts.fetchFn ?? ((input, init) => fetch(input, init));
  }

  private async send(url: string, init: RequestInit, what: string): Promise<Response> {
    try {
      return await this.fetchFn(url, init);
    } catch (e) {
      throw new ApiError(
        `${what}: the companion server cannot be reached (${e instanceof Error ? e.message : String(e)}). Is it running? Reload the page when it is back.`,
        0,
      );
    }
  }

  private static async errorMessage(res: Response): Promise<string | undefined> {
    try {
      const text = await res.text();
      try {
        const j = JSON.parse(text) as { error?: { message?: string } };
        return j.error?.message ?? text;
      } catch {
        return text || undefined;
      }
    } catch {
      return undefined;
    }
  }

  /** The API token (cached). */
  getToken(fresh = false): Promise<string> {
    if (fresh || !this.token) {
      const p = (async () => {
        const res = await this.send(
          `${this.base}/api/session`,
          { credentials: 'same-origin', headers: { accept: 'application/json' } },
          'Getting the API session',
        );
        if (!res.ok) {
          throw new ApiError(
            describeHttpError(
              res.status,
              'Getting the API session',
              await ApiClient.errorMessage(res),
            ),
            res.status,
          );
        }
        const j = (await res.json()) as { token?: unknown };
        if (typeof j.token !== 'string') {
          throw new ApiError(
            'The /api/session answer has no token; update the companion server.',
            0,
          );
        }
        return j.token;
      })();
      this.token = p;
      p.catch(() => {
        if (this.token === p) this.token = undefined;
      });
    }
    return this.token;
  }

  /** A JSON call; on 401 the token is fetched again once. */
  async call<T>(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: string,
    what: string,
    body?: unknown,
    /** A binary body (a file upload) instead of JSON. */
    raw?: { data: Blob; type: string },
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.getToken(attempt > 0);
      const headers: Record<string, string> = {
        accept: 'application/json',
        authorization: `Bearer ${token}`,
      };
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (raw) headers['content-type'] = raw.type;
      const payload = raw ? raw.data : body !== undefined ? JSON.stringify(body) : undefined;
      const res = await this.send(
        `${this.base}${path}`,
        { method, headers, ...(payload !== undefined ? { body: payload } : {}) },
        what,
      );
      if (res.status === 401 && attempt === 0) continue;
      if (!res.ok) {
        throw new ApiError(
          describeHttpError(res.status, what, await ApiClient.errorMessage(res)),
          res.status,
        );
      }
      return (await res.json()) as T;
    }
  }

  async plans(): Promise<Plan[]> {
    return (await this.call<{ plans: Plan[] }>('GET', '/api/plans', 'Listing the plans')).plans;
  }

  /** The plan "auto" would train for a task with this atlas (nothing is created). */
  derivePlan(atlas: SeriesRef): Promise<DerivedPlan> {
    return this.call<DerivedPlan>('POST', '/api/plans/derive', 'Deriving a plan from the atlas', {
      atlas,
    });
  }

  async tasks(options: { archived?: boolean } = {}): Promise<Task[]> {
    const q = options.archived ? '?archived=1' : '';
    return (await this.call<{ tasks: Task[] }>('GET', `/api/tasks${q}`, 'Listing the tasks')).tasks;
  }

  /** The imported SAM teachers, newest first. */
  async teachers(): Promise<TeacherCard[]> {
    return (
      await this.call<{ teachers: TeacherCard[] }>('GET', '/api/teachers', 'Listing the teachers')
    ).teachers;
  }

  /** Uploads a SAM / MedSAM / MobileSAM checkpoint file and imports it (once per file and size). */
  importTeacher(file: Blob, name: string, size?: number) {
    const q = `name=${encodeURIComponent(name)}${size ? `&size=${size}` : ''}`;
    return this.call<{ teacher: TeacherCard; existed: boolean }>(
      'POST',
      `/api/teachers?${q}`,
      `Importing ${name}`,
      undefined,
      { data: file, type: 'application/octet-stream' },
    );
  }

  /** Rename, change the plan or the teacher (the next training uses them), archive or restore. */
  updateTask(
    id: string,
    patch: { name?: string; plan?: string; teacher?: string | null; archived?: boolean },
  ) {
    return this.call<Task>(
      'PATCH',
      `/api/tasks/${encodeURIComponent(id)}`,
      'Changing the task',
      patch,
    );
  }

  /** Deletes the task with its models and jobs. */
  async deleteTask(id: string): Promise<void> {
    const t = encodeURIComponent(id);
    await this.call<unknown>('DELETE', `/api/tasks/${t}?confirm=${t}`, 'Deleting the task');
  }

  addHoldout(taskId: string, series: SeriesRef): Promise<Task> {
    return this.call<Task>(
      'POST',
      `/api/tasks/${encodeURIComponent(taskId)}/holdout`,
      'Adding the hold-out series',
      series,
    );
  }

  /** Makes a version the task's default (promote or roll back). */
  setDefaultModel(taskId: string, modelId: string): Promise<Task> {
    return this.call<Task>(
      'POST',
      `/api/tasks/${encodeURIComponent(taskId)}/default`,
      'Changing the default model',
      { modelId },
    );
  }

  createTask(input: {
    name: string;
    plan: string;
    teacher?: string | null;
    atlas: SeriesRef & { segSeriesUID?: string };
  }): Promise<Task> {
    return this.call<Task>('POST', '/api/tasks', 'Creating the task', input);
  }

  searchSeries(q: SeriesQuery, limit = 50): Promise<SeriesSearch> {
    return this.call<SeriesSearch>(
      'GET',
      `/api/pacs/series?${seriesQueryString(q, limit)}`,
      'Searching the PACS',
    );
  }

  async jobs(taskId?: string): Promise<Job[]> {
    const q = taskId ? `?task=${encodeURIComponent(taskId)}` : '';
    return (await this.call<{ jobs: Job[] }>('GET', `/api/jobs${q}`, 'Listing the jobs')).jobs;
  }

  job(id: string): Promise<Job> {
    return this.call<Job>('GET', `/api/jobs/${encodeURIComponent(id)}`, 'Reading the job');
  }

  startJob(taskId: string, series: SeriesRef[]): Promise<Job> {
    return this.call<Job>('POST', '/api/jobs', 'Starting the training', {
      taskId,
      series: { uids: series },
    });
  }

  async cancelJob(id: string): Promise<void> {
    await this.call<unknown>(
      'POST',
      `/api/jobs/${encodeURIComponent(id)}/cancel`,
      'Cancelling the job',
      {},
    );
  }

  resumeJob(id: string): Promise<Job> {
    return this.call<Job>('POST', `/api/jobs/${encodeURIComponent(id)}/resume`, 'Resuming the job');
  }

  async jobLog(id: string, after = 0): Promise<LogLine[]> {
    return (
      await this.call<{ lines: LogLine[] }>(
        'GET',
        `/api/jobs/${encodeURIComponent(id)}/log?after=${after}`,
        'Reading the job log',
      )
    ).lines;
  }

  /** Kept progress rows of a job (oldest first): fills the loss plot of a reopened panel. */
  async jobProgress(id: string): Promise<JobProgress[]> {
    return (
      await this.call<{ progress: JobProgress[] }>(
        'GET',
        `/api/jobs/${encodeURIComponent(id)}/progress`,
        'Reading the job progress',
      )
    ).progress;
  }

  async taskModels(taskId: string): Promise<ModelVersion[]> {
    return (
      await this.call<{ models: ModelVersion[] }>(
        'GET',
        `/api/tasks/${encodeURIComponent(taskId)}/models`,
        'Listing the task’s models',
      )
    ).models;
  }

  model(id: string): Promise<ModelDetails> {
    return this.call<ModelDetails>(
      'GET',
      `/api/models/${encodeURIComponent(id)}`,
      'Reading the model card',
    );
  }

  /**
   * Follows a job's server-sent events with automatic reconnects (the browser's EventSource
   * reconnects by itself; on an auth failure the token is fetched again and a new source opened).
   * Returns a function that stops following.
   */
  followJob(
    id: string,
    handlers: {
      status?(job: Job): void;
      progress?(p: JobProgress): void;
      log?(l: LogLine): void;
      end?(status: JobStatus): void;
      error?(message: string): void;
    },
  ): () => void {
    let closed = false;
    let source: EventSource | undefined;
    let retries = 0;
    const open = async (fresh: boolean) => {
      if (closed) return;
      let token: string;
      try {
        token = await this.getToken(fresh);
      } catch (e) {
        handlers.error?.(e instanceof Error ? e.message : String(e));
        setTimeout(() => void open(true), 3000);
        return;
      }
      if (closed) return;
      const es = new EventSource(
        `${this.base}/api/jobs/${encodeURIComponent(id)}/events?access_token=${encodeURIComponent(token)}`,
      );
      source = es;
      es.addEventListener('open', () => {
        retries = 0;
      });
      es.addEventListener('status', (ev) => handlers.status?.(parse<Job>(ev)));
      es.addEventListener('progress', (ev) => handlers.progress?.(parse<JobProgress>(ev)));
      es.addEventListener('log', (ev) => handlers.log?.(parse<LogLine>(ev)));
      es.addEventListener('end', (ev) => {
        closed = true;
        es.close();
        handlers.end?.(parse<{ status: JobStatus }>(ev).status);
      });
      es.addEventListener('error', () => {
        if (closed) return;
        if (es.readyState === EventSource.CLOSED) {
          // Refused (401 after a server restart with a new token, or the server is down):
          // reconnect with a fresh token, backing off.
          retries++;
          handlers.error?.(
            'Lost the connection to the training job’s progress; reconnecting. Is the companion server running?',
          );
          setTimeout(() => void open(true), Math.min(10_000, 1000 * retries));
        }
      });
    };
    void open(false);
    return () => {
      closed = true;
      source?.close();
    };
  }
}

/** The JSON data of a server-sent event. */
function parse<T>(ev: Event): T {
  return JSON.parse((ev as MessageEvent<string>).data) as T;
}

export function seriesQueryString(q: SeriesQuery, limit?: number): string {
  const p = new URLSearchParams();
  for (const k of ['modality', 'description', 'from', 'to'] as const) {
    const v = q[k]?.trim();
    if (v) p.set(k, v);
  }
  if (limit !== undefined) p.set('limit', String(limit));
  return p.toString();
}
