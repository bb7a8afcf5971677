/**
 * What the registration stages leave in a run's folder and what later stages read back: the
 * registration network (params + registration.json), the atlas → volume displacements that
 * synthesis warps, and the atlas warped onto a volume by a registration.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistrationArgs } from '../../engine/nn/registration.js';
import { pseudoLabels, type PseudoLabelInput, type PseudoLabelResult } from '../pseudoLabels.js';
import { pseudoLabelsParallel } from '../pseudoLabelPool.js';
import { atlasStack, composeShift } from '../synthesis.js';
import { StageAbortedError } from './abort.js';
import { atomicWrite, loadParams, safeId, saveParams } from './files.js';
import { PrealignedAtlas } from '../prealign.js';
import type { Params, StageName } from './types.js';
import type { Run } from './run.js';

/** What `pseudoLabels` needs to warp the atlas onto unlabelled volume `k` (refined as the plan says). */
function warpAtlasInput(
  run: Run,
  pre: PrealignedAtlas,
  params: ReadonlyMap<string, Float32Array>,
  args: RegistrationArgs,
  k: number,
  towards?: PseudoLabelInput['refineTowards'],
): PseudoLabelInput {
  const p = run.plan;
  return {
    params,
    args,
    grid: run.grid,
    classes: p.classes,
    atlasImage: pre.get(k).image,
    atlasLabels: pre.get(k).labels,
    target: run.input.unlabeled[k]!.image,
    ...(p.registrationRefine ? { refine: p.registrationRefine } : {}),
    ...(towards ? { refineTowards: towards } : {}),
  };
}

/** The atlas warped onto unlabelled volume `k` by a registration, in this thread. */
export function warpAtlas(
  run: Run,
  pre: PrealignedAtlas,
  params: ReadonlyMap<string, Float32Array>,
  args: RegistrationArgs,
  k: number,
): Promise<PseudoLabelResult> {
  return pseudoLabels(warpAtlasInput(run, pre, params, args, k));
}

/**
 * The atlas warped onto every unlabelled volume whose output `exists` not yet, several at a time
 * (`pseudoLabelPool.ts`), `save` called as each finishes; one progress event per volume (`of`:
 * the stage it belongs to). With `--profile`, the first volume runs here first with the
 * refinement profiled. Cancelled: the volumes under way are saved, then StageAbortedError(`what`).
 */
export async function warpAtlasAll(
  run: Run,
  params: ReadonlyMap<string, Float32Array>,
  args: RegistrationArgs,
  o: {
    what: string;
    of: StageName;
    steps: number;
    exists: (k: number) => boolean;
    save: (k: number, r: PseudoLabelResult, pre: PrealignedAtlas) => Promise<void>;
    /** A segmentation of volume k that the per-pair refinement should agree with. */
    towards?: (k: number) => PseudoLabelInput['refineTowards'];
  },
): Promise<void> {
  const pre = prealigned(run);
  const total = run.input.unlabeled.length;
  let done = 0;
  const progress = (): void => run.progress('pseudo-labels', { step: ++done, total }, o.of);
  const todo: number[] = [];
  for (let k = 0; k < total; k++) {
    if (o.exists(k)) progress();
    else todo.push(k);
  }
  const profiler = run.plan.registrationRefine && todo.length ? run.profiler('refine') : undefined;
  if (profiler) {
    const k = todo.shift()!;
    const input = warpAtlasInput(run, pre, params, args, k, o.towards?.(k));
    await o.save(k, await pseudoLabels({ ...input, refineProfiler: profiler }), pre);
    await run.reportProfile(profiler);
    progress();
  }
  const left = await pseudoLabelsParallel(
    todo,
    (k) => warpAtlasInput(run, pre, params, args, k, o.towards?.(k)),
    async (k, r) => {
      await o.save(k, r, pre);
      progress();
    },
    run.input.signal ? { signal: run.input.signal } : {},
  );
  if (left.length > 0) {
    throw new StageAbortedError(o.what, o.steps, o.steps, run.paths.pseudoLabels);
  }
}

/** The atlas shifted per unlabelled volume by the plan's pre-alignment (identity without). */
export function prealigned(run: Run): PrealignedAtlas {
  return new PrealignedAtlas(
    run.grid,
    run.input.atlas.image,
    run.input.atlas.labels,
    run.input.unlabeled.map((u) => u.image),
    run.plan.registrationPrealign,
  );
}

/** What `loadRegistration` needs: args, params and the pre-alignment setting. */
export async function saveRegistration(
  run: Run,
  params: ReadonlyMap<string, Float32Array>,
  args: RegistrationArgs,
  extra: Record<string, unknown>,
): Promise<void> {
  await mkdir(run.paths.registration, { recursive: true });
  await saveParams(join(run.paths.registration, 'params.ckpt'), params);
  const meta = {
    formatVersion: 1,
    args,
    grid: run.grid,
    classes: run.plan.classes,
    ...(run.plan.registrationPrealign ? { prealign: run.plan.registrationPrealign } : {}),
    ...(run.plan.registrationRefine ? { refine: run.plan.registrationRefine } : {}),
    ...extra,
  };
  await atomicWrite(
    join(run.paths.registration, 'registration.json'),
    `${JSON.stringify(meta, null, 2)}\n`,
  );
}

/** The registration network that `saveRegistration` last saved: its args and parameters. */
export async function loadSavedRegistration(
  run: Run,
): Promise<{ args: RegistrationArgs; params: Params }> {
  const meta = JSON.parse(
    await readFile(join(run.paths.registration, 'registration.json'), 'utf8'),
  ) as { args: RegistrationArgs };
  return { args: meta.args, params: await loadParams(join(run.paths.registration, 'params.ckpt')) };
}

export function fieldFile(run: Run, id: string): string {
  return join(run.paths.fields, `${safeId(id)}.f32`);
}

/**
 * Writes the atlas → volume `k` displacement (plans with sampling.synthetic; before its pseudo
 * label file, so an existing label file implies a field of the same registration).
 * `displacement` is the registration's, of the atlas pre-shifted for this volume
 * (`pre.get(k)`); the file holds the atlas's own (the shift composed in), which is what
 * synthesis warps.
 */
export async function saveField(
  run: Run,
  k: number,
  displacement: Float32Array,
  pre: PrealignedAtlas,
): Promise<void> {
  if (!run.plan.sampling.synthetic) return;
  await mkdir(run.paths.fields, { recursive: true });
  const id = run.input.unlabeled[k]!.id;
  const shift = pre.get(k).shift;
  const d = shift.some((v) => v !== 0) ? composeShift(displacement, shift) : displacement;
  await atomicWrite(fieldFile(run, id), new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
}

/**
 * Loads the atlas → volume displacements for synthetic sampling (no-op without it, or when
 * loaded). A missing one (a folder from before the setting, or an interrupted write) is
 * recomputed with the saved registration — the one that made the current pseudo labels.
 */
export async function loadFields(run: Run): Promise<void> {
  if (!run.plan.sampling.synthetic || run.fields) return;
  const p = run.plan;
  run.atlasStack ??= atlasStack(run.input.atlas.image, run.input.atlas.labels, p.classes);
  const missing = run.input.unlabeled.filter((u) => !existsSync(fieldFile(run, u.id)));
  let reg: { params: Params; args: RegistrationArgs } | undefined;
  if (missing.length > 0) {
    run.say(`[synthesis] ${missing.length} displacement(s) to compute with the saved registration`);
    reg = await loadSavedRegistration(run);
  }
  const pre = prealigned(run);
  const fields: Float32Array[] = [];
  for (const [k, u] of run.input.unlabeled.entries()) {
    const file = fieldFile(run, u.id);
    if (!existsSync(file)) {
      if (run.input.signal?.aborted) throw new StageAbortedError('synthesis (displacements)', 0, 0);
      const r = await warpAtlas(run, pre, reg!.params, reg!.args, k);
      await saveField(run, k, r.displacement, pre);
    }
    const b = await readFile(file);
    if (b.byteLength !== 3 * run.voxels * 4) {
      throw new Error(
        `runPipeline: ${file} has ${b.byteLength} bytes, expected ${3 * run.voxels * 4}; delete it to recompute it.`,
      );
    }
    fields.push(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice());
  }
  run.fields = fields;
}
