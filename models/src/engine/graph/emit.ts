/** Prunes a Graph to what some outputs need and encodes it as an ONNX model. */
import {
  encodeModel,
  type EncodeOptions,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
} from '../onnx/model.js';
import type { Graph, Value } from './graph.js';

export interface EmitOptions extends EncodeOptions {
  /** Graph inputs in order (data inputs, parameters fed at run time, …). */
  inputs: readonly Value[];
  /** [output name, value]; an Identity is inserted when the names differ. */
  outputs: readonly (readonly [string, Value])[];
  /** Parameter values baked in as initializers (others must be listed in `inputs`). */
  bake?: ReadonlyMap<string, Float32Array>;
  graphName?: string;
}

export function emitGraph(g: Graph, o: EmitOptions): Uint8Array {
  const producer = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((out) => producer.set(out, i)));
  const inputNames = new Set(o.inputs.map((v) => v.name));
  const needed = new Set<number>();
  const leaves = new Set<string>();
  const stack = o.outputs.map(([, v]) => v.name);
  const seen = new Set<string>();
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (name === '' || seen.has(name)) continue;
    seen.add(name);
    if (inputNames.has(name)) continue;
    const p = producer.get(name);
    if (p === undefined) {
      leaves.add(name);
      continue;
    }
    if (needed.has(p)) continue;
    needed.add(p);
    stack.push(...g.nodes[p]!.inputs);
  }
  const initializers: OnnxTensor[] = [];
  for (const name of leaves) {
    const c = g.constants.get(name);
    if (c) {
      initializers.push(c);
      continue;
    }
    const baked = o.bake?.get(name);
    if (baked) {
      const v = g.value(name);
      initializers.push({ name, dtype: 'float32', dims: v.shape, data: baked });
      continue;
    }
    const kind = g.params.has(name) ? 'parameter' : 'input';
    throw new Error(
      `emit: ${kind} ${name} is needed by the requested outputs but is neither a graph input nor baked; ` +
        `list it in inputs${kind === 'parameter' ? ' or pass its values in bake' : ''}`,
    );
  }
  const nodes: OnnxNode[] = [];
  [...needed]
    .sort((a, b) => a - b)
    .forEach((i) => {
      const n = g.nodes[i]!;
      nodes.push({
        opType: n.op,
        inputs: n.inputs,
        outputs: n.outputs,
        attrs: n.attrs,
        name: n.name,
      });
    });
  const outputs: OnnxValueInfo[] = [];
  const used = new Set<string>();
  for (const [name, v] of o.outputs) {
    if (used.has(name)) throw new Error(`emit: output name ${name} used twice`);
    used.add(name);
    if (name !== v.name || inputNames.has(v.name) || leaves.has(v.name)) {
      if (g.values.has(name) && name !== v.name) {
        throw new Error(
          `emit: output name ${name} clashes with an existing value; choose another name`,
        );
      }
      const outName = name === v.name ? `${name}__out` : name;
      nodes.push({
        opType: 'Identity',
        inputs: [v.name],
        outputs: [outName],
        name: `out_${outName}`,
      });
      outputs.push({ name: outName, dtype: v.dtype, dims: v.shape });
    } else outputs.push({ name, dtype: v.dtype, dims: v.shape });
  }
  const inputs: OnnxValueInfo[] = o.inputs.map((v) => ({
    name: v.name,
    dtype: v.dtype,
    dims: v.shape,
  }));
  return encodeModel({ name: o.graphName ?? 'graph', nodes, inputs, outputs, initializers }, o);
}
