/**
 * Export of a trained network for the viewer: the inference ONNX with the trained weights baked in
 * as initializers, plus its `metadata.json` in the published model format (core/src/format),
 * written to `<modelsDir>/<modelId>/`.
 *
 * The forward graph is the one the trainer differentiated (parameters as graph inputs), so the
 * graph trained is the graph served: export only turns parameter inputs into initializers.
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { validateMetadata, type ModelMetadata } from '@rrl/core/format/index.js';
import { decodeModel, encodeModel, type OnnxTensor } from '../onnx/model.js';
import type { HostTensor } from '../runtime/types.js';

export type ParamValues =
  | ReadonlyMap<string, HostTensor | Float32Array>
  | Readonly<Record<string, HostTensor | Float32Array>>;

function paramEntries(params: ParamValues): [string, HostTensor | Float32Array][] {
  return params instanceof Map ? [...params.entries()] : Object.entries(params);
}

export interface BakeResult {
  model: Uint8Array;
  opset: number;
  /** The first data input (the image); `inputs` lists all of them. */
  input: { name: string; shape: number[] };
  inputs: { name: string; shape: number[] }[];
  output: { name: string; shape: number[] };
}

/**
 * Turns the parameter inputs of a forward ONNX model into initializers holding `params`. Every
 * graph input except the `dataInputCount` data inputs (default 1: the image) must be a parameter
 * given in `params` (else an error names them);
 * parameters the graph does not use are ignored. `outputName` picks the logits output when the
 * forward graph has several (default: the first).
 */
export function bakeParams(
  forward: Uint8Array,
  params: ParamValues,
  outputName?: string,
  dataInputCount = 1,
): BakeResult {
  const decoded = decodeModel(forward);
  const g = decoded.graph;
  const values = new Map(paramEntries(params));
  const initializers: OnnxTensor[] = [...g.initializers];
  const remaining = [];
  for (const input of g.inputs) {
    const v = values.get(input.name);
    if (v === undefined) {
      remaining.push(input);
      continue;
    }
    const host: HostTensor = v instanceof Float32Array ? { data: v, dims: input.dims } : v;
    const n = input.dims.reduce((a, b) => a * b, 1);
    if (host.data.length !== n || host.dims.some((d, i) => d !== input.dims[i])) {
      throw new Error(
        `Parameter '${input.name}' should have dims [${input.dims.join(', ')}]; the trained value has dims ` +
          `[${host.dims.join(', ')}] (${host.data.length} values). Export from the network the trainer was built from.`,
      );
    }
    for (let i = 0; i < host.data.length; i++) {
      if (!Number.isFinite(host.data[i]!)) {
        throw new Error(
          `Parameter '${input.name}' holds ${host.data[i]} at index ${i}; refusing to export a diverged network.`,
        );
      }
    }
    initializers.push({
      name: input.name,
      dtype: 'float32',
      dims: input.dims,
      data: Float32Array.from(host.data),
    });
  }
  if (remaining.length !== dataInputCount) {
    const want = dataInputCount === 1 ? 'one input (the image)' : `${dataInputCount} data inputs`;
    throw new Error(
      `After baking the parameters the model should have ${want}; it has ${remaining.length}: ` +
        `${remaining.map((r) => r.name).join(', ') || 'none'}. Pass every trained parameter.`,
    );
  }
  const outputs = outputName
    ? g.outputs.filter((o) => o.name === outputName)
    : g.outputs.slice(0, 1);
  if (outputs.length !== 1) {
    throw new Error(
      `The forward model has no output '${outputName}'; its outputs are ${g.outputs.map((o) => o.name).join(', ')}.`,
    );
  }
  const model = encodeModel(
    { ...g, inputs: remaining, outputs, initializers },
    {
      opset: decoded.opset,
      irVersion: decoded.irVersion,
      producerName: 'rrl-medsam-engine-export',
    },
  );
  const input = remaining[0]!;
  const output = outputs[0]!;
  return {
    model,
    opset: decoded.opset,
    input: { name: input.name, shape: [...input.dims] },
    inputs: remaining.map((r) => ({ name: r.name, shape: [...r.dims] })),
    output: { name: output.name, shape: [...output.dims] },
  };
}

/** What the caller says about the model; the engine fills `formatVersion` and `onnx`. */
export type ExportMetadata = Omit<ModelMetadata, 'formatVersion' | 'onnx' | 'id' | 'provenance'> & {
  /** Default `<task>@<version>`. */
  id?: string;
  provenance?: Partial<ModelMetadata['provenance']>;
};

export interface ExportArgs {
  /** Forward ONNX with parameters as graph inputs (the network the trainer was built from). */
  forward: Uint8Array;
  params: ParamValues;
  metadata: ExportMetadata;
  /** The models folder; the model goes to `<modelsDir>/<id>/`. */
  modelsDir: string;
  outputName?: string;
}

export interface ExportResult {
  dir: string;
  modelPath: string;
  metadataPath: string;
  metadata: ModelMetadata;
  model: Uint8Array;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Builds the full metadata for a baked model and validates it against the model format. */
export function buildMetadata(
  baked: BakeResult,
  meta: ExportMetadata,
  modelSha256: string,
): ModelMetadata {
  const id = meta.id ?? `${meta.task}@${meta.version}`;
  const full = {
    formatVersion: 1 as const,
    id,
    name: meta.name,
    version: meta.version,
    task: meta.task,
    kind: meta.kind,
    modalities: meta.modalities,
    onnx: {
      file: 'model.onnx',
      sha256: modelSha256,
      opset: baked.opset,
      input: baked.input,
      output: baked.output,
    },
    grid: meta.grid,
    intensity: meta.intensity,
    labels: meta.labels,
    provenance: {
      createdAt: new Date().toISOString(),
      trainer: 'rrl-medsam-engine',
      ...meta.provenance,
    },
    changelog: meta.changelog,
  };
  return validateMetadata(JSON.parse(JSON.stringify(full)), `export of ${id}`);
}

async function writeAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/** Bakes the weights, validates the metadata and writes `model.onnx` + `metadata.json`. */
export async function exportModel(args: ExportArgs): Promise<ExportResult> {
  const baked = bakeParams(args.forward, args.params, args.outputName);
  const metadata = buildMetadata(baked, args.metadata, sha256Hex(baked.model));
  if (/[/\\]|^\.|\.\./.test(metadata.id)) {
    throw new Error(
      `A model id becomes a folder name and must not contain '/', '\\' or start with '.'; found '${metadata.id}'.`,
    );
  }
  const dir = path.join(args.modelsDir, metadata.id);
  await mkdir(dir, { recursive: true });
  const modelPath = path.join(dir, 'model.onnx');
  const metadataPath = path.join(dir, 'metadata.json');
  // model first: a reader that finds metadata.json finds the model it describes
  await writeAtomic(modelPath, baked.model);
  await writeAtomic(metadataPath, JSON.stringify(metadata, null, 2) + '\n');
  return { dir, modelPath, metadataPath, metadata, model: baked.model };
}
