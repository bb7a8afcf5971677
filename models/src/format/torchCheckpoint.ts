/**
 * A safe reader for PyTorch checkpoints (`torch.save`), without Python.
 *
 * A checkpoint is untrusted input: its `data.pkl` is a Python pickle, and a pickle may name any
 * Python callable (`os.system`, `builtins.eval`, …) for the loader to call. This reader never
 * calls anything a file names: it interprets the pickle opcodes itself and accepts only the few
 * globals that a state dict needs — `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`
 * (and its older and Parameter forms), the `torch.*Storage` types — each mapped to our own
 * function. Any other global, and any opcode outside the binary protocols 2–5, is refused with a
 * `CheckpointError` naming it.
 *
 * Formats: the zip archive of `torch.save` since PyTorch 1.6 (`<root>/data.pkl`,
 * `<root>/data/<key>` raw storages, `<root>/version`), stored or deflated entries, zip64 included.
 * Storages of float32, float16, bfloat16 and float64 become Float32Array; integer and bool
 * storages (BatchNorm's `num_batches_tracked`, index buffers) become Float64Array. Storages are
 * read from the file on demand (a 2.5 GB ViT-H checkpoint is never held in memory twice).
 * The legacy (pre-1.6) non-zip format is read too (up to 2 GB: it is read whole).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { inflateRawSync } from 'node:zlib';

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export type StorageDType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

const STORAGES: Record<string, { dtype: StorageDType; bytes: number }> = {
  FloatStorage: { dtype: 'float32', bytes: 4 },
  HalfStorage: { dtype: 'float16', bytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2 },
  DoubleStorage: { dtype: 'float64', bytes: 8 },
  LongStorage: { dtype: 'int64', bytes: 8 },
  IntStorage: { dtype: 'int32', bytes: 4 },
  ShortStorage: { dtype: 'int16', bytes: 2 },
  CharStorage: { dtype: 'int8', bytes: 1 },
  ByteStorage: { dtype: 'uint8', bytes: 1 },
  BoolStorage: { dtype: 'bool', bytes: 1 },
};

/** One tensor of a checkpoint: its shape and (contiguous, row-major) values. */
export interface CheckpointTensor {
  dtype: StorageDType;
  shape: number[];
  /** float storages → Float32Array; integer/bool storages → Float64Array. */
  data: Float32Array | Float64Array;
}

export interface Checkpoint {
  /** Every tensor found, by its dotted key (nested dicts joined with '.'). */
  tensors: Map<string, CheckpointTensor>;
  /** Non-tensor leaves (numbers, strings, booleans) by dotted key, e.g. an epoch counter. */
  scalars: Map<string, number | string | boolean | null>;
  /** The archive's root folder name (e.g. `sam_vit_b_01ec64`) and `version` record. */
  archiveRoot: string;
  formatVersion: string;
}

// ------------------------------------------------------------------ zip archive

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const MAX_EOCD_SEARCH = 0xffff + 22;

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  if (done < length) {
    throw new CheckpointError(
      `the file ends early (wanted ${length} bytes at offset ${offset}): it is truncated — copy or download it again`,
    );
  }
  return buf;
}

function u64(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError('zip: a size is too large');
  return Number(v);
}

async function readCentralDirectory(fh: FileHandle, fileSize: number): Promise<ZipEntry[]> {
  const tailLen = Math.min(fileSize, MAX_EOCD_SEARCH);
  const tail = await readAt(fh, fileSize - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new CheckpointError(
      'no zip directory at the end of the file: it is truncated, or not a torch.save checkpoint',
    );
  }
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  // zip64: a locator 20 bytes before the end record points at the zip64 end record
  if (
    (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) &&
    eocd >= 20 &&
    tail.readUInt32LE(eocd - 20) === 0x07064b50
  ) {
    const recOffset = u64(tail, eocd - 20 + 8);
    const rec = await readAt(fh, recOffset, 56);
    if (rec.readUInt32LE(0) !== 0x06064b50) throw new CheckpointError('zip64: bad end record');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (cdOffset + cdSize > fileSize) {
    throw new CheckpointError(
      'the zip directory points past the end of the file: it is truncated — copy or download it again',
    );
  }
  const cd = await readAt(fh, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) {
      throw new CheckpointError('zip: the central directory is damaged');
    }
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20);
    let size = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extra field: the 0xffffffff fields in order (size, compressed size, offset)
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) {
          size = u64(cd, q);
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(cd, q);
          q += 8;
        }
        if (localOffset === 0xffffffff) localOffset = u64(cd, q);
      }
      e += 4 + len;
    }
    entries.push({ name, method, compressedSize, size, localOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}

async function readEntry(fh: FileHandle, fileSize: number, e: ZipEntry): Promise<Buffer> {
  const head = await readAt(fh, e.localOffset, 30);
  if (head.readUInt32LE(0) !== 0x04034b50) {
    throw new CheckpointError(`zip: entry ${e.name} has no local header (damaged file)`);
  }
  const start = e.localOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
  if (start + e.compressedSize > fileSize) {
    throw new CheckpointError(
      `zip: entry ${e.name} runs past the end of the file: it is truncated — copy or download it again`,
    );
  }
  const raw = await readAt(fh, start, e.compressedSize);
  if (e.method === 0) return raw;
  if (e.method === 8) {
    try {
      return inflateRawSync(raw);
    } catch {
      throw new CheckpointError(`zip: entry ${e.name} does not inflate (damaged file)`);
    }
  }
  throw new CheckpointError(`zip: entry ${e.name} uses compression method ${e.method}`);
}

// ------------------------------------------------------------------ restricted unpickler

/** A storage named by a persistent id: read later from `data/<key>`. */
interface StorageRef {
  kind: 'storage';
  type: string;
  key: string;
  numel: number;
}
interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  size: number[];
  stride: number[];
}
interface Global {
  kind: 'global';
  module: string;
  name: string;
}
/** A Python dict (OrderedDict included), kept in insertion order. */
class PyDict {
  readonly kind = 'dict';
  readonly entries = new Map<string | number, unknown>();
}

const ALLOWED_GLOBALS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  ...Object.keys(STORAGES).map((s) => `torch.${s}`),
]);

function isGlobal(x: unknown, full: string): boolean {
  return (
    typeof x === 'object' &&
    x !== null &&
    (x as Global).kind === 'global' &&
    `${(x as Global).module}.${(x as Global).name}` === full
  );
}

function intList(x: unknown, what: string): number[] {
  if (!Array.isArray(x) || !x.every((v) => typeof v === 'number' && Number.isInteger(v))) {
    throw new CheckpointError(`pickle: ${what} is not a tuple of integers`);
  }
  return x as number[];
}

function call(fn: unknown, args: unknown): unknown {
  if (!Array.isArray(args)) throw new CheckpointError('pickle: REDUCE without an argument tuple');
  if (isGlobal(fn, 'collections.OrderedDict')) {
    if (args.length !== 0) throw new CheckpointError('pickle: OrderedDict with arguments');
    return new PyDict();
  }
  if (
    isGlobal(fn, 'torch._utils._rebuild_tensor_v2') ||
    isGlobal(fn, 'torch._utils._rebuild_tensor')
  ) {
    const [storage, offset, size, stride] = args as unknown[];
    if (
      typeof storage !== 'object' ||
      storage === null ||
      (storage as StorageRef).kind !== 'storage'
    ) {
      throw new CheckpointError('pickle: a tensor without a storage');
    }
    if (typeof offset !== 'number') throw new CheckpointError('pickle: a tensor without an offset');
    const t: TensorRef = {
      kind: 'tensor',
      storage: storage as StorageRef,
      offset,
      size: intList(size, 'a tensor size'),
      stride: intList(stride, 'a tensor stride'),
    };
    if (t.size.length !== t.stride.length) {
      throw new CheckpointError('pickle: a tensor whose size and stride differ in length');
    }
    return t;
  }
  if (
    isGlobal(fn, 'torch._utils._rebuild_parameter') ||
    isGlobal(fn, 'torch._utils._rebuild_parameter_with_state')
  ) {
    const [data] = args as unknown[];
    if (typeof data !== 'object' || data === null || (data as TensorRef).kind !== 'tensor') {
      throw new CheckpointError('pickle: a Parameter without tensor data');
    }
    return data;
  }
  const g = fn as Global;
  throw new CheckpointError(
    `pickle: refused to call ${g?.kind === 'global' ? `${g.module}.${g.name}` : 'a non-global'}`,
  );
}

/**
 * Interprets a pickle (binary protocols 2–5) without calling anything it names: returns the
 * value built from the allowed globals, with storages as references (persistent ids).
 */
export function restrictedUnpickle(bytes: Uint8Array): unknown {
  return unpickleAt(bytes, 0).value;
}

/** One pickle starting at byte `start`: its value and the byte after its STOP. */
function unpickleAt(bytes: Uint8Array, start: number): { value: unknown; end: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let p = start;
  const need = (n: number): void => {
    if (p + n > b.length) throw new CheckpointError('pickle: the data ends early (truncated file)');
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw new CheckpointError('pickle: stack underflow (damaged data)');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new CheckpointError('pickle: stack underflow (damaged data)');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw new CheckpointError('pickle: no MARK (damaged data)');
    return stack.splice(m);
  };
  const str = (n: number): string => {
    need(n);
    const s = b.toString('utf8', p, p + n);
    p += n;
    return s;
  };
  const line = (): string => {
    const end = b.indexOf(0x0a, p);
    if (end < 0) throw new CheckpointError('pickle: the data ends early (truncated file)');
    const s = b.toString('latin1', p, end);
    p = end + 1;
    return s;
  };
  const global = (module: string, name: string): Global => {
    const full = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(full)) {
      throw new CheckpointError(
        `refused: the checkpoint's pickle names ${full}, which a PyTorch state dict never needs. ` +
          'Loading it with torch.load could run code; this file is not imported. ' +
          'Use the checkpoint as published (a state dict), or re-save its state_dict() only.',
      );
    }
    return { kind: 'global', module, name };
  };
  const setItem = (d: unknown, k: unknown, v: unknown): void => {
    if (!(d instanceof PyDict)) throw new CheckpointError('pickle: SETITEM on a non-dict');
    if (typeof k !== 'string' && typeof k !== 'number') {
      throw new CheckpointError('pickle: a dict key that is neither a string nor a number');
    }
    d.entries.set(k, v);
  };
  const persistent = (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new CheckpointError('pickle: a persistent id that is not a storage');
    }
    const [, type, key, , numel, view] = pid as [
      string,
      unknown,
      unknown,
      unknown,
      unknown,
      unknown,
    ];
    if (view !== undefined && view !== null) {
      throw new CheckpointError('pickle: a storage view (legacy format) is not supported');
    }
    const g = type as Global;
    if (g?.kind !== 'global' || g.module !== 'torch' || !(g.name in STORAGES)) {
      throw new CheckpointError('pickle: a storage of an unknown type');
    }
    if (typeof key !== 'string' || typeof numel !== 'number') {
      throw new CheckpointError('pickle: a storage without key or size');
    }
    return { kind: 'storage', type: g.name, key, numel };
  };

  for (;;) {
    need(1);
    const op = b[p++]!;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (b[p]! < 2 || b[p]! > 5) {
          throw new CheckpointError(`pickle: protocol ${b[p]} is not supported (2–5 are)`);
        }
        p += 1;
        break;
      case 0x95: // FRAME
        need(8);
        p += 8;
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') {
          throw new CheckpointError('pickle: STACK_GLOBAL without names');
        }
        stack.push(global(module, name));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        const d = new PyDict();
        for (let i = 0; i + 1 < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const y = pop();
        stack.push([pop(), y]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const z = pop();
        const y = pop();
        stack.push([pop(), y, z]);
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(b[p++]!, top());
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(b.readUInt32LE(p), top());
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const n = op === 0x68 ? 1 : 4;
        need(n);
        const k = n === 1 ? b[p]! : b.readUInt32LE(p);
        p += n;
        if (!memo.has(k)) throw new CheckpointError('pickle: memo lookup of an unknown key');
        stack.push(memo.get(k));
        break;
      }
      case 0x4a: // BININT
        need(4);
        stack.push(b.readInt32LE(p));
        p += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(b[p++]!);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(b.readUInt16LE(p));
        p += 2;
        break;
      case 0x8a: {
        // LONG1
        need(1);
        const n = b[p++]!;
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[p + i]!);
        if (n > 0 && b[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      }
      case 0x58: // BINUNICODE
        need(4);
        p += 4;
        stack.push(str(b.readUInt32LE(p - 4)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        need(1);
        p += 1;
        stack.push(str(b[p - 1]!));
        break;
      case 0x54: // BINSTRING
      case 0x42: {
        // BINBYTES
        need(4);
        const n = b.readUInt32LE(p);
        p += 4;
        stack.push(str(n));
        break;
      }
      case 0x55: // SHORT_BINSTRING
      case 0x43: // SHORT_BINBYTES
        need(1);
        p += 1;
        stack.push(str(b[p - 1]!));
        break;
      case 0x47: // BINFLOAT
        need(8);
        stack.push(b.readDoubleBE(p));
        p += 8;
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args) — only OrderedDict
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x62: {
        // BUILD: state of the object below (an OrderedDict's _metadata): kept out of the result
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict) || !(state instanceof PyDict || state === null)) {
          throw new CheckpointError('pickle: BUILD on something other than a dict');
        }
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = top();
        for (let i = 0; i + 1 < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) throw new CheckpointError('pickle: APPEND to a non-list');
        l.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) throw new CheckpointError('pickle: APPENDS to a non-list');
        l.push(...items);
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) throw new CheckpointError('pickle: damaged data at STOP');
        return { value: stack[0], end: p };
      default:
        throw new CheckpointError(
          `pickle: opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1} is not allowed in a checkpoint`,
        );
    }
  }
}

// ------------------------------------------------------------------ tensors

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** The storage's bytes (little-endian) as numbers: Float32Array for float types, else Float64Array. */
function decodeStorage(raw: Buffer, type: string, numel: number): Float32Array | Float64Array {
  const spec = STORAGES[type]!;
  if (raw.length < numel * spec.bytes) {
    throw new CheckpointError(
      `a ${type} of ${numel} elements has only ${raw.length} bytes (damaged file)`,
    );
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (spec.dtype) {
    case 'float32': {
      const out = new Float32Array(numel);
      // the file is little-endian: on a little-endian host its bytes are the array's bytes
      if (endianness() === 'LE') new Uint8Array(out.buffer).set(raw.subarray(0, 4 * numel));
      else for (let i = 0; i < numel; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case 'float16': {
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    }
    case 'bfloat16': {
      const out = new Float32Array(numel);
      const u = new Uint32Array(1);
      const f = new Float32Array(u.buffer);
      for (let i = 0; i < numel; i++) {
        u[0] = dv.getUint16(2 * i, true) << 16;
        out[i] = f[0]!;
      }
      return out;
    }
    case 'float64': {
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    default: {
      const out = new Float64Array(numel);
      for (let i = 0; i < numel; i++) {
        out[i] =
          spec.dtype === 'int64'
            ? Number(dv.getBigInt64(8 * i, true))
            : spec.dtype === 'int32'
              ? dv.getInt32(4 * i, true)
              : spec.dtype === 'int16'
                ? dv.getInt16(2 * i, true)
                : spec.dtype === 'int8'
                  ? dv.getInt8(i)
                  : dv.getUint8(i);
      }
      return out;
    }
  }
}

/** Gathers a (possibly strided) view of a storage into a contiguous row-major array. */
function gather(
  src: Float32Array | Float64Array,
  t: TensorRef,
  key: string,
): Float32Array | Float64Array {
  const n = t.size.reduce((a, d) => a * d, 1);
  let maxIndex = t.offset;
  for (let i = 0; i < t.size.length; i++) {
    if (t.size[i]! < 0 || t.stride[i]! < 0)
      throw new CheckpointError(`${key}: negative size or stride`);
    if (t.size[i]! > 0) maxIndex += (t.size[i]! - 1) * t.stride[i]!;
  }
  if (n > 0 && maxIndex >= src.length) {
    throw new CheckpointError(`${key}: the tensor reaches past its storage (damaged file)`);
  }
  const out = src instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  const contiguous = t.size.every((_, i) => {
    let expect = 1;
    for (let j = i + 1; j < t.size.length; j++) expect *= t.size[j]!;
    return t.size[i] === 1 || t.stride[i] === expect;
  });
  if (contiguous) {
    out.set(src.subarray(t.offset, t.offset + n));
    return out;
  }
  const idx = new Array<number>(t.size.length).fill(0);
  for (let k = 0; k < n; k++) {
    let at = t.offset;
    for (let i = 0; i < idx.length; i++) at += idx[i]! * t.stride[i]!;
    out[k] = src[at]!;
    for (let i = idx.length - 1; i >= 0; i--) {
      if (++idx[i]! < t.size[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

/** Flattens the unpickled tree into dotted keys and reads each tensor's storage. */
async function buildTensors(
  top: unknown,
  storageBytes: (key: string) => Promise<Buffer>,
  o: { onProgress?: (done: number, total: number) => void },
): Promise<Pick<Checkpoint, 'tensors' | 'scalars'>> {
  const tensorRefs: [string, TensorRef][] = [];
  const scalars = new Map<string, number | string | boolean | null>();
  const walk = (v: unknown, key: string): void => {
    if (v instanceof PyDict) {
      for (const [k, x] of v.entries) walk(x, key ? `${key}.${k}` : String(k));
    } else if (typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor') {
      tensorRefs.push([key, v as TensorRef]);
    } else if (v === null || ['number', 'string', 'boolean'].includes(typeof v)) {
      scalars.set(key, v as number | string | boolean | null);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${key}.${i}`));
    }
  };
  walk(top, '');
  if (tensorRefs.length === 0) throw new CheckpointError('the checkpoint holds no tensors');
  // the last tensor that uses each storage: a storage is dropped once its last view is read
  const lastUse = new Map<string, number>();
  tensorRefs.forEach(([, t], i) => lastUse.set(t.storage.key, i));
  const storages = new Map<string, Float32Array | Float64Array>();
  const tensors = new Map<string, CheckpointTensor>();
  for (const [i, [key, t]] of tensorRefs.entries()) {
    let data = storages.get(t.storage.key);
    if (!data) {
      data = decodeStorage(await storageBytes(t.storage.key), t.storage.type, t.storage.numel);
      storages.set(t.storage.key, data);
    }
    tensors.set(key, {
      dtype: STORAGES[t.storage.type]!.dtype,
      shape: t.size,
      data: gather(data, t, key),
    });
    if (lastUse.get(t.storage.key) === i) storages.delete(t.storage.key);
    o.onProgress?.(i + 1, tensorRefs.length);
  }
  return { tensors, scalars };
}

/** Legacy (PyTorch < 1.6) files above this size are refused: they are read whole. */
const MAX_LEGACY_BYTES = 2 * 1024 ** 3;

/**
 * The legacy format: five pickles in a row (magic number, protocol version, system info, the
 * object with storages as persistent ids, the sorted storage keys), then each storage as an
 * int64 element count and its raw bytes, in the order of the keys.
 */
async function readLegacy(
  fh: FileHandle,
  size: number,
  o: { onProgress?: (done: number, total: number) => void },
): Promise<Checkpoint> {
  if (size > MAX_LEGACY_BYTES) {
    throw new CheckpointError(
      'a legacy (PyTorch < 1.6) checkpoint above 2 GB is not read here; use the checkpoint as published (a zip archive)',
    );
  }
  const b = await readAt(fh, 0, size);
  let p = 0;
  const next = (): unknown => {
    const r = unpickleAt(b, p);
    p = r.end;
    return r.value;
  };
  next(); // magic number (checked by the caller)
  const protocol = next();
  if (protocol !== 1001)
    throw new CheckpointError(`legacy format: unknown protocol ${String(protocol)}`);
  const sysInfo = next();
  if (sysInfo instanceof PyDict && sysInfo.entries.get('little_endian') === false) {
    throw new CheckpointError('the checkpoint was saved big-endian, which is not supported');
  }
  const top = next();
  const keys = next();
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) {
    throw new CheckpointError('legacy format: no storage key list (damaged file)');
  }
  // Storage types by key, from the tensors that use them.
  const types = new Map<string, string>();
  const collect = (v: unknown): void => {
    if (v instanceof PyDict) for (const x of v.entries.values()) collect(x);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor') {
      types.set((v as TensorRef).storage.key, (v as TensorRef).storage.type);
    }
  };
  collect(top);
  const at = new Map<string, Buffer>();
  for (const key of keys as string[]) {
    if (p + 8 > b.length)
      throw new CheckpointError('the file ends early: it is truncated — copy or download it again');
    const numel = Number(b.readBigInt64LE(p));
    p += 8;
    const bytes = numel * STORAGES[types.get(key) ?? 'FloatStorage']!.bytes;
    if (p + bytes > b.length)
      throw new CheckpointError('the file ends early: it is truncated — copy or download it again');
    at.set(key, b.subarray(p, p + bytes));
    p += bytes;
  }
  const { tensors, scalars } = await buildTensors(
    top,
    async (key) => {
      const d = at.get(key);
      if (!d) throw new CheckpointError(`storage ${key} is missing from the file`);
      return d;
    },
    o,
  );
  return { tensors, scalars, archiveRoot: '', formatVersion: 'legacy' };
}

const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]);

/**
 * Reads a `torch.save` checkpoint file: every tensor (by dotted key) and scalar leaf. Throws a
 * `CheckpointError` for anything else — a refused global, a truncated or damaged file, another
 * format — with what to do.
 */
export async function readTorchCheckpoint(
  file: string,
  o: { onProgress?: (done: number, total: number) => void } = {},
): Promise<Checkpoint> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new CheckpointError(
      `cannot open the checkpoint (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  try {
    const size = (await fh.stat()).size;
    if (size < 22) throw new CheckpointError('the file is too small to be a PyTorch checkpoint');
    const head = await readAt(fh, 0, Math.min(size, 16));
    if (head.subarray(0, LEGACY_MAGIC.length).equals(LEGACY_MAGIC)) {
      return await readLegacy(fh, size, o);
    }
    if (head.readUInt32LE(0) !== 0x04034b50) {
      throw new CheckpointError(
        head[0] === 0x80
          ? 'a bare pickle, not a torch.save archive: give the .pth/.pt file as published'
          : 'not a PyTorch checkpoint (a torch.save file is a zip archive starting with "PK")',
      );
    }
    const entries = await readCentralDirectory(fh, size);
    const pkl = entries.find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
    if (!pkl)
      throw new CheckpointError('the archive has no <root>/data.pkl: not a torch.save checkpoint');
    const root = pkl.name.slice(0, pkl.name.indexOf('/'));
    const byName = new Map(entries.map((e) => [e.name, e]));
    const versionEntry = byName.get(`${root}/version`) ?? byName.get(`${root}/.data/version`);
    const formatVersion = versionEntry
      ? (await readEntry(fh, size, versionEntry)).toString('utf8').trim()
      : '';
    const byteorder = byName.get(`${root}/byteorder`);
    if (byteorder && (await readEntry(fh, size, byteorder)).toString('utf8').trim() !== 'little') {
      throw new CheckpointError('the checkpoint was saved big-endian, which is not supported');
    }
    const top = restrictedUnpickle(await readEntry(fh, size, pkl));
    const { tensors, scalars } = await buildTensors(
      top,
      async (key) => {
        const entry = byName.get(`${root}/data/${key}`);
        if (!entry) throw new CheckpointError(`storage ${key} is missing from the archive`);
        return readEntry(fh, size, entry);
      },
      o,
    );
    return { tensors, scalars, archiveRoot: root, formatVersion };
  } finally {
    await fh.close();
  }
}
