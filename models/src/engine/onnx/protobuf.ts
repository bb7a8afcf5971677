/**
 * A minimal protocol-buffers encoder/decoder (wire types 0, 2 and 5), enough for ONNX ModelProto.
 * Numbers up to 2^53 are encoded exactly; negative int64 values use 10-byte two's complement.
 */

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export class PbWriter {
  private readonly chunks: Uint8Array[] = [];
  private buf: number[] = [];

  private flush(): void {
    if (this.buf.length > 0) {
      this.chunks.push(Uint8Array.from(this.buf));
      this.buf = [];
    }
  }

  private rawVarint(value: number | bigint): void {
    if (typeof value === 'bigint' || value < 0) {
      let v = BigInt.asUintN(64, BigInt(value));
      while (v >= 0x80n) {
        this.buf.push(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      this.buf.push(Number(v));
      return;
    }
    if (!Number.isSafeInteger(value))
      throw new Error(`varint: expected a safe integer, got ${value}`);
    let v = value;
    while (v >= 0x80) {
      this.buf.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.buf.push(v);
  }

  private tag(field: number, wire: number): void {
    this.rawVarint(field * 8 + wire);
  }

  varint(field: number, value: number | bigint): this {
    this.tag(field, 0);
    this.rawVarint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.buf.push(b[0]!, b[1]!, b[2]!, b[3]!);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.rawVarint(data.byteLength);
    this.flush();
    this.chunks.push(data);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, textEncoder.encode(s));
  }

  message(field: number, w: PbWriter): this {
    return this.bytes(field, w.finish());
  }

  /** Packed repeated varints. */
  packedVarints(field: number, values: readonly number[]): this {
    const inner = new PbWriter();
    for (const v of values) inner.rawVarint(v);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0]!;
    let n = 0;
    for (const c of this.chunks) n += c.byteLength;
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    this.chunks.length = 0;
    this.chunks.push(out);
    return out;
  }
}

export interface PbField {
  field: number;
  wire: 0 | 1 | 2 | 5;
  /** varint value (wire 0) as bigint; fixed32/fixed64 raw bytes; length-delimited payload. */
  varint?: bigint;
  data?: Uint8Array;
}

/** Decodes one message level into its fields (in order). */
export function pbDecode(bytes: Uint8Array): PbField[] {
  const out: PbField[] = [];
  let p = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (p >= bytes.length) throw new Error('protobuf: truncated varint');
      const b = bytes[p++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (p < bytes.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, varint: readVarint() });
    else if (wire === 2) {
      const len = Number(readVarint());
      out.push({ field, wire, data: bytes.subarray(p, p + len) });
      p += len;
    } else if (wire === 5) {
      out.push({ field, wire, data: bytes.subarray(p, p + 4) });
      p += 4;
    } else if (wire === 1) {
      out.push({ field, wire, data: bytes.subarray(p, p + 8) });
      p += 8;
    } else throw new Error(`protobuf: unsupported wire type ${wire} for field ${field}`);
  }
  return out;
}

export function pbString(data: Uint8Array | undefined): string {
  return data ? textDecoder.decode(data) : '';
}

/** Decodes packed varints (or a single unpacked one). */
export function pbPackedVarints(f: PbField): bigint[] {
  if (f.wire === 0) return [f.varint!];
  const res: bigint[] = [];
  const bytes = f.data!;
  let p = 0;
  while (p < bytes.length) {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[p++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    res.push(result);
  }
  return res;
}
