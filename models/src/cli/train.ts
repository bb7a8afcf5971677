/**
 * `npm run train`: one labelled atlas + a folder of unlabelled volumes → a published RRL-MedSAM
 * model (model.onnx + metadata.json loadable by the viewer) in --out. Rerunning with the same --out
 * resumes. Exit codes: 0 ok, 2 bad input or usage, 1 failure.
 */
import { PROVIDER_SETTINGS, isProviderSetting } from '../engine/runtime/providerChoice.js';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  readImageVolume,
  readLabelVolume,
  listVolumes,
  VolumeReadError,
  type ImageVolume,
} from '../io/index.js';
import { parsePlan, planModelGrid, PlanError, type RrlPlan } from '../rrl/plan.js';
import { DERIVED_MAX_VOXELS, derivePlan } from '../rrl/derivePlan.js';
import { ProviderUnavailableError } from '../engine/runtime/providers.js';
import { runPipeline, StageAbortedError, type PipelineResult } from '../rrl/pipeline.js';
import type { RrlModelInfo } from '../rrl/export.js';
import type { ModelMetadata } from '@rrl/core/format/metadata.js';
import { labelsToModelGrid, prepareModelInput } from '@rrl/core/volume/preprocess.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  parseOptions,
  processIo,
  positiveInt,
  required,
  str,
  usage,
  type CommandSpec,
  type Io,
  isMain,
} from './args.js';
import {
  classesPresent,
  LabelSetError,
  mapToClasses,
  modelLabels,
  readLabelSet,
  type LabelSet,
} from './labelset.js';
import { DATA_DIR_OPTION, readSplit, SplitError, teachersDir } from './split.js';
import { formatDuration, ProgressReporter } from './progress.js';

export const TRAIN_SPEC: CommandSpec = {
  command: 'train',
  summary:
    'Trains an RRL-MedSAM model from one labelled atlas and unlabelled volumes of the same kind, and publishes it (model.onnx + metadata.json, plus eval-model.onnx for `npm run eval`) in --out. Rerun with the same --out to resume.',
  options: [
    {
      name: 'plan',
      value: 'FILE|auto',
      help: "training plan JSON (models/plans/*.json), or 'auto': a plan derived from the atlas's and the unlabelled volumes' sizes and spacings (printed before training, kept in <out>/plan.json); required",
    },
    {
      name: 'max-voxels',
      value: 'N',
      help: `with --plan auto: the largest training grid in voxels (default ${DERIVED_MAX_VOXELS}; the spacing is coarsened to fit)`,
    },
    {
      name: 'labels',
      value: 'FILE',
      help: 'label set JSON: which label values become classes, with names, colours, codes (models/labelsets/*.json); required',
    },
    { name: 'out', value: 'DIR', help: 'output folder (created; reused to resume); required' },
    {
      name: 'atlas-image',
      value: 'PATH',
      help: 'atlas image: .nii/.nii.gz or a folder of DICOM files of one series',
    },
    {
      name: 'atlas-labels',
      value: 'PATH',
      help: 'atlas labels on the same grid: .nii/.nii.gz, a DICOM SEG file or a folder holding one SEG',
    },
    {
      name: 'unlabeled',
      value: 'DIR',
      help: 'folder of unlabelled volumes: .nii/.nii.gz files and/or sub-folders of DICOM files',
    },
    {
      name: 'split',
      value: 'FILE',
      help: 'instead of the three above: a split JSON (hippocampus-style split.json: atlas + train_unlabeled ids under its images/ and labels/ folders, test ids never used; or an explicit split like models/splits/brain-aseg.json)',
    },
    DATA_DIR_OPTION,
    {
      name: 'provider',
      value: 'auto|cpu|webgpu|cuda',
      help: 'onnxruntime execution provider for training (default auto)',
    },
    {
      name: 'teachers-dir',
      value: 'DIR',
      help: 'where imported SAM teachers are (a plan\'s "teacher" id; default $RRL_TEACHERS_DIR, else var/server/teachers)',
    },
    {
      name: 'name',
      value: 'TEXT',
      help: 'model name shown in the viewer (default from the label set)',
    },
    {
      name: 'no-spin',
      flag: true,
      help: "don't let ORT's threads spin-wait between kernels: slower training (8–17 % per step), but it leaves the cores to other programs; use it when the machine is shared",
    },
    {
      name: 'profile',
      value: 'STEPS',
      help: 'profile STEPS steps of every training stage (ORT per-node times, the wall time split into session, batch and the rest): one line per stage here, summaries in <out>/profile/; the training is unchanged (0 = off, the default)',
    },
    { name: 'id', value: 'ID', help: 'model id (default <label set name>-rrl@<version>)' },
    { name: 'version', value: 'X.Y.Z', help: 'model version (default 1.0.0)' },
    {
      name: 'modality',
      value: 'CODE',
      help: 'DICOM modality the model is for (default: the atlas series modality, else MR)',
    },
  ],
  examples: [
    'npm run train -- --plan models/plans/hippocampus.json --labels models/labelsets/hippocampus.json --split ../shared/data/hippocampus/split.json --out var/training/hippocampus',
    'npm run train -- --plan models/plans/tiny.json --labels models/labelsets/hippocampus.json --atlas-image atlas.nii.gz --atlas-labels atlas_seg.nii.gz --unlabeled volumes/ --out var/training/test',
  ],
};

export function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: path.dirname(new URL(import.meta.url).pathname),
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}

async function readJsonFile(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`Cannot read the ${what} ${file}: ${(e as Error).message}.`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`The ${what} ${file} is not valid JSON: ${(e as Error).message}.`);
  }
}

/** Reads and validates a plan file; `classes` defaults to the label set's size. */
export async function readPlanFor(file: string, set: LabelSet): Promise<RrlPlan> {
  const json = await readJsonFile(file, 'plan');
  const want = set.labels.length + 1;
  let plan: RrlPlan;
  try {
    plan = parsePlan(json);
  } catch (e) {
    if (e instanceof PlanError) throw new UsageError(`${path.basename(file)}: ${e.message}`);
    throw e;
  }
  const given = (json as { classes?: unknown }).classes;
  if (given !== undefined && given !== want) {
    throw new UsageError(
      `${path.basename(file)}: plan.classes is ${String(given)} but the label set "${set.name}" has ${set.labels.length} labels (+ background = ${want}). Remove "classes" from the plan or set it to ${want}.`,
    );
  }
  plan.classes = want;
  return plan;
}

export interface LabelledVolume {
  image: ImageVolume;
  /** Class indices 0..N on the image's grid. */
  classes: Uint8Array;
}

/** The atlas on the model grid: normalised image and class labels (what the pipeline and registration take). */
export function atlasOnModelGrid(
  atlas: LabelledVolume,
  meta: Pick<ModelMetadata, 'grid' | 'intensity'>,
): { image: Float32Array; labels: Uint8Array } {
  const { data, dims, spacing } = atlas.image;
  return {
    image: prepareModelInput(data, dims, meta, spacing),
    labels: labelsToModelGrid(atlas.classes, dims, meta, spacing),
  };
}

/** Reads the atlas and checks it against the label set (grids equal, labels present). */
export async function readAtlas(
  imagePath: string,
  labelsPath: string,
  set: LabelSet,
): Promise<LabelledVolume> {
  const image = await readImageVolume(imagePath);
  const labels = await readLabelVolume(labelsPath, image);
  if (labels.values.length === 0) {
    throw new UsageError(
      `The atlas label volume ${labels.source} is empty (every voxel is 0). Pass the label map drawn on ${image.source}.`,
    );
  }
  const present = classesPresent(labels.values, set);
  if (present.length === 0) {
    const setValues = set.labels.flatMap((l) => l.source);
    throw new UsageError(
      `The atlas label volume ${labels.source} holds the values [${labels.values.slice(0, 20).join(', ')}${labels.values.length > 20 ? ', …' : ''}], none of which is in the label set "${set.name}" (values [${setValues.join(', ')}]). Pass the matching --labels file.`,
    );
  }
  return { image, classes: mapToClasses(labels.data, set) };
}

interface UnlabeledRef {
  id: string;
  path: string;
}

/** Reads every unlabelled volume; unreadable ones are skipped with their reason. */
export async function readUnlabeled(
  refs: readonly UnlabeledRef[],
  log: (line: string) => void,
): Promise<{ id: string; image: ImageVolume }[]> {
  const out: { id: string; image: ImageVolume }[] = [];
  for (const r of refs) {
    try {
      out.push({ id: r.id, image: await readImageVolume(r.path) });
    } catch (e) {
      if (!(e instanceof VolumeReadError)) throw e;
      log(`skipped unlabelled volume ${r.id}: ${e.reason}`);
    }
  }
  return out;
}

function slug(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'model'
  );
}

function stageTable(result: PipelineResult): string {
  const rows = result.stages.map((s) => [
    s.stage,
    String(s.steps),
    formatDuration(s.seconds),
    s.firstLoss !== undefined ? s.firstLoss.toFixed(4) : '',
    s.lastLoss !== undefined ? s.lastLoss.toFixed(4) : '',
    s.skipped ?? '',
  ]);
  const head = ['stage', 'steps', 'time', 'first loss', 'last loss', ''];
  const all = [head, ...rows];
  const w = head.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  return all
    .map((r) =>
      r
        .map((v, c) => v.padEnd(w[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export async function train(argv: string[], io: Io = processIo): Promise<number> {
  const err = (line: string): void => void io.stderr.write(`${line}\n`);
  let reporter: ProgressReporter | undefined;
  try {
    const o = parseOptions(TRAIN_SPEC, argv);
    if (o.help) {
      io.stdout.write(usage(TRAIN_SPEC));
      return EXIT_OK;
    }
    const planFile = required(
      o,
      'plan',
      'the training plan JSON, e.g. models/plans/hippocampus.json',
    );
    const labelsFile = required(
      o,
      'labels',
      'the label set JSON, e.g. models/labelsets/hippocampus.json',
    );
    const outDir = path.resolve(required(o, 'out', 'the output folder for the model'));
    const provider = str(o, 'provider') ?? 'auto';
    if (!isProviderSetting(provider)) {
      throw new UsageError(
        `--provider: expected one of ${PROVIDER_SETTINGS.join(', ')}, found "${provider}".`,
      );
    }
    const splitFile = str(o, 'split');
    let atlasImagePath = str(o, 'atlas-image');
    let atlasLabelsPath = str(o, 'atlas-labels');
    const unlabeledDir = str(o, 'unlabeled');
    let refs: UnlabeledRef[] = [];
    let atlasId = 'atlas';
    let trainingData = '';
    if (splitFile) {
      if (unlabeledDir) throw new UsageError('give either --split or --unlabeled, not both.');
      const split = await readSplit(splitFile, str(o, 'data-dir'));
      atlasImagePath ??= split.atlas.image;
      atlasLabelsPath ??= split.atlas.labels;
      atlasId = split.atlas.id;
      refs = split.unlabeled.map((u) => ({ id: u.id, path: u.image }));
      if (split.excluded.length > 0) {
        err(
          `notice: ${split.excluded.length} train_unlabeled id(s) of ${path.basename(splitFile)} left out because they are the atlas or a test subject: ${split.excluded.join(', ')}`,
        );
      }
      const testIds = new Set(split.test.map((t) => t.id));
      for (const r of refs) {
        if (testIds.has(r.id)) {
          err(
            `notice: unlabelled volume ${r.id} is also a test subject of ${path.basename(splitFile)} (its image, never its labels, is used for training).`,
          );
        }
      }
      trainingData = `split ${path.basename(splitFile)}: atlas ${atlasId}`;
    } else {
      if (!unlabeledDir) {
        throw new UsageError(
          '--unlabeled is required (a folder of unlabelled volumes), or give --split.',
        );
      }
      try {
        refs = await listVolumes(unlabeledDir);
      } catch (e) {
        if (e instanceof VolumeReadError) throw new UsageError(`--unlabeled: ${e.message}`);
        throw e;
      }
      trainingData = `atlas ${path.basename(atlasImagePath ?? 'atlas')}`;
    }
    if (!atlasImagePath) throw new UsageError('--atlas-image is required (or give --split).');
    if (!atlasLabelsPath) throw new UsageError('--atlas-labels is required (or give --split).');
    const atlasReal = path.resolve(atlasImagePath);
    refs = refs.filter((r) => path.resolve(r.path) !== atlasReal);

    const set = await readLabelSet(labelsFile);
    const autoPlan = planFile === 'auto';
    const filePlan = autoPlan ? undefined : await readPlanFor(planFile, set);
    const atlas = await readAtlas(atlasImagePath, atlasLabelsPath, set);
    err(
      `atlas ${atlas.image.source}: [${atlas.image.dims.join(' × ')}] voxels at [${atlas.image.spacing.map((s) => +s.toFixed(3)).join(', ')}] mm`,
    );
    if (refs.length === 0) {
      throw new UsageError(
        `no unlabelled volumes found${unlabeledDir ? ` in ${unlabeledDir} (expected .nii/.nii.gz files or sub-folders of DICOM files)` : ' in the split'}.`,
      );
    }
    const unl = await readUnlabeled(refs, err);
    if (unl.length === 0) {
      throw new UsageError(
        `none of the ${refs.length} unlabelled volumes could be read (reasons above); training needs at least one.`,
      );
    }
    err(`${unl.length} unlabelled volume(s) read, ${refs.length - unl.length} skipped`);
    let plan: RrlPlan;
    if (filePlan) plan = filePlan;
    else {
      const maxVoxels = positiveInt(o, 'max-voxels', DERIVED_MAX_VOXELS, 4096);
      let derived: ReturnType<typeof derivePlan>;
      try {
        derived = derivePlan(
          { atlas: atlas.image, unlabeled: unl.map((u) => u.image), labels: set.labels.length },
          { maxVoxels },
        );
      } catch (e) {
        throw new UsageError(`--plan auto: ${e instanceof Error ? e.message : String(e)}`);
      }
      plan = derived.plan;
      err('plan derived from the data (--plan auto):');
      for (const r of derived.reasons) err(`  ${r}`);
    }

    const meta = planModelGrid(plan);
    const atlasOnGrid = atlasOnModelGrid(atlas, meta);
    if (!atlasOnGrid.labels.some((v) => v !== 0)) {
      throw new UsageError(
        `the atlas labels vanish on the plan grid [${plan.grid.join(', ')}] (D, H, W); use a finer grid or spacing in the plan.`,
      );
    }
    const unlabeled = unl.map((u) => ({
      id: u.id,
      image: prepareModelInput(u.image.data, u.image.dims, meta, u.image.spacing),
    }));

    const version = str(o, 'version') ?? '1.0.0';
    const commit = gitCommit();
    const now = new Date().toISOString();
    const id = str(o, 'id') ?? `${slug(set.name)}-rrl@${version}`;
    const info: RrlModelInfo = {
      id,
      name: str(o, 'name') ?? `${set.name} (RRL-MedSAM one-shot)`,
      version,
      task: set.name,
      modalities: [str(o, 'modality') ?? atlas.image.modality ?? 'MR'],
      intensity: meta.intensity,
      labels: modelLabels(set),
      provenance: {
        createdAt: now,
        ...(commit ? { gitCommit: commit } : {}),
        trainer: 'rrl-medsam train (models/src/cli/train.ts)',
        trainingData: `${trainingData} + ${unl.length} unlabelled volume(s)`,
      },
      changelog: [
        {
          version,
          date: now.slice(0, 10),
          changes: `Trained from one atlas and ${unl.length} unlabelled volume(s) with ${autoPlan ? 'a plan derived from the data' : `plan ${path.basename(planFile)}`}.`,
        },
      ],
    };
    await mkdir(outDir, { recursive: true });
    // Eval reads the label set beside the model (source values → classes).
    await writeFile(path.join(outDir, 'labelset.json'), JSON.stringify(set, null, 2));

    const controller = new AbortController();
    const onSigint = (): void => {
      err('\ninterrupted: stopping after the current step; rerun the same command to resume.');
      controller.abort();
    };
    process.once('SIGINT', onSigint);
    reporter = new ProgressReporter(io.stderr);
    const rep = reporter;
    let result: PipelineResult;
    try {
      result = await runPipeline({
        plan,
        outDir,
        atlas: atlasOnGrid,
        unlabeled,
        info,
        provider,
        teachersDir: teachersDir(str(o, 'teachers-dir')),
        profileSteps: positiveInt(o, 'profile', 0, 0),
        spin: o['no-spin'] !== true,
        signal: controller.signal,
        onProgress: (p) => rep.update(p),
        log: (line) => {
          rep.finishLine();
          err(line);
        },
      });
    } finally {
      process.off('SIGINT', onSigint);
      rep.finishLine();
    }
    io.stdout.write(
      [
        '',
        stageTable(result),
        '',
        `model:      ${result.modelPath}`,
        `metadata:   ${result.metadataPath}`,
        `eval model: ${result.evalModelPath}`,
        ...result.notices.map((n) => `notice: ${n}`),
        `total ${formatDuration(result.seconds)}`,
        '',
      ].join('\n'),
    );
    return EXIT_OK;
  } catch (e) {
    reporter?.finishLine();
    return reportError(e, err);
  }
}

/** Prints an error and returns its exit code (2 for bad input, 1 otherwise). */
export function reportError(e: unknown, err: (line: string) => void): number {
  if (
    e instanceof UsageError ||
    e instanceof VolumeReadError ||
    e instanceof LabelSetError ||
    e instanceof SplitError ||
    e instanceof PlanError ||
    e instanceof ProviderUnavailableError
  ) {
    err(`error: ${e.message}`);
    return EXIT_USAGE;
  }
  if (e instanceof StageAbortedError) {
    err(`stopped: ${e.message}`);
    return EXIT_FAILURE;
  }
  const m = e instanceof Error ? (e.stack ?? e.message) : String(e);
  err(`failed: ${m}`);
  return EXIT_FAILURE;
}

if (isMain(import.meta.url, 'train')) {
  const code = await train(process.argv.slice(2));
  process.exit(code);
}
