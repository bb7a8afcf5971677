/**
 * The server's state in SQLite (better-sqlite3, synchronous, WAL): training tasks, jobs (queue
 * order, status, reason, latest progress), throttled progress rows and job log lines. Records hold
 * UIDs and settings only, never patient names or IDs.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';

export {
  FINAL_STATUSES,
  type AtlasRef,
  type JobProgress,
  type JobRecord,
  type JobStatus,
  type SeriesRef,
  type TaskLabel,
  type TaskPlanVersion,
  type TaskRecord,
} from '@rrl/core/api.js';
import type {
  AtlasRef,
  JobProgress,
  JobRecord,
  JobStatus,
  SeriesRef,
  TaskLabel,
  TaskPlanVersion,
  TaskRecord,
} from '@rrl/core/api.js';

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
  plan_version: number | null;
}

interface TaskRow {
  id: string;
  name: string;
  modality: string;
  atlas: string;
  plan: string;
  labels: string;
  created_at: string;
  archived_at: string | null;
  default_model: string | null;
  holdout: string | null;
  plan_version: number | null;
  plan_content: string | null;
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
CREATE TABLE IF NOT EXISTS task_plans (
  task_id TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, content TEXT NOT NULL,
  created_at TEXT NOT NULL, PRIMARY KEY (task_id, version)
);
CREATE TABLE IF NOT EXISTS stage_seconds (
  plan_key TEXT NOT NULL, phase TEXT NOT NULL, seconds REAL NOT NULL, time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stage_seconds_key ON stage_seconds(plan_key, phase);
CREATE TABLE IF NOT EXISTS job_log (
  job_id TEXT NOT NULL REFERENCES jobs(id), n INTEGER NOT NULL, time TEXT NOT NULL, line TEXT NOT NULL,
  PRIMARY KEY (job_id, n)
);
`;

/** Columns added after the first release, with their definitions (added when missing). */
const ADDED_COLUMNS: Record<string, [string, string][]> = {
  tasks: [
    ['archived_at', 'TEXT'],
    ['default_model', 'TEXT'],
    ['holdout', 'TEXT'],
    ['plan_version', 'INTEGER'],
  ],
  jobs: [['plan_version', 'INTEGER']],
};

const TASK_SELECT = `SELECT t.*, p.content AS plan_content FROM tasks t
  LEFT JOIN task_plans p ON p.task_id = t.id AND p.version = t.plan_version`;

/** The teacher a plan content names (`teacher`), if any. */
function planTeacher(content: unknown): string | undefined {
  const t = (content as { teacher?: unknown } | null | undefined)?.teacher;
  return typeof t === 'string' && t !== '' ? t : undefined;
}

function toTask(r: TaskRow): TaskRecord {
  const content = r.plan_content !== null ? (JSON.parse(r.plan_content) as unknown) : undefined;
  const teacher = planTeacher(content);
  return {
    id: r.id,
    name: r.name,
    modality: r.modality,
    atlas: JSON.parse(r.atlas) as AtlasRef,
    plan: r.plan,
    ...(content !== undefined && r.plan_version !== null
      ? { planContent: content, planVersion: r.plan_version }
      : {}),
    teacher: teacher ?? null,
    labels: JSON.parse(r.labels) as TaskLabel[],
    createdAt: r.created_at,
    ...(r.archived_at ? { archivedAt: r.archived_at } : {}),
    ...(r.default_model ? { defaultModel: r.default_model } : {}),
    holdout: r.holdout ? (JSON.parse(r.holdout) as AtlasRef[]) : [],
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
    ...(r.plan_version !== null ? { planVersion: r.plan_version } : {}),
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
    for (const [table, columns] of Object.entries(ADDED_COLUMNS)) {
      const have = new Set(
        (this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map(
          (c) => c.name,
        ),
      );
      for (const [name, type] of columns) {
        if (!have.has(name)) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${type}`);
      }
    }
  }

  close(): void {
    this.db.close();
  }

  // ---- tasks
  /** Inserts a task; with `planContent`, its plan is stored as version 1. */
  insertTask(t: TaskRecord): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          'INSERT INTO tasks (id, name, modality, atlas, plan, labels, created_at, holdout) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(
          t.id,
          t.name,
          t.modality,
          JSON.stringify(t.atlas),
          t.plan,
          JSON.stringify(t.labels),
          t.createdAt,
          JSON.stringify(t.holdout ?? []),
        );
      if (t.planContent !== undefined) this.addTaskPlan(t.id, t.plan, t.planContent, t.createdAt);
    })();
  }

  getTask(id: string): TaskRecord | undefined {
    const r = this.db.prepare(`${TASK_SELECT} WHERE t.id = ?`).get(id) as TaskRow | undefined;
    return r ? toTask(r) : undefined;
  }

  /** Tasks, oldest first; archived ones only when asked. */
  listTasks(options: { archived?: boolean } = {}): TaskRecord[] {
    const where = options.archived ? '' : 'WHERE t.archived_at IS NULL';
    return (
      this.db.prepare(`${TASK_SELECT} ${where} ORDER BY t.created_at, t.id`).all() as TaskRow[]
    ).map(toTask);
  }

  /** Stores `content` as the task's next plan version and makes it current; returns it. */
  addTaskPlan(taskId: string, name: string, content: unknown, time: string): number {
    const version =
      ((
        this.db
          .prepare('SELECT MAX(version) AS m FROM task_plans WHERE task_id = ?')
          .get(taskId) as { m: number | null }
      ).m ?? 0) + 1;
    this.db
      .prepare(
        'INSERT INTO task_plans (task_id, version, name, content, created_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(taskId, version, name, JSON.stringify(content), time);
    this.db
      .prepare('UPDATE tasks SET plan = ?, plan_version = ? WHERE id = ?')
      .run(name, version, taskId);
    return version;
  }

  taskPlan(taskId: string, version: number): TaskPlanVersion | undefined {
    const r = this.db
      .prepare('SELECT * FROM task_plans WHERE task_id = ? AND version = ?')
      .get(taskId, version) as
      { version: number; name: string; content: string; created_at: string } | undefined;
    return r
      ? {
          version: r.version,
          name: r.name,
          content: JSON.parse(r.content) as unknown,
          createdAt: r.created_at,
        }
      : undefined;
  }

  taskPlans(taskId: string): TaskPlanVersion[] {
    return (
      this.db
        .prepare('SELECT version FROM task_plans WHERE task_id = ? ORDER BY version')
        .all(taskId) as { version: number }[]
    ).map((r) => this.taskPlan(taskId, r.version) as TaskPlanVersion);
  }

  updateTask(
    id: string,
    patch: {
      name?: string;
      archivedAt?: string | null;
      defaultModel?: string | null;
      holdout?: AtlasRef[];
    },
  ): void {
    const sets: string[] = [];
    const args: (string | null)[] = [];
    if (patch.name !== undefined) {
      sets.push('name = ?');
      args.push(patch.name);
    }
    if (patch.archivedAt !== undefined) {
      sets.push('archived_at = ?');
      args.push(patch.archivedAt);
    }
    if (patch.defaultModel !== undefined) {
      sets.push('default_model = ?');
      args.push(patch.defaultModel);
    }
    if (patch.holdout !== undefined) {
      sets.push('holdout = ?');
      args.push(JSON.stringify(patch.holdout));
    }
    if (sets.length === 0) return;
    this.db.prepare(`UPDATE tasks SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
  }

  /** Deletes the task with its plans and its jobs (their progress and logs). */
  deleteTask(id: string): void {
    this.db.transaction(() => {
      const ofTask = 'job_id IN (SELECT id FROM jobs WHERE task_id = ?)';
      this.db.prepare(`DELETE FROM job_progress WHERE ${ofTask}`).run(id);
      this.db.prepare(`DELETE FROM job_log WHERE ${ofTask}`).run(id);
      this.db.prepare('DELETE FROM jobs WHERE task_id = ?').run(id);
      this.db.prepare('DELETE FROM task_plans WHERE task_id = ?').run(id);
      this.db.prepare('DELETE FROM tasks WHERE id = ?').run(id);
    })();
  }

  // ---- measured stage durations (for the progress estimate)
  recordStageSeconds(planKey: string, phase: string, seconds: number, time: string): void {
    this.db
      .prepare('INSERT INTO stage_seconds (plan_key, phase, seconds, time) VALUES (?, ?, ?, ?)')
      .run(planKey, phase, seconds, time);
  }

  /** The median of the last `n` measured durations of each phase of a plan on this machine. */
  stageSeconds(planKey: string, n = 5): Record<string, number> {
    const rows = this.db
      .prepare('SELECT phase, seconds FROM stage_seconds WHERE plan_key = ? ORDER BY rowid DESC')
      .all(planKey) as { phase: string; seconds: number }[];
    const by = new Map<string, number[]>();
    for (const r of rows) {
      const list = by.get(r.phase) ?? [];
      if (list.length < n) list.push(r.seconds);
      by.set(r.phase, list);
    }
    const out: Record<string, number> = {};
    for (const [phase, list] of by) {
      const sorted = [...list].sort((a, b) => a - b);
      const mid = Math.floor(sorted.length / 2);
      out[phase] =
        sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
    }
    return out;
  }

  // ---- jobs
  /** The queue position after every job's (the end of the queue). */
  private nextSeq(): number {
    return (
      ((this.db.prepare('SELECT MAX(seq) AS m FROM jobs').get() as { m: number | null }).m ?? 0) + 1
    );
  }

  insertJob(j: Omit<JobRecord, 'seq' | 'attempts' | 'status'>): JobRecord {
    const seq = this.nextSeq();
    this.db
      .prepare(
        `INSERT INTO jobs (id, task_id, status, seq, series, selection, provider, created_at, attempts, plan_version)
         VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, 0, ?)`,
      )
      .run(
        j.id,
        j.taskId,
        seq,
        JSON.stringify(j.series),
        JSON.stringify(j.selection),
        j.provider,
        j.createdAt,
        j.planVersion ?? null,
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

  /**
   * A cancelled job goes back to the queue to resume from its work folder (a fresh allowance of
   * attempts; its place is the end of the queue).
   */
  resumeCancelled(id: string, note: string): boolean {
    const seq = this.nextSeq();
    const r = this.db
      .prepare(
        "UPDATE jobs SET status = 'queued', reason = ?, finished_at = NULL, attempts = 0, seq = ? WHERE id = ? AND status = 'cancelled'",
      )
      .run(note, seq, id);
    return r.changes === 1;
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
