/**
 * A new model's evaluation on the task's hold-out: labelled series (a series and its SEG, never
 * the atlas) that the model did not train on. Each is fetched from the PACS, segmented with the
 * model (onnxruntime-node, CPU) on its own grid and compared with its SEG: Dice per label, the mean
 * per series and over all. The result goes to `evaluation.json` beside the model, which the model
 * card shows and the default-model decision uses.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

import * as ort from 'onnxruntime-node';

import type { SegmentDescription } from '@rrl/core/dicom/seg.js';
import { validateMetadata, type ModelMetadata } from '@rrl/core/format/metadata.js';
import { dice } from '@rrl/models/rrl/metrics.js';
import { labelsFromLogits, prepareModelInput } from '@rrl/core/volume/preprocess.js';
import type { DicomWebClient } from '../pacs/dicomweb.js';
import type { AtlasRef, TaskLabel, TaskRecord } from '../store/db.js';
import { loadAtlas } from './atlas.js';

export interface SeriesEvaluation {
  seriesUID: string;
  /** Mean Dice over the task's labels present in the series' SEG. */
  meanDice: number;
  /** Dice per label name. */
  perLabel: Record<string, number>;
}

export interface HoldoutEvaluation {
  metric: 'dice';
  /** Mean of the series' mean Dice. */
  meanDice: number;
  series: SeriesEvaluation[];
  /** Hold-out series that could not be evaluated, with the reason. */
  skipped: { seriesUID: string; reason: string }[];
  evaluatedAt: string;
}

const norm = (s: string): string => s.trim().toLowerCase();
const code = (c?: { scheme: string; value: string }): string =>
  c && c.value ? `${c.scheme}:${c.value}` : '';

/**
 * Class index (1..L, the task's label order) of each SEG label value: matched by name, else by
 * the coded concept (type + laterality). Unmatched segments are background.
 */
export function holdoutClassMap(
  labels: readonly TaskLabel[],
  segments: readonly SegmentDescription[],
): Uint8Array {
  const lut = new Uint8Array(256);
  for (const s of segments) {
    let i = labels.findIndex((l) => norm(l.name) === norm(s.label));
    if (i < 0 && code(s.type)) {
      i = labels.findIndex(
        (l) => code(l.type) === code(s.type) && code(l.modifier) === code(s.modifier),
      );
    }
    if (i >= 0 && s.labelValue < 256) lut[s.labelValue] = i + 1;
  }
  return lut;
}

/** Evaluates `modelDir` on the task's hold-out; undefined when the task has none. */
export async function evaluateOnHoldout(opts: {
  client: DicomWebClient;
  task: Pick<TaskRecord, 'labels' | 'holdout'>;
  modelDir: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}): Promise<HoldoutEvaluation | undefined> {
  const { task, modelDir } = opts;
  if (task.holdout.length === 0) return undefined;
  const raw = JSON.parse(await readFile(path.join(modelDir, 'metadata.json'), 'utf8')) as unknown;
  validateMetadata(raw, 'metadata.json');
  const meta = raw as ModelMetadata;
  const session = await ort.InferenceSession.create(path.join(modelDir, meta.onnx.file), {
    executionProviders: ['cpu'],
    logSeverityLevel: 3,
  });
  const series: SeriesEvaluation[] = [];
  const skipped: { seriesUID: string; reason: string }[] = [];
  try {
    for (const ref of task.holdout) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      try {
        series.push(await evaluateSeries(opts.client, session, meta, task.labels, ref));
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        skipped.push({ seriesUID: ref.seriesUID, reason });
        opts.log?.(`hold-out series ${ref.seriesUID} not evaluated: ${reason}`);
      }
    }
  } finally {
    await session.release();
  }
  if (series.length === 0) return undefined;
  const evaluation: HoldoutEvaluation = {
    metric: 'dice',
    meanDice: series.reduce((a, s) => a + s.meanDice, 0) / series.length,
    series,
    skipped,
    evaluatedAt: new Date().toISOString(),
  };
  await writeFile(path.join(modelDir, 'evaluation.json'), JSON.stringify(evaluation, null, 2));
  opts.log?.(
    `hold-out evaluation: mean Dice ${evaluation.meanDice.toFixed(3)} on ${series.length} series`,
  );
  return evaluation;
}

async function evaluateSeries(
  client: DicomWebClient,
  session: ort.InferenceSession,
  meta: ModelMetadata,
  labels: readonly TaskLabel[],
  ref: AtlasRef,
): Promise<SeriesEvaluation> {
  const loaded = await loadAtlas(client, ref);
  const lut = holdoutClassMap(labels, loaded.segments);
  const truth = new Uint8Array(loaded.labelmap.length);
  for (let i = 0; i < truth.length; i++) truth[i] = lut[loaded.labelmap[i] ?? 0] ?? 0;
  const { dims, spacing } = loaded.volume.geometry;
  const input = prepareModelInput(loaded.volume.voxels, dims, meta, spacing);
  const out = await session.run({
    [meta.onnx.input.name]: new ort.Tensor('float32', input, meta.onnx.input.shape),
  });
  const logits = out[meta.onnx.output.name];
  if (!logits) throw new Error(`the model gave no output ${meta.onnx.output.name}`);
  const pred = labelsFromLogits(logits.data as Float32Array, meta, dims, spacing);
  const present = new Set<number>();
  for (const v of truth) present.add(v);
  const perLabel: Record<string, number> = {};
  labels.forEach((l, i) => {
    if (present.has(i + 1)) perLabel[l.name] = dice(pred, truth, i + 1);
  });
  const values = Object.values(perLabel);
  if (values.length === 0) {
    throw new Error('its SEG labels none of the task’s structures (names or codes differ)');
  }
  return {
    seriesUID: ref.seriesUID,
    meanDice: values.reduce((a, b) => a + b, 0) / values.length,
    perLabel,
  };
}
