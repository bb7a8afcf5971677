/**
 * Registration-based synthesis of labelled training samples (plan.sampling.synthetic): the
 * atlas image and its labels warped together by an atlas → volume displacement that the
 * registration found (or a convex mix of two of them). The image has the atlas's appearance in
 * a realistic new shape, and its labels are exact — unlike a pseudo-labelled volume, whose
 * labels carry the registration's errors. One trilinear pass warps the image and the one-hot
 * labels (the engine's `warp3d` convention: out(p) = vol(clamp(p + disp(p))), voxels).
 */
import type { Shift } from './prealign.js';
import { argmaxClasses, oneHot, warpReference, type Grid } from './pseudoLabels.js';

/** The atlas as one [1 + classes, D, H, W] stack: image, then the one-hot labels. */
export function atlasStack(
  image: Float32Array,
  labels: ArrayLike<number>,
  classes: number,
): Float32Array {
  const m = image.length;
  if (labels.length !== m) {
    throw new Error(`atlasStack: image (${m}) and labels (${labels.length}) differ in voxel count`);
  }
  const out = new Float32Array((1 + classes) * m);
  out.set(image, 0);
  out.set(oneHot(labels, classes), m);
  return out;
}

/**
 * The displacement of the atlas itself when the registration warped the atlas pre-shifted by `s`
 * (plan.registrationPrealign: shifted(p) = atlas(p − s), warped(p) = shifted(p + φ(p)) =
 * atlas(p + φ(p) − s)): φ − s, channel by channel ([z, y, x], voxels).
 */
export function composeShift(disp: Float32Array, s: Shift): Float32Array {
  const m = disp.length / 3;
  const out = new Float32Array(disp.length);
  for (let c = 0; c < 3; c++) {
    for (let i = c * m; i < (c + 1) * m; i++) out[i] = disp[i]! - s[c]!;
  }
  return out;
}

/** α·a + (1 − α)·b (two displacements of the same grid). */
export function blendDisplacements(a: Float32Array, b: Float32Array, alpha: number): Float32Array {
  if (a.length !== b.length) {
    throw new Error(`blendDisplacements: lengths differ (${a.length} vs ${b.length})`);
  }
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = alpha * a[i]! + (1 - alpha) * b[i]!;
  return out;
}

/** The atlas stack warped by `disp` [3, D, H, W]: the synthetic image and its labels. */
export function synthesize(
  stack: Float32Array,
  classes: number,
  disp: Float32Array,
  grid: Grid,
): { image: Float32Array; labels: Uint8Array } {
  const m = grid[0] * grid[1] * grid[2];
  if (stack.length !== (1 + classes) * m) {
    throw new Error(
      `synthesize: the atlas stack has ${stack.length} values, expected ${(1 + classes) * m} (image + ${classes} one-hot channels)`,
    );
  }
  const w = warpReference(stack, disp, grid);
  return { image: w.slice(0, m), labels: argmaxClasses(w.subarray(m), classes) };
}
