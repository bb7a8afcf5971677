// A training plan derived from the data a hospital has for a new task — the atlas and the
// unlabelled volumes' sizes and spacings, and the number of labels — nnU-Net style, so that a user
// does not hand-edit another anatomy's plan. Only image geometry is read: never a label of a test
// subject (there is none here), nor the atlas labels' content.
//
// Rules (each applied rule is reported in words, `DerivedPlan.reasons`):
// - spacing: the median spacing per axis over the atlas and the unlabelled volumes;
// - grid: the 95th percentile of the physical extent per axis, divided by the spacing, rounded up
//   to a multiple of 2^(scales−1) (the model segments the whole volume, so the grid covers nearly
//   every volume; the largest 5 % lose a few millimetres at their borders);
// - voxel budget (`maxVoxels`, default 192k: about 1.8× the hippocampus grid, ≈ 20 minutes of
//   training on a 2-core CPU, well under a second of inference in the browser): while the grid is
//   larger, the finest axes' spacing grows by 10 % (an anisotropic volume first loses resolution
//   along its fine axes, as in nnU-Net);
// - scales: 4 (encoder 16-32-64-128) when the smallest grid axis is ≥ 32 voxels, else 3
//   (16-32-64); fewer than 16 voxels on an axis is refused;
// - everything else (losses, schedule, registration refinement, augmentation, seeds) is read from
//   the hippocampus plan file, the one whose settings were measured (models/src/rrl/README.md).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { REPO_ROOT } from '../io/installRoot.js';
import type { RrlPlan } from './plan.js';
import { parsePlan } from './plan.js';

/** The geometry of one volume: dims and spacing [x, y, z] (voxels, mm). */
export interface VolumeGeometry {
  dims: readonly [number, number, number] | readonly number[];
  spacing: readonly [number, number, number] | readonly number[];
}

export interface PlanFingerprint {
  atlas: VolumeGeometry;
  unlabeled: readonly VolumeGeometry[];
  /** Foreground labels of the label set (the plan has one more class: background). */
  labels: number;
}

export interface DerivePlanOptions {
  /** Largest grid (voxels); default DERIVED_MAX_VOXELS. */
  maxVoxels?: number;
  /** The plan whose non-geometry settings are kept (default: BASE_PLAN_FILE's). */
  base?: RrlPlan;
}

export interface DerivedPlan {
  plan: RrlPlan;
  /** One sentence per rule applied, with the numbers. */
  reasons: string[];
}

export const DERIVED_MAX_VOXELS = 192_000;

/** The measured plan: a derived plan takes everything but the geometry from it. */
export const BASE_PLAN_FILE = path.join(REPO_ROOT, 'models', 'plans', 'hippocampus.json');

function basePlan(): RrlPlan {
  return parsePlan(JSON.parse(readFileSync(BASE_PLAN_FILE, 'utf8')));
}

function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

const fmt = (v: readonly number[], digits = 2): string =>
  `[${v.map((x) => +x.toFixed(digits)).join(', ')}]`;

function checkGeometry(g: VolumeGeometry, what: string): void {
  const ok = (v: readonly number[], min: number) =>
    v.length === 3 && v.every((x) => Number.isFinite(x) && x > min);
  if (!ok(g.dims, 0) || !ok(g.spacing, 0)) {
    throw new Error(
      `derivePlan: ${what} has no usable geometry (dims ${fmt(g.dims, 0)}, spacing ${fmt(g.spacing)}); every volume needs three positive dims and spacings.`,
    );
  }
}

/** Derives a plan from the data's geometry; throws when the volumes are too small to train on. */
export function derivePlan(fp: PlanFingerprint, options: DerivePlanOptions = {}): DerivedPlan {
  const maxVoxels = options.maxVoxels ?? DERIVED_MAX_VOXELS;
  if (!Number.isInteger(fp.labels) || fp.labels < 1) {
    throw new Error(`derivePlan: the label set has ${fp.labels} labels; it needs at least one.`);
  }
  const volumes = [fp.atlas, ...fp.unlabeled];
  checkGeometry(fp.atlas, 'the atlas');
  fp.unlabeled.forEach((g, i) => checkGeometry(g, `unlabelled volume ${i + 1}`));
  const reasons: string[] = [];

  const axes = [0, 1, 2] as const;
  let spacing = axes.map((a) =>
    quantile(
      volumes.map((v) => v.spacing[a]!),
      0.5,
    ),
  );
  const extent = axes.map((a) =>
    quantile(
      volumes.map((v) => v.dims[a]! * v.spacing[a]!),
      0.95,
    ),
  );
  const n = fp.unlabeled.length;
  reasons.push(
    n > 0
      ? `spacing ${fmt(spacing)} mm (x, y, z): the median over the atlas and ${n} unlabelled volume(s)`
      : `spacing ${fmt(spacing)} mm (x, y, z): the atlas's`,
  );
  reasons.push(
    n > 0
      ? `extent ${fmt(extent, 1)} mm: the 95th percentile per axis (the grid covers it; larger volumes lose a few millimetres at their borders)`
      : `extent ${fmt(extent, 1)} mm: the atlas's (the grid covers it)`,
  );

  const sizesFor = (sp: readonly number[], multiple: number): number[] =>
    axes.map((a) =>
      Math.max(multiple, Math.ceil(extent[a]! / sp[a]! / multiple - 1e-9) * multiple),
    );
  const scalesFor = (sp: readonly number[]): number => (Math.min(...sizesFor(sp, 1)) >= 32 ? 4 : 3);

  const firstSpacing = [...spacing];
  let scales = scalesFor(spacing);
  let sizes = sizesFor(spacing, 2 ** (scales - 1));
  let coarsened = false;
  for (let guard = 0; sizes.reduce((p, v) => p * v, 1) > maxVoxels; guard++) {
    if (guard > 200) throw new Error('derivePlan: could not fit the voxel budget');
    const finest = Math.min(...spacing);
    spacing = spacing.map((s) => (s <= finest * 1.0001 ? s * 1.1 : s));
    scales = scalesFor(spacing);
    sizes = sizesFor(spacing, 2 ** (scales - 1));
    coarsened = true;
  }
  if (coarsened) {
    // The grid is fixed now: give the coarsened axes the finest spacing that still fits it
    // (the 10 % steps and the rounding up to whole tiles leave room).
    const changed = axes.filter((a) => spacing[a]! > firstSpacing[a]!);
    const fit = Math.max(...changed.map((a) => extent[a]! / sizes[a]!));
    spacing = axes.map((a) =>
      changed.includes(a) ? Math.max(firstSpacing[a]!, Math.ceil(fit * 1000) / 1000) : spacing[a]!,
    );
    spacing = spacing.map((s) => Math.ceil(s * 1000) / 1000);
    scales = scalesFor(spacing);
    sizes = sizesFor(spacing, 2 ** (scales - 1));
    reasons.push(
      `spacing coarsened from ${fmt(firstSpacing)} to ${fmt(spacing)} mm (finest axes first) to keep the grid within ${maxVoxels.toLocaleString('en-US')} voxels`,
    );
  }
  if (Math.min(...sizesFor(spacing, 1)) < 16) {
    throw new Error(
      `derivePlan: the volumes are too small for a 3-D network: ${fmt(extent, 1)} mm at ${fmt(spacing)} mm is fewer than 16 voxels on an axis. Use volumes of at least 16 voxels per axis.`,
    );
  }
  const [x, y, z] = sizes as [number, number, number];
  reasons.push(
    `grid [${z}, ${y}, ${x}] (D, H, W) = ${(x * y * z).toLocaleString('en-US')} voxels, ${scales} scales (each axis a multiple of ${2 ** (scales - 1)})`,
  );
  const four = scales === 4;
  const { description: _baseDescription, ...base } = options.base ?? basePlan();
  const plan = parsePlan({
    ...base,
    grid: [z, y, x],
    channels: four ? [16, 32, 64, 128] : [16, 32, 64],
    convsPerLevel: four ? [2, 2, 2, 1] : [2, 2, 1],
    decoderChannels: four ? [8, 16, 32, 64] : [8, 16, 32],
    classes: fp.labels + 1,
    preprocess: {
      resample: 'fixed-spacing',
      spacing,
      intensity: base.preprocess.intensity,
    },
    description: `derived from the data: grid [${z}, ${y}, ${x}] at ${fmt(spacing)} mm from the atlas${n > 0 ? ` and ${n} unlabelled volume(s)` : ''}`,
  });
  return { plan, reasons };
}
