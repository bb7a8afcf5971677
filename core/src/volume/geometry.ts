/**
 * Volume geometry from per-instance DICOM metadata: sort slices along the normal, check that they
 * form one regular 3-D grid (one orientation, same size, uniform spacing, no missing slice).
 * Browser-safe.
 */

export type Vec3 = [number, number, number];

/** The geometry attributes of one image instance (from dcmjs-naturalized / OHIF metadata). */
export interface InstanceGeometry {
  /** ImagePositionPatient: centre of the first transmitted pixel, mm. */
  imagePositionPatient: Vec3;
  /** ImageOrientationPatient: row direction cosines then column direction cosines. */
  imageOrientationPatient: [number, number, number, number, number, number];
  /** PixelSpacing: [row spacing (between rows, along y), column spacing (between columns, along x)]. */
  pixelSpacing: [number, number];
  rows: number;
  columns: number;
}

export interface VolumeGeometry {
  /** [x=columns, y=rows, z=slices] */
  dims: Vec3;
  /** [x, y, z] mm */
  spacing: Vec3;
  /** Position of voxel (0,0,0), mm (patient coordinates). */
  origin: Vec3;
  /** Row direction (x), column direction (y), slice direction (z): 9 numbers. */
  direction: [number, number, number, number, number, number, number, number, number];
  /** order[k] = index into the input array of the instance at slice k. */
  order: number[];
}

export type GeometryProblem =
  | 'no-instances'
  | 'missing-attributes'
  | 'single-slice'
  | 'mixed-orientation'
  | 'mixed-size'
  | 'duplicate-position'
  | 'missing-slice'
  | 'non-uniform-spacing'
  | 'not-stacked';

export class GeometryError extends Error {
  readonly problem: GeometryProblem;
  constructor(problem: GeometryProblem, message: string) {
    super(message);
    this.name = 'GeometryError';
    this.problem = problem;
  }
}

export interface GeometryOptions {
  /** Minimum number of slices for a volume (default 2). */
  minSlices?: number;
  /** Relative tolerance on slice gaps (default 0.05 = 5 % of the median gap). */
  spacingTolerance?: number;
  /** Tolerance on orientation cosines (default 1e-3). */
  orientationTolerance?: number;
  /** Series UID for messages (never patient data). */
  seriesInstanceUID?: string;
}

const dot = (a: Vec3, b: Vec3): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3, b: Vec3): Vec3 => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
const norm = (a: Vec3): number => Math.sqrt(dot(a, a));

function finiteArray(v: unknown, n: number): v is number[] {
  return (
    Array.isArray(v) &&
    v.length === n &&
    v.every((x) => typeof x === 'number' && Number.isFinite(x))
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Computes the volume geometry of a series from its instances (any order).
 * Throws GeometryError with a message that says what was expected, what was found and what to do.
 */
export function computeVolumeGeometry(
  instances: readonly InstanceGeometry[],
  options: GeometryOptions = {},
): VolumeGeometry {
  const minSlices = options.minSlices ?? 2;
  const tol = options.spacingTolerance ?? 0.05;
  const oTol = options.orientationTolerance ?? 1e-3;
  const where = options.seriesInstanceUID ? `Series ${options.seriesInstanceUID}` : 'The series';

  if (instances.length === 0) {
    throw new GeometryError(
      'no-instances',
      `${where} has no image instances. Open a series with images.`,
    );
  }
  instances.forEach((inst, i) => {
    if (
      !finiteArray(inst.imagePositionPatient, 3) ||
      !finiteArray(inst.imageOrientationPatient, 6) ||
      !finiteArray(inst.pixelSpacing, 2) ||
      !(inst.rows > 0) ||
      !(inst.columns > 0)
    ) {
      throw new GeometryError(
        'missing-attributes',
        `${where}: image ${i + 1} lacks ImagePositionPatient, ImageOrientationPatient, PixelSpacing, Rows or Columns, so it cannot be placed in 3-D. Only cross-sectional series (MR, CT) with full geometry can be segmented.`,
      );
    }
  });
  if (instances.length < minSlices) {
    throw new GeometryError(
      'single-slice',
      `${where} has ${instances.length} slice${instances.length === 1 ? '' : 's'}; a 3-D volume needs at least ${minSlices}. Open a volumetric series (e.g. a 3-D T1).`,
    );
  }

  // At least minSlices (≥ 1) instances, each with its full geometry (checked above).
  const first = instances[0]!;
  const iop = first.imageOrientationPatient;
  for (const [i, inst] of instances.entries()) {
    if (i === 0) continue;
    const o = inst.imageOrientationPatient;
    if (o.some((v, j) => Math.abs(v - iop[j]!) > oTol)) {
      throw new GeometryError(
        'mixed-orientation',
        `${where} mixes image orientations (image ${i + 1} differs from image 1), so it is not one volume (e.g. a localizer with three planes). Open a series acquired in one plane.`,
      );
    }
    if (inst.rows !== first.rows || inst.columns !== first.columns) {
      throw new GeometryError(
        'mixed-size',
        `${where} mixes image sizes (${first.columns}×${first.rows} and ${inst.columns}×${inst.rows}), so it is not one volume. Open a series whose images all have one size.`,
      );
    }
    const ps = inst.pixelSpacing;
    if (
      Math.abs(ps[0]! - first.pixelSpacing[0]!) > 1e-4 ||
      Math.abs(ps[1]! - first.pixelSpacing[1]!) > 1e-4
    ) {
      throw new GeometryError(
        'mixed-size',
        `${where} mixes pixel spacings, so it is not one volume. Open a series whose images all share one pixel spacing.`,
      );
    }
  }
  const rowDir: Vec3 = [iop[0]!, iop[1]!, iop[2]!];
  const colDir: Vec3 = [iop[3]!, iop[4]!, iop[5]!];
  const n0 = cross(rowDir, colDir);
  const nl = norm(n0);
  if (!(nl > 0.5)) {
    throw new GeometryError(
      'missing-attributes',
      `${where} has an invalid ImageOrientationPatient (row and column directions are parallel). The images cannot be placed in 3-D.`,
    );
  }
  const normal: Vec3 = [n0[0] / nl, n0[1] / nl, n0[2] / nl];

  const proj = instances.map((inst, i) => ({ i, d: dot(inst.imagePositionPatient, normal) }));
  proj.sort((a, b) => a.d - b.d);
  const gaps: number[] = [];
  for (let k = 1; k < proj.length; k++) gaps.push(proj[k]!.d - proj[k - 1]!.d);
  const minGap = Math.min(...gaps);
  if (minGap < 1e-3) {
    throw new GeometryError(
      'duplicate-position',
      `${where} has two or more images at the same position (several echoes, phases or time points?), so it is not one volume. Open a series with one image per position.`,
    );
  }
  const med = median(gaps);
  for (let k = 0; k < gaps.length; k++) {
    const g = gaps[k]!;
    if (Math.abs(g - med) > tol * med) {
      const ratio = g / med;
      const rounded = Math.round(ratio);
      if (rounded >= 2 && Math.abs(ratio - rounded) <= tol * rounded) {
        throw new GeometryError(
          'missing-slice',
          `${where} is missing ${rounded - 1} slice${rounded - 1 === 1 ? '' : 's'} between slice ${k + 1} and ${
            k + 2
          } (gap ${g.toFixed(2)} mm where the spacing is ${med.toFixed(2)} mm). Re-send the complete series to the PACS, then reopen it.`,
        );
      }
      throw new GeometryError(
        'non-uniform-spacing',
        `${where} has non-uniform slice spacing (gap ${g.toFixed(2)} mm between slice ${k + 1} and ${
          k + 2
        }, expected ${med.toFixed(2)} mm ± ${(tol * 100).toFixed(0)} %). Segmentation needs a regular 3-D grid: use a series with uniform spacing.`,
      );
    }
  }
  // Each position must lie on the line origin + k * spacing * normal (no in-plane shift = a stack).
  const position = (k: number): Vec3 => {
    const p = instances[proj[k]!.i]!.imagePositionPatient;
    return [p[0]!, p[1]!, p[2]!];
  };
  const p0 = position(0);
  const [rowSpacing, colSpacing] = [first.pixelSpacing[0]!, first.pixelSpacing[1]!];
  const inPlaneTol = Math.max(0.5 * Math.min(rowSpacing, colSpacing), 1e-3);
  for (let k = 1; k < proj.length; k++) {
    const p = position(k);
    const d: Vec3 = [p[0] - p0[0], p[1] - p0[1], p[2] - p0[2]];
    const along = dot(d, normal);
    const off = norm([
      d[0] - along * normal[0],
      d[1] - along * normal[1],
      d[2] - along * normal[2],
    ]);
    if (off > inPlaneTol) {
      throw new GeometryError(
        'not-stacked',
        `${where}: slice ${k + 1} is shifted ${off.toFixed(2)} mm within its plane relative to slice 1 (a tilted or sheared acquisition), so it is not a regular 3-D grid. Use a series whose slices are stacked straight.`,
      );
    }
  }
  const spacingZ = (proj[proj.length - 1]!.d - proj[0]!.d) / (proj.length - 1);
  return {
    dims: [first.columns, first.rows, instances.length],
    spacing: [colSpacing, rowSpacing, spacingZ],
    origin: [p0[0], p0[1], p0[2]],
    direction: [...rowDir, ...colDir, ...normal] as VolumeGeometry['direction'],
    order: proj.map((p) => p.i),
  };
}

/** Reads the geometry attributes from an OHIF/dcmjs naturalized instance; undefined fields stay undefined. */
export function instanceGeometryFromNaturalized(inst: Record<string, unknown>): InstanceGeometry {
  const nums = (v: unknown): number[] =>
    Array.isArray(v)
      ? v.map((x) => Number(x))
      : typeof v === 'string'
        ? v.split('\\').map(Number)
        : [];
  return {
    imagePositionPatient: nums(inst.ImagePositionPatient) as Vec3,
    imageOrientationPatient: nums(
      inst.ImageOrientationPatient,
    ) as InstanceGeometry['imageOrientationPatient'],
    pixelSpacing: nums(inst.PixelSpacing) as [number, number],
    rows: Number(inst.Rows),
    columns: Number(inst.Columns),
  };
}
