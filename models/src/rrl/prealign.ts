/**
 * Translation pre-alignment for the RRL registration (issue #4): the integer 3-D shift of the
 * atlas that maximises the global normalised cross-correlation with a target, found coarse to
 * fine (exhaustive search within ±maxShift on 2× down-sampled volumes, then ±1 at full
 * resolution). The dense registration net (9³ LNCC window) does not recover large global
 * offsets; giving it the shifted atlas does.
 *
 * Convention: `shifted(p) = vol(p − s)` — the content moves by +s voxels; s = [sD, sH, sW] on a
 * grid [D, H, W] (W fastest). Images replicate their border, labels get 0 outside.
 */
import type { Grid } from './pseudoLabels.js';

export type Shift = [number, number, number];

export interface PrealignSpec {
  /** Largest shift searched along each axis, in voxels (full resolution). */
  maxShift: number;
}

function clampI(v: number, n: number): number {
  return v < 0 ? 0 : v >= n ? n - 1 : v;
}

/** The image shifted by `s` voxels (border values replicated). */
export function shiftImage(vol: Float32Array, grid: Grid, s: Shift): Float32Array {
  const [d, h, w] = grid;
  const out = new Float32Array(d * h * w);
  let k = 0;
  for (let z = 0; z < d; z++) {
    const zz = clampI(z - s[0], d);
    for (let y = 0; y < h; y++) {
      const row = (zz * h + clampI(y - s[1], h)) * w;
      for (let x = 0; x < w; x++) out[k++] = vol[row + clampI(x - s[2], w)]!;
    }
  }
  return out;
}

/** The label volume shifted by `s` voxels (0 where the shifted volume has no source voxel). */
export function shiftLabels(labels: Uint8Array, grid: Grid, s: Shift): Uint8Array {
  const [d, h, w] = grid;
  const out = new Uint8Array(d * h * w);
  let k = 0;
  for (let z = 0; z < d; z++) {
    const zz = z - s[0];
    for (let y = 0; y < h; y++) {
      const yy = y - s[1];
      for (let x = 0; x < w; x++, k++) {
        const xx = x - s[2];
        if (zz < 0 || zz >= d || yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        out[k] = labels[(zz * h + yy) * w + xx]!;
      }
    }
  }
  return out;
}

/** 2× average down-sampling (odd sizes: the last voxel is averaged with itself). */
function downsample2(vol: Float32Array, grid: Grid): { vol: Float32Array; grid: Grid } {
  const [d, h, w] = grid;
  const g: Grid = [Math.ceil(d / 2), Math.ceil(h / 2), Math.ceil(w / 2)];
  const out = new Float32Array(g[0] * g[1] * g[2]);
  let k = 0;
  for (let z = 0; z < g[0]; z++)
    for (let y = 0; y < g[1]; y++)
      for (let x = 0; x < g[2]; x++) {
        let s = 0;
        for (let dz = 0; dz < 2; dz++)
          for (let dy = 0; dy < 2; dy++)
            for (let dx = 0; dx < 2; dx++) {
              const zz = Math.min(d - 1, 2 * z + dz);
              const yy = Math.min(h - 1, 2 * y + dy);
              const xx = Math.min(w - 1, 2 * x + dx);
              s += vol[(zz * h + yy) * w + xx]!;
            }
        out[k++] = s / 8;
      }
  return { vol: out, grid: g };
}

/**
 * Pearson correlation of the shifted moving image (border replicated) with the fixed one; shift
 * [0, 0, 0] gives the plain global NCC of two images on one grid.
 */
export function ncc(moving: Float32Array, fixed: Float32Array, grid: Grid, s: Shift): number {
  const [d, h, w] = grid;
  let sm = 0;
  let sf = 0;
  let smm = 0;
  let sff = 0;
  let smf = 0;
  let k = 0;
  for (let z = 0; z < d; z++) {
    const zz = clampI(z - s[0], d);
    for (let y = 0; y < h; y++) {
      const row = (zz * h + clampI(y - s[1], h)) * w;
      for (let x = 0; x < w; x++, k++) {
        const m = moving[row + clampI(x - s[2], w)]!;
        const f = fixed[k]!;
        sm += m;
        sf += f;
        smm += m * m;
        sff += f * f;
        smf += m * f;
      }
    }
  }
  const n = d * h * w;
  const cov = smf - (sm * sf) / n;
  const vm = smm - (sm * sm) / n;
  const vf = sff - (sf * sf) / n;
  return vm > 0 && vf > 0 ? cov / Math.sqrt(vm * vf) : 0;
}

/**
 * The integer shift within ±maxShift (per axis) of `moving` that maximises the global NCC with
 * `fixed`: exhaustive at 2× down-sampling (shifts ±⌈maxShift/2⌉), then ±1 at full resolution
 * around twice the coarse optimum. Ties keep the smaller shift (the search starts at 0).
 */
export function findShift(
  moving: Float32Array,
  fixed: Float32Array,
  grid: Grid,
  maxShift: number,
): { shift: Shift; ncc: number } {
  const m = grid[0] * grid[1] * grid[2];
  if (moving.length !== m || fixed.length !== m) {
    throw new Error(
      `findShift: expected ${m} voxels for the grid [${grid.join(',')}], found ${moving.length} (moving) and ${fixed.length} (fixed); resample both to the plan grid`,
    );
  }
  if (!Number.isInteger(maxShift) || maxShift < 0) {
    throw new Error(`findShift: maxShift must be an integer ≥ 0, found ${maxShift}`);
  }
  if (maxShift === 0) return { shift: [0, 0, 0], ncc: ncc(moving, fixed, grid, [0, 0, 0]) };
  const cm = downsample2(moving, grid);
  const cf = downsample2(fixed, grid);
  const r = Math.ceil(maxShift / 2);
  let best: Shift = [0, 0, 0];
  let bestV = ncc(cm.vol, cf.vol, cm.grid, best);
  for (let a = -r; a <= r; a++)
    for (let b = -r; b <= r; b++)
      for (let c = -r; c <= r; c++) {
        const v = ncc(cm.vol, cf.vol, cm.grid, [a, b, c]);
        if (v > bestV + 1e-9) {
          bestV = v;
          best = [a, b, c];
        }
      }
  const lim = (v: number): number => Math.max(-maxShift, Math.min(maxShift, v));
  const centre: Shift = [lim(2 * best[0]), lim(2 * best[1]), lim(2 * best[2])];
  let fine: Shift = centre;
  let fineV = ncc(moving, fixed, grid, centre);
  for (let a = -1; a <= 1; a++)
    for (let b = -1; b <= 1; b++)
      for (let c = -1; c <= 1; c++) {
        const s: Shift = [lim(centre[0] + a), lim(centre[1] + b), lim(centre[2] + c)];
        const v = ncc(moving, fixed, grid, s);
        if (v > fineV + 1e-9) {
          fineV = v;
          fine = s;
        }
      }
  return { shift: fine, ncc: fineV };
}

/**
 * The atlas as the registration net sees it for one target: shifted by the pre-alignment shift
 * (identity without `prealign`). Cached per target index.
 */
export class PrealignedAtlas {
  private cache = new Map<number, { shift: Shift; image: Float32Array; labels: Uint8Array }>();
  private readonly labels: Uint8Array;
  constructor(
    readonly grid: Grid,
    readonly atlasImage: Float32Array,
    atlasLabels: ArrayLike<number>,
    readonly targets: readonly Float32Array[],
    readonly prealign?: PrealignSpec,
  ) {
    this.labels = Uint8Array.from(atlasLabels);
  }
  get(k: number): { shift: Shift; image: Float32Array; labels: Uint8Array } {
    let e = this.cache.get(k);
    if (!e) {
      if (!this.prealign || this.prealign.maxShift === 0) {
        e = { shift: [0, 0, 0], image: this.atlasImage, labels: this.labels };
      } else {
        const { shift } = findShift(
          this.atlasImage,
          this.targets[k]!,
          this.grid,
          this.prealign.maxShift,
        );
        e = {
          shift,
          image: shiftImage(this.atlasImage, this.grid, shift),
          labels: shiftLabels(this.labels, this.grid, shift),
        };
      }
      this.cache.set(k, e);
    }
    return e;
  }
}
