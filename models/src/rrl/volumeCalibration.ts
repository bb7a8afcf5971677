/**
 * Volume calibration of a network's labels (`crossFit.calibrateVolumes`): per-class offsets added
 * to the log-probabilities before the argmax, chosen so that the labelled voxels of each class,
 * summed over a set of volumes, match a target count (the registration's labels of the same
 * volumes). A network trained on labels whose boundaries are uncertain puts less than half of its
 * probability on the boundary voxels and under-segments; the registration, a smooth deformation
 * of the atlas, keeps the atlas's structure volumes. One offset per class for all the volumes
 * corrects that shrinkage without copying any one volume's registration errors.
 */
import { countLabels } from '@rrl/core/volume/preprocess.js';
import { argmaxClasses } from './pseudoLabels.js';

/** Floor of the probabilities before the log (a probability of 0 stays far below the others). */
const MIN_PROBABILITY = 1e-12;
/** Coordinate sweeps over the foreground classes (each class's offset depends on the others'). */
const SWEEPS = 4;

/** Log-probabilities of [classes, M] probabilities, floored. */
function logOf(probabilities: Float32Array): Float32Array {
  const out = new Float32Array(probabilities.length);
  for (let i = 0; i < out.length; i++)
    out[i] = Math.log(Math.max(probabilities[i]!, MIN_PROBABILITY));
  return out;
}

/** argmax over classes of logp + offsets ([classes, M]; ties → the lowest class). */
export function offsetArgmax(
  logp: Float32Array,
  classes: number,
  offsets: Float64Array,
): Uint8Array {
  const m = logp.length / classes;
  // float64, as the offsets: a voxel whose margin lies next to its offset is not rounded over it
  const shifted = new Float64Array(logp.length);
  for (let c = 0; c < classes; c++) {
    for (let i = c * m; i < (c + 1) * m; i++) shifted[i] = logp[i]! + offsets[c]!;
  }
  return argmaxClasses(shifted, classes);
}

/**
 * Per-class offsets (class 0's is 0) such that argmax(log p + offset) over all `probabilities`
 * (each [classes, M]) labels about `target[c]` voxels with each class c ≥ 1. Class c wins a voxel
 * when its offset exceeds the voxel's margin max_{c' ≠ c}(log p_c' + offset_c') − log p_c, so the
 * offset that gives `target[c]` voxels lies between the target-th and the next smallest margin;
 * the classes are set in turn, a few sweeps over them.
 */
export function volumeOffsets(
  probabilities: readonly Float32Array[],
  classes: number,
  target: readonly number[],
): Float64Array {
  if (target.length !== classes) {
    throw new Error(`volumeOffsets: ${target.length} target counts for ${classes} classes`);
  }
  const logs = probabilities.map(logOf);
  const offsets = new Float64Array(classes);
  const total = logs.reduce((s, l) => s + l.length / classes, 0);
  const margins = new Float32Array(total);
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    for (let c = 1; c < classes; c++) {
      let n = 0;
      for (const l of logs) {
        const m = l.length / classes;
        for (let i = 0; i < m; i++) {
          let other = -Infinity;
          for (let o = 0; o < classes; o++) {
            if (o !== c) other = Math.max(other, l[o * m + i]! + offsets[o]!);
          }
          margins[n++] = other - l[c * m + i]!;
        }
      }
      margins.sort();
      const t = Math.max(0, Math.min(total, Math.round(target[c]!)));
      // class c wins where margin < offset (a tie goes to a lower class first)
      offsets[c] =
        t === 0
          ? margins[0]! - 1
          : t === total
            ? margins[total - 1]! + 1
            : (margins[t - 1]! + margins[t]!) / 2;
    }
  }
  return offsets;
}

/** Labels of every volume with the offsets of `volumeOffsets` applied. */
export function calibratedLabels(
  probabilities: readonly Float32Array[],
  classes: number,
  offsets: Float64Array,
): Uint8Array[] {
  return probabilities.map((p) => offsetArgmax(logOf(p), classes, offsets));
}

/** Voxels of each class in `labels`, summed over the volumes (values ≥ `classes` are not counted). */
export function classCounts(labels: readonly Uint8Array[], classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const l of labels) countLabels(l, classes - 1).forEach((n, c) => (counts[c]! += n));
  return counts;
}
