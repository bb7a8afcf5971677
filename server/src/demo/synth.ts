/**
 * Synthetic subjects from the demo atlas: a random smooth deformation (small global affine plus a
 * cubic B-spline displacement field), a multiplicative bias field and Rician noise. Deterministic
 * for a given seed. Works on any grid; x is the fastest axis.
 */
import { Rng } from './rng.js';
import { perAxis, type V3 } from './axes.js';

export interface SynthOptions {
  /** Standard deviation of the B-spline control-point displacements, mm (default 3). */
  displacementMm?: number;
  /** Control-point spacing of the B-spline field, mm (default 30). */
  controlSpacingMm?: number;
  /** Max rotation about each axis, degrees (default 5). */
  rotationDeg?: number;
  /** Max relative scaling per axis (default 0.06). */
  scale?: number;
  /** Max translation per axis, mm (default 4). */
  translationMm?: number;
  /** Bias field strength: std of the log-field polynomial coefficients (default 0.12). */
  bias?: number;
  /** Rician noise σ as a fraction of the image's 99th percentile (default 0.03). */
  noise?: number;
}

export interface Subject {
  image: Float32Array;
  labels: Uint8Array;
}

const bspline = (t: number): [number, number, number, number] => {
  const t2 = t * t;
  const t3 = t2 * t;
  return [(1 - t) ** 3 / 6, (3 * t3 - 6 * t2 + 4) / 6, (-3 * t3 + 3 * t2 + 3 * t + 1) / 6, t3 / 6];
};

/** The 99th percentile of the non-zero values (for scaling noise and windows). */
export function percentile(data: Float32Array, q: number): number {
  const hist = new Float64Array(4096);
  let max = 0;
  for (let i = 0; i < data.length; i++) if (data[i]! > max) max = data[i]!;
  if (max <= 0) return 0;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v > 0) {
      hist[Math.min(4095, Math.floor((v / max) * 4095))]!++;
      count++;
    }
  }
  let acc = 0;
  for (let b = 0; b < 4096; b++) {
    acc += hist[b]!;
    if (acc >= q * count) return ((b + 1) / 4096) * max;
  }
  return max;
}

/**
 * Warps image (trilinear) and labels (nearest) by a random smooth transform, then applies a bias
 * field and Rician noise to the image.
 */
export function synthesizeSubject(
  image: Float32Array,
  labels: Uint8Array,
  dims: [number, number, number],
  spacing: [number, number, number],
  seed: number,
  options: SynthOptions = {},
): Subject {
  const rng = new Rng(seed);
  const [nx, ny, nz] = dims;
  const nxy = nx * ny;
  const dispSd = options.displacementMm ?? 3;
  const ctrl = options.controlSpacingMm ?? 30;
  const rot = ((options.rotationDeg ?? 5) * Math.PI) / 180;
  const scl = options.scale ?? 0.06;
  const tr = options.translationMm ?? 4;

  // Global affine in mm about the volume centre: source = M (p − c) + c + t
  const [ax, ay, az] = [rng.uniform(-rot, rot), rng.uniform(-rot, rot), rng.uniform(-rot, rot)];
  const s: V3 = [
    1 + rng.uniform(-scl, scl),
    1 + rng.uniform(-scl, scl),
    1 + rng.uniform(-scl, scl),
  ];
  const t: V3 = [rng.uniform(-tr, tr), rng.uniform(-tr, tr), rng.uniform(-tr, tr)];
  const [cx, sx] = [Math.cos(ax), Math.sin(ax)];
  const [cy, sy] = [Math.cos(ay), Math.sin(ay)];
  const [cz, sz] = [Math.cos(az), Math.sin(az)];
  // R = Rz · Ry · Rx
  const R: V3<V3> = [
    [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
    [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
    [-sy, cy * sx, cy * cx],
  ];
  const M = perAxis((r) => perAxis((j) => R[r][j] * s[j]));
  const centre: V3 = [
    ((nx - 1) * spacing[0]) / 2,
    ((ny - 1) * spacing[1]) / 2,
    ((nz - 1) * spacing[2]) / 2,
  ];

  // B-spline control grid (with a margin of one control point each side)
  const cn = perAxis((a) => Math.ceil((dims[a] * spacing[a]) / ctrl) + 3);
  const coef = perAxis(() => {
    const c = new Float32Array(cn[0]! * cn[1]! * cn[2]!);
    for (let i = 0; i < c.length; i++) c[i] = rng.normal() * dispSd;
    return c;
  });

  // Displacement (voxel units, affine + B-spline) on a coarse grid every `step` voxels
  const step = 4;
  const gn = perAxis((a) => Math.floor((dims[a] - 1) / step) + 2);
  const field = perAxis(() => new Float32Array(gn[0] * gn[1] * gn[2]));
  const weights = (a: 0 | 1 | 2, g: number): { i0: number; w: number[] } => {
    const u = (g * step * spacing[a]) / ctrl + 1; // +1: margin
    const i0 = Math.floor(u);
    return { i0: i0 - 1, w: bspline(u - i0) };
  };
  const wx = Array.from({ length: gn[0] }, (_, g) => weights(0, g));
  const wy = Array.from({ length: gn[1] }, (_, g) => weights(1, g));
  const wz = Array.from({ length: gn[2] }, (_, g) => weights(2, g));
  for (let gz = 0; gz < gn[2]!; gz++) {
    for (let gy = 0; gy < gn[1]!; gy++) {
      for (let gx = 0; gx < gn[0]!; gx++) {
        const p = [gx * step * spacing[0], gy * step * spacing[1], gz * step * spacing[2]];
        const q = [p[0]! - centre[0]!, p[1]! - centre[1]!, p[2]! - centre[2]!];
        const gi = (gz * gn[1]! + gy) * gn[0]! + gx;
        for (const a of [0, 1, 2] as const) {
          let d = M[a][0] * q[0]! + M[a][1] * q[1]! + M[a][2] * q[2]! + centre[a] + t[a] - p[a]!;
          const c = coef[a];
          for (let k = 0; k < 4; k++) {
            const kz = Math.min(cn[2]! - 1, Math.max(0, wz[gz]!.i0 + k));
            for (let j = 0; j < 4; j++) {
              const jy = Math.min(cn[1]! - 1, Math.max(0, wy[gy]!.i0 + j));
              const wzy = wz[gz]!.w[k]! * wy[gy]!.w[j]!;
              const base = (kz * cn[1]! + jy) * cn[0]!;
              for (let i = 0; i < 4; i++) {
                const ix = Math.min(cn[0]! - 1, Math.max(0, wx[gx]!.i0 + i));
                d += wzy * wx[gx]!.w[i]! * c[base + ix]!;
              }
            }
          }
          field[a][gi] = d / spacing[a];
        }
      }
    }
  }

  // Warp
  const out = new Float32Array(image.length);
  const outLabels = new Uint8Array(labels.length);
  const [fx, fy, fz] = field;
  const gnx = gn[0]!;
  const gnxy = gn[0]! * gn[1]!;
  for (let z = 0; z < nz; z++) {
    const uz = z / step;
    const gz0 = Math.floor(uz);
    const tz = uz - gz0;
    for (let y = 0; y < ny; y++) {
      const uy = y / step;
      const gy0 = Math.floor(uy);
      const ty = uy - gy0;
      const row = (z * ny + y) * nx;
      for (let x = 0; x < nx; x++) {
        const ux = x / step;
        const gx0 = Math.floor(ux);
        const tx = ux - gx0;
        const g = gz0 * gnxy + gy0 * gnx + gx0;
        const w000 = (1 - tx) * (1 - ty) * (1 - tz);
        const w100 = tx * (1 - ty) * (1 - tz);
        const w010 = (1 - tx) * ty * (1 - tz);
        const w110 = tx * ty * (1 - tz);
        const w001 = (1 - tx) * (1 - ty) * tz;
        const w101 = tx * (1 - ty) * tz;
        const w011 = (1 - tx) * ty * tz;
        const w111 = tx * ty * tz;
        const g1 = g + 1;
        const g2 = g + gnx;
        const g3 = g2 + 1;
        const g4 = g + gnxy;
        const g5 = g4 + 1;
        const g6 = g4 + gnx;
        const g7 = g6 + 1;
        const px =
          x +
          w000 * fx[g]! +
          w100 * fx[g1]! +
          w010 * fx[g2]! +
          w110 * fx[g3]! +
          w001 * fx[g4]! +
          w101 * fx[g5]! +
          w011 * fx[g6]! +
          w111 * fx[g7]!;
        const py =
          y +
          w000 * fy[g]! +
          w100 * fy[g1]! +
          w010 * fy[g2]! +
          w110 * fy[g3]! +
          w001 * fy[g4]! +
          w101 * fy[g5]! +
          w011 * fy[g6]! +
          w111 * fy[g7]!;
        const pz =
          z +
          w000 * fz[g]! +
          w100 * fz[g1]! +
          w010 * fz[g2]! +
          w110 * fz[g3]! +
          w001 * fz[g4]! +
          w101 * fz[g5]! +
          w011 * fz[g6]! +
          w111 * fz[g7]!;
        const i = row + x;
        // nearest label
        const rx = Math.round(px);
        const ry = Math.round(py);
        const rz = Math.round(pz);
        if (rx >= 0 && ry >= 0 && rz >= 0 && rx < nx && ry < ny && rz < nz) {
          outLabels[i] = labels[rz * nxy + ry * nx + rx]!;
        }
        // trilinear image (zero outside)
        const x0 = Math.floor(px);
        const y0 = Math.floor(py);
        const z0 = Math.floor(pz);
        if (x0 < -1 || y0 < -1 || z0 < -1 || x0 >= nx || y0 >= ny || z0 >= nz) continue;
        const ax1 = px - x0;
        const ay1 = py - y0;
        const az1 = pz - z0;
        let v = 0;
        for (let dz = 0; dz < 2; dz++) {
          const zz = z0 + dz;
          if (zz < 0 || zz >= nz) continue;
          const wzz = dz ? az1 : 1 - az1;
          for (let dy = 0; dy < 2; dy++) {
            const yy = y0 + dy;
            if (yy < 0 || yy >= ny) continue;
            const wyy = wzz * (dy ? ay1 : 1 - ay1);
            const base = zz * nxy + yy * nx;
            if (x0 >= 0) v += wyy * (1 - ax1) * image[base + x0]!;
            if (x0 + 1 < nx) v += wyy * ax1 * image[base + x0 + 1]!;
          }
        }
        out[i] = v;
      }
    }
  }

  // Bias field: exp of a random quadratic polynomial in normalised coordinates
  const b = options.bias ?? 0.12;
  const c = Array.from({ length: 10 }, () => rng.normal() * b);
  const nxs = Array.from({ length: nx }, (_, x) => (2 * x) / Math.max(1, nx - 1) - 1);
  const nys = Array.from({ length: ny }, (_, y) => (2 * y) / Math.max(1, ny - 1) - 1);
  const nzs = Array.from({ length: nz }, (_, z) => (2 * z) / Math.max(1, nz - 1) - 1);
  const p99 = percentile(out, 0.99);
  const sigma = (options.noise ?? 0.03) * p99;
  for (let z = 0; z < nz; z++) {
    const w = nzs[z]!;
    for (let y = 0; y < ny; y++) {
      const v = nys[y]!;
      const row = (z * ny + y) * nx;
      const partial = c[0]! + c[2]! * v + c[3]! * w + c[5]! * v * v + c[6]! * w * w + c[9]! * v * w;
      for (let x = 0; x < nx; x++) {
        const u = nxs[x]!;
        const logB = partial + c[1]! * u + c[4]! * u * u + c[7]! * u * v + c[8]! * u * w;
        const val = out[row + x]! * Math.exp(logB);
        // Rician noise: magnitude of a complex signal with Gaussian noise on both channels
        const n1 = rng.normal() * sigma;
        const n2 = rng.normal() * sigma;
        out[row + x] = Math.sqrt((val + n1) * (val + n1) + n2 * n2);
      }
    }
  }
  return { image: out, labels: outLabels };
}
