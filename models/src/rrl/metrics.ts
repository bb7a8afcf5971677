/**
 * Segmentation metrics for evaluation (browser-safe, no dependencies): Dice, HD95 (symmetric 95th
 * percentile surface distance in mm, via an exact separable 3-D Euclidean distance transform on
 * the bounding box of both masks) and summary statistics.
 *
 * Label maps are flat arrays, x fastest, then y, then z; `value` selects the structure.
 */
import { percentile } from '@rrl/core/volume/normalize.js';

type Labels = ArrayLike<number>;
type Vec3 = readonly [number, number, number] | readonly number[];

function checkPair(pred: Labels, truth: Labels, dims?: Vec3): void {
  if (pred.length !== truth.length) {
    throw new RangeError(
      `prediction and truth must have the same number of voxels, found ${pred.length} and ${truth.length}.`,
    );
  }
  if (dims && dims[0] * dims[1] * dims[2] !== pred.length) {
    throw new RangeError(
      `dims [${dims.join(', ')}] need ${dims[0] * dims[1] * dims[2]} voxels, but the label maps hold ${pred.length}.`,
    );
  }
}

/** Dice overlap 2|P∩T| / (|P| + |T|) of the voxels equal to `value`; 1 when both are empty. */
export function dice(pred: Labels, truth: Labels, value: number): number {
  checkPair(pred, truth);
  let p = 0;
  let t = 0;
  let both = 0;
  for (let i = 0; i < pred.length; i++) {
    const a = pred[i] === value;
    const b = truth[i] === value;
    if (a) p++;
    if (b) t++;
    if (a && b) both++;
  }
  return p + t === 0 ? 1 : (2 * both) / (p + t);
}

/**
 * Squared Euclidean distance transform along one line (Felzenszwalb & Huttenlocher): d[p] =
 * min_q ((p - q)·s)² + f[q]. Infinite entries of f are never features; all infinite → all infinite.
 */
function edt1d(
  f: Float64Array,
  n: number,
  s: number,
  d: Float64Array,
  v: Int32Array,
  z: Float64Array,
): void {
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[q]!;
    if (fq === Infinity) continue;
    const hq = fq + q * s * (q * s);
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    let sx = 0;
    for (;;) {
      const r = v[k]!;
      sx = (hq - (f[r]! + r * s * (r * s))) / (2 * s * (q - r));
      if (sx <= z[k]!) k--;
      else break;
    }
    k++;
    v[k] = q;
    z[k] = sx;
    z[k + 1] = Infinity;
  }
  if (k < 0) {
    d.fill(Infinity, 0, n);
    return;
  }
  let j = 0;
  for (let p = 0; p < n; p++) {
    const x = p * s;
    while (z[j + 1]! < x) j++;
    const vj = v[j]!;
    const dx = x - vj * s;
    d[p] = dx * dx + f[vj]!;
  }
}

/**
 * Squared distance (mm²) from every voxel of a [nx, ny, nz] box to the nearest voxel where
 * `feature` is 1 (exact, anisotropic spacing). Infinity everywhere when there is no feature.
 */
export function squaredDistanceTransform(
  feature: Uint8Array,
  dims: Vec3,
  spacing: Vec3,
): Float64Array {
  const [nx, ny, nz] = dims;
  const out = new Float64Array(nx * ny * nz);
  for (let i = 0; i < out.length; i++) out[i] = feature[i] ? 0 : Infinity;
  const m = Math.max(nx, ny, nz);
  const f = new Float64Array(m);
  const d = new Float64Array(m);
  const v = new Int32Array(m);
  const z = new Float64Array(m + 1);
  const pass = (n: number, stride: number, starts: Iterable<number>, s: number): void => {
    for (const base of starts) {
      for (let i = 0; i < n; i++) f[i] = out[base + i * stride]!;
      edt1d(f, n, s, d, v, z);
      for (let i = 0; i < n; i++) out[base + i * stride] = d[i]!;
    }
  };
  function* rows(): Iterable<number> {
    for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) yield (k * ny + j) * nx;
  }
  function* cols(): Iterable<number> {
    for (let k = 0; k < nz; k++) for (let i = 0; i < nx; i++) yield k * ny * nx + i;
  }
  function* pillars(): Iterable<number> {
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) yield j * nx + i;
  }
  pass(nx, 1, rows(), spacing[0]);
  pass(ny, nx, cols(), spacing[1]);
  pass(nz, nx * ny, pillars(), spacing[2]);
  return out;
}

interface Box {
  lo: [number, number, number];
  hi: [number, number, number];
}

function boundingBox(a: Labels, b: Labels, dims: Vec3, value: number): Box | undefined {
  const [nx, ny, nz] = dims;
  const lo: [number, number, number] = [nx, ny, nz];
  const hi: [number, number, number] = [-1, -1, -1];
  let i = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let x = 0; x < nx; x++, i++) {
        if (a[i] === value || b[i] === value) {
          if (x < lo[0]) lo[0] = x;
          if (x > hi[0]) hi[0] = x;
          if (j < lo[1]) lo[1] = j;
          if (j > hi[1]) hi[1] = j;
          if (k < lo[2]) lo[2] = k;
          if (k > hi[2]) hi[2] = k;
        }
      }
  return hi[0] < 0 ? undefined : { lo, hi };
}

/**
 * Surface voxels of the mask `labels === value` inside `box`: mask voxels with a 6-neighbour
 * outside the mask; the volume's border counts as outside.
 */
function surfaceInBox(labels: Labels, dims: Vec3, value: number, box: Box): Uint8Array {
  const [nx, ny, nz] = dims;
  const bx = box.hi[0] - box.lo[0] + 1;
  const by = box.hi[1] - box.lo[1] + 1;
  const bz = box.hi[2] - box.lo[2] + 1;
  const out = new Uint8Array(bx * by * bz);
  const sxy = nx * ny;
  let o = 0;
  for (let k = box.lo[2]; k <= box.hi[2]; k++)
    for (let j = box.lo[1]; j <= box.hi[1]; j++)
      for (let x = box.lo[0]; x <= box.hi[0]; x++, o++) {
        const i = x + nx * j + sxy * k;
        if (labels[i] !== value) continue;
        out[o] =
          x === 0 ||
          x === nx - 1 ||
          j === 0 ||
          j === ny - 1 ||
          k === 0 ||
          k === nz - 1 ||
          labels[i - 1] !== value ||
          labels[i + 1] !== value ||
          labels[i - nx] !== value ||
          labels[i + nx] !== value ||
          labels[i - sxy] !== value ||
          labels[i + sxy] !== value
            ? 1
            : 0;
      }
  return out;
}

/**
 * HD95 in mm: the 95th percentile (linear interpolation) of the pooled surface distances of both
 * directions (every surface voxel of P to the nearest surface voxel of T, and of T to P; medpy's
 * `hd95`). 0 when both masks are empty; Infinity when exactly one is empty.
 */
export function hd95(
  pred: Labels,
  truth: Labels,
  dims: Vec3,
  spacing: Vec3,
  value: number,
): number {
  return surfaceDistancePercentile(pred, truth, dims, spacing, value, 95);
}

/** The p-th percentile of the pooled symmetric surface distances (see hd95). */
export function surfaceDistancePercentile(
  pred: Labels,
  truth: Labels,
  dims: Vec3,
  spacing: Vec3,
  value: number,
  p: number,
): number {
  checkPair(pred, truth, dims);
  if (!(spacing.length === 3 && spacing.every((s) => Number.isFinite(s) && s > 0))) {
    throw new RangeError(
      `spacing must be three positive numbers in mm, found [${spacing.join(', ')}].`,
    );
  }
  const box = boundingBox(pred, truth, dims, value);
  if (!box) return 0;
  const bd: Vec3 = [
    box.hi[0] - box.lo[0] + 1,
    box.hi[1] - box.lo[1] + 1,
    box.hi[2] - box.lo[2] + 1,
  ];
  const sp = surfaceInBox(pred, dims, value, box);
  const st = surfaceInBox(truth, dims, value, box);
  const np = sp.reduce((s, v) => s + v, 0);
  const nt = st.reduce((s, v) => s + v, 0);
  if (np === 0 || nt === 0) return Infinity;
  const toT = squaredDistanceTransform(st, bd, spacing);
  const toP = squaredDistanceTransform(sp, bd, spacing);
  const dist = new Float64Array(np + nt);
  let k = 0;
  for (let i = 0; i < sp.length; i++) {
    if (sp[i]) dist[k++] = Math.sqrt(toT[i]!);
    if (st[i]) dist[k++] = Math.sqrt(toP[i]!);
  }
  return percentile(dist, p);
}

/**
 * mean, std (population, ddof 0) and median of the finite values; `n` counts them and
 * `nonFinite` counts the NaN/Infinity values left out (e.g. HD95 of an empty prediction).
 * All NaN when no finite value is left.
 */
export function summarize(values: readonly number[]): {
  mean: number;
  std: number;
  median: number;
  n: number;
  nonFinite: number;
} {
  const xs = values.filter((v) => Number.isFinite(v));
  const nonFinite = values.length - xs.length;
  if (xs.length === 0) return { mean: NaN, std: NaN, median: NaN, n: 0, nonFinite };
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length);
  return { mean, std, median: percentile(xs, 50), n: xs.length, nonFinite };
}
