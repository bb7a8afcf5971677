/**
 * Training samples of a run: the atlas, an unlabelled volume with its pseudo labels, or the atlas
 * warped by a volume's displacement (synthesis), with the plan's intensity and spatial
 * augmentation.
 */
import type { SeededRng } from '../../engine/runtime/rng.js';
import type { Batch } from '../../engine/runtime/trainer.js';
import { applyAffine, applyAppearance, randomAffine } from '../augment.js';
import { ignoresDisagreement } from '../plan.js';
import { IGNORE_LABEL, oneHot } from '../pseudoLabels.js';
import { blendDisplacements, synthesize } from '../synthesis.js';
import type { Run } from './run.js';

/**
 * One training sample: the atlas (true labels), an unlabelled volume (pseudo labels) or —
 * plans with `sampling.synthetic`, unless `o.synthetic` is false — in its place the atlas
 * warped by that volume's displacement (exact labels). `index` is the volume's (−1: atlas).
 * `o.volumes` restricts the unlabelled volumes drawn to those indices (a cross-fitting fold).
 */
export function sample(
  run: Run,
  rng: SeededRng,
  o: { synthetic?: boolean; volumes?: readonly number[] } = {},
): { index: number; image: Float32Array; labels: Uint8Array } {
  const s = run.plan.sampling;
  const atlas = rng.next() < s.atlasProbability;
  const index = atlas
    ? -1
    : o.volumes
      ? o.volumes[rng.int(o.volumes.length)]!
      : rng.int(run.input.unlabeled.length);
  let src = atlas ? run.input.atlas.image : run.input.unlabeled[index]!.image;
  let labels = atlas ? run.input.atlas.labels : run.pseudo[index]!;
  const u = 2 * rng.next() - 1;
  const v = 2 * rng.next() - 1;
  // Synthesis draws from the RNG only when the plan has it (older plans keep their sequence).
  const syn = s.synthetic;
  if (syn && o.synthetic !== false && !atlas && rng.next() < syn.probability) {
    if (!run.fields || !run.atlasStack) {
      throw new Error('runPipeline: synthetic sampling before the displacements were loaded');
    }
    let disp = run.fields[index]!;
    if (rng.next() < syn.blend) {
      const j = o.volumes ? o.volumes[rng.int(o.volumes.length)]! : rng.int(run.fields.length);
      disp = blendDisplacements(disp, run.fields[j]!, rng.next());
    }
    ({ image: src, labels } = synthesize(run.atlasStack, run.plan.classes, disp, run.grid));
  }
  let image = src;
  let lab = labels;
  // Appearance augmentation draws from the RNG only when the plan has it (older plans keep their
  // sample sequence).
  if (s.appearance && rng.next() < s.appearance.probability) {
    image = applyAppearance(image, run.grid, () => rng.next(), s.appearance);
  }
  if (s.intensityScale !== 0 || s.intensityShift !== 0) {
    const a = 1 + u * s.intensityScale;
    const b = v * s.intensityShift;
    const from = image;
    image = new Float32Array(from.length);
    for (let k = 0; k < from.length; k++) image[k] = from[k]! * a + b;
  }
  // Spatial augmentation draws from the RNG only when the plan asks for it, so plans without
  // it keep their sample sequence (and their checkpoints) unchanged.
  if (s.spatial && rng.next() < s.spatial.probability) {
    const aff = randomAffine(() => rng.next(), s.spatial);
    ({ image, labels: lab } = applyAffine(image, lab, run.grid, aff));
  }
  return { index, image, labels: lab };
}

/**
 * A segmentation batch: image and one-hot target. Pseudo labels marked `IGNORE_LABEL`
 * (`crossFit.ignoreDisagreement`) get all-zero target rows; the atlas's labels never do.
 */
export function segBatch(run: Run, rng: SeededRng, volumes?: readonly number[]): Batch {
  const { index, image, labels } = sample(run, rng, volumes ? { volumes } : {});
  const ignore = index >= 0 && ignoresDisagreement(run.plan) ? { ignore: IGNORE_LABEL } : {};
  return {
    image: { data: image, dims: [1, 1, ...run.grid] },
    target: {
      data: oneHot(labels, run.plan.classes, ignore),
      dims: [1, run.plan.classes, ...run.grid],
    },
  };
}
