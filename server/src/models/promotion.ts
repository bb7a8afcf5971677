/**
 * Which model a task's viewer uses: a newly trained model becomes the task's default only when
 * its hold-out evaluation is not worse than the current default's on the same hold-out series, or
 * when the task has no default yet; otherwise it is published as a candidate that the user may
 * promote by hand (and any earlier version may be rolled back to).
 */
export interface EvaluationSummary {
  meanDice: number;
  series: { seriesUID: string }[];
}

export interface DefaultDecision {
  promote: boolean;
  reason: string;
  candidateDice?: number;
  defaultDice?: number;
}

const fmt = (d: number): string => d.toFixed(3);

function sameSeries(a: EvaluationSummary, b: EvaluationSummary): boolean {
  const x = a.series.map((s) => s.seriesUID).sort();
  const y = b.series.map((s) => s.seriesUID).sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Tolerance for "not worse": evaluation noise of the same model is below this. */
export const DICE_TOLERANCE = 1e-6;

export function decideDefault(
  current: { id: string; evaluation?: EvaluationSummary } | undefined,
  candidate: { evaluation?: EvaluationSummary },
): DefaultDecision {
  const c = candidate.evaluation;
  const d = current?.evaluation;
  const numbers = {
    ...(c ? { candidateDice: c.meanDice } : {}),
    ...(d ? { defaultDice: d.meanDice } : {}),
  };
  if (!current) {
    return {
      promote: true,
      reason: c
        ? `the task's first model (hold-out Dice ${fmt(c.meanDice)}) is its default`
        : "the task's first model is its default (no hold-out to evaluate it on)",
      ...numbers,
    };
  }
  if (!c) {
    return {
      promote: false,
      reason: `not evaluated (the task has no hold-out series): ${current.id} stays the default; promote the new model by hand if it is better`,
      ...numbers,
    };
  }
  if (!d || !sameSeries(c, d)) {
    return {
      promote: false,
      reason: `hold-out Dice ${fmt(c.meanDice)}, but the default ${current.id} was not evaluated on the same hold-out series: it stays the default; promote by hand`,
      ...numbers,
    };
  }
  if (c.meanDice + DICE_TOLERANCE >= d.meanDice) {
    return {
      promote: true,
      reason: `hold-out Dice ${fmt(c.meanDice)} ≥ ${fmt(d.meanDice)} of ${current.id}: the new model is the default`,
      ...numbers,
    };
  }
  return {
    promote: false,
    reason: `hold-out Dice ${fmt(c.meanDice)} < ${fmt(d.meanDice)} of ${current.id}: ${current.id} stays the default`,
    ...numbers,
  };
}
