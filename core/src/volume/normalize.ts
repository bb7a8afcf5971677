/**
 * Intensity normalisation per a model's `metadata.intensity` (browser-safe).
 * - zscore: (v - mean) / std over all voxels (in-source voxels for fixed-spacing grids), then
 *   clipped to `clip` when given.
 * - percentile: (v - P_low) / (P_high - P_low), clipped to [0, 1].
 */
import type { IntensitySpec } from '../format/metadata.js';

/** Percentile p (0..100) of the values by linear interpolation between order statistics. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) throw new RangeError('percentile of an empty array');
  const s = Float64Array.from(values as ArrayLike<number>).sort();
  const pos = (Math.min(100, Math.max(0, p)) / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (pos - lo) * (s[hi]! - s[lo]!);
}

/** Offset, scale and clip range of a normalisation: v ↦ clip((v - offset) · scale, lo, hi). */
export interface IntensityStats {
  offset: number;
  scale: number;
  lo: number;
  hi: number;
}

/** The normalisation statistics of `data` (all of it) under `spec`. */
export function intensityStats(data: ArrayLike<number>, spec: IntensitySpec): IntensityStats {
  if (data.length === 0) throw new RangeError('cannot normalise an empty volume');
  let offset: number;
  let scale: number;
  let lo = -Infinity;
  let hi = Infinity;
  if (spec.method === 'zscore') {
    let sum = 0;
    for (let i = 0; i < data.length; i++) sum += data[i]!;
    const mean = sum / data.length;
    let ss = 0;
    for (let i = 0; i < data.length; i++) ss += (data[i]! - mean) ** 2;
    const std = Math.sqrt(ss / data.length);
    offset = mean;
    scale = std > 1e-8 ? 1 / std : 1;
    if (spec.clip) [lo, hi] = spec.clip;
  } else if (spec.method === 'percentile') {
    const pl = percentile(data, spec.low);
    const ph = percentile(data, spec.high);
    offset = pl;
    scale = ph - pl > 1e-8 ? 1 / (ph - pl) : 1;
    lo = 0;
    hi = 1;
  } else {
    throw new RangeError(
      `unknown intensity method ${JSON.stringify((spec as { method: unknown }).method)}; expected "zscore" or "percentile".`,
    );
  }
  return { offset, scale, lo, hi };
}

/** One value normalised with `stats`. */
export function applyIntensity(v: number, stats: IntensityStats): number {
  let r = (v - stats.offset) * stats.scale;
  if (r < stats.lo) r = stats.lo;
  else if (r > stats.hi) r = stats.hi;
  return r;
}

/** Normalises `data` in place and returns it, with the statistics used. */
export function normalizeIntensity(
  data: Float32Array,
  spec: IntensitySpec,
): { data: Float32Array; offset: number; scale: number } {
  const { offset, scale, lo, hi } = intensityStats(data, spec);
  for (let i = 0; i < data.length; i++) {
    let v = (data[i]! - offset) * scale;
    if (v < lo) v = lo;
    else if (v > hi) v = hi;
    data[i] = v;
  }
  return { data, offset, scale };
}

/**
 * Normalises `data` in place using statistics of the voxels where `inside` is 1 only; voxels where
 * it is 0 are set to the normalised `fillRaw` (the source minimum for fixed-spacing grids).
 */
export function normalizeIntensityInside(
  data: Float32Array,
  inside: Uint8Array,
  spec: IntensitySpec,
  fillRaw: number,
): { data: Float32Array; offset: number; scale: number } {
  if (inside.length !== data.length) {
    throw new RangeError(
      `inside mask holds ${inside.length} values but the data ${data.length}; they must match.`,
    );
  }
  let n = 0;
  for (let i = 0; i < inside.length; i++) n += inside[i]!;
  const values = new Float32Array(n);
  for (let i = 0, k = 0; i < data.length; i++) if (inside[i]) values[k++] = data[i]!;
  const stats = intensityStats(values, spec);
  const fill = applyIntensity(fillRaw, stats);
  for (let i = 0; i < data.length; i++)
    data[i] = inside[i] ? applyIntensity(data[i]!, stats) : fill;
  return { data, offset: stats.offset, scale: stats.scale };
}
