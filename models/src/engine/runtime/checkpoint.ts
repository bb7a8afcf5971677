/**
 * Checkpoint files: every state tensor of a training run (parameters and optimiser state), the
 * step, the seed and RNG state, and a hash of the training graph's state layout. One binary file:
 *
 *   "RRLCKPT1" | u32 LE header byte length | header JSON (UTF-8, space-padded to a multiple of 4)
 *   | float32 LE data of each tensor, in header order
 *
 * The header carries the SHA-256 of the data, so a truncated or corrupted file is refused.
 * Writes are atomic: a temporary file in the same folder, fsync, then rename over the target.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { RngState } from './rng.js';
import { elementCount, type HostTensor, type TrainingGraphSpec } from './types.js';

const MAGIC = 'RRLCKPT1';
export const CHECKPOINT_FORMAT_VERSION = 1;

export interface CheckpointTensorEntry {
  name: string;
  dims: number[];
  kind: 'param' | 'optim';
  /** Byte offset in the data section. */
  offset: number;
}

export interface CheckpointHeader {
  formatVersion: number;
  /** Training steps completed (the next step is step + 1). */
  step: number;
  seed: number;
  rng: RngState;
  specHash: string;
  provider: string;
  savedAt: string;
  dataSha256: string;
  tensors: CheckpointTensorEntry[];
  /** Free-form, e.g. the learning-rate schedule or the last loss. */
  extra?: Record<string, unknown>;
}

export interface Checkpoint {
  header: CheckpointHeader;
  tensors: Map<string, HostTensor>;
}

/** A hash of what a checkpoint must match to be loaded: the state tensors' names, kinds and shapes. */
export function specHash(spec: TrainingGraphSpec): string {
  const layout = spec.stateInputs.map((s) => [s.name, s.kind, [...s.dims]]);
  return createHash('sha256').update(JSON.stringify(layout)).digest('hex').slice(0, 32);
}

export async function writeCheckpoint(
  file: string,
  header: Omit<CheckpointHeader, 'formatVersion' | 'dataSha256' | 'tensors' | 'savedAt'>,
  tensors: readonly { name: string; kind: 'param' | 'optim'; tensor: HostTensor }[],
): Promise<void> {
  const entries: CheckpointTensorEntry[] = [];
  let offset = 0;
  const hash = createHash('sha256');
  for (const t of tensors) {
    const n = elementCount(t.tensor.dims);
    if (t.tensor.data.length !== n) {
      throw new Error(
        `Checkpoint tensor '${t.name}' has ${t.tensor.data.length} values but its dims [${t.tensor.dims.join(', ')}] need ${n}.`,
      );
    }
    entries.push({ name: t.name, dims: [...t.tensor.dims], kind: t.kind, offset });
    offset += n * 4;
    hash.update(bytesOf(t.tensor.data));
  }
  const full: CheckpointHeader = {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    ...header,
    savedAt: new Date().toISOString(),
    dataSha256: hash.digest('hex'),
    tensors: entries,
  };
  let json = Buffer.from(JSON.stringify(full), 'utf8');
  const pad = (4 - ((MAGIC.length + 4 + json.length) % 4)) % 4;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, MAGIC.length);

  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(prefix);
    await fh.write(json);
    for (const t of tensors) await fh.write(bytesOf(t.tensor.data));
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
}

export async function readCheckpoint(file: string): Promise<Checkpoint> {
  const buf = await readFile(file);
  const what = `Checkpoint ${file}`;
  if (buf.length < MAGIC.length + 4 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new Error(
      `${what} is not a checkpoint of this engine (expected it to start with ${MAGIC}).`,
    );
  }
  const headerLength = buf.readUInt32LE(MAGIC.length);
  const dataStart = MAGIC.length + 4 + headerLength;
  if (dataStart > buf.length)
    throw new Error(`${what} is truncated (header runs past the end of the file).`);
  const header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, dataStart)) as CheckpointHeader;
  if (header.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new Error(
      `${what} has format version ${header.formatVersion}; this engine reads version ${CHECKPOINT_FORMAT_VERSION}.`,
    );
  }
  const data = buf.subarray(dataStart);
  const expectedBytes = header.tensors.reduce((a, t) => a + elementCount(t.dims) * 4, 0);
  if (data.length !== expectedBytes) {
    throw new Error(
      `${what} is truncated or corrupt: ${data.length} data bytes, the header describes ${expectedBytes}. Use an older checkpoint.`,
    );
  }
  const digest = createHash('sha256').update(data).digest('hex');
  if (digest !== header.dataSha256) {
    throw new Error(
      `${what} is corrupt: its data does not match the SHA-256 in its header. Use an older checkpoint.`,
    );
  }
  const tensors = new Map<string, HostTensor>();
  for (const t of header.tensors) {
    const n = elementCount(t.dims);
    // Copy into an aligned buffer (the data section is 4-byte aligned in the file, but the Buffer
    // from readFile may sit at any offset of a shared pool).
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(data.subarray(t.offset, t.offset + n * 4));
    tensors.set(t.name, { data: out, dims: t.dims });
  }
  return { header, tensors };
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
