/**
 * Where a training run's time goes: ORT's per-node profile of the first steps of a trainer,
 * summarised per op type and per node, next to the wall time of each step split into the session
 * run, the batch (data preparation in JavaScript) and the rest (checkpoints, logging).
 *
 * `StepProfiler` wraps one trainer: pass `trainerOptions()` to `Trainer.create`, `batch()` around
 * the batch function and call `step()` from `onStep`; after `steps` profiled steps it ends ORT's
 * profiling (the run goes on unprofiled) and `finish()` reads the profile and writes the summary.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Batch, StepResult, Trainer } from './trainer.js';

export interface OpCost {
  op: string;
  msPerStep: number;
  /** Of all kernel time. */
  share: number;
}

export interface NodeCost {
  node: string;
  op: string;
  msPerStep: number;
}

export interface KernelProfile {
  /** Session runs summarised (after the warm-up ones). */
  runs: number;
  kernelMsPerStep: number;
  ops: OpCost[];
  nodes: NodeCost[];
}

export interface StepProfile extends Partial<KernelProfile> {
  name: string;
  /** Steps timed (after `warmup`). */
  steps: number;
  warmup: number;
  /** Medians per step, milliseconds. */
  wallMs: number;
  sessionMs: number;
  batchMs: number;
  /** Wall − session − batch: checkpoints, progress, logging. */
  otherMs: number;
}

interface TraceEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: { op_name?: string };
}

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};

/**
 * Per-op and per-node kernel time of an ORT profile file, averaged over the session runs after the
 * first `warmup` ones (ORT's `model_run` events delimit the runs).
 */
export function summariseOrtProfile(file: string, warmup = 0, top = 12): KernelProfile {
  const events = JSON.parse(readFileSync(file, 'utf8')) as TraceEvent[];
  const runs = events
    .filter((e) => e.cat === 'Session' && e.name === 'model_run')
    .sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
  const from = runs[warmup]?.ts ?? Infinity;
  const counted = Math.max(0, runs.length - warmup);
  const byOp = new Map<string, number>();
  const byNode = new Map<string, { op: string; us: number }>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
    if ((e.ts ?? 0) < from) continue;
    const us = e.dur ?? 0;
    byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + us);
    const node = e.name.slice(0, -'_kernel_time'.length);
    const n = byNode.get(node) ?? { op: e.args.op_name, us: 0 };
    n.us += us;
    byNode.set(node, n);
    total += us;
  }
  const per = (us: number): number => (counted ? us / 1000 / counted : 0);
  return {
    runs: counted,
    kernelMsPerStep: per(total),
    ops: [...byOp]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([op, us]) => ({ op, msPerStep: per(us), share: total ? us / total : 0 })),
    nodes: [...byNode]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([node, n]) => ({ node, op: n.op, msPerStep: per(n.us) })),
  };
}

/** One line per profile: the step's split and the op types that cost most. */
export function describeProfile(p: StepProfile): string {
  const ms = (v: number): string => `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  const head =
    `[profile ${p.name}] ${p.steps} steps: wall ${ms(p.wallMs)}/step = session ${ms(p.sessionMs)}` +
    ` + batch ${ms(p.batchMs)} + other ${ms(p.otherMs)}`;
  if (!p.ops) return head;
  const ops = p.ops
    .slice(0, 6)
    .map((o) => `${o.op} ${ms(o.msPerStep)} (${Math.round(o.share * 100)} %)`)
    .join(', ');
  return `${head}; kernels ${ms(p.kernelMsPerStep ?? 0)}/step: ${ops}`;
}

export class StepProfiler {
  private readonly wall: number[] = [];
  private readonly session: number[] = [];
  private readonly batches: number[] = [];
  private last = performance.now();
  private pendingBatchMs = 0;
  private seen = 0;
  private ended = false;
  private trainer: Trainer | undefined;

  /**
   * @param file the summary's path (`<dir>/<name>.json`); ORT's trace is written beside it and
   *   removed after summarising
   */
  constructor(
    readonly name: string,
    readonly file: string,
    readonly steps: number,
    readonly warmup = 2,
  ) {
    // ORT opens its trace file when the session is created
    mkdirSync(dirname(file), { recursive: true });
  }

  private get prefix(): string {
    return join(dirname(this.file), `${basename(this.file, '.json')}.ort`);
  }

  /** Options for `Trainer.create` (ORT profiling on). */
  trainerOptions(): { enableProfiling: true; profileFilePrefix: string } {
    return { enableProfiling: true, profileFilePrefix: this.prefix };
  }

  /** Call once the trainer exists, before its first step. */
  attach(trainer: Trainer): void {
    this.trainer = trainer;
    this.last = performance.now();
  }

  /** Times the batch function. */
  batch<A extends unknown[]>(fn: (...a: A) => Batch | Promise<Batch>): (...a: A) => Promise<Batch> {
    return async (...a: A) => {
      const t = performance.now();
      const b = await fn(...a);
      this.pendingBatchMs = performance.now() - t;
      return b;
    };
  }

  /** From `onStep`: records the step; ends ORT's profiling after warm-up + `steps` steps. */
  step(r: StepResult): void {
    const now = performance.now();
    if (this.ended) return;
    this.seen++;
    if (this.seen > this.warmup) {
      this.wall.push(now - this.last);
      this.session.push(r.ms);
      this.batches.push(this.pendingBatchMs);
    }
    this.last = now;
    if (this.seen >= this.warmup + this.steps) this.end();
  }

  /** Ends ORT's profiling (idempotent); call before the trainer is disposed. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.trainer?.endProfiling();
  }

  /** Ends profiling if still on, summarises, writes `file` and returns the summary. */
  async finish(): Promise<StepProfile> {
    this.end();
    const wallMs = median(this.wall);
    const sessionMs = median(this.session);
    const batchMs = median(this.batches);
    const summary: StepProfile = {
      name: this.name,
      steps: this.wall.length,
      warmup: this.warmup,
      wallMs,
      sessionMs,
      batchMs,
      otherMs: Math.max(0, wallMs - sessionMs - batchMs),
    };
    const dir = dirname(this.file);
    const trace = readdirSync(dir).find((f) => f.startsWith(basename(this.prefix)));
    if (trace) {
      Object.assign(summary, summariseOrtProfile(join(dir, trace), this.warmup));
      rmSync(join(dir, trace), { force: true });
    }
    await writeFile(this.file, `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  }
}
