/**
 * The training progress estimate: how much of a job is done and how long the rest takes. Each
 * phase the job will run is weighed by its measured duration on this machine for this plan (the
 * median of earlier jobs), or, before any was measured, by its steps at the rate this job has
 * shown so far. Skipped stages are not in the plan of phases, so they take no time.
 */
export interface PlannedPhase {
  phase: string;
  steps: number;
}

export interface EtaInput {
  /** The phases the job runs, in order (skipped stages left out). */
  planned: readonly PlannedPhase[];
  /** The phase now running, its step and total. */
  phase: string;
  step: number;
  total: number;
  /** Seconds spent in the current phase. */
  phaseElapsed: number;
  /** Seconds the finished phases of this job took. */
  done: Readonly<Record<string, number>>;
  /** Median seconds of each phase in earlier jobs of the same plan on this machine. */
  learned: Readonly<Record<string, number>>;
}

/** Until this much of a phase is done, its learned duration beats the rate seen so far. */
const TRUST_OBSERVED = 0.2;

/** Seconds left in the job, or undefined while nothing lets us guess. */
export function estimateRemaining(i: EtaInput): number | undefined {
  const frac = i.total > 0 ? Math.min(1, i.step / i.total) : 0;
  // This job's seconds per step so far (finished phases and the current one).
  let seconds = 0;
  let steps = 0;
  for (const p of i.planned) {
    const s = i.done[p.phase];
    if (s !== undefined && p.phase !== i.phase) {
      seconds += s;
      steps += p.steps;
    }
  }
  if (i.step > 0) {
    seconds += i.phaseElapsed;
    steps += i.step;
  }
  const rate = steps > 0 ? seconds / steps : undefined;

  let current: number | undefined;
  const learnedNow = i.learned[i.phase];
  if (frac > 0 && (frac >= TRUST_OBSERVED || learnedNow === undefined)) {
    current = (i.phaseElapsed / frac) * (1 - frac);
  } else if (learnedNow !== undefined) {
    current = Math.max(0, learnedNow - i.phaseElapsed);
  } else if (rate !== undefined) {
    current = rate * Math.max(0, i.total - i.step);
  }
  if (current === undefined) return undefined;

  const at = i.planned.findIndex((p) => p.phase === i.phase);
  let rest = 0;
  for (const p of at >= 0 ? i.planned.slice(at + 1) : []) {
    const learned = i.learned[p.phase];
    if (learned !== undefined) rest += learned;
    else if (rate !== undefined) rest += rate * p.steps;
    else return undefined;
  }
  return current + rest;
}
