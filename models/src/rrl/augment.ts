/**
 * Spatial augmentation of a training sample (plan.sampling.spatial): image and labels resampled
 * together through one random affine about the grid centre, so the pair stays consistent.
 * Output voxel p (in [z, y, x] voxel units) takes the source at q = M·(p − c) + c + t, with
 * M = R·s (rotations about the three axes, isotropic scale). Image: trilinear, coordinates
 * clamped to the volume (border replicated); labels: nearest, 0 outside the volume.
 */
import type { AppearanceAugmentation, SpatialAugmentation } from './plan.js';
import type { Grid } from './pseudoLabels.js';

export interface Affine {
  /** Row-major 3×3 matrix acting on [z, y, x] offsets from the grid centre. */
  m: number[];
  /** Translation [z, y, x] in voxels. */
  t: [number, number, number];
}

/** A random affine for `spec`, drawn from `next` (uniform [0, 1)); six draws, always. */
export function randomAffine(next: () => number, spec: SpatialAugmentation): Affine {
  const u = (): number => 2 * next() - 1;
  const rad = (spec.rotation * Math.PI) / 180;
  const [a, b, c] = [u() * rad, u() * rad, u() * rad];
  const s = 1 + u() * spec.scale;
  const t: [number, number, number] = [
    u() * spec.translate,
    u() * spec.translate,
    u() * spec.translate,
  ];
  // rotations about z (acts on y, x), y (z, x) and x (z, y), composed Rz·Ry·Rx, times s
  const rz = [1, 0, 0, 0, Math.cos(a), -Math.sin(a), 0, Math.sin(a), Math.cos(a)];
  const ry = [Math.cos(b), 0, Math.sin(b), 0, 1, 0, -Math.sin(b), 0, Math.cos(b)];
  const rx = [Math.cos(c), -Math.sin(c), 0, Math.sin(c), Math.cos(c), 0, 0, 0, 1];
  const m = mul3(mul3(rz, ry), rx).map((v) => v * s);
  return { m, t };
}

function mul3(a: number[], b: number[]): number[] {
  const o = new Array<number>(9).fill(0);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 3; j++)
      for (let k = 0; k < 3; k++) o[i * 3 + j]! += a[i * 3 + k]! * b[k * 3 + j]!;
  return o;
}

/** Image (trilinear, clamped) and labels (nearest, 0 outside) through the affine. */
export function applyAffine(
  image: Float32Array,
  labels: Uint8Array,
  grid: Grid,
  aff: Affine,
): { image: Float32Array; labels: Uint8Array } {
  const [d, h, w] = grid;
  const n = d * h * w;
  if (image.length !== n || labels.length !== n) {
    throw new Error(
      `applyAffine: image (${image.length}) and labels (${labels.length}) must both have ${n} voxels for the grid [${grid.join(',')}]`,
    );
  }
  const out = new Float32Array(n);
  const lab = new Uint8Array(n);
  const [cz, cy, cx] = [(d - 1) / 2, (h - 1) / 2, (w - 1) / 2];
  // The per-voxel arithmetic of `trilinear` and the affine, written out with the row terms hoisted
  // (same operations in the same order, so the same values; about 5× faster than the calls).
  type M9 = [number, number, number, number, number, number, number, number, number];
  const [m0, m1, m2, m3, m4, m5, m6, m7, m8] = aff.m as M9;
  const [tz, ty, tx] = aff.t;
  const zHi = Math.max(d - 2, 0);
  const yHi = Math.max(h - 2, 0);
  const xHi = Math.max(w - 2, 0);
  let i = 0;
  for (let z = 0; z < d; z++) {
    const oz = z - cz;
    for (let y = 0; y < h; y++) {
      const oy = y - cy;
      const rz = m0 * oz + m1 * oy;
      const ry = m3 * oz + m4 * oy;
      const rx = m6 * oz + m7 * oy;
      for (let x = 0; x < w; x++, i++) {
        const ox = x - cx;
        const qz = rz + m2 * ox + cz + tz;
        const qy = ry + m5 * ox + cy + ty;
        const qx = rx + m8 * ox + cx + tx;
        // labels: nearest, 0 outside
        const nz = Math.round(qz);
        const ny = Math.round(qy);
        const nx = Math.round(qx);
        lab[i] =
          nz >= 0 && nz < d && ny >= 0 && ny < h && nx >= 0 && nx < w
            ? labels[(nz * h + ny) * w + nx]!
            : 0;
        // image: trilinear on clamped coordinates
        const pz = qz < 0 ? 0 : qz > d - 1 ? d - 1 : qz;
        const py = qy < 0 ? 0 : qy > h - 1 ? h - 1 : qy;
        const px = qx < 0 ? 0 : qx > w - 1 ? w - 1 : qx;
        const z0 = Math.min(Math.floor(pz), zHi);
        const y0 = Math.min(Math.floor(py), yHi);
        const x0 = Math.min(Math.floor(px), xHi);
        const z1 = Math.min(z0 + 1, d - 1);
        const y1 = Math.min(y0 + 1, h - 1);
        const x1 = Math.min(x0 + 1, w - 1);
        const fz = pz - z0;
        const fy = py - y0;
        const fx = px - x0;
        const r00 = (z0 * h + y0) * w;
        const r01 = (z0 * h + y1) * w;
        const r10 = (z1 * h + y0) * w;
        const r11 = (z1 * h + y1) * w;
        out[i] =
          (1 - fz) *
            ((1 - fy) * ((1 - fx) * image[r00 + x0]! + fx * image[r00 + x1]!) +
              fy * ((1 - fx) * image[r01 + x0]! + fx * image[r01 + x1]!)) +
          fz *
            ((1 - fy) * ((1 - fx) * image[r10 + x0]! + fx * image[r10 + x1]!) +
              fy * ((1 - fx) * image[r11 + x0]! + fx * image[r11 + x1]!));
      }
    }
  }
  return { image: out, labels: lab };
}

/**
 * Trilinear interpolation in the [D, H, W] block of `vol` starting at `base` (x fastest) between
 * the corners (z0|z1, y0|y1, x0|x1) with fractions fz, fy, fx.
 */
export function trilinear(
  vol: ArrayLike<number>,
  base: number,
  h: number,
  w: number,
  z0: number,
  z1: number,
  fz: number,
  y0: number,
  y1: number,
  fy: number,
  x0: number,
  x1: number,
  fx: number,
): number {
  const at = (zz: number, yy: number, xx: number): number => vol[base + (zz * h + yy) * w + xx]!;
  return (
    (1 - fz) *
      ((1 - fy) * ((1 - fx) * at(z0, y0, x0) + fx * at(z0, y0, x1)) +
        fy * ((1 - fx) * at(z0, y1, x0) + fx * at(z0, y1, x1))) +
    fz *
      ((1 - fy) * ((1 - fx) * at(z1, y0, x0) + fx * at(z1, y0, x1)) +
        fy * ((1 - fx) * at(z1, y1, x0) + fx * at(z1, y1, x1)))
  );
}

/**
 * Appearance augmentation (plan.sampling.appearance): a new image with a gamma curve (on the image
 * rescaled to its own [min, max], then back), a smooth multiplicative bias field over the grid
 * (exp of a random polynomial of degree ≤ 2 in coordinates scaled to [−1, 1]) and Gaussian noise.
 * Draws from `next` (uniform [0, 1)): 11 numbers, then 2 per pair of voxels when there is noise.
 */
export function applyAppearance(
  image: Float32Array,
  grid: Grid,
  next: () => number,
  spec: AppearanceAugmentation,
): Float32Array {
  const [d, h, w] = grid;
  const u = (): number => 2 * next() - 1;
  const gamma = Math.exp(u() * Math.log(1 + spec.gamma));
  const c = Array.from({ length: 9 }, () => (u() * spec.bias) / 3);
  const sd = next() * spec.noise;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of image) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi - lo > 1e-12 ? hi - lo : 1;
  const out = new Float32Array(image.length);
  const axis = (i: number, n: number): number => (n > 1 ? (2 * i) / (n - 1) - 1 : 0);
  let i = 0;
  for (let z = 0; z < d; z++) {
    const pz = axis(z, d);
    for (let y = 0; y < h; y++) {
      const py = axis(y, h);
      for (let x = 0; x < w; x++, i++) {
        const px = axis(x, w);
        const field = Math.exp(
          c[0]! * px +
            c[1]! * py +
            c[2]! * pz +
            c[3]! * (px * px - 1 / 3) +
            c[4]! * (py * py - 1 / 3) +
            c[5]! * (pz * pz - 1 / 3) +
            c[6]! * px * py +
            c[7]! * px * pz +
            c[8]! * py * pz,
        );
        const t = (image[i]! - lo) / range;
        out[i] = lo + range * Math.pow(t < 0 ? 0 : t, gamma) * field;
      }
    }
  }
  if (sd > 0) {
    const s = sd * range;
    for (let k = 0; k < out.length; k += 2) {
      // Box–Muller: two independent normal draws per pair of uniforms
      const r = Math.sqrt(-2 * Math.log(1 - next()));
      const a = 2 * Math.PI * next();
      out[k]! += s * r * Math.cos(a);
      if (k + 1 < out.length) out[k + 1]! += s * r * Math.sin(a);
    }
  }
  return out;
}
