/**
 * `npm run eval`: scores a trained model folder (`npm run train` output) on the test subjects of a
 * split, every subject on its own grid, for four methods: (a) atlas labels copied without
 * registration, (b) registration only, (c) medical branch without prompt (eval-model.onnx
 * `medicalLogits`), (d) the full pipeline (published model.onnx `logits`). Prints one table and
 * writes a JSON report. Exit codes: 0 ok, 2 bad input or usage, 1 failure.
 */
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { readImageVolume, readLabelVolume } from '../io/index.js';
import { decodeModel } from '../engine/onnx/model.js';
import { validateMetadata, type ModelMetadata } from '@rrl/core/format/metadata.js';
import { rrlInferenceNet, rrlNetArgsFromPlan } from '../rrl/networks.js';
import { parsePlan, registrationArgsFromPlan, type RrlPlan } from '../rrl/plan.js';
import { Graph } from '../engine/graph/graph.js';
import { registrationNet } from '../engine/nn/registration.js';
import { loadRegistration } from '../rrl/pipeline.js';
import { dice, hd95 } from '../rrl/metrics.js';
import { labelsFromLogits, prepareModelInput } from '@rrl/core/volume/preprocess.js';
import {
  EXIT_OK,
  UsageError,
  parseOptions,
  positiveInt,
  processIo,
  required,
  str,
  usage,
  type CommandSpec,
  type Io,
  isMain,
} from './args.js';
import { mapToClasses, readLabelSet, type LabelSet } from './labelset.js';
import { DATA_DIR_OPTION, readSplit, type Split } from './split.js';
import { atlasOnModelGrid, gitCommit, readAtlas, reportError } from './train.js';
import {
  METHODS,
  formatTable,
  notWorseCount,
  median,
  summarizeMethods,
  type Method,
  type SubjectScores,
} from './report.js';

export const EVAL_SPEC: CommandSpec = {
  command: 'eval',
  summary:
    'Evaluates a model folder written by `npm run train` on the test subjects of a split: (a) atlas labels copied without registration, (b) registration only, (c) medical branch without prompt, (d) the full published model. Dice per label (mean ± std over subjects), HD95 (mm), parameters and inference time per volume (onnxruntime-node CPU and onnxruntime-web wasm).',
  options: [
    { name: 'model', value: 'DIR', help: 'model folder written by `npm run train`; required' },
    {
      name: 'split',
      value: 'FILE',
      help: 'split JSON with the atlas and the test subjects (hippocampus-style split.json or models/splits/*.json); required',
    },
    {
      name: 'labels',
      value: 'FILE',
      help: 'label set JSON (default: labelset.json in the model folder)',
    },
    { name: 'report', value: 'FILE', help: 'write the JSON report here' },
    {
      name: 'wasm-runs',
      value: 'N',
      help: 'timed onnxruntime-web wasm runs of model.onnx (default 3; 0 skips)',
    },
    {
      name: 'wasm-threads',
      value: 'N',
      help: 'wasm threads for the timing (default 2: the viewer runs cross-origin isolated, with threads)',
    },
    { name: 'limit', value: 'N', help: 'evaluate only the first N test subjects (quick runs)' },
    DATA_DIR_OPTION,
  ],
  examples: [
    'npm run eval -- --model var/training/hippocampus --split ../shared/data/hippocampus/split.json --report var/reports/hippocampus.json',
    'npm run eval -- --model var/training/brain --split models/splits/brain-aseg.json --labels models/labelsets/brain-aseg.json --limit 1 --wasm-runs 1',
  ],
};

/**
 * Parameters of an ONNX model: the element count of its float initializers whose names are in
 * `paramNames` (the network's trainable parameters; constants such as up-sampling matrices are
 * initializers too), or of every float initializer when `paramNames` is not given.
 */
export function countOnnxParameters(bytes: Uint8Array, paramNames?: ReadonlySet<string>): number {
  const { graph } = decodeModel(bytes);
  let n = 0;
  for (const t of graph.initializers) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') continue;
    if (paramNames && !paramNames.has(t.name)) continue;
    n += t.dims.reduce((a, b) => a * b, 1);
  }
  return n;
}

/**
 * Names of the trainable parameters of the plan's inference network and of its registration
 * network (what a model published by the registration fallback holds).
 */
export function planParamNames(plan: RrlPlan): Set<string> {
  const net = rrlInferenceNet(rrlNetArgsFromPlan(plan), plan.grid);
  const g = new Graph();
  const volume = (name: string) => g.input(name, [1, 1, ...plan.grid]);
  registrationNet(g, volume('moving'), volume('fixed'), registrationArgsFromPlan(plan));
  return new Set([...net.graph.params.values(), ...g.params.values()].map((p) => p.name));
}

/** One-hot [C, D, H, W] of class labels (for mapping labels back through labelsFromLogits). */
export function oneHot(labels: Uint8Array, classes: number): Float32Array {
  const out = new Float32Array(classes * labels.length);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (c < classes) out[c * labels.length + i] = 1;
  }
  return out;
}

async function readJson(file: string, what: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new UsageError(
      `Cannot read the ${what} ${file}: ${(e as Error).message}. Is --model a folder written by \`npm run train\`?`,
    );
  }
}

async function readFileBytes(file: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw new UsageError(
      `Cannot read the ${what} ${file}: ${(e as Error).message}. Is --model a finished \`npm run train\` output (rerun train with the same --out to finish it)?`,
    );
  }
}

async function timeWasm(
  model: Uint8Array,
  input: Float32Array,
  dims: number[],
  runs: number,
  threads: number,
): Promise<{ medianMs: number; runsMs: number[]; threads: number }> {
  const ortWeb = await import('onnxruntime-web');
  ortWeb.env.wasm.numThreads = threads;
  const session = await ortWeb.InferenceSession.create(model, { executionProviders: ['wasm'] });
  try {
    const feeds = { image: new ortWeb.Tensor('float32', input, dims) };
    await session.run(feeds); // warm-up
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t0);
    }
    return { medianMs: median(times), runsMs: times, threads };
  } finally {
    await session.release();
  }
}

export interface EvalReport {
  gitCommit: string | null;
  date: string;
  plan: RrlPlan | null;
  model: {
    id: string;
    name: string;
    version: string;
    task: string;
    kind: string;
    grid: ModelMetadata['grid'];
    intensity: ModelMetadata['intensity'];
    labels: string[];
    provenance: ModelMetadata['provenance'];
    parameters: number;
    evalModelParameters: number;
  };
  split: { file: string; format: Split['format']; atlas: string; test: string[] };
  methods: ReturnType<typeof summarizeMethods>;
  /** Subjects where the published model's mean Dice is at least registration's. */
  comparison: { dNotWorseThanB: { count: number; of: number } };
  perSubject: SubjectScores[];
  timing: {
    note: string;
    nodeCpuMs: { median: number; runs: number[] };
    wasmMs: { median: number; runs: number[]; threads: number } | null;
    evalSeconds: number;
  };
  machine: {
    platform: string;
    arch: string;
    cpus: string;
    cpuCount: number;
    memoryGiB: number;
    node: string;
  };
}

export async function evaluate(argv: string[], io: Io = processIo): Promise<number> {
  const err = (line: string): void => void io.stderr.write(`${line}\n`);
  const sessions: { release(): Promise<void> }[] = [];
  try {
    const o = parseOptions(EVAL_SPEC, argv);
    if (o.help) {
      io.stdout.write(usage(EVAL_SPEC));
      return EXIT_OK;
    }
    const t0 = performance.now();
    const modelDir = path.resolve(
      required(o, 'model', 'the model folder written by `npm run train`'),
    );
    const splitFile = required(o, 'split', 'the split JSON with the test subjects');
    const wasmRuns = positiveInt(o, 'wasm-runs', 3, 0);
    const wasmThreads = positiveInt(o, 'wasm-threads', 2);
    const limit = positiveInt(o, 'limit', Number.MAX_SAFE_INTEGER);
    const reportFile = str(o, 'report');

    const meta = validateMetadata(
      await readJson(path.join(modelDir, 'metadata.json'), 'model metadata'),
      'metadata.json',
    );
    const planJson = await readJson(path.join(modelDir, 'plan.json'), 'training plan').catch(
      () => undefined,
    );
    const plan = planJson === undefined ? null : parsePlan(planJson);
    const set: LabelSet = await readLabelSet(
      str(o, 'labels') ?? path.join(modelDir, 'labelset.json'),
    );
    if (set.labels.length !== meta.labels.length) {
      throw new UsageError(
        `the label set "${set.name}" has ${set.labels.length} labels but the model ${meta.id} has ${meta.labels.length}; pass the --labels file the model was trained with.`,
      );
    }
    const names = set.labels.map((l) => l.name);
    const classes = names.length + 1;
    const split = await readSplit(splitFile, str(o, 'data-dir'));
    const tests = split.test.slice(0, limit);
    if (tests.length === 0) throw new UsageError(`the split ${splitFile} has no test subjects.`);

    const modelBytes = await readFileBytes(path.join(modelDir, meta.onnx.file), 'model');
    const evalBytes = await readFileBytes(
      path.join(modelDir, 'eval-model.onnx'),
      'evaluation model',
    );
    const paramNames = plan ? planParamNames(plan) : undefined;
    const parameters = countOnnxParameters(modelBytes, paramNames);
    const evalModelParameters = countOnnxParameters(evalBytes, paramNames);

    const atlas = await readAtlas(split.atlas.image, split.atlas.labels, set);
    const atlasOnGrid = atlasOnModelGrid(atlas, meta);
    const atlasOneHot = oneHot(atlasOnGrid.labels, classes);

    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      logSeverityLevel: 3,
    };
    const model = await ort.InferenceSession.create(modelBytes, opts);
    sessions.push(model);
    const evalModel = await ort.InferenceSession.create(evalBytes, opts);
    sessions.push(evalModel);
    const registration = await loadRegistration(modelDir);
    sessions.push(registration);
    const inputDims = meta.onnx.input.shape;

    const perSubject: SubjectScores[] = [];
    const nodeTimes: number[] = [];
    let firstInput: Float32Array | undefined;
    for (const [k, t] of tests.entries()) {
      const image = await readImageVolume(t.image);
      const labels = await readLabelVolume(t.labels, image);
      const truth = mapToClasses(labels.data, set);
      const input = prepareModelInput(image.data, image.dims, meta, image.spacing);
      firstInput ??= input;
      const back = (onGrid: Float32Array): Uint8Array =>
        labelsFromLogits(onGrid, meta, image.dims, image.spacing);

      const preds = {} as Record<Method, Uint8Array>;
      preds.a = back(atlasOneHot);
      const reg = await registration.register(atlasOnGrid.image, atlasOnGrid.labels, input);
      preds.b = back(reg.probabilities);
      const feeds = { image: new ort.Tensor('float32', input, inputDims) };
      const ev = await evalModel.run(feeds, ['medicalLogits']);
      preds.c = back(ev.medicalLogits!.data as Float32Array);
      const s0 = performance.now();
      const out = await model.run(feeds);
      nodeTimes.push(performance.now() - s0);
      preds.d = back(out[meta.onnx.output.name]!.data as Float32Array);

      const scores: SubjectScores = {
        id: t.id,
        dims: [...image.dims],
        spacing: [...image.spacing],
        dice: { a: {}, b: {}, c: {}, d: {} },
        hd95: { a: {}, b: {}, c: {}, d: {} },
      };
      for (const m of METHODS) {
        names.forEach((n, i) => {
          scores.dice[m][n] = dice(preds[m], truth, i + 1);
          const h = hd95(preds[m], truth, image.dims, image.spacing, i + 1);
          scores.hd95[m][n] = Number.isFinite(h) ? h : null;
        });
      }
      perSubject.push(scores);
      const md = (m: Method): string =>
        (names.reduce((a, n) => a + scores.dice[m][n]!, 0) / names.length).toFixed(3);
      err(
        `[${k + 1}/${tests.length}] ${t.id}: mean Dice a ${md('a')} b ${md('b')} c ${md('c')} d ${md('d')}`,
      );
    }

    let wasm: EvalReport['timing']['wasmMs'] = null;
    if (wasmRuns > 0 && firstInput) {
      const w = await timeWasm(modelBytes, firstInput, inputDims, wasmRuns, wasmThreads);
      wasm = { median: w.medianMs, runs: w.runsMs, threads: w.threads };
    }
    const methods = summarizeMethods(perSubject, names);
    const cpus = os.cpus();
    const report: EvalReport = {
      gitCommit: gitCommit() ?? null,
      date: new Date().toISOString(),
      plan,
      model: {
        id: meta.id,
        name: meta.name,
        version: meta.version,
        task: meta.task,
        kind: meta.kind,
        grid: meta.grid,
        intensity: meta.intensity,
        labels: names,
        provenance: meta.provenance,
        parameters,
        evalModelParameters,
      },
      split: {
        file: path.basename(splitFile),
        format: split.format,
        atlas: split.atlas.id,
        test: tests.map((t) => t.id),
      },
      methods,
      comparison: {
        dNotWorseThanB: {
          count: notWorseCount(perSubject, names, 'd', 'b'),
          of: perSubject.length,
        },
      },
      perSubject,
      timing: {
        note: 'session.run of model.onnx only (no resampling); node: one run per test subject; wasm: onnxruntime-web in this Node process (threads as in timing.wasmMs.threads), after one warm-up run on the first test subject',
        nodeCpuMs: { median: median(nodeTimes), runs: nodeTimes },
        wasmMs: wasm,
        evalSeconds: (performance.now() - t0) / 1000,
      },
      machine: {
        platform: os.platform(),
        arch: os.arch(),
        cpus: cpus[0]?.model ?? 'unknown',
        cpuCount: cpus.length,
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
      },
    };
    io.stdout.write(
      `${meta.name} (${meta.id}) on ${tests.length} test subject(s) of ${path.basename(splitFile)}\n\n` +
        formatTable(methods, names, {
          dNotWorseThanB: report.comparison.dNotWorseThanB,
          parameters,
          nodeMs: median(nodeTimes),
          wasmMs: wasm ? wasm.median : null,
        }) +
        '\n',
    );
    if (reportFile) {
      await mkdir(path.dirname(path.resolve(reportFile)), { recursive: true });
      await writeFile(reportFile, `${JSON.stringify(report, null, 2)}\n`);
      io.stdout.write(`report: ${reportFile}\n`);
    }
    return EXIT_OK;
  } catch (e) {
    return reportError(e, err);
  } finally {
    for (const s of sessions.reverse()) await s.release().catch(() => undefined);
  }
}

if (isMain(import.meta.url, 'eval')) {
  const code = await evaluate(process.argv.slice(2));
  process.exit(code);
}
