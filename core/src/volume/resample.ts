/**
 * Resampling between a source volume and a model grid. "fit-extent": the source's voxel extent is
 * scaled onto the grid; voxel centres map by u_src = (j + 0.5) * S / G - 0.5, clamped to the
 * volume. "fixed-spacing" (the *Centred functions): the grid is sampled at its own spacing with the
 * centres of both extents aligned. Flat arrays are x fastest, then y, then z. Browser-safe.
 */

export type Dims = readonly [number, number, number];

export type NumericArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array;

interface AxisTable {
  i0: Int32Array;
  i1: Int32Array;
  w1: Float32Array;
}

function voxelCount(d: Dims): number {
  return d[0] * d[1] * d[2];
}

function checkDims(name: string, d: Dims, length?: number): void {
  if (d.length !== 3 || !d.every((v) => Number.isInteger(v) && v > 0)) {
    throw new RangeError(
      `${name} must be three positive integers [x, y, z], found [${d.join(', ')}].`,
    );
  }
  if (length !== undefined && length !== voxelCount(d)) {
    throw new RangeError(
      `${name} [${d.join(', ')}] needs ${voxelCount(d)} voxels, but the array holds ${length}.`,
    );
  }
}

/**
 * Linear interpolation table for `dst` samples along one axis; sample j reads the continuous
 * source index `coord(j)`, clamped to the `src` samples.
 */
function tableFromCoordinates(src: number, dst: number, coord: (j: number) => number): AxisTable {
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w1 = new Float32Array(dst);
  for (let j = 0; j < dst; j++) {
    const u = Math.min(Math.max(coord(j), 0), src - 1);
    const f = Math.floor(u);
    i0[j] = f;
    i1[j] = Math.min(f + 1, src - 1);
    w1[j] = u - f;
  }
  return { i0, i1, w1 };
}

/** Linear interpolation table mapping `dst` samples onto `src` samples along one axis. */
function linearTable(src: number, dst: number): AxisTable {
  const scale = src / dst;
  return tableFromCoordinates(src, dst, (j) => (j + 0.5) * scale - 0.5);
}

function nearestTable(src: number, dst: number): Int32Array {
  const t = new Int32Array(dst);
  const scale = src / dst;
  for (let j = 0; j < dst; j++) {
    t[j] = Math.min(src - 1, Math.max(0, Math.floor((j + 0.5) * scale)));
  }
  return t;
}

/** Trilinear resample of `src` (dims srcDims) to dstDims. */
export function resampleTrilinear(
  src: ArrayLike<number>,
  srcDims: Dims,
  dstDims: Dims,
  out?: Float32Array,
): Float32Array {
  checkDims('source dims', srcDims, src.length);
  checkDims('target dims', dstDims);
  const tx = linearTable(srcDims[0], dstDims[0]);
  const ty = linearTable(srcDims[1], dstDims[1]);
  const tz = linearTable(srcDims[2], dstDims[2]);
  return trilinearWithTables(src, srcDims, dstDims, tx, ty, tz, out);
}

function trilinearWithTables(
  src: ArrayLike<number>,
  srcDims: Dims,
  dstDims: Dims,
  tx: AxisTable,
  ty: AxisTable,
  tz: AxisTable,
  out?: Float32Array,
): Float32Array {
  const [sx, sy] = srcDims;
  const [dx, dy, dz] = dstDims;
  const res = out ?? new Float32Array(dx * dy * dz);
  const sxy = sx * sy;
  let o = 0;
  for (let k = 0; k < dz; k++) {
    const z0 = tz.i0[k]! * sxy;
    const z1 = tz.i1[k]! * sxy;
    const wz = tz.w1[k]!;
    for (let j = 0; j < dy; j++) {
      const y0 = ty.i0[j]! * sx;
      const y1 = ty.i1[j]! * sx;
      const wy = ty.w1[j]!;
      const a00 = z0 + y0;
      const a01 = z0 + y1;
      const a10 = z1 + y0;
      const a11 = z1 + y1;
      for (let i = 0; i < dx; i++) {
        const x0 = tx.i0[i]!;
        const x1 = tx.i1[i]!;
        const wx = tx.w1[i]!;
        const c00 = src[a00 + x0]! + wx * (src[a00 + x1]! - src[a00 + x0]!);
        const c01 = src[a01 + x0]! + wx * (src[a01 + x1]! - src[a01 + x0]!);
        const c10 = src[a10 + x0]! + wx * (src[a10 + x1]! - src[a10 + x0]!);
        const c11 = src[a11 + x0]! + wx * (src[a11 + x1]! - src[a11 + x0]!);
        const c0 = c00 + wy * (c01 - c00);
        const c1 = c10 + wy * (c11 - c10);
        res[o++] = c0 + wz * (c1 - c0);
      }
    }
  }
  return res;
}

/** Nearest-neighbour resample (for label maps). */
export function resampleNearest<T extends NumericArray>(src: T, srcDims: Dims, dstDims: Dims): T {
  checkDims('source dims', srcDims, src.length);
  checkDims('target dims', dstDims);
  const [sx, sy] = srcDims;
  const [dx, dy, dz] = dstDims;
  const tx = nearestTable(srcDims[0], dx);
  const ty = nearestTable(srcDims[1], dy);
  const tz = nearestTable(srcDims[2], dz);
  const Ctor = src.constructor as new (n: number) => T;
  const res = new Ctor(dx * dy * dz);
  let o = 0;
  for (let k = 0; k < dz; k++) {
    const zo = tz[k]! * sx * sy;
    for (let j = 0; j < dy; j++) {
      const yo = zo + ty[j]! * sx;
      for (let i = 0; i < dx; i++) res[o++] = src[yo + tx[i]!]!;
    }
  }
  return res;
}

/**
 * Brings model logits [C, gridZ, gridY, gridX] back to the source grid: trilinear interpolation of
 * every channel at each source voxel, then argmax. Returns label values (channel index) per
 * source voxel. Uses O(source voxels) memory, not O(C × source voxels).
 */
export function logitsToSourceLabels(
  logits: Float32Array,
  channels: number,
  gridDims: Dims,
  srcDims: Dims,
): Uint8Array {
  checkLogits(logits, channels, gridDims, srcDims);
  const tx = linearTable(gridDims[0], srcDims[0]);
  const ty = linearTable(gridDims[1], srcDims[1]);
  const tz = linearTable(gridDims[2], srcDims[2]);
  return logitsWithTables(logits, channels, gridDims, srcDims, tx, ty, tz);
}

function checkLogits(logits: Float32Array, channels: number, gridDims: Dims, srcDims: Dims): void {
  checkDims('grid dims', gridDims);
  checkDims('source dims', srcDims);
  if (!Number.isInteger(channels) || channels < 1 || channels > 256) {
    throw new RangeError(`channels must be an integer 1..256, found ${channels}.`);
  }
  const gv = voxelCount(gridDims);
  if (logits.length !== channels * gv) {
    throw new RangeError(
      `logits must hold ${channels} × ${gv} values for grid [${gridDims.join(', ')}], found ${logits.length}.`,
    );
  }
}

/** Tables map destination (source-volume) samples onto grid samples; `inside` masks → label 0. */
function logitsWithTables(
  logits: Float32Array,
  channels: number,
  gridDims: Dims,
  srcDims: Dims,
  tx: AxisTable & { inside?: Uint8Array },
  ty: AxisTable & { inside?: Uint8Array },
  tz: AxisTable & { inside?: Uint8Array },
): Uint8Array {
  const gv = voxelCount(gridDims);
  const [gx, gy] = gridDims;
  const [dx, dy, dz] = srcDims;
  const out = new Uint8Array(dx * dy * dz);
  const gridArg = argmaxChannels(logits, channels);
  const gxy = gx * gy;
  let o = 0;
  for (let k = 0; k < dz; k++) {
    if (tz.inside && !tz.inside[k]) {
      o += dx * dy;
      continue;
    }
    const z0 = tz.i0[k]! * gxy;
    const z1 = tz.i1[k]! * gxy;
    const wz = tz.w1[k]!;
    for (let j = 0; j < dy; j++) {
      if (ty.inside && !ty.inside[j]) {
        o += dx;
        continue;
      }
      const y0 = ty.i0[j]! * gx;
      const y1 = ty.i1[j]! * gx;
      const wy = ty.w1[j]!;
      const a00 = z0 + y0;
      const a01 = z0 + y1;
      const a10 = z1 + y0;
      const a11 = z1 + y1;
      for (let i = 0; i < dx; i++) {
        if (tx.inside && !tx.inside[i]) {
          o++;
          continue;
        }
        const x0 = tx.i0[i]!;
        const x1 = tx.i1[i]!;
        // When the 8 surrounding grid voxels share one argmax, the interpolated argmax is that
        // label too (a convex combination of non-negative differences stays non-negative).
        const g = gridArg[a00 + x0]!;
        if (
          g === gridArg[a00 + x1]! &&
          g === gridArg[a01 + x0]! &&
          g === gridArg[a01 + x1]! &&
          g === gridArg[a10 + x0]! &&
          g === gridArg[a10 + x1]! &&
          g === gridArg[a11 + x0]! &&
          g === gridArg[a11 + x1]!
        ) {
          out[o++] = g;
          continue;
        }
        const wx = tx.w1[i]!;
        let best = 0;
        let bestV = -Infinity;
        for (let c = 0; c < channels; c++) {
          const b = c * gv;
          const c00 = logits[b + a00 + x0]! + wx * (logits[b + a00 + x1]! - logits[b + a00 + x0]!);
          const c01 = logits[b + a01 + x0]! + wx * (logits[b + a01 + x1]! - logits[b + a01 + x0]!);
          const c10 = logits[b + a10 + x0]! + wx * (logits[b + a10 + x1]! - logits[b + a10 + x0]!);
          const c11 = logits[b + a11 + x0]! + wx * (logits[b + a11 + x1]! - logits[b + a11 + x0]!);
          const c0 = c00 + wy * (c01 - c00);
          const c1 = c10 + wy * (c11 - c10);
          const v = c0 + wz * (c1 - c0);
          if (v > bestV) {
            bestV = v;
            best = c;
          }
        }
        out[o++] = best;
      }
    }
  }
  return out;
}

// ---- fixed-spacing ("centred") mapping -------------------------------------------------------
// Grid voxel j (of G, spacing g) and source voxel i (of S, spacing s) share a physical frame whose
// origin is the centre of both extents: x = (j + 0.5 - G/2)·g = (i + 0.5 - S/2)·s. A sample lies
// inside the other volume when its continuous index u is within [-0.5, n - 0.5] (the extent).
//
// Same spacing on an axis: the voxels are made to coincide (u = j + trunc((S - G)/2), an integer),
// so nothing is interpolated. Exact centring would put every grid voxel half-way between two
// source voxels whenever S - G is odd: the image is then averaged over the two while a label map
// (nearest neighbour, ties rounding up) comes from one of them — the labels sit half a voxel off
// the image, the same way in every volume. The centres now agree within half a voxel; trunc
// (toward zero) keeps the two directions exact inverses of each other.

const EDGE_EPS = 1e-6;
/** Relative difference under which two spacings count as the same (NIfTI float noise). */
const SAME_SPACING = 1e-4;

/** Continuous index in the `to` volume of sample `j` of the `from` volume (centred mapping). */
export function centredCoordinate(
  j: number,
  from: number,
  fromSpacing: number,
  to: number,
  toSpacing: number,
): number {
  if (Math.abs(fromSpacing - toSpacing) <= SAME_SPACING * Math.max(fromSpacing, toSpacing)) {
    return j + Math.trunc((to - from) / 2);
  }
  return ((j + 0.5 - from / 2) * fromSpacing) / toSpacing + to / 2 - 0.5;
}

/** Linear table for `dst` samples (spacing dstSp) read from `src` samples (spacing srcSp), centred. */
function centredLinearTable(
  src: number,
  srcSp: number,
  dst: number,
  dstSp: number,
): AxisTable & { inside: Uint8Array } {
  const coord = (j: number): number => centredCoordinate(j, dst, dstSp, src, srcSp);
  const inside = new Uint8Array(dst);
  for (let j = 0; j < dst; j++) {
    const u = coord(j);
    inside[j] = u >= -0.5 - EDGE_EPS && u <= src - 0.5 + EDGE_EPS ? 1 : 0;
  }
  return { ...tableFromCoordinates(src, dst, coord), inside };
}

function centredNearestTable(src: number, srcSp: number, dst: number, dstSp: number): Int32Array {
  const t = new Int32Array(dst);
  for (let j = 0; j < dst; j++) {
    const u = centredCoordinate(j, dst, dstSp, src, srcSp);
    const inside = u >= -0.5 - EDGE_EPS && u <= src - 0.5 + EDGE_EPS;
    t[j] = inside ? Math.min(src - 1, Math.max(0, Math.floor(u + 0.5))) : -1;
  }
  return t;
}

function checkSpacing(name: string, sp: readonly number[] | undefined): void {
  if (!sp || sp.length !== 3 || !sp.every((v) => Number.isFinite(v) && v > 0)) {
    throw new RangeError(
      `${name} must be three positive numbers in mm [x, y, z], found ${sp ? `[${sp.join(', ')}]` : 'nothing'}.`,
    );
  }
}

/**
 * Trilinear resample at a fixed spacing, centred (centre of the source extent ↦ centre of the
 * target extent). Returns the values and a mask of target voxels inside the source extent
 * (outside voxels hold the clamped edge value; callers replace them).
 */
export function resampleTrilinearCentred(
  src: ArrayLike<number>,
  srcDims: Dims,
  srcSpacing: readonly number[],
  dstDims: Dims,
  dstSpacing: readonly number[],
): { data: Float32Array; inside: Uint8Array } {
  checkDims('source dims', srcDims, src.length);
  checkDims('target dims', dstDims);
  checkSpacing('source spacing', srcSpacing);
  checkSpacing('target spacing', dstSpacing);
  const table = (a: 0 | 1 | 2): ReturnType<typeof centredLinearTable> =>
    centredLinearTable(srcDims[a], srcSpacing[a]!, dstDims[a], dstSpacing[a]!);
  const t = [table(0), table(1), table(2)] as const;
  const data = trilinearWithTables(src, srcDims, dstDims, t[0], t[1], t[2]);
  const inside = new Uint8Array(data.length);
  let o = 0;
  for (let k = 0; k < dstDims[2]; k++)
    for (let j = 0; j < dstDims[1]; j++)
      for (let i = 0; i < dstDims[0]; i++, o++)
        inside[o] = t[2].inside[k]! & t[1].inside[j]! & t[0].inside[i]!;
  return { data, inside };
}

/** Nearest-neighbour resample at a fixed spacing, centred; voxels outside the source get `fill`. */
export function resampleNearestCentred<T extends NumericArray>(
  src: T,
  srcDims: Dims,
  srcSpacing: readonly number[],
  dstDims: Dims,
  dstSpacing: readonly number[],
  fill = 0,
): T {
  checkDims('source dims', srcDims, src.length);
  checkDims('target dims', dstDims);
  checkSpacing('source spacing', srcSpacing);
  checkSpacing('target spacing', dstSpacing);
  const [sx, sy] = srcDims;
  const [dx, dy, dz] = dstDims;
  const tx = centredNearestTable(srcDims[0], srcSpacing[0]!, dx, dstSpacing[0]!);
  const ty = centredNearestTable(srcDims[1], srcSpacing[1]!, dy, dstSpacing[1]!);
  const tz = centredNearestTable(srcDims[2], srcSpacing[2]!, dz, dstSpacing[2]!);
  const Ctor = src.constructor as new (n: number) => T;
  const res = new Ctor(dx * dy * dz);
  if (fill !== 0) res.fill(fill);
  let o = 0;
  for (let k = 0; k < dz; k++) {
    if (tz[k]! < 0) {
      o += dx * dy;
      continue;
    }
    const zo = tz[k]! * sx * sy;
    for (let j = 0; j < dy; j++) {
      if (ty[j]! < 0) {
        o += dx;
        continue;
      }
      const yo = zo + ty[j]! * sx;
      for (let i = 0; i < dx; i++, o++) if (tx[i]! >= 0) res[o] = src[yo + tx[i]!]!;
    }
  }
  return res;
}

/**
 * logitsToSourceLabels for a fixed-spacing grid: each source voxel reads the grid at its centred
 * physical position; source voxels outside the grid's extent get label 0.
 */
export function logitsToSourceLabelsCentred(
  logits: Float32Array,
  channels: number,
  gridDims: Dims,
  gridSpacing: readonly number[],
  srcDims: Dims,
  srcSpacing: readonly number[],
): Uint8Array {
  checkLogits(logits, channels, gridDims, srcDims);
  checkSpacing('grid spacing', gridSpacing);
  checkSpacing('source spacing', srcSpacing);
  const table = (a: 0 | 1 | 2): ReturnType<typeof centredLinearTable> =>
    centredLinearTable(gridDims[a], gridSpacing[a]!, srcDims[a], srcSpacing[a]!);
  const t = [table(0), table(1), table(2)] as const;
  return logitsWithTables(logits, channels, gridDims, srcDims, t[0], t[1], t[2]);
}

/** Argmax over channels of logits [C, N] → labels [N] (on the model grid). */
export function argmaxChannels(logits: Float32Array | Float64Array, channels: number): Uint8Array {
  const n = logits.length / channels;
  if (!Number.isInteger(n)) {
    throw new RangeError(
      `logits length ${logits.length} is not a multiple of ${channels} channels.`,
    );
  }
  const out = new Uint8Array(n);
  for (let v = 0; v < n; v++) {
    let best = 0;
    let bestV = logits[v]!;
    for (let c = 1; c < channels; c++) {
      const x = logits[c * n + v]!;
      if (x > bestV) {
        bestV = x;
        best = c;
      }
    }
    out[v] = best;
  }
  return out;
}
