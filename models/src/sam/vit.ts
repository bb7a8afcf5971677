/**
 * SAM's ViT image encoder (ViT-B/L/H, and MedSAM's ViT-B, which has the same architecture) as an
 * engine graph, with the weights of a checkpoint by their published key names (`image_encoder.…`).
 *
 * The architecture as published with segment-anything: patch embedding (16×16 conv, stride 16),
 * absolute position embedding, `depth` blocks of pre-norm attention + MLP (LayerNorm eps 1e-6,
 * GELU), windowed attention (14×14 windows, zero padding) except in the global blocks, attention
 * with decomposed relative positions (q·Rh and q·Rw added to the logits), and the neck (1×1 conv →
 * LayerNorm2d → 3×3 conv → LayerNorm2d) to 256 channels.
 *
 * Every hyper-parameter is read from the weights' shapes (width, depth, heads from the
 * relative-position tables, window size, which blocks are global), so any encoder of this family
 * imports. Input sizes other than the pretrained 1024 (a multiple of 16, e.g. 256 or 512): the
 * position embedding is resized bilinearly (align_corners false) to the token grid at import, and
 * the global blocks' relative-position tables linearly, as SAM's own `get_rel_pos` does.
 */
import { attr, Graph, type Value } from '../engine/graph/graph.js';
import type { CheckpointTensor } from '../format/torchCheckpoint.js';
import { SamImportError, type SamWeights } from './weights.js';

export interface SamVitConfig {
  embedDim: number;
  depth: number;
  heads: number;
  windowSize: number;
  globalAttnIndexes: number[];
  /** The token grid the position embedding was trained for (64 for 1024-pixel input). */
  pretrainedGrid: number;
  outChans: number;
}

const P = 'image_encoder.';

/** The encoder's configuration, read from the checkpoint's tensor shapes. */
export function samVitConfig(w: SamWeights): SamVitConfig {
  const pe = w.get(`${P}patch_embed.proj.weight`).shape;
  const pos = w.get(`${P}pos_embed`).shape;
  const embedDim = pe[0]!;
  if (pe[1] !== 3 || pe[2] !== 16 || pe[3] !== 16) {
    throw new SamImportError(
      `image_encoder.patch_embed.proj.weight is [${pe.join(', ')}], not [width, 3, 16, 16]: not a SAM ViT encoder`,
    );
  }
  if (pos.length !== 4 || pos[1] !== pos[2] || pos[3] !== embedDim) {
    throw new SamImportError(
      `image_encoder.pos_embed is [${pos.join(', ')}]: not a SAM ViT encoder`,
    );
  }
  let depth = 0;
  while (w.has(`${P}blocks.${depth}.attn.qkv.weight`)) depth++;
  if (depth === 0) throw new SamImportError('no image_encoder.blocks.N: not a SAM ViT encoder');
  const grid = pos[1]!;
  const relLens: number[] = [];
  let headDim = 0;
  for (let i = 0; i < depth; i++) {
    const r = w.get(`${P}blocks.${i}.attn.rel_pos_h`).shape;
    relLens.push(r[0]!);
    headDim = r[1]!;
  }
  const globalAttnIndexes = relLens.flatMap((l, i) => (l === 2 * grid - 1 ? [i] : []));
  const windowed = relLens.filter((l) => l !== 2 * grid - 1);
  const windowSize = windowed.length > 0 ? (windowed[0]! + 1) / 2 : 0;
  if (windowed.some((l) => l !== windowed[0])) {
    throw new SamImportError('the windowed blocks have different relative-position table sizes');
  }
  if (headDim === 0 || embedDim % headDim !== 0) {
    throw new SamImportError(`width ${embedDim} is not a multiple of the head width ${headDim}`);
  }
  const outChans = w.get(`${P}neck.0.weight`).shape[0]!;
  return {
    embedDim,
    depth,
    heads: embedDim / headDim,
    windowSize,
    globalAttnIndexes,
    pretrainedGrid: grid,
    outChans,
  };
}

/** PyTorch's linear interpolation (align_corners false, no antialias) along one axis. */
function linearTaps(inSize: number, outSize: number): { i0: number; i1: number; t: number }[] {
  const scale = inSize / outSize;
  return Array.from({ length: outSize }, (_, o) => {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    return { i0, i1: Math.min(i0 + 1, inSize - 1), t: src - i0 };
  });
}

/** [L, C] table → [n, C] by linear interpolation along L (SAM's get_rel_pos resize). */
export function resizeRelPos(table: Float32Array, len: number, c: number, n: number): Float32Array {
  if (len === n) return table;
  const out = new Float32Array(n * c);
  for (const [o, { i0, i1, t }] of linearTaps(len, n).entries()) {
    for (let k = 0; k < c; k++)
      out[o * c + k] = table[i0 * c + k]! * (1 - t) + table[i1 * c + k]! * t;
  }
  return out;
}

/** [1, G, G, C] position embedding → [1, g, g, C], bilinear (align_corners false). */
export function resizePosEmbed(pos: Float32Array, G: number, c: number, g: number): Float32Array {
  if (G === g) return pos;
  const taps = linearTaps(G, g);
  const out = new Float32Array(g * g * c);
  for (const [y, ty] of taps.entries()) {
    for (const [x, tx] of taps.entries()) {
      const o = (y * g + x) * c;
      const a = (ty.i0 * G + tx.i0) * c;
      const b = (ty.i0 * G + tx.i1) * c;
      const d = (ty.i1 * G + tx.i0) * c;
      const e = (ty.i1 * G + tx.i1) * c;
      for (let k = 0; k < c; k++) {
        const top = pos[a + k]! * (1 - tx.t) + pos[b + k]! * tx.t;
        const bot = pos[d + k]! * (1 - tx.t) + pos[e + k]! * tx.t;
        out[o + k] = top * (1 - ty.t) + bot * ty.t;
      }
    }
  }
  return out;
}

/**
 * SAM's get_rel_pos as a constant: R[q, k, :] = table[q − k + size − 1] (equal query and key
 * sizes), returned transposed as [size, C, size] for a batched MatMul q·Rᵀ.
 */
function relPosTransposed(table: Float32Array, len: number, c: number, size: number): Float32Array {
  const r = resizeRelPos(table, len, c, 2 * size - 1);
  const out = new Float32Array(size * c * size);
  for (let q = 0; q < size; q++) {
    for (let k = 0; k < size; k++) {
      const row = q - k + size - 1;
      for (let j = 0; j < c; j++) out[(q * c + j) * size + k] = r[row * c + j]!;
    }
  }
  return out;
}

function transpose2d(w: CheckpointTensor): Float32Array {
  const [o, i] = w.shape as [number, number];
  const out = new Float32Array(o * i);
  for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) out[b * o + a] = w.data[a * i + b]!;
  return out;
}

/** Pieces shared by the SAM encoders' graphs. */
export class SamGraph {
  readonly g = new Graph();
  constructor(readonly w: SamWeights) {}

  const(key: string): Value {
    const t = this.w.get(key);
    return this.g.constant(t.data as Float32Array, t.shape, 'float32', 'w');
  }

  /** x [..., in] · Wᵀ + b with a torch Linear's weight [out, in]. */
  linear(x: Value, key: string, bias = true): Value {
    const wt = this.w.get(`${key}.weight`);
    const [o, i] = wt.shape as [number, number];
    const y = this.g.matmul(x, this.g.constant(transpose2d(wt), [i, o], 'float32', 'w'));
    return bias ? this.g.add(y, this.const(`${key}.bias`)) : y;
  }

  /** LayerNorm over the last axis (torch nn.LayerNorm). */
  layerNorm(x: Value, key: string, eps: number): Value {
    return this.g.node(
      'LayerNormalization',
      [x, this.const(`${key}.weight`), this.const(`${key}.bias`)],
      [{ dtype: 'float32', shape: x.shape }],
      { axis: attr.i(-1), epsilon: attr.f(eps) },
    )[0]!;
  }

  /** LayerNorm over the channel axis of [N, C, H, W] (SAM's LayerNorm2d). */
  layerNorm2d(x: Value, key: string, eps = 1e-6): Value {
    const g = this.g;
    const c = x.shape[1]!;
    const mu = g.reduceMean(x, [1], true);
    const xc = g.sub(x, mu);
    const v = g.reduceMean(g.mul(xc, xc), [1], true);
    const xh = g.div(xc, g.sqrt(g.add(v, eps)));
    const sw = g.reshape(this.const(`${key}.weight`), [1, c, 1, 1]);
    const sb = g.reshape(this.const(`${key}.bias`), [1, c, 1, 1]);
    return g.add(g.mul(xh, sw), sb);
  }

  /** Exact (erf) GELU, as torch's nn.GELU(). */
  gelu(x: Value): Value {
    const g = this.g;
    const e = g.node('Erf', [g.mul(x, Math.SQRT1_2)], [{ dtype: 'float32', shape: x.shape }])[0]!;
    return g.mul(g.mul(x, 0.5), g.add(e, 1));
  }

  /**
   * `fn` applied to the ws×ws windows of [1, H, W, C] tokens (zero padding at the bottom/right to
   * whole windows, as SAM's and TinyViT's window partition): windows [n, ws, ws, C] in row-major
   * window order; the result is put back and cropped to [1, H, W, C].
   */
  windowed(x: Value, ws: number, fn: (windows: Value) => Value): Value {
    const g = this.g;
    const [, H, W, C] = x.shape as [number, number, number, number];
    const ph = (ws - (H % ws)) % ws;
    const pw = (ws - (W % ws)) % ws;
    const nh = (H + ph) / ws;
    const nw = (W + pw) / ws;
    const xp = g.pad(x, [0, 0, 0, 0, 0, ph, pw, 0]);
    const win = g.reshape(g.transpose(g.reshape(xp, [1, nh, ws, nw, ws, C]), [0, 1, 3, 2, 4, 5]), [
      nh * nw,
      ws,
      ws,
      C,
    ]);
    const back = g.reshape(
      g.transpose(g.reshape(fn(win), [1, nh, nw, ws, ws, C]), [0, 1, 3, 2, 4, 5]),
      [1, H + ph, W + pw, C],
    );
    return ph > 0 || pw > 0 ? g.slice(back, [0, 0], [H, W], [1, 2]) : back;
  }

  /** SAM's neck: [1, C, g, g] → 1×1 conv → LayerNorm2d → 3×3 conv → LayerNorm2d → [1, 256, g, g]. */
  neck(x: Value): Value {
    const y = this.layerNorm2d(this.conv2d(x, `${P}neck.0`, { bias: false }), `${P}neck.1`);
    return this.layerNorm2d(this.conv2d(y, `${P}neck.2`, { pad: 1, bias: false }), `${P}neck.3`);
  }

  conv2d(x: Value, key: string, o: { stride?: number; pad?: number; bias?: boolean } = {}): Value {
    const b = o.bias === false ? undefined : this.const(`${key}.bias`);
    return this.g.conv(x, this.const(`${key}.weight`), b, {
      strides: o.stride ?? 1,
      pads: o.pad ?? 0,
    });
  }
}

/**
 * Attention with decomposed relative positions over [B, h, w, C] tokens: returns [B, h, w, C].
 */
function attention(s: SamGraph, x: Value, key: string, heads: number): Value {
  const g = s.g;
  const [B, h, w, C] = x.shape as [number, number, number, number];
  const hd = C / heads;
  const BH = B * heads;
  const qkv = g.reshape(s.linear(x, `${key}.qkv`), [B, h * w, 3, heads, hd]);
  const t = g.reshape(g.transpose(qkv, [2, 0, 3, 1, 4]), [3, BH, h * w, hd]);
  const part = (i: number): Value => g.reshape(g.slice(t, [i], [i + 1], [0]), [BH, h * w, hd]);
  const q = part(0);
  const k = part(1);
  const v = part(2);
  let attn = g.matmul(g.mul(q, hd ** -0.5), g.transpose(k, [0, 2, 1]));
  const relTable = (axis: 'h' | 'w'): Value => {
    const tab = s.w.get(`${key}.rel_pos_${axis}`);
    const size = axis === 'h' ? h : w;
    const [len, c] = tab.shape as [number, number];
    return g.constant(
      relPosTransposed(tab.data as Float32Array, len, c, size),
      [size, c, size],
      'float32',
      'relpos',
    );
  };
  const rq = g.reshape(q, [BH, h, w, hd]);
  // rel_h[b, y, x, ky] = Σc rq[b, y, x, c]·Rh[y, ky, c]: batched over y
  const relH = g.transpose(
    g.reshape(g.matmul(g.reshape(g.transpose(rq, [1, 0, 2, 3]), [h, BH * w, hd]), relTable('h')), [
      h,
      BH,
      w,
      h,
    ]),
    [1, 0, 2, 3],
  );
  // rel_w[b, y, x, kx] = Σc rq[b, y, x, c]·Rw[x, kx, c]: batched over x
  const relW = g.transpose(
    g.reshape(g.matmul(g.reshape(g.transpose(rq, [2, 0, 1, 3]), [w, BH * h, hd]), relTable('w')), [
      w,
      BH,
      h,
      w,
    ]),
    [1, 2, 0, 3],
  );
  const a5 = g.add(
    g.add(g.reshape(attn, [BH, h, w, h, w]), g.reshape(relH, [BH, h, w, h, 1])),
    g.reshape(relW, [BH, h, w, 1, w]),
  );
  attn = g.softmax(g.reshape(a5, [BH, h * w, h * w]), -1);
  const o = g.reshape(g.matmul(attn, v), [B, heads, h, w, hd]);
  return s.linear(g.reshape(g.transpose(o, [0, 2, 3, 1, 4]), [B, h, w, C]), `${key}.proj`);
}

/** Windowed (ws > 0) or global attention of one block over [1, H, W, C]. */
function blockAttention(s: SamGraph, x: Value, key: string, heads: number, ws: number): Value {
  return ws === 0
    ? attention(s, x, key, heads)
    : s.windowed(x, ws, (win) => attention(s, win, key, heads));
}

/**
 * The ViT image encoder graph for an input of `size`×`size` pixels (a multiple of 16): input
 * `image` [1, 3, size, size] (SAM-normalised RGB), output `image_embeddings` [1, 256, size/16, size/16].
 */
export function samVitGraph(
  w: SamWeights,
  size: number,
): { graph: Graph; output: Value; config: SamVitConfig } {
  if (!Number.isInteger(size) || size < 16 || size % 16 !== 0) {
    throw new SamImportError(
      `input size ${size}: a multiple of 16 (e.g. 256, 512, 1024) is needed`,
    );
  }
  const cfg = samVitConfig(w);
  const s = new SamGraph(w);
  const g = s.g;
  const grid = size / 16;
  const C = cfg.embedDim;
  const image = g.input('image', [1, 3, size, size]);
  let x = g.transpose(s.conv2d(image, `${P}patch_embed.proj`, { stride: 16 }), [0, 2, 3, 1]);
  const pos = w.get(`${P}pos_embed`);
  x = g.add(
    x,
    g.constant(
      resizePosEmbed(pos.data as Float32Array, cfg.pretrainedGrid, C, grid),
      [1, grid, grid, C],
      'float32',
      'pos',
    ),
  );
  for (let i = 0; i < cfg.depth; i++) {
    const key = `${P}blocks.${i}`;
    const ws = cfg.globalAttnIndexes.includes(i) ? 0 : cfg.windowSize;
    const a = blockAttention(s, s.layerNorm(x, `${key}.norm1`, 1e-6), `${key}.attn`, cfg.heads, ws);
    x = g.add(x, a);
    const m = s.linear(
      s.gelu(s.linear(s.layerNorm(x, `${key}.norm2`, 1e-6), `${key}.mlp.lin1`)),
      `${key}.mlp.lin2`,
    );
    x = g.add(x, m);
  }
  return { graph: g, output: s.neck(g.transpose(x, [0, 3, 1, 2])), config: cfg };
}
