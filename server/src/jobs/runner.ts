/**
 * The job runner: a queue of training jobs persisted in the store, `slots` jobs at a time (one per
 * GPU; default 1). Each job runs an executor `(job, ctx) => Promise<{ modelDir }>` with an abort
 * signal, a progress callback and a log; on success the model folder is published as the task's
 * next version. Progress is kept in memory (for fast status answers and server-sent events) and
 * persisted, throttled, to the store.
 *
 * Restart: `start()` puts jobs left `running` by a stopped or crashed server back in the queue
 * (keeping their place); the executor gets the same work folder, which the pipeline resumes from.
 * `stop()` aborts running jobs and re-queues them rather than failing them.
 * A cancelled or failed job records a reason and never publishes a model.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {
  FINAL_STATUSES,
  type JobProgress,
  type JobRecord,
  type Store,
  type TaskRecord,
} from '../store/db.js';
import type { TrainingProgress } from '@rrl/core/api.js';
import type { Logger } from '../log.js';
import { redact } from '../http/redact.js';
import { estimateRemaining, type PlannedPhase } from './eta.js';
import { pruneJobFolder } from './retention.js';

/** What an executor reports: a job's progress row without the runner's estimate and time stamp. */
export type ExecutorProgress = TrainingProgress & {
  /** The phases the job will run, in order (sent once, with the first progress). */
  planned?: PlannedPhase[];
};

export interface ExecutorContext {
  signal: AbortSignal;
  progress(p: ExecutorProgress): void;
  log(line: string): void;
  /** The job's own folder; the same folder on every attempt (resume from it). */
  workDir: string;
  task: TaskRecord;
}

/** Failure messages that mean the PACS was unreachable (a retry may succeed). */
const PACS_OUTAGE =
  /PACS stopped answering|Could not reach the PACS|PACS is not reachable|ECONNREFUSED|ECONNRESET/;

const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export type JobExecutor = (job: JobRecord, ctx: ExecutorContext) => Promise<{ modelDir: string }>;

/** Publishes a finished job's model folder; returns the published model id and notes for the log. */
export type ModelPublisher = (
  job: JobRecord,
  task: TaskRecord,
  modelDir: string,
) => Promise<{ modelId: string; notes: string[] }>;

export interface RunnerOptions {
  store: Store;
  executor: JobExecutor;
  publish: ModelPublisher;
  /** `<jobsDir>/<jobId>/` is each job's work folder. */
  jobsDir: string;
  log: Logger;
  /** Jobs run at once (one per GPU). Default 1. */
  slots?: number;
  /** Launches of one job (the first run and its resumptions) before it is failed for good. */
  maxAttempts?: number;
  /** Prune a finished job's folder to its text records (default true; retention.ts). */
  pruneFinished?: boolean;
  /**
   * A job that failed because the PACS was unreachable goes back to the queue and is retried
   * after this long times its attempt number (default 30 s), within maxAttempts.
   */
  retryDelayMs?: number;
  /** Minimum interval between persisted progress rows, ms (default 1000). */
  progressIntervalMs?: number;
}

export type RunnerEvent =
  | { type: 'progress'; progress: JobProgress }
  | { type: 'status'; job: JobRecord }
  | { type: 'log'; n: number; time: string; line: string };

class ShutdownSignal extends Error {
  override name = 'ShutdownSignal';
}
class CancelSignal extends Error {
  override name = 'CancelSignal';
}

interface Running {
  controller: AbortController;
  done: Promise<void>;
  startedMs: number;
  lastRowMs: number;
  lastPhase?: string;
  /** The phases the executor said it will run. */
  planned: PlannedPhase[];
  /** The phase being timed and when it began (ms). */
  phase?: string;
  phaseStartMs: number;
  /** Seconds each finished phase took in this launch. */
  phaseSeconds: Record<string, number>;
  /** Measured durations of this plan's phases on this machine (earlier jobs). */
  learned: Record<string, number>;
  planKey: string;
}

const now = (): string => new Date().toISOString();

export class JobRunner {
  private readonly running = new Map<string, Running>();
  private readonly live = new Map<string, JobProgress>();
  private readonly events = new EventEmitter();
  private stopping = false;
  private started = false;
  private readonly slots: number;
  private readonly progressIntervalMs: number;
  /** Jobs waiting out a retry delay: not launched before this time (ms). */
  private readonly notBefore = new Map<string, number>();
  private retryTimer?: NodeJS.Timeout;

  constructor(private readonly o: RunnerOptions) {
    this.slots = Math.max(1, o.slots ?? 1);
    this.progressIntervalMs = o.progressIntervalMs ?? 1000;
    this.events.setMaxListeners(0);
  }

  /** Re-queues jobs a previous server left running, then starts the queue. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const j of this.o.store.listJobs({ status: 'running' })) {
      this.o.store.requeue(
        j.id,
        'The server stopped while the job ran; it resumes from its last checkpoint.',
      );
      this.o.store.appendLog(
        j.id,
        now(),
        'server restarted: job re-queued, resuming from its work folder',
      );
    }
    this.pump();
  }

  /** Aborts running jobs (they go back to the queue) and waits for them to settle. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    const all = [...this.running.values()];
    for (const r of all) r.controller.abort(new ShutdownSignal('server stopping'));
    await Promise.all(all.map((r) => r.done));
  }

  /** Adds a new job (already inserted in the store) to the queue. */
  enqueued(): void {
    this.pump();
  }

  isRunning(id: string): boolean {
    return this.running.has(id);
  }

  /** The latest progress (memory first, else the store). */
  progress(id: string): JobProgress | undefined {
    return this.live.get(id) ?? this.o.store.getJob(id)?.progress;
  }

  /** The job as stored, with the in-memory progress when it is running. */
  job(id: string): JobRecord | undefined {
    const j = this.o.store.getJob(id);
    if (!j) return undefined;
    const p = this.live.get(id);
    return p ? { ...j, progress: p } : j;
  }

  subscribe(id: string, fn: (e: RunnerEvent) => void): () => void {
    const key = `job:${id}`;
    this.events.on(key, fn);
    return () => this.events.off(key, fn);
  }

  /**
   * Cancels a queued or running job. Returns the job, or a message saying why it cannot be
   * cancelled (unknown, already finished).
   */
  cancel(id: string, reason?: string): { job: JobRecord } | { error: string; status: number } {
    const j = this.o.store.getJob(id);
    if (!j) return { error: `No job ${id}.`, status: 404 };
    const why = `Cancelled by the user${reason ? `: ${reason}` : '.'}`;
    if (j.status === 'queued') {
      this.o.store.finish(id, 'cancelled', now(), { reason: why });
      this.appendLog(id, 'cancelled while queued');
      this.emitStatus(id);
      return { job: this.job(id) as JobRecord };
    }
    const r = this.running.get(id);
    if (j.status === 'running' && r) {
      r.controller.abort(new CancelSignal(why));
      this.appendLog(id, 'cancel requested: stopping the job');
      return { job: this.job(id) as JobRecord };
    }
    return {
      error: `Job ${id} has already finished (${j.status}); only queued or running jobs can be cancelled.`,
      status: 409,
    };
  }

  /**
   * Puts a cancelled job back in the queue; it resumes from the checkpoints in its work folder
   * (kept when it was cancelled).
   */
  resume(id: string): { job: JobRecord } | { error: string; status: number } {
    const j = this.o.store.getJob(id);
    if (!j) return { error: `No job ${id}.`, status: 404 };
    if (j.status !== 'cancelled') {
      return {
        error: `Job ${id} is ${j.status}; only a cancelled job can be resumed.`,
        status: 409,
      };
    }
    if (!this.o.store.getTask(j.taskId)) {
      return { error: `The job's task ${j.taskId} no longer exists.`, status: 409 };
    }
    this.o.store.resumeCancelled(id, 'Resumed by the user; it continues from its last checkpoint.');
    this.appendLog(id, 'resume requested: the job continues from its last checkpoint');
    this.emitStatus(id);
    this.pump();
    return { job: this.job(id) as JobRecord };
  }

  private emit(id: string, e: RunnerEvent): void {
    this.events.emit(`job:${id}`, e);
  }

  private emitStatus(id: string): void {
    const j = this.job(id);
    if (j) this.emit(id, { type: 'status', job: j });
  }

  /** A line of the job's log (read by clients: internal URLs and paths are replaced). */
  private appendLog(id: string, raw: string): void {
    const line = redact(raw);
    const time = now();
    const n = this.o.store.appendLog(id, time, line);
    this.emit(id, { type: 'log', n, time, line });
  }

  private pump(): void {
    if (!this.started || this.stopping) return;
    if (this.running.size >= this.slots) return;
    let wake = Infinity;
    for (const j of this.o.store.queuedJobs()) {
      if (this.running.size >= this.slots) break;
      if (this.running.has(j.id)) continue;
      const at = this.notBefore.get(j.id) ?? 0;
      if (at > Date.now()) {
        wake = Math.min(wake, at);
        continue;
      }
      this.notBefore.delete(j.id);
      this.launch(j);
    }
    if (wake < Infinity) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.pump(), Math.max(10, wake - Date.now()));
      this.retryTimer.unref();
    }
  }

  private launch(job: JobRecord): void {
    const controller = new AbortController();
    const entry: Running = {
      controller,
      done: Promise.resolve(),
      startedMs: Date.now(),
      lastRowMs: 0,
      planned: [],
      phaseStartMs: Date.now(),
      phaseSeconds: {},
      learned: {},
      planKey: '',
    };
    this.running.set(job.id, entry);
    entry.done = this.execute(job, entry).finally(() => {
      this.running.delete(job.id);
      this.live.delete(job.id);
      this.pump();
    });
  }

  private onProgress(job: JobRecord, entry: Running, p: ExecutorProgress): void {
    const t = Date.now();
    if (p.planned) entry.planned = p.planned;
    if (p.phase !== entry.phase) {
      closePhase(entry, t);
      entry.phase = p.phase;
      entry.phaseStartMs = t;
    }
    const stageCount = p.stageCount ?? 1;
    const stageIndex = p.stageIndex ?? 0;
    const elapsedSeconds = Math.round((t - entry.startedMs) / 1000);
    const remaining = estimateRemaining({
      planned: entry.planned,
      phase: p.phase,
      step: p.step,
      total: p.total,
      phaseElapsed: (t - entry.phaseStartMs) / 1000,
      done: entry.phaseSeconds,
      learned: entry.learned,
    });
    const etaSeconds = remaining !== undefined ? Math.round(remaining) : undefined;
    const fraction =
      remaining !== undefined
        ? Math.min(1, (t - entry.startedMs) / 1000 / ((t - entry.startedMs) / 1000 + remaining))
        : undefined;
    const progress: JobProgress = {
      phase: p.phase,
      stageIndex,
      stageCount,
      step: p.step,
      total: p.total,
      ...(p.loss !== undefined && Number.isFinite(p.loss) ? { loss: p.loss } : {}),
      ...(p.metrics ? { metrics: p.metrics } : {}),
      ...(etaSeconds !== undefined ? { etaSeconds } : {}),
      ...(fraction !== undefined ? { fraction: Math.round(fraction * 1000) / 1000 } : {}),
      elapsedSeconds,
      time: now(),
    };
    this.live.set(job.id, progress);
    const keepRow =
      t - entry.lastRowMs >= this.progressIntervalMs ||
      p.phase !== entry.lastPhase ||
      p.step >= p.total;
    if (keepRow) {
      entry.lastRowMs = t;
      entry.lastPhase = p.phase;
    }
    this.o.store.setProgress(job.id, progress, keepRow);
    this.emit(job.id, { type: 'progress', progress });
  }

  private async execute(job: JobRecord, entry: Running): Promise<void> {
    const { store, log } = this.o;
    const stored = store.getTask(job.taskId);
    // The plan version the job was queued with (a plan changed since applies to later jobs).
    const version =
      job.planVersion !== undefined ? store.taskPlan(job.taskId, job.planVersion) : undefined;
    const task: TaskRecord | undefined =
      stored && version
        ? {
            ...stored,
            plan: version.name,
            planVersion: version.version,
            ...(version.content !== null ? { planContent: version.content } : {}),
          }
        : stored;
    if (!task) {
      store.finish(job.id, 'failed', now(), {
        reason: `The job's task ${job.taskId} no longer exists.`,
      });
      this.emitStatus(job.id);
      return;
    }
    const workDir = path.join(this.o.jobsDir, job.id);
    const maxAttempts = this.o.maxAttempts ?? 3;
    const before = store.getJob(job.id)?.attempts ?? 0;
    if (before >= maxAttempts) {
      // Each launch ended with the server going down under it (a crash loop: out of memory, a
      // native fault): stop retrying and say so, keeping its work folder for a look.
      const reason =
        `The job was started ${before} times and the server stopped each time before it finished ` +
        `(at most ${maxAttempts} attempts). It is not retried again: check the server log for why ` +
        'the server stopped (memory, disk), then start a new job.';
      store.finish(job.id, 'failed', now(), { reason });
      this.appendLog(job.id, `job failed: ${reason}`);
      log.warn('job failed', { job: job.id, error: 'attempt limit reached', attempts: before });
      this.emitStatus(job.id);
      return;
    }
    store.markRunning(job.id, now());
    this.emitStatus(job.id);
    const attempt = before + 1; // markRunning counted this launch
    entry.planKey = planKey(task, job.provider);
    entry.learned = store.stageSeconds(entry.planKey);
    this.appendLog(job.id, attempt > 1 ? `job resumed (attempt ${attempt})` : 'job started');
    log.info('job started', { job: job.id, task: task.id, attempt });
    const signal = entry.controller.signal;
    try {
      await mkdir(workDir, { recursive: true });
      if (signal.aborted) throw signal.reason; // stopped before the executor could listen
      const result = await this.o.executor(job, {
        signal,
        workDir,
        task,
        progress: (p) => {
          if (!signal.aborted) this.onProgress(job, entry, p);
        },
        log: (line) => this.appendLog(job.id, line),
      });
      if (signal.aborted) throw signal.reason;
      this.appendLog(job.id, 'training finished; publishing the model');
      const { modelId, notes } = await this.o.publish(job, task, result.modelDir);
      store.finish(job.id, 'succeeded', now(), { modelId });
      this.appendLog(job.id, `published model ${modelId}`);
      for (const n of notes) this.appendLog(job.id, n);
      // What each phase took, for the estimates of later jobs (a resumed launch measured only
      // part of its phases: not kept).
      closePhase(entry, Date.now());
      if (attempt === 1) {
        for (const [phase, secs] of Object.entries(entry.phaseSeconds)) {
          store.recordStageSeconds(entry.planKey, phase, secs, now());
        }
      }
      log.info('job succeeded', { job: job.id, model: modelId });
    } catch (e) {
      const reason = signal.aborted ? signal.reason : e;
      if (reason instanceof ShutdownSignal) {
        store.requeue(
          job.id,
          'The server stopped while the job ran; it resumes from its last checkpoint.',
        );
        this.appendLog(job.id, 'server stopping: job interrupted, it resumes on restart');
        log.info('job interrupted', { job: job.id });
      } else if (reason instanceof CancelSignal) {
        store.finish(job.id, 'cancelled', now(), { reason: reason.message });
        this.appendLog(job.id, 'job cancelled; no model was published');
        log.info('job cancelled', { job: job.id });
      } else if (PACS_OUTAGE.test(errorMessage(reason)) && attempt < maxAttempts) {
        // The PACS is down (being restarted, say): nothing is lost, the job waits and resumes
        // from its checkpoint.
        const delay = (this.o.retryDelayMs ?? 30_000) * attempt;
        store.requeue(
          job.id,
          `The PACS was unreachable; the job retries in ${Math.round(delay / 1000)} s ` +
            `(attempt ${attempt + 1} of ${maxAttempts}).`,
        );
        this.notBefore.set(job.id, Date.now() + delay);
        this.appendLog(
          job.id,
          `the PACS is unreachable: the job retries in ${Math.round(delay / 1000)} s`,
        );
        log.warn('job waits for the PACS', { job: job.id, attempt, retryMs: delay });
      } else {
        const message = errorMessage(reason);
        // The job's reason and log are read by clients: no internal URLs or paths there.
        store.finish(job.id, 'failed', now(), { reason: redact(message) });
        this.appendLog(job.id, `job failed: ${message}`);
        log.warn('job failed', { job: job.id, error: message });
      }
    }
    const final = store.getJob(job.id)?.status;
    // A cancelled job keeps its checkpoints: it can be resumed.
    if (
      final &&
      final !== 'cancelled' &&
      FINAL_STATUSES.includes(final) &&
      (this.o.pruneFinished ?? true)
    ) {
      const { freed } = await pruneJobFolder(workDir);
      if (freed > 0) log.info('job folder pruned', { job: job.id, freedBytes: freed });
    }
    this.emitStatus(job.id);
  }
}

/** Records how long the phase being timed took, up to `t` (ms). */
function closePhase(entry: Running, t: number): void {
  if (entry.phase !== undefined) entry.phaseSeconds[entry.phase] = (t - entry.phaseStartMs) / 1000;
}

/** Durations are learned per plan content, machine and provider. */
function planKey(task: TaskRecord, provider: string): string {
  const plan = task.planContent !== undefined ? JSON.stringify(task.planContent) : task.plan;
  return createHash('sha256')
    .update(`${plan}\n${os.hostname()}\n${provider}`)
    .digest('hex')
    .slice(0, 32);
}
