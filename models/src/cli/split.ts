/**
 * Data splits for `train` and `eval`. Two formats:
 * - hippocampus-style `split.json`: `{ atlas: id, train_unlabeled: [id], test: [id] }`, ids resolved
 *   as `<split folder>/images/<id>.nii(.gz)` and `<split folder>/labels/<id>.nii(.gz)`;
 * - explicit (`models/splits/*.json`): `{ atlas: {id?, image, labels}, train_unlabeled?: [{id, image}],
 *   test: [{id, image, labels}] }`, paths relative to the data folder (`--data-dir`, else
 *   `$RRL_DATA_DIR`, else `../shared/data` from the repository root).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { OptionSpec } from './args.js';
import { REPO_ROOT } from '../io/installRoot.js';

export interface SplitImage {
  id: string;
  image: string;
}
export interface SplitSubject extends SplitImage {
  labels: string;
}

export interface Split {
  /** 'hippocampus-style' or 'explicit'. */
  format: 'ids' | 'explicit';
  /** File the split was read from. */
  file: string;
  atlas: SplitSubject;
  unlabeled: SplitImage[];
  test: SplitSubject[];
  /** train_unlabeled ids left out because they are the atlas or a test subject (ids format). */
  excluded: string[];
}

export class SplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SplitError';
  }
}

export { REPO_ROOT };

/** The `--data-dir` option of the commands that read splits (see `dataDir`). */
export const DATA_DIR_OPTION: OptionSpec = {
  name: 'data-dir',
  value: 'DIR',
  help: 'data folder for explicit splits (default $RRL_DATA_DIR, else ../shared/data)',
};

/** The data folder: explicit argument, else $RRL_DATA_DIR, else ../shared/data from the repo root. */
export function dataDir(explicit?: string): string {
  if (explicit) return path.resolve(explicit);
  const env = process.env.RRL_DATA_DIR;
  if (env) return path.resolve(env);
  return path.resolve(REPO_ROOT, '../shared/data');
}

/** The teacher folder: explicit, else $RRL_TEACHERS_DIR, else the server's default (var/server/teachers). */
export function teachersDir(explicit?: string): string {
  if (explicit) return path.resolve(explicit);
  const env = process.env.RRL_TEACHERS_DIR;
  if (env) return path.resolve(env);
  return path.join(REPO_ROOT, 'var', 'server', 'teachers');
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function niftiFor(dir: string, id: string): string {
  const gz = path.join(dir, `${id}.nii.gz`);
  if (existsSync(gz)) return gz;
  const nii = path.join(dir, `${id}.nii`);
  if (existsSync(nii)) return nii;
  const folder = path.join(dir, id);
  if (existsSync(folder)) return folder; // a DICOM folder
  return gz; // reported as missing by the reader
}

function idOf(v: unknown, where: string): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9._-]+$/.test(v)) {
    throw new SplitError(
      `${where}: expected a subject id (letters, digits, . _ -), found ${JSON.stringify(v)}.`,
    );
  }
  return v;
}

function relPath(v: unknown, where: string, base: string): string {
  if (typeof v !== 'string' || v === '') {
    throw new SplitError(`${where}: expected a path string, found ${JSON.stringify(v)}.`);
  }
  return path.resolve(base, v);
}

/** Parses a split object (already JSON-parsed). `file` is its path (for relative ids). */
export function parseSplit(json: unknown, file: string, dataDirOverride?: string): Split {
  const ref = path.basename(file);
  if (!isObj(json)) throw new SplitError(`${ref}: expected a JSON object.`);
  if (typeof json.atlas === 'string') {
    const dir = path.dirname(path.resolve(file));
    const images = path.join(dir, 'images');
    const labels = path.join(dir, 'labels');
    const atlasId = idOf(json.atlas, `${ref}: atlas`);
    const list = (key: string): string[] => {
      const v = json[key];
      if (v === undefined) return [];
      if (!Array.isArray(v)) throw new SplitError(`${ref}: ${key} must be an array of ids.`);
      return v.map((x, i) => idOf(x, `${ref}: ${key}[${i}]`));
    };
    const test = list('test');
    const testSet = new Set(test);
    const all = list('train_unlabeled');
    const unl = all.filter((id) => id !== atlasId && !testSet.has(id));
    return {
      format: 'ids',
      file,
      atlas: { id: atlasId, image: niftiFor(images, atlasId), labels: niftiFor(labels, atlasId) },
      unlabeled: unl.map((id) => ({ id, image: niftiFor(images, id) })),
      test: test.map((id) => ({ id, image: niftiFor(images, id), labels: niftiFor(labels, id) })),
      excluded: all.filter((id) => !unl.includes(id)),
    };
  }
  if (isObj(json.atlas)) {
    const base = dataDir(dataDirOverride);
    const subj = (v: unknown, where: string, withLabels: boolean): SplitSubject => {
      if (!isObj(v))
        throw new SplitError(`${ref}: ${where} must be an object {id, image, labels}.`);
      const image = relPath(v.image, `${ref}: ${where}.image`, base);
      const id =
        v.id === undefined
          ? path.basename(image).replace(/\.nii(\.gz)?$/, '')
          : idOf(v.id, `${ref}: ${where}.id`);
      return {
        id,
        image,
        labels: withLabels ? relPath(v.labels, `${ref}: ${where}.labels`, base) : '',
      };
    };
    const arr = (key: string, withLabels: boolean): SplitSubject[] => {
      const v = json[key];
      if (v === undefined) return [];
      if (!Array.isArray(v)) throw new SplitError(`${ref}: ${key} must be an array.`);
      return v.map((x, i) => subj(x, `${key}[${i}]`, withLabels));
    };
    return {
      format: 'explicit',
      file,
      atlas: subj(json.atlas, 'atlas', true),
      unlabeled: arr('train_unlabeled', false).map(({ id, image }) => ({ id, image })),
      test: arr('test', true),
      excluded: [],
    };
  }
  throw new SplitError(
    `${ref}: expected "atlas" to be a subject id (hippocampus-style split.json) or an object {image, labels} (explicit split), found ${JSON.stringify(json.atlas)}.`,
  );
}

export async function readSplit(file: string, dataDirOverride?: string): Promise<Split> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SplitError(`Cannot read the split file ${file}: ${(e as Error).message}.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SplitError(`The split file ${file} is not valid JSON: ${(e as Error).message}.`);
  }
  return parseSplit(json, file, dataDirOverride);
}
