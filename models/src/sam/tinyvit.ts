/**
 * MobileSAM's image encoder (TinyViT) as an engine graph, with the weights of `mobile_sam.pt` by
 * their published key names (`image_encoder.…`).
 *
 * The architecture (TinyViT as MobileSAM configures it for SAM): a conv patch embedding (two 3×3
 * stride-2 Conv+BN, GELU between) to 1/4 resolution; stage 0 of MBConv blocks (1×1 expand ×4,
 * 3×3 depth-wise, 1×1 project, residual, GELU); patch merging between stages (1×1, 3×3
 * depth-wise with stride 2 — stride 1 into a 320/448/576-wide stage, which keeps the last two
 * stages at 1/16 — and 1×1, GELUs between); stages 1–3 of TinyViT blocks: windowed attention
 * (LayerNorm inside, per-head q/k/v, learned bias per window offset (|dy|, |dx|)), a 3×3
 * depth-wise Conv+BN, and a pre-norm MLP; then SAM's neck to 256 channels at 1/16 resolution.
 *
 * BatchNorm (eval) is folded into the convolution before it. Widths, depths, heads (from the
 * attention-bias tables) and window sizes (√ of their offset count) are read from the weights.
 */
import type { Value } from '../engine/graph/graph.js';
import { SamGraph } from './vit.js';
import { SamImportError, type SamWeights } from './weights.js';

export interface TinyVitConfig {
  dims: number[];
  depths: number[];
  heads: number[];
  windows: number[];
}

const P = 'image_encoder.';
const BN_EPS = 1e-5;
/** TinyViT's patch merging keeps the resolution when it widens into one of these. */
const STRIDE_ONE_DIMS = [320, 448, 576];

export function tinyVitConfig(w: SamWeights): TinyVitConfig {
  const dims: number[] = [];
  const depths: number[] = [];
  const heads: number[] = [];
  const windows: number[] = [];
  for (
    let l = 0;
    w.has(
      `${P}layers.${l}.blocks.0.${l === 0 ? 'conv1' : 'attn.qkv'}.${l === 0 ? 'c.' : ''}weight`,
    );
    l++
  ) {
    let d = 0;
    while (w.has(`${P}layers.${l}.blocks.${d}.${l === 0 ? 'conv1.c' : 'attn.qkv'}.weight`)) d++;
    depths.push(d);
    if (l === 0) {
      dims.push(w.get(`${P}layers.0.blocks.0.conv1.c.weight`).shape[1]!);
      heads.push(0);
      windows.push(0);
    } else {
      dims.push(w.get(`${P}layers.${l}.blocks.0.attn.proj.weight`).shape[0]!);
      const ab = w.get(`${P}layers.${l}.blocks.0.attn.attention_biases`).shape;
      heads.push(ab[0]!);
      const ws = Math.round(Math.sqrt(ab[1]!));
      if (ws * ws !== ab[1])
        throw new SamImportError(
          `layers.${l}: attention biases [${ab.join(', ')}] are not those of a square window`,
        );
      windows.push(ws);
    }
  }
  if (dims.length < 2)
    throw new SamImportError('no image_encoder.layers.N: not a MobileSAM TinyViT encoder');
  return { dims, depths, heads, windows };
}

/** TinyViT's offset-bias index of a ws×ws window: pairs (p1, p2) → index of (|dy|, |dx|) in first-seen order. */
function biasIndex(ws: number): Int32Array {
  const pts: [number, number][] = [];
  for (let y = 0; y < ws; y++) for (let x = 0; x < ws; x++) pts.push([y, x]);
  const seen = new Map<string, number>();
  const idx = new Int32Array(pts.length * pts.length);
  let n = 0;
  for (const a of pts) {
    for (const b of pts) {
      const k = `${Math.abs(a[0] - b[0])},${Math.abs(a[1] - b[1])}`;
      let v = seen.get(k);
      if (v === undefined) seen.set(k, (v = seen.size));
      idx[n++] = v;
    }
  }
  return idx;
}

class TinyGraph extends SamGraph {
  /** Conv2d_BN with the BatchNorm folded in: conv(x, w·s) + (b − mean·s), s = γ/√(var + eps). */
  convBn(x: Value, key: string, o: { stride?: number; pad?: number; group?: number } = {}): Value {
    const cw = this.w.get(`${key}.c.weight`);
    const gamma = this.w.get(`${key}.bn.weight`).data;
    const beta = this.w.get(`${key}.bn.bias`).data;
    const mean = this.w.get(`${key}.bn.running_mean`).data;
    const variance = this.w.get(`${key}.bn.running_var`).data;
    const cout = cw.shape[0]!;
    const per = cw.data.length / cout;
    const wf = new Float32Array(cw.data.length);
    const bf = new Float32Array(cout);
    for (let c = 0; c < cout; c++) {
      const s = gamma[c]! / Math.sqrt(variance[c]! + BN_EPS);
      for (let i = 0; i < per; i++) wf[c * per + i] = cw.data[c * per + i]! * s;
      bf[c] = beta[c]! - mean[c]! * s;
    }
    return this.g.conv(
      x,
      this.g.constant(wf, cw.shape, 'float32', 'w'),
      this.g.constant(bf, [cout], 'float32', 'w'),
      { strides: o.stride ?? 1, pads: o.pad ?? 0, group: o.group ?? 1 },
    );
  }

  /** Windowed attention over [B, N, C] tokens of ws×ws windows (LayerNorm inside). */
  attention(x: Value, key: string, heads: number, ws: number): Value {
    const g = this.g;
    const [B, N, C] = x.shape as [number, number, number];
    const kd = C / heads;
    const qkv = g.reshape(this.linear(this.layerNorm(x, `${key}.norm`, 1e-5), `${key}.qkv`), [
      B,
      N,
      heads,
      3 * kd,
    ]);
    const part = (i: number): Value =>
      g.transpose(g.slice(qkv, [i * kd], [(i + 1) * kd], [3]), [0, 2, 1, 3]); // [B, heads, N, kd]
    const q = part(0);
    const k = part(1);
    const v = part(2);
    const ab = this.w.get(`${key}.attention_biases`);
    const nOff = ab.shape[1]!;
    const idx = biasIndex(ws);
    const bias = new Float32Array(heads * N * N);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < N * N; i++) bias[h * N * N + i] = ab.data[h * nOff + idx[i]!]!;
    }
    let attn = g.mul(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), kd ** -0.5);
    attn = g.softmax(g.add(attn, g.constant(bias, [heads, N, N], 'float32', 'ab')), -1);
    const o = g.reshape(g.transpose(g.matmul(attn, v), [0, 2, 1, 3]), [B, N, C]);
    return this.linear(o, `${key}.proj`);
  }

  /** One TinyViT block over [1, H·W, C] tokens. */
  block(x: Value, key: string, H: number, W: number, heads: number, ws: number): Value {
    const g = this.g;
    const C = x.shape[2]!;
    const a = g.reshape(
      this.windowed(g.reshape(x, [1, H, W, C]), ws, (win) =>
        g.reshape(this.attention(g.reshape(win, [-1, ws * ws, C]), `${key}.attn`, heads, ws), [
          -1,
          ws,
          ws,
          C,
        ]),
      ),
      [1, H * W, C],
    );
    let y = g.add(x, a);
    const img = g.reshape(g.transpose(y, [0, 2, 1]), [1, C, H, W]);
    const lc = this.convBn(img, `${key}.local_conv`, { pad: 1, group: C });
    y = g.transpose(g.reshape(lc, [1, C, H * W]), [0, 2, 1]);
    const m = this.linear(
      this.gelu(this.linear(this.layerNorm(y, `${key}.mlp.norm`, 1e-5), `${key}.mlp.fc1`)),
      `${key}.mlp.fc2`,
    );
    return g.add(y, m);
  }

  /** Patch merging of a [1, C, H, W] map → [1, C', H', W']. */
  merge(x: Value, key: string): Value {
    const out = this.w.get(`${key}.conv1.c.weight`).shape[0]!;
    let y = this.gelu(this.convBn(x, `${key}.conv1`));
    y = this.gelu(
      this.convBn(y, `${key}.conv2`, {
        stride: STRIDE_ONE_DIMS.includes(out) ? 1 : 2,
        pad: 1,
        group: out,
      }),
    );
    return this.convBn(y, `${key}.conv3`);
  }
}

/**
 * The TinyViT encoder graph for a `size`×`size` input (a multiple of 16): input `image`
 * [1, 3, size, size], output `image_embeddings` [1, 256, size/16, size/16].
 */
export function samTinyVitGraph(
  w: SamWeights,
  size: number,
): { graph: TinyGraph['g']; output: Value; config: TinyVitConfig } {
  if (!Number.isInteger(size) || size < 64 || size % 16 !== 0) {
    throw new SamImportError(
      `input size ${size}: a multiple of 16 from 64 (e.g. 256, 512, 1024) is needed`,
    );
  }
  const cfg = tinyVitConfig(w);
  const s = new TinyGraph(w);
  const g = s.g;
  const image = g.input('image', [1, 3, size, size]);
  let x = s.convBn(image, `${P}patch_embed.seq.0`, { stride: 2, pad: 1 });
  x = s.convBn(s.gelu(x), `${P}patch_embed.seq.2`, { stride: 2, pad: 1 });
  for (let l = 0; l < cfg.dims.length; l++) {
    const key = `${P}layers.${l}`;
    if (l === 0) {
      for (let b = 0; b < cfg.depths[0]!; b++) {
        const k = `${key}.blocks.${b}`;
        const C = x.shape[1]!;
        let y = s.gelu(s.convBn(x, `${k}.conv1`));
        y = s.gelu(s.convBn(y, `${k}.conv2`, { pad: 1, group: y.shape[1]! }));
        x = s.gelu(g.add(s.convBn(y, `${k}.conv3`), x));
        if (x.shape[1] !== C) throw new SamImportError(`${k}: an MBConv block changes the width`);
      }
    } else {
      const [, C, H, W] = x.shape as [number, number, number, number];
      let t = g.transpose(g.reshape(x, [1, C, H * W]), [0, 2, 1]);
      for (let b = 0; b < cfg.depths[l]!; b++) {
        t = s.block(t, `${key}.blocks.${b}`, H, W, cfg.heads[l]!, cfg.windows[l]!);
      }
      x = g.reshape(g.transpose(t, [0, 2, 1]), [1, C, H, W]);
    }
    if (w.has(`${key}.downsample.conv1.c.weight`)) x = s.merge(x, `${key}.downsample`);
  }
  const grid = size / 16;
  if (x.shape[2] !== grid || x.shape[3] !== grid) {
    throw new SamImportError(
      `the encoder ends at ${x.shape[2]}×${x.shape[3]} tokens, not ${grid}×${grid}: not MobileSAM's TinyViT layout`,
    );
  }
  return { graph: g, output: s.neck(x), config: cfg };
}
