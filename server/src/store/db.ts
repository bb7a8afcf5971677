/**
 * The server's state in SQLite (better-sqlite3, synchronous, WAL): training tasks, jobs (queue
 * order, status, reason, latest progress), throttled progress rows and job log lines. Records hold
 * UIDs and settings only, never patient names or IDs.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface SeriesRef {
  studyUID: string;
  seriesUID: string;
}

export interface AtlasRef extends SeriesRef {
  /** The SEG series that labels the atlas series. */
  segSeriesUID: string;
}

export interface TaskLabel {
  value: number;
  name: string;
  color: [number, number, number];
  category?: { value: string; scheme: string; meaning: string };
  type?: { value: string; scheme: string; meaning: string };
  /** SNOMED CT laterality (Left / Right …) of the type, from the atlas SEG. */
  modifier?: { value: string; scheme: string; meaning: string };
}

export interface TaskRecord {
  id: string;
  name: string;
  modality: string;
  atlas: AtlasRef;
  plan: string;
  labels: TaskLabel[];
  createdAt: string;
}

export interface JobProgress {
  phase: string;
  stageIndex?: number;
  stageCount?: number;
  step: number;
  total: number;
  loss?: number;
  metrics?: Record<string, number>;
  /** Seconds left in the whole job (estimate), when known. */
  etaSeconds?: number;
  time: string;
}

export interface JobRecord {
  id: string;
  taskId: string;
  status: JobStatus;
  /** Queue order (smaller runs first). */
  seq: number;
  /** Unlabelled series to train on (resolved UIDs). */
  series: SeriesRef[];
  /** How the series were chosen (the query, or "uids"). */
  selection: Record<string, unknown>;
  provider: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** Why the job failed or was cancelled, or notes on a resumed run. */
  reason?: string;
  modelId?: string;
  progress?: JobProgress;
  /** How many times the job was started (> 1 after a restart resumed it). */
  attempts: number;
}

interface JobRow {
  id: string;
  task_id: string;
  status: JobStatus;
  seq: number;
  series: string;
  selection: string;
  provider: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  reason: string | null;
  model_id: string | null;
  progress: string | null;
  attempts: number;
}

interface TaskRow {
  id: string;
  name: string;
  modality: string;
  atlas: string;
  plan: string;
  labels: string;
  created_at: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, modality TEXT NOT NULL, atlas TEXT NOT NULL,
  plan TEXT NOT NULL, labels TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, task_id TEXT NOT NULL REFERENCES tasks(id), status TEXT NOT NULL,
  seq INTEGER NOT NULL, series TEXT NOT NULL, selection TEXT NOT NULL, provider TEXT NOT NULL,
  created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, reason TEXT, model_id TEXT,
  progress TEXT, attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs(status, seq);
CREATE TABLE IF NOT EXISTS job_progress (
  job_id TEXT NOT NULL REFERENCES jobs(id), time TEXT NOT NULL, progress TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_progress_job ON job_progress(job_id);
CREATE TABLE IF NOT EXISTS job_log (
  job_id TEXT NOT NULL REFERENCES jobs(id), n INTEGER NOT NULL, time TEXT NOT NULL, line TEXT NOT NULL,
  PRIMARY KEY (job_id, n)
);
`;

function toTask(r: TaskRow): TaskRecord {
  return {
    id: r.id,
    name: r.name,
    modality: r.modality,
    atlas: JSON.parse(r.atlas) as AtlasRef,
    plan: r.plan,
    labels: JSON.parse(r.labels) as TaskLabel[],
    createdAt: r.created_at,
  };
}

function toJob(r: JobRow): JobRecord {
  return {
    id: r.id,
    taskId: r.task_id,
    status: r.status,
    seq: r.seq,
    series: JSON.parse(r.series) as SeriesRef[],
    selection: JSON.parse(r.selection) as Record<string, unknown>,
    provider: r.provider,
    createdAt: r.created_at,
    ...(r.started_at ? { startedAt: r.started_at } : {}),
    ...(r.finished_at ? { finishedAt: r.finished_at } : {}),
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.model_id ? { modelId: r.model_id } : {}),
    ...(r.progress ? { progress: JSON.parse(r.progress) as JobProgress } : {}),
    attempts: r.attempts,
  };
}

export class Store {
  readonly db: Database.Database;

  /** Opens (creating if needed) `<file>`; `:memory:` for a throwaway store. */
  constructor(readonly file: string) {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  // ---- tasks
  insertTask(t: TaskRecord): void {
    this.db
      .prepare(
        'INSERT INTO tasks (id, name, modality, atlas, plan, labels, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        t.id,
        t.name,
        t.modality,
        JSON.stringify(t.atlas),
        t.plan,
        JSON.stringify(t.labels),
        t.createdAt,
      );
  }

  getTask(id: string): TaskRecord | undefined {
    const r = this.db.prepare('SELECT * FROM tasks WHERE id = ?').get(id) as TaskRow | undefined;
    return r ? toTask(r) : undefined;
  }

  listTasks(): TaskRecord[] {
    return (this.db.prepare('SELECT * FROM tasks ORDER BY created_at, id').all() as TaskRow[]).map(
      toTask,
    );
  }

  // ---- jobs
  insertJob(j: Omit<JobRecord, 'seq' | 'attempts' | 'status'>): JobRecord {
    const seq =
      ((this.db.prepare('SELECT MAX(seq) AS m FROM jobs').get() as { m: number | null }).m ?? 0) +
      1;
    this.db
      .prepare(
        `INSERT INTO jobs (id, task_id, status, seq, series, selection, provider, created_at, attempts)
         VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, 0)`,
      )
      .run(
        j.id,
        j.taskId,
        seq,
        JSON.stringify(j.series),
        JSON.stringify(j.selection),
        j.provider,
        j.createdAt,
      );
    return this.getJob(j.id) as JobRecord;
  }

  getJob(id: string): JobRecord | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return r ? toJob(r) : undefined;
  }

  listJobs(filter: { taskId?: string; status?: JobStatus } = {}): JobRecord[] {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.taskId) {
      where.push('task_id = ?');
      args.push(filter.taskId);
    }
    if (filter.status) {
      where.push('status = ?');
      args.push(filter.status);
    }
    const sql = `SELECT * FROM jobs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq`;
    return (this.db.prepare(sql).all(...args) as JobRow[]).map(toJob);
  }

  /** Queued jobs in queue order. */
  queuedJobs(): JobRecord[] {
    return this.listJobs({ status: 'queued' });
  }

  markRunning(id: string, time: string): void {
    this.db
      .prepare(
        "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), attempts = attempts + 1 WHERE id = ?",
      )
      .run(time, id);
  }

  /** Puts a running job back in the queue (server stopping); it keeps its place (seq). */
  requeue(id: string, note: string): void {
    this.db
      .prepare("UPDATE jobs SET status = 'queued', reason = ? WHERE id = ? AND status = 'running'")
      .run(note, id);
  }

  finish(
    id: string,
    status: 'succeeded' | 'failed' | 'cancelled',
    time: string,
    extra: { reason?: string; modelId?: string } = {},
  ): void {
    this.db
      .prepare('UPDATE jobs SET status = ?, finished_at = ?, reason = ?, model_id = ? WHERE id = ?')
      .run(status, time, extra.reason ?? null, extra.modelId ?? null, id);
  }

  setProgress(id: string, p: JobProgress, keepRow: boolean): void {
    const json = JSON.stringify(p);
    this.db.prepare('UPDATE jobs SET progress = ? WHERE id = ?').run(json, id);
    if (keepRow) {
      this.db
        .prepare('INSERT INTO job_progress (job_id, time, progress) VALUES (?, ?, ?)')
        .run(id, p.time, json);
    }
  }

  progressHistory(id: string): JobProgress[] {
    return (
      this.db
        .prepare('SELECT progress FROM job_progress WHERE job_id = ? ORDER BY rowid')
        .all(id) as { progress: string }[]
    ).map((r) => JSON.parse(r.progress) as JobProgress);
  }

  appendLog(id: string, time: string, line: string): number {
    const n =
      ((
        this.db.prepare('SELECT MAX(n) AS m FROM job_log WHERE job_id = ?').get(id) as {
          m: number | null;
        }
      ).m ?? 0) + 1;
    this.db
      .prepare('INSERT INTO job_log (job_id, n, time, line) VALUES (?, ?, ?, ?)')
      .run(id, n, time, line);
    return n;
  }

  log(id: string, after = 0): { n: number; time: string; line: string }[] {
    return this.db
      .prepare('SELECT n, time, line FROM job_log WHERE job_id = ? AND n > ? ORDER BY n')
      .all(id, after) as { n: number; time: string; line: string }[];
  }
}
