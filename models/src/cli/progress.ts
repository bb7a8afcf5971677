/**
 * Training progress on stderr: a one-line bar redrawn in place on a TTY (stage i/n, step/total,
 * loss, ETA), plain lines otherwise (one per stage start, every ~10 % of a stage and its end).
 */
import type { TrainingProgress } from '@rrl/core/api.js';

/** What the reporter draws: the training progress record with the stage always named. */
export type ProgressEvent = TrainingProgress & { stageIndex: number; stageCount: number };

export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Renders one progress line (no newline). `eta` in seconds or undefined. */
export function progressLine(p: ProgressEvent, eta: number | undefined, width = 24): string {
  const frac = p.total > 0 ? Math.min(1, p.step / p.total) : 1;
  const filled = Math.round(frac * width);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  const loss = p.loss !== undefined && Number.isFinite(p.loss) ? ` loss ${p.loss.toFixed(4)}` : '';
  const stage = `stage ${p.stageIndex + 1}/${p.stageCount} ${p.phase}`;
  return `${stage} [${bar}] ${p.step}/${p.total}${loss} ETA ${eta === undefined ? '--' : formatDuration(eta)}`;
}

export class ProgressReporter {
  private stageKey = '';
  private stageStart = 0;
  private stageStartStep = 0;
  private lastPlainDecile = -1;
  private lastLen = 0;

  constructor(
    private readonly out: ProgressSink,
    private readonly now: () => number = () => Date.now(),
  ) {}

  update(p: ProgressEvent): void {
    const key = `${p.stageIndex}:${p.phase}`;
    if (key !== this.stageKey) {
      this.finishLine();
      this.stageKey = key;
      this.stageStart = this.now();
      this.stageStartStep = p.step;
      this.lastPlainDecile = -1;
    }
    const done = p.step - this.stageStartStep;
    const elapsed = (this.now() - this.stageStart) / 1000;
    const eta =
      done > 0 && p.total > 0 ? (elapsed / done) * Math.max(0, p.total - p.step) : undefined;
    const line = progressLine(p, eta);
    if (this.out.isTTY) {
      const pad = this.lastLen > line.length ? ' '.repeat(this.lastLen - line.length) : '';
      this.out.write(`\r${line}${pad}`);
      this.lastLen = line.length;
    } else {
      const decile = p.total > 0 ? Math.floor((10 * p.step) / p.total) : 10;
      if (decile !== this.lastPlainDecile || p.step === p.total) {
        if (decile !== this.lastPlainDecile) this.out.write(`${line}\n`);
        this.lastPlainDecile = decile;
      }
    }
  }

  /** Ends the in-place line (TTY) so that other output starts on a fresh line. */
  finishLine(): void {
    if (this.out.isTTY && this.lastLen > 0) this.out.write('\n');
    this.lastLen = 0;
  }
}
