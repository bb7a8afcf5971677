/**
 * Imported SAM teachers: a published checkpoint (SAM ViT-B/L/H, MedSAM ViT-B, MobileSAM) is
 * converted once into an ONNX image encoder at one input size and kept with a card:
 *
 *   <teachersDir>/<id>/encoder.onnx   (+ encoder.onnx.data for encoders past 2 GB)
 *   <teachersDir>/<id>/teacher.json   the card: variant, source file name, SHA-256, input size, …
 *
 * The id names the variant, the checkpoint's hash and the size (`medsam-vit-b-1a2b3c4d-256`), so
 * importing the same file at the same size again finds the existing teacher. The conversion is
 * checked before the teacher appears: onnxruntime loads the encoder and runs it on a blank image.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, writeSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { emitGraph } from '../engine/graph/emit.js';
import { readTorchCheckpoint } from '../format/torchCheckpoint.js';
import { samTinyVitGraph } from './tinyvit.js';
import { samVitGraph } from './vit.js';
import type { TeacherCard } from '@rrl/core/api.js';
import { SamImportError, SamWeights, variantName } from './weights.js';

export type { TeacherCard };

export const ENCODER_FILE = 'encoder.onnx';
export const CARD_FILE = 'teacher.json';
/** The input size chosen from the measured seconds per slice (README, "SAM teacher"). */
export const DEFAULT_TEACHER_INPUT_SIZE = 256;
/** An input size a teacher can be imported at: a multiple of 16 from 64 to 1024 pixels. */
export function isTeacherInputSize(size: number): boolean {
  return Number.isInteger(size) && size >= 64 && size <= 1024 && size % 16 === 0;
}
/** Encoders above this many weight bytes keep their weights in external data. */
const EXTERNAL_DATA_BYTES = 1.5 * 1024 ** 3;

export interface Teachers {
  dir: string;
}

export function teacherSummary(c: TeacherCard): string {
  return `${c.variant} (${c.sourceFile}, sha256 ${c.sha256.slice(0, 12)}…, ${c.inputSize} px, imported ${c.importedAt.slice(0, 10)})`;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/** Every imported teacher's card, newest first; folders without a valid card are left out. */
export async function listTeachers(dir: string): Promise<TeacherCard[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const cards: TeacherCard[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    try {
      const c = JSON.parse(await readFile(path.join(dir, n, CARD_FILE), 'utf8')) as TeacherCard;
      if (c.formatVersion === 1 && c.id === n && existsSync(path.join(dir, n, ENCODER_FILE))) {
        cards.push(c);
      }
    } catch {
      /* not a teacher folder */
    }
  }
  return cards.sort((a, b) => b.importedAt.localeCompare(a.importedAt));
}

export async function findTeacher(dir: string, id: string): Promise<TeacherCard | undefined> {
  return (await listTeachers(dir)).find((c) => c.id === id);
}

export function teacherEncoderPath(dir: string, id: string): string {
  return path.join(dir, id, ENCODER_FILE);
}

/** What identifies a teacher's features: its checkpoint's hash and its input size. */
export function teacherCacheKey(card: Pick<TeacherCard, 'sha256' | 'inputSize'>): string {
  return `${card.sha256.slice(0, 16)}-${card.inputSize}`;
}

/** The folder of a teacher's cached features (see the distill-sam stage). */
export function teacherFeatureDir(
  dir: string,
  card: Pick<TeacherCard, 'sha256' | 'inputSize'>,
): string {
  return path.join(dir, 'features', teacherCacheKey(card));
}

/** Removes a teacher and its cached features; false when there is no such teacher. */
export async function removeTeacher(dir: string, id: string): Promise<boolean> {
  const card = await findTeacher(dir, id);
  if (!card) return false;
  await rm(path.join(dir, id), { recursive: true, force: true });
  await rm(teacherFeatureDir(dir, card), { recursive: true, force: true });
  return true;
}

export interface ImportOptions {
  dir: string;
  /** Input size in pixels (multiple of 16); default DEFAULT_TEACHER_INPUT_SIZE. */
  inputSize?: number;
  /** The name the checkpoint is known by (default: the file's name); it decides SAM vs MedSAM. */
  sourceName?: string;
  /** Overrides the detected variant name, e.g. "MedSAM ViT-B". */
  variant?: string;
  onProgress?: (what: string) => void;
  /** Weights above this many bytes go to external data (default 1.5 GB, below the 2 GB protobuf limit). */
  externalDataBytes?: number;
}

/**
 * Converts a checkpoint into a teacher (or finds the one already converted from the same file at
 * the same size). Throws CheckpointError / SamImportError with what to do.
 */
export async function importSamCheckpoint(
  file: string,
  o: ImportOptions,
): Promise<{ card: TeacherCard; existed: boolean }> {
  const started = Date.now();
  const size = o.inputSize ?? DEFAULT_TEACHER_INPUT_SIZE;
  if (!isTeacherInputSize(size)) {
    throw new SamImportError(
      `input size ${size}: give a multiple of 16 from 64 to 1024 (256 is the default)`,
    );
  }
  const sourceFile = path.basename(o.sourceName ?? file);
  o.onProgress?.('hashing the checkpoint');
  const sha256 = await sha256File(file);
  const same = (await listTeachers(o.dir)).find((c) => c.sha256 === sha256 && c.inputSize === size);
  if (same) return { card: same, existed: true };

  o.onProgress?.('reading the checkpoint');
  const ck = await readTorchCheckpoint(file);
  const w = SamWeights.fromCheckpoint(ck);
  const family = w.family();
  o.onProgress?.('building the encoder graph');
  const built = family === 'vit' ? samVitGraph(w, size) : samTinyVitGraph(w, size);
  const variant =
    o.variant ??
    variantName(
      family,
      'embedDim' in built.config
        ? { embedDim: built.config.embedDim, depth: built.config.depth }
        : {},
      sourceFile,
    );
  const id = `${slug(variant)}-${sha256.slice(0, 8)}-${size}`;
  const parameters = w.encoderParameterCount();
  ck.tensors.clear();

  await mkdir(o.dir, { recursive: true });
  const tmp = path.join(o.dir, `.import-${id}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    o.onProgress?.('writing the ONNX encoder');
    const external = parameters * 4 > (o.externalDataBytes ?? EXTERNAL_DATA_BYTES);
    const dataFile = `${ENCODER_FILE}.data`;
    let offset = 0;
    const fd = external ? openSync(path.join(tmp, dataFile), 'w') : undefined;
    const model = emitGraph(built.graph, {
      inputs: [built.graph.value('image')],
      outputs: [['image_embeddings', built.output]],
      graphName: 'sam_image_encoder',
      docString: `${variant} image encoder at ${size}×${size}, imported from ${sourceFile} (sha256 ${sha256})`,
      ...(external
        ? {
            externalData: {
              location: dataFile,
              minBytes: 1024,
              append: (bytes: Uint8Array): number => {
                const at = offset;
                writeSync(fd!, bytes);
                offset += bytes.byteLength;
                return at;
              },
            },
          }
        : {}),
    });
    if (fd !== undefined) closeSync(fd);
    await writeFile(path.join(tmp, ENCODER_FILE), model);

    o.onProgress?.('checking the encoder with onnxruntime');
    const session = await ort.InferenceSession.create(path.join(tmp, ENCODER_FILE), {
      executionProviders: ['cpu'],
    });
    try {
      const r = await session.run({
        image: new ort.Tensor('float32', new Float32Array(3 * size * size), [1, 3, size, size]),
      });
      const e = r.image_embeddings;
      const g = size / 16;
      if (!e || e.dims.join() !== [1, 256, g, g].join()) {
        throw new SamImportError(
          `the converted encoder answered [${e?.dims.join(', ')}], not [1, 256, ${g}, ${g}]`,
        );
      }
      if (!(e.data as Float32Array).every(Number.isFinite)) {
        throw new SamImportError('the converted encoder gives non-finite values on a blank image');
      }
    } finally {
      await session.release();
    }
    const card: TeacherCard = {
      formatVersion: 1,
      id,
      variant,
      family,
      sourceFile,
      sha256,
      inputSize: size,
      embeddingShape: [256, size / 16, size / 16],
      parameters,
      importedAt: new Date().toISOString(),
      conversionSeconds: Math.round((Date.now() - started) / 100) / 10,
      keyPrefix: w.prefix,
    };
    await writeFile(path.join(tmp, CARD_FILE), JSON.stringify(card, null, 2) + '\n');
    await rm(path.join(o.dir, id), { recursive: true, force: true });
    await rename(tmp, path.join(o.dir, id));
    return { card, existed: false };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
