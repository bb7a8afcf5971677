/**
 * The training-graph contract between ENGINE-CORE (which builds the graph) and the runtime (which
 * runs it). Declared here structurally so the runtime compiles on its own; ENGINE-CORE's
 * `buildTrainingGraph` returns a value of this shape.
 */

export interface StateInput {
  /** Graph input name, e.g. `enc0.conv.w` or `enc0.conv.w__m`. */
  name: string;
  dims: readonly number[];
  kind: 'param' | 'optim';
  /** The parameter this state belongs to (itself for kind 'param'). */
  param: string;
}

export interface DataInput {
  name: string;
  dims: readonly number[];
}

export interface TrainingGraphSpec {
  /** Inputs fed with data every step (`image`, `target`, …); names or name + dims. */
  dataInputs: readonly (string | DataInput)[];
  stateInputs: readonly StateInput[];
  /** state input name → output name carrying its next value. */
  stateOutputs: Readonly<Record<string, string>>;
  lossOutput: string;
  /** Metric outputs: output names (`metric:<name>`) or metric name → output name. */
  metricOutputs?: readonly string[] | Readonly<Record<string, string>>;
  params: readonly { name: string; dims: readonly number[] }[];
  optimizer?: unknown;
  /** Names of the learning-rate and step inputs (default `lr`, `step`). */
  scalarInputs?: { lr: string; step: string };
}

export interface TrainingGraph {
  model: Uint8Array;
  spec: TrainingGraphSpec;
}

/** A float32 tensor in JavaScript memory. */
export interface HostTensor {
  data: Float32Array;
  dims: readonly number[];
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

export function dataInputName(d: string | DataInput): string {
  return typeof d === 'string' ? d : d.name;
}

/** Metric name → output name. */
export function metricOutputMap(spec: TrainingGraphSpec): Record<string, string> {
  const m = spec.metricOutputs;
  if (!m) return {};
  if (Array.isArray(m)) {
    return Object.fromEntries((m as readonly string[]).map((o) => [o.replace(/^metric:/, ''), o]));
  }
  return { ...(m as Record<string, string>) };
}
