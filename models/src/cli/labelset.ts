/**
 * Label sets (`models/labelsets/*.json`): which source label values become the model's classes
 * 1..N, with their names, display colours and coded anatomy (SNOMED CT / DCM). Source values not
 * in the set become background (0).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CodedConcept, ModelLabel } from '@rrl/core/format/metadata.js';

export interface LabelSetEntry {
  /** Source label value(s) (NIfTI value or SEG segment number) merged into this class. */
  source: number[];
  name: string;
  color: [number, number, number];
  category: CodedConcept;
  type: CodedConcept;
  modifier?: CodedConcept;
}

export interface LabelSet {
  name: string;
  description?: string;
  /** Class i + 1 is labels[i]. */
  labels: LabelSetEntry[];
}

export class LabelSetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabelSetError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function code(v: unknown, where: string, optional: boolean): CodedConcept | undefined {
  if (v === undefined && optional) return undefined;
  if (
    !isObj(v) ||
    typeof v.value !== 'string' ||
    typeof v.scheme !== 'string' ||
    typeof v.meaning !== 'string' ||
    !v.value ||
    !v.scheme ||
    !v.meaning
  ) {
    throw new LabelSetError(
      `${where}: expected a coded concept {value, scheme, meaning} (non-empty strings), found ${JSON.stringify(v)}.`,
    );
  }
  return { value: v.value, scheme: v.scheme, meaning: v.meaning };
}

/** Validates a parsed label-set JSON object. `ref` names the file in errors. */
export function parseLabelSet(json: unknown, ref = 'label set'): LabelSet {
  if (!isObj(json)) throw new LabelSetError(`${ref}: expected a JSON object.`);
  const name = typeof json.name === 'string' && json.name ? json.name : path.basename(ref);
  const labels = json.labels;
  if (!Array.isArray(labels) || labels.length === 0) {
    throw new LabelSetError(
      `${ref}: expected "labels" to be a non-empty array of {source, name, color, category, type}, found ${JSON.stringify(labels)}.`,
    );
  }
  if (labels.length > 255) {
    throw new LabelSetError(`${ref}: at most 255 labels are supported, found ${labels.length}.`);
  }
  const seen = new Map<number, string>();
  const out: LabelSetEntry[] = labels.map((l, i) => {
    const where = `${ref}: labels[${i}]`;
    if (!isObj(l)) throw new LabelSetError(`${where}: expected an object.`);
    const src = Array.isArray(l.source) ? l.source : [l.source];
    if (src.length === 0 || !src.every((v) => Number.isInteger(v) && (v as number) > 0)) {
      throw new LabelSetError(
        `${where}.source: expected a positive integer label value (or an array of them), found ${JSON.stringify(l.source)}.`,
      );
    }
    if (typeof l.name !== 'string' || !l.name) {
      throw new LabelSetError(`${where}.name: expected a non-empty string.`);
    }
    for (const v of src as number[]) {
      const prev = seen.get(v);
      if (prev !== undefined) {
        throw new LabelSetError(
          `${where}: source value ${v} is already used by "${prev}"; each source value may map to one class only.`,
        );
      }
      seen.set(v, l.name);
    }
    const col = l.color;
    if (
      !Array.isArray(col) ||
      col.length !== 3 ||
      !col.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 255)
    ) {
      throw new LabelSetError(`${where}.color: expected [r, g, b] integers 0..255.`);
    }
    const entry: LabelSetEntry = {
      source: src as number[],
      name: l.name,
      color: [col[0] as number, col[1] as number, col[2] as number],
      category: code(l.category, `${where}.category`, false)!,
      type: code(l.type, `${where}.type`, false)!,
    };
    const mod = code(l.modifier, `${where}.modifier`, true);
    if (mod) entry.modifier = mod;
    return entry;
  });
  const set: LabelSet = { name, labels: out };
  if (typeof json.description === 'string') set.description = json.description;
  return set;
}

export async function readLabelSet(file: string): Promise<LabelSet> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LabelSetError(
      `Cannot read the label set ${file}: ${(e as Error).message}. Pass --labels with a JSON file such as models/labelsets/hippocampus.json.`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LabelSetError(`The label set ${file} is not valid JSON: ${(e as Error).message}.`);
  }
  return parseLabelSet(json, path.basename(file));
}

/** Lookup table source value → class (0 = background), for values 0..maxValue. */
export function classLookup(set: LabelSet, maxValue: number): Uint8Array {
  const lut = new Uint8Array(maxValue + 1);
  set.labels.forEach((l, i) => {
    for (const v of l.source) if (v <= maxValue) lut[v] = i + 1;
  });
  return lut;
}

/** Source label values → class indices 0..N (values outside the set → 0). */
export function mapToClasses(data: ArrayLike<number>, set: LabelSet): Uint8Array {
  let max = 0;
  for (const l of set.labels) for (const v of l.source) max = Math.max(max, v);
  const lut = classLookup(set, max);
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    out[i] = v >= 0 && v <= max ? lut[v]! : 0;
  }
  return out;
}

/** Which of the set's classes (1..N) occur in the source values present. */
export function classesPresent(values: readonly number[], set: LabelSet): number[] {
  const present = new Set(values);
  const out: number[] = [];
  set.labels.forEach((l, i) => {
    if (l.source.some((v) => present.has(v))) out.push(i + 1);
  });
  return out;
}

/** The set as the published model's labels (value = class index). */
export function modelLabels(set: LabelSet): ModelLabel[] {
  return set.labels.map((l, i) => {
    const m: ModelLabel = {
      value: i + 1,
      name: l.name,
      color: [...l.color],
      category: { ...l.category },
      type: { ...l.type },
    };
    if (l.modifier) m.modifier = { ...l.modifier };
    return m;
  });
}
