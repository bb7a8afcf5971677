/**
 * The published model format (contract, formatVersion 1): `<modelsDir>/<modelId>/model.onnx` plus
 * `metadata.json`. Browser-safe: no Node built-ins.
 *
 * Output channel c of the network's logits is label value c (channel 0 = background), so the label
 * values of a model are exactly 1..C-1.
 */

export const FORMAT_VERSION = 1;

export type ModelKind = 'rrl-medsam' | 'test-fixture';
export const MODEL_KINDS: readonly ModelKind[] = Object.freeze(['rrl-medsam', 'test-fixture']);

export interface CodedConcept {
  value: string;
  scheme: string;
  meaning: string;
}

export interface ModelLabel {
  value: number;
  name: string;
  color: [number, number, number];
  category: CodedConcept;
  type: CodedConcept;
  modifier?: CodedConcept;
}

export interface TensorSpec {
  name: string;
  shape: number[];
}

export interface OnnxSpec {
  file: string;
  sha256: string;
  opset: number;
  input: TensorSpec;
  output: TensorSpec;
}

export type GridResample = 'fit-extent' | 'fixed-spacing';
export const GRID_RESAMPLE_MODES: readonly GridResample[] = Object.freeze([
  'fit-extent',
  'fixed-spacing',
]);

export interface GridSpec {
  /** [x, y, z] voxels. */
  size: [number, number, number];
  /** [x, y, z] millimetres: nominal spacing the model was trained at. */
  spacing: [number, number, number];
  /**
   * "fit-extent": the source volume's voxel extent is scaled to the grid.
   * "fixed-spacing": the source is resampled at `spacing`, centre of its extent at the grid's centre
   * (on an axis where the source already has that spacing, the voxels coincide and the centres
   * agree within half a voxel: `centredCoordinate`); grid voxels outside the source are padding,
   * source voxels outside the grid are cropped.
   */
  resample: GridResample;
}

export type IntensitySpec =
  | { method: 'zscore'; clip?: [number, number] }
  | { method: 'percentile'; low: number; high: number };

export interface Provenance {
  createdAt: string;
  gitCommit?: string;
  trainer?: string;
  trainingData?: string;
  notes?: string;
}

export interface ChangelogEntry {
  version: string;
  date: string;
  changes: string;
}

export interface ModelMetadata {
  formatVersion: 1;
  id: string;
  name: string;
  version: string;
  task: string;
  kind: ModelKind;
  modalities: string[];
  onnx: OnnxSpec;
  grid: GridSpec;
  intensity: IntensitySpec;
  labels: ModelLabel[];
  provenance: Provenance;
  changelog: ChangelogEntry[];
}

/** Thrown by validateMetadata; `problems` lists every problem found, each a full sentence. */
export class ModelMetadataError extends Error {
  readonly problems: string[];
  constructor(modelRef: string, problems: string[]) {
    super(
      `Model metadata ${modelRef} is not valid (${problems.length} problem${
        problems.length === 1 ? '' : 's'
      }): ${problems.join(' ')} Fix metadata.json (format version ${FORMAT_VERSION}) and publish the model again.`,
    );
    this.name = 'ModelMetadataError';
    this.problems = problems;
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string')
    return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return `a ${typeof v}`;
}

class Checker {
  readonly problems: string[] = [];
  fail(msg: string): void {
    this.problems.push(msg);
  }
  str(o: Obj, key: string, path: string, optional = false): string | undefined {
    const v = o[key];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string' || v.trim() === '') {
      this.fail(`${path}${key} must be a non-empty string, found ${describe(v)}.`);
      return undefined;
    }
    return v;
  }
  obj(o: Obj, key: string, path: string, optional = false): Obj | undefined {
    const v = o[key];
    if (v === undefined && optional) return undefined;
    if (!isObj(v)) {
      this.fail(`${path}${key} must be an object, found ${describe(v)}.`);
      return undefined;
    }
    return v;
  }
  posIntArray(o: Obj, key: string, path: string, length?: number): number[] | undefined {
    const v = o[key];
    if (
      !Array.isArray(v) ||
      v.length === 0 ||
      (length !== undefined && v.length !== length) ||
      !v.every((x) => Number.isInteger(x) && (x as number) > 0)
    ) {
      this.fail(
        `${path}${key} must be an array of ${length ?? 'some'} positive integers, found ${describe(v)}${
          Array.isArray(v) ? ` [${v.join(', ')}]` : ''
        }.`,
      );
      return undefined;
    }
    return v as number[];
  }
  code(o: Obj, key: string, path: string, optional = false): CodedConcept | undefined {
    const c = this.obj(o, key, path, optional);
    if (!c) return undefined;
    const p = `${path}${key}.`;
    const value = this.str(c, 'value', p);
    const scheme = this.str(c, 'scheme', p);
    const meaning = this.str(c, 'meaning', p);
    if (value === undefined || scheme === undefined || meaning === undefined) return undefined;
    return { value, scheme, meaning };
  }
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Validates a parsed metadata.json against format version 1. Returns the typed metadata, or throws
 * ModelMetadataError listing every problem found (not only the first).
 */
export function validateMetadata(json: unknown, modelRef = 'metadata.json'): ModelMetadata {
  const c = new Checker();
  if (!isObj(json)) {
    throw new ModelMetadataError(modelRef, [
      `The file must hold a JSON object, found ${describe(json)}.`,
    ]);
  }
  if (json.formatVersion !== FORMAT_VERSION) {
    c.fail(
      `formatVersion must be ${FORMAT_VERSION}, found ${describe(json.formatVersion)} (this viewer reads format version ${FORMAT_VERSION} only).`,
    );
  }
  c.str(json, 'id', '');
  c.str(json, 'name', '');
  c.str(json, 'version', '');
  c.str(json, 'task', '');
  if (!MODEL_KINDS.includes(json.kind as ModelKind)) {
    c.fail(`kind must be one of ${MODEL_KINDS.join(', ')}, found ${describe(json.kind)}.`);
  }
  const mods = json.modalities;
  if (
    !Array.isArray(mods) ||
    mods.length === 0 ||
    !mods.every((m) => typeof m === 'string' && /^[A-Z]{2,4}$/.test(m))
  ) {
    c.fail(
      `modalities must be a non-empty array of DICOM modality codes such as "MR" or "CT", found ${describe(mods)}.`,
    );
  }

  // grid
  let gridSize: number[] | undefined;
  const grid = c.obj(json, 'grid', '');
  if (grid) {
    gridSize = c.posIntArray(grid, 'size', 'grid.', 3);
    const sp = grid.spacing;
    if (
      !Array.isArray(sp) ||
      sp.length !== 3 ||
      !sp.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)
    ) {
      c.fail(`grid.spacing must be three positive numbers in mm [x, y, z], found ${describe(sp)}.`);
    }
    if (!GRID_RESAMPLE_MODES.includes(grid.resample as GridResample)) {
      c.fail(
        `grid.resample must be one of ${GRID_RESAMPLE_MODES.map((m) => `"${m}"`).join(', ')}, found ${describe(grid.resample)}.`,
      );
    }
  }

  // intensity
  const intensity = c.obj(json, 'intensity', '');
  if (intensity) {
    if (intensity.method === 'zscore') {
      const clip = intensity.clip;
      if (
        clip !== undefined &&
        (!Array.isArray(clip) ||
          clip.length !== 2 ||
          !clip.every((x) => typeof x === 'number' && Number.isFinite(x)) ||
          (clip[0] as number) >= (clip[1] as number))
      ) {
        c.fail(`intensity.clip must be [low, high] with low < high, found ${describe(clip)}.`);
      }
    } else if (intensity.method === 'percentile') {
      const { low, high } = intensity;
      if (
        typeof low !== 'number' ||
        typeof high !== 'number' ||
        !(low >= 0 && low < high && high <= 100)
      ) {
        c.fail(
          `intensity low/high must be percentiles with 0 <= low < high <= 100, found low ${describe(low)} and high ${describe(high)}.`,
        );
      }
    } else {
      c.fail(
        `intensity.method must be "zscore" or "percentile", found ${describe(intensity.method)}.`,
      );
    }
  }

  // labels
  const labels = json.labels;
  let labelCount: number | undefined;
  if (!Array.isArray(labels) || labels.length === 0) {
    c.fail(`labels must be a non-empty array, found ${describe(labels)}.`);
  } else {
    labelCount = labels.length;
    const seen = new Set<number>();
    labels.forEach((l, i) => {
      const p = `labels[${i}].`;
      if (!isObj(l)) {
        c.fail(`labels[${i}] must be an object, found ${describe(l)}.`);
        return;
      }
      const v = l.value;
      if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 255) {
        c.fail(`${p}value must be an integer from 1 to 255, found ${describe(v)}.`);
      } else if (seen.has(v as number)) {
        c.fail(`${p}value ${v as number} is used by more than one label.`);
      } else {
        seen.add(v as number);
      }
      c.str(l, 'name', p);
      const col = l.color;
      if (
        !Array.isArray(col) ||
        col.length !== 3 ||
        !col.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 255)
      ) {
        c.fail(`${p}color must be three integers 0..255 [r, g, b], found ${describe(col)}.`);
      }
      c.code(l, 'category', p);
      c.code(l, 'type', p);
      c.code(l, 'modifier', p, true);
    });
    for (let v = 1; v <= labels.length; v++) {
      if (!seen.has(v) && seen.size === labels.length) {
        c.fail(
          `label values must be exactly 1..${labels.length} (output channel c is label value c), but ${v} is missing.`,
        );
        break;
      }
    }
  }

  // onnx
  const onnx = c.obj(json, 'onnx', '');
  if (onnx) {
    const file = c.str(onnx, 'file', 'onnx.');
    if (file !== undefined && (file.includes('/') || file.includes('\\') || file.startsWith('.'))) {
      c.fail(
        `onnx.file must be a plain file name inside the model folder, found ${describe(file)}.`,
      );
    }
    const sha = onnx.sha256;
    if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) {
      c.fail(`onnx.sha256 must be 64 lowercase hex digits, found ${describe(sha)}.`);
    }
    if (!Number.isInteger(onnx.opset) || (onnx.opset as number) < 7) {
      c.fail(`onnx.opset must be an integer opset version (>= 7), found ${describe(onnx.opset)}.`);
    }
    const input = c.obj(onnx, 'input', 'onnx.');
    const output = c.obj(onnx, 'output', 'onnx.');
    const inShape = input
      ? (c.str(input, 'name', 'onnx.input.'), c.posIntArray(input, 'shape', 'onnx.input.', 5))
      : undefined;
    const outShape = output
      ? (c.str(output, 'name', 'onnx.output.'), c.posIntArray(output, 'shape', 'onnx.output.', 5))
      : undefined;
    if (gridSize) {
      const [x = 0, y = 0, z = 0] = gridSize;
      const expectIn = [1, 1, z, y, x];
      if (inShape && !sameShape(inShape, expectIn)) {
        c.fail(
          `onnx.input.shape must be [1, 1, D, H, W] = [${expectIn.join(', ')}] for grid.size [x, y, z] = [${gridSize.join(', ')}], found [${inShape.join(', ')}].`,
        );
      }
      if (outShape && labelCount !== undefined) {
        const expectOut = [1, labelCount + 1, z, y, x];
        if (!sameShape(outShape, expectOut)) {
          c.fail(
            `onnx.output.shape must be [1, C, D, H, W] = [${expectOut.join(', ')}] (C = ${labelCount} labels + background), found [${outShape.join(', ')}].`,
          );
        }
      }
    }
  }

  const prov = c.obj(json, 'provenance', '');
  if (prov) c.str(prov, 'createdAt', 'provenance.');
  const log = json.changelog;
  if (!Array.isArray(log)) {
    c.fail(`changelog must be an array of {version, date, changes}, found ${describe(log)}.`);
  } else {
    log.forEach((e, i) => {
      if (!isObj(e)) c.fail(`changelog[${i}] must be an object, found ${describe(e)}.`);
      else {
        c.str(e, 'version', `changelog[${i}].`);
        c.str(e, 'date', `changelog[${i}].`);
        c.str(e, 'changes', `changelog[${i}].`);
      }
    });
  }

  if (c.problems.length > 0) {
    const id = typeof json.id === 'string' ? `of model ${json.id}` : modelRef;
    throw new ModelMetadataError(id, c.problems);
  }
  return json as unknown as ModelMetadata;
}

/** What the viewer knows about the series a model is about to run on. */
export interface SeriesSummary {
  seriesInstanceUID: string;
  modality: string;
  /** [x, y, z] voxels */
  dims: [number, number, number];
  /** [x, y, z] millimetres */
  spacing: [number, number, number];
}

/**
 * Hard limits beyond which resampling no longer makes anatomical sense: a fit-extent grid would
 * distort the anatomy too much, a fixed-spacing grid would crop or pad too much.
 */
export const FIT_LIMITS = Object.freeze({
  /** Physical extent of the series per axis divided by the model grid's extent. */
  maxExtentRatio: 4,
  minExtentRatio: 0.25,
  minSlices: 8,
});

/**
 * Checks that a model may run on a series. Returns the problems found (empty: it fits), each a
 * full sentence naming what was expected, what was found and what the user can do.
 */
export function checkModelFitsSeries(meta: ModelMetadata, series: SeriesSummary): string[] {
  const problems: string[] = [];
  const where = `series ${series.seriesInstanceUID}`;
  if (!meta.modalities.includes(series.modality)) {
    problems.push(
      `The model "${meta.name}" is for ${meta.modalities.join('/')} images, but ${where} is ${
        series.modality || 'of unknown modality'
      }. Open a ${meta.modalities.join(' or ')} series or choose a model made for ${series.modality || 'it'}.`,
    );
  }
  if (series.dims[2] < FIT_LIMITS.minSlices) {
    problems.push(
      `The model "${meta.name}" needs a 3-D volume of at least ${FIT_LIMITS.minSlices} slices, but ${where} has ${series.dims[2]}. Open a volumetric series.`,
    );
  }
  const axes = ['x', 'y', 'z'];
  for (let a = 0; a < 3; a++) {
    const ext = series.dims[a]! * series.spacing[a]!;
    const gridExt = meta.grid.size[a]! * meta.grid.spacing[a]!;
    const r = ext / gridExt;
    if (!(r <= FIT_LIMITS.maxExtentRatio && r >= FIT_LIMITS.minExtentRatio)) {
      // fixed-spacing grids crop a larger series and pad a smaller one around its centre.
      const effect =
        meta.grid.resample !== 'fixed-spacing'
          ? ''
          : r > 1
            ? ` At the model's fixed spacing only the central ${(100 / r).toFixed(0)} % of it would be segmented.`
            : ` At the model's fixed spacing it would fill only ${(100 * r).toFixed(0)} % of the grid.`;
      problems.push(
        `Along ${axes[a]} ${where} covers ${ext.toFixed(0)} mm, but the model "${meta.name}" expects about ${gridExt.toFixed(
          0,
        )} mm (grid ${meta.grid.size[a]} × ${meta.grid.spacing[a]} mm); the field of view differs too much (ratio ${r.toFixed(
          2,
        )}).${effect} Use a series with a field of view like the model's training data.`,
      );
    }
  }
  return problems;
}

/** Short user-facing note on what kind of model this is. */
export function describeModelKind(meta: Pick<ModelMetadata, 'kind'>): string {
  return meta.kind === 'test-fixture'
    ? 'Test fixture — a tiny network fitted to the demo atlas for testing, not a trained product model; results are not clinically meaningful.'
    : 'RRL-MedSAM model.';
}
