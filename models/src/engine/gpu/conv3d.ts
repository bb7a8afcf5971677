// WGSL kernels for the 3-D convolution of the training step: forward, input gradient and weight
// gradient, each an implicit GEMM (the im2col matrix is never written: the tile loader computes
// each element from the tensor) tiled through workgroup memory: 64×64 output tile per workgroup of
// 16×16 threads, 4×4 outputs per thread, 16-deep K slices. Batch is folded into the GEMM's N
// (forward, input gradient) or K (weight gradient: batch-as-channel). When the output has few
// tiles (deep layers, the weight gradient's Cout × Cin·k³) the K sum is split over workgroups
// (split-K) and a second kernel adds the partial sums, so small outputs still fill the GPU.
//
//   forward      y[b,co,o]   = Σ_{ci,r} w[co,ci,r] · x[b,ci, o·s − p + r]      M=Cout N=B·|y| K=Cin·k³
//   input grad   dx[b,ci,i]  = Σ_{co,r} w[co,ci,r] · dy[b,co, (i + p − r)/s]   M=Cin  N=B·|x| K=Cout·k³
//   weight grad  dw[co,ci,r] = Σ_{b,o} dy[b,co,o] · x[b,ci, o·s − p + r]       M=Cout N=Cin·k³ K=B·|y|
//
// (terms whose input position falls outside the volume, or, for the input gradient, between
// strides, are zero). Cubic kernels k, one stride s and one padding p on all axes; no bias (a bias
// is a broadcast add and its gradient a sum, not convolution work). Layouts NCDHW, weights
// [Cout, Cin, k, k, k], as in ONNX.
import { downloadBuffer, storageBuffer, uploadBuffer, type GpuContext } from './device.js';

export interface Conv3dShape {
  batch: number;
  cin: number;
  cout: number;
  /** Input volume. */
  d: number;
  h: number;
  w: number;
  kernel: number;
  stride: number;
  pad: number;
}

export type Conv3dKind = 'forward' | 'gradInput' | 'gradWeight';

/** Output volume of the convolution (ONNX Conv, floor). */
export function convOutputDims(s: Conv3dShape): [number, number, number] {
  const o = (n: number) => Math.floor((n + 2 * s.pad - s.kernel) / s.stride) + 1;
  return [o(s.d), o(s.h), o(s.w)];
}

/** Element counts of x, w, y for `s`. */
export function convSizes(s: Conv3dShape): { x: number; w: number; y: number } {
  const [od, oh, ow] = convOutputDims(s);
  return {
    x: s.batch * s.cin * s.d * s.h * s.w,
    w: s.cout * s.cin * s.kernel ** 3,
    y: s.batch * s.cout * od * oh * ow,
  };
}

/** Multiply-adds of one kernel (the same for all three). */
export function convMacs(s: Conv3dShape): number {
  return convSizes(s).y * s.cin * s.kernel ** 3;
}

const TM = 64;
const TN = 64;
const TK = 16;
const MAX_GROUPS_X = 65535;

function gemmDims(kind: Conv3dKind, s: Conv3dShape): { M: number; N: number; K: number } {
  const [od, oh, ow] = convOutputDims(s);
  const k3 = s.kernel ** 3;
  const ov = od * oh * ow;
  const iv = s.d * s.h * s.w;
  switch (kind) {
    case 'forward':
      return { M: s.cout, N: s.batch * ov, K: s.cin * k3 };
    case 'gradInput':
      return { M: s.cin, N: s.batch * iv, K: s.cout * k3 };
    case 'gradWeight':
      return { M: s.cout, N: s.cin * k3, K: s.batch * ov };
  }
}

// Index helpers shared by the loaders: the input position of output voxel `o` at kernel offset `r`
// (forward, weight gradient), or -1 when it falls in the padding.
const COMMON = /* wgsl */ `
struct Params {
  M: u32, N: u32, K: u32, kChunk: u32,
  batch: u32, cin: u32, cout: u32, k: u32,
  d: u32, h: u32, w: u32, s: u32,
  od: u32, oh: u32, ow: u32, p: u32,
  mTiles: u32, nTiles: u32, splits: u32, outLen: u32,
};
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;

// x[b, ci, o·s − p + r] (0 in the padding); o is an output voxel index, r a kernel offset index
fn xAt(b: u32, ci: u32, o: u32, r: u32) -> f32 {
  let k = P.k;
  let kd = r / (k * k);
  let kh = (r / k) % k;
  let kw = r % k;
  let oz = o / (P.oh * P.ow);
  let oy = (o / P.ow) % P.oh;
  let ox = o % P.ow;
  let iz = i32(oz * P.s + kd) - i32(P.p);
  let iy = i32(oy * P.s + kh) - i32(P.p);
  let ix = i32(ox * P.s + kw) - i32(P.p);
  if (iz < 0 || iy < 0 || ix < 0 || iz >= i32(P.d) || iy >= i32(P.h) || ix >= i32(P.w)) {
    return 0.0;
  }
  return B[((b * P.cin + ci) * P.d + u32(iz)) * P.h * P.w + u32(iy) * P.w + u32(ix)];
}
`;

// Per kind: loadA(m, k), loadB(k, n), outIndex(m, n), and whether B's tile is read with k or n
// varying fastest across threads (the contiguous direction of its source in memory).
const KINDS: Record<Conv3dKind, { body: string; bKFast: boolean }> = {
  forward: {
    bKFast: false,
    body: /* wgsl */ `
fn loadA(m: u32, k: u32) -> f32 { return A[m * P.K + k]; }
fn loadB(k: u32, n: u32) -> f32 {
  let k3 = P.k * P.k * P.k;
  let ov = P.od * P.oh * P.ow;
  return xAt(n / ov, k / k3, n % ov, k % k3);
}
fn outIndex(m: u32, n: u32) -> u32 {
  let ov = P.od * P.oh * P.ow;
  return ((n / ov) * P.cout + m) * ov + n % ov;
}`,
  },
  gradInput: {
    bKFast: false,
    body: /* wgsl */ `
fn loadA(m: u32, k: u32) -> f32 {
  let k3 = P.k * P.k * P.k;
  return A[((k / k3) * P.cin + m) * k3 + k % k3];
}
fn loadB(k: u32, n: u32) -> f32 {
  let kk = P.k;
  let k3 = kk * kk * kk;
  let co = k / k3;
  let r = k % k3;
  let iv = P.d * P.h * P.w;
  let b = n / iv;
  let i = n % iv;
  let nz = i32(i / (P.h * P.w)) + i32(P.p) - i32(r / (kk * kk));
  let ny = i32((i / P.w) % P.h) + i32(P.p) - i32((r / kk) % kk);
  let nx = i32(i % P.w) + i32(P.p) - i32(r % kk);
  let s = i32(P.s);
  if (nz < 0 || ny < 0 || nx < 0 || nz % s != 0 || ny % s != 0 || nx % s != 0) { return 0.0; }
  let oz = u32(nz / s);
  let oy = u32(ny / s);
  let ox = u32(nx / s);
  if (oz >= P.od || oy >= P.oh || ox >= P.ow) { return 0.0; }
  return B[((b * P.cout + co) * P.od + oz) * P.oh * P.ow + oy * P.ow + ox];
}
fn outIndex(m: u32, n: u32) -> u32 {
  let iv = P.d * P.h * P.w;
  return ((n / iv) * P.cin + m) * iv + n % iv;
}`,
  },
  gradWeight: {
    bKFast: true,
    body: /* wgsl */ `
fn loadA(m: u32, k: u32) -> f32 {
  let ov = P.od * P.oh * P.ow;
  return A[((k / ov) * P.cout + m) * ov + k % ov];
}
fn loadB(k: u32, n: u32) -> f32 {
  let k3 = P.k * P.k * P.k;
  let ov = P.od * P.oh * P.ow;
  return xAt(k / ov, n / k3, k % ov, n % k3);
}
fn outIndex(m: u32, n: u32) -> u32 { return m * P.N + n; }`,
  },
};

/** The WGSL of one kind's GEMM kernel (for inspection and tests). */
export function gemmShader(kind: Conv3dKind): string {
  const { body, bKFast } = KINDS[kind];
  const bIndex = bKFast
    ? `let bk = e % ${TK}u; let bn = e / ${TK}u;`
    : `let bn = e % ${TN}u; let bk = e / ${TN}u;`;
  return `${COMMON}
${body}
var<workgroup> As: array<f32, ${TK * TM}>;
var<workgroup> Bs: array<f32, ${TK * TN}>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let tileN = wid.x + wid.y * ${MAX_GROUPS_X}u;
  let mt = wid.z % P.mTiles;
  let split = wid.z / P.mTiles;
  let m0 = mt * ${TM}u;
  let n0 = tileN * ${TN}u;
  let kBegin = split * P.kChunk;
  let kEnd = min(P.K, kBegin + P.kChunk);
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var k0 = kBegin; k0 < kEnd; k0 += ${TK}u) {
    for (var i = 0u; i < ${(TK * TM) / 256}u; i++) {
      let e = li + i * 256u;
      let ak = e % ${TK}u;
      let am = e / ${TK}u;
      var av = 0.0;
      if (k0 + ak < kEnd && m0 + am < P.M) { av = loadA(m0 + am, k0 + ak); }
      As[ak * ${TM}u + am] = av;
      ${bIndex}
      var bv = 0.0;
      if (k0 + bk < kEnd && n0 + bn < P.N) { bv = loadB(k0 + bk, n0 + bn); }
      Bs[bk * ${TN}u + bn] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      let ai = kk * ${TM}u + lid.y * 4u;
      let bi = kk * ${TN}u + lid.x * 4u;
      let b = vec4f(Bs[bi], Bs[bi + 1u], Bs[bi + 2u], Bs[bi + 3u]);
      acc0 += As[ai] * b;
      acc1 += As[ai + 1u] * b;
      acc2 += As[ai + 2u] * b;
      acc3 += As[ai + 3u] * b;
    }
    workgroupBarrier();
  }
  let base = split * P.outLen;
  var rows = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (m < P.M && n < P.N) { OUT[base + outIndex(m, n)] = rows[i][j]; }
    }
  }
}
`;
}

// OUT[i] = Σ_s A[s·outLen + i] (the split-K partial sums; B is not bound: the auto layout drops it)
const REDUCE_SHADER = `${COMMON}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${MAX_GROUPS_X * 256}u;
  if (i >= P.outLen) { return; }
  var sum = 0.0;
  for (var s = 0u; s < P.splits; s++) { sum += A[s * P.outLen + i]; }
  OUT[i] = sum;
}
`;

/** How a kernel call is laid out on the GPU (exposed for reports and tests). */
export interface ConvLaunch {
  M: number;
  N: number;
  K: number;
  mTiles: number;
  nTiles: number;
  splits: number;
  kChunk: number;
}

/**
 * Grid for one call: M×N output tiles, and a split of K when the tiles alone are too few to keep
 * `targetGroups` workgroups busy (each split keeps ≥ 8 K-slices, so partial sums stay few).
 */
export function convLaunch(kind: Conv3dKind, s: Conv3dShape, targetGroups = 1024): ConvLaunch {
  const { M, N, K } = gemmDims(kind, s);
  const mTiles = Math.ceil(M / TM);
  const nTiles = Math.ceil(N / TN);
  const kTiles = Math.ceil(K / TK);
  let splits = Math.ceil(targetGroups / (mTiles * nTiles));
  // ≥ 8 K-slices per split, ≤ 65535 workgroups along z, partial sums ≤ 2²⁶ floats (256 MiB)
  splits = Math.min(splits, Math.floor(kTiles / 8), Math.floor(65535 / mTiles));
  splits = Math.max(1, Math.min(splits, Math.floor(2 ** 26 / (M * N))));
  const kChunk = Math.ceil(kTiles / splits) * TK;
  splits = Math.ceil(K / kChunk);
  return { M, N, K, mTiles, nTiles, splits, kChunk };
}

/** One prepared kernel call: bind groups and grid; `encode` adds it to a command encoder. */
export interface ConvPlan {
  launch: ConvLaunch;
  encode(encoder: GPUCommandEncoder): void;
  /** Frees the plan's own buffers (uniforms, partial sums), not the tensors. */
  destroy(): void;
}

/** The three convolution kernels of one device (pipelines compiled once). */
export class Conv3dKernels {
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  constructor(readonly ctx: GpuContext) {}

  private pipeline(name: Conv3dKind | 'reduce'): GPUComputePipeline {
    let p = this.pipelines.get(name);
    if (!p) {
      const { device } = this.ctx;
      const code = name === 'reduce' ? REDUCE_SHADER : gemmShader(name);
      p = device.createComputePipeline({
        label: `conv3d-${name}`,
        layout: 'auto',
        compute: { module: device.createShaderModule({ label: `conv3d-${name}`, code }) },
      });
      this.pipelines.set(name, p);
    }
    return p;
  }

  /**
   * Prepares `kind` on `shape`: forward (a = w, b = x, out = y), gradInput (a = w, b = dy,
   * out = dx), gradWeight (a = dy, b = x, out = dw). `out` is overwritten.
   */
  plan(
    kind: Conv3dKind,
    shape: Conv3dShape,
    a: GPUBuffer,
    b: GPUBuffer,
    out: GPUBuffer,
    targetGroups?: number,
  ): ConvPlan {
    validateShape(shape);
    const { device } = this.ctx;
    const launch = convLaunch(kind, shape, targetGroups);
    const [od, oh, ow] = convOutputDims(shape);
    const outLen = launch.M * launch.N;
    const params = new Uint32Array([
      launch.M,
      launch.N,
      launch.K,
      launch.kChunk,
      shape.batch,
      shape.cin,
      shape.cout,
      shape.kernel,
      shape.d,
      shape.h,
      shape.w,
      shape.stride,
      od,
      oh,
      ow,
      shape.pad,
      launch.mTiles,
      launch.nTiles,
      launch.splits,
      outLen,
    ]);
    const uniform = device.createBuffer({
      size: params.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(uniform, 0, params);
    const partial = launch.splits > 1 ? storageBuffer(device, launch.splits * outLen) : undefined;
    const gemm = this.pipeline(kind);
    const gemmGroup = device.createBindGroup({
      layout: gemm.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: uniform } },
        { binding: 1, resource: { buffer: a } },
        { binding: 2, resource: { buffer: b } },
        { binding: 3, resource: { buffer: partial ?? out } },
      ],
    });
    const reduce = partial ? this.pipeline('reduce') : undefined;
    const reduceGroup =
      reduce && partial
        ? device.createBindGroup({
            layout: reduce.getBindGroupLayout(0),
            entries: [
              { binding: 0, resource: { buffer: uniform } },
              { binding: 1, resource: { buffer: partial } },
              { binding: 3, resource: { buffer: out } },
            ],
          })
        : undefined;
    const gx = Math.min(launch.nTiles, MAX_GROUPS_X);
    const gy = Math.ceil(launch.nTiles / MAX_GROUPS_X);
    const gz = launch.mTiles * launch.splits;
    const reduceGroups = Math.ceil(outLen / 256);
    return {
      launch,
      encode(encoder) {
        const pass = encoder.beginComputePass({ label: `conv3d-${kind}` });
        pass.setPipeline(gemm);
        pass.setBindGroup(0, gemmGroup);
        pass.dispatchWorkgroups(gx, gy, gz);
        if (reduce && reduceGroup) {
          pass.setPipeline(reduce);
          pass.setBindGroup(0, reduceGroup);
          pass.dispatchWorkgroups(
            Math.min(reduceGroups, MAX_GROUPS_X),
            Math.ceil(reduceGroups / MAX_GROUPS_X),
          );
        }
        pass.end();
      },
      destroy() {
        uniform.destroy();
        partial?.destroy();
      },
    };
  }

  /**
   * Runs one kernel on CPU arrays (uploads, runs, reads back): for tests and one-off use; a
   * training step keeps its tensors on the GPU and encodes plans instead.
   */
  async run(
    kind: Conv3dKind,
    shape: Conv3dShape,
    a: Float32Array,
    b: Float32Array,
  ): Promise<Float32Array> {
    const { device } = this.ctx;
    const { M, N } = gemmDims(kind, shape);
    const ga = uploadBuffer(device, a);
    const gb = uploadBuffer(device, b);
    const out = storageBuffer(device, M * N);
    const plan = this.plan(kind, shape, ga, gb, out);
    try {
      const enc = device.createCommandEncoder();
      plan.encode(enc);
      device.queue.submit([enc.finish()]);
      return await downloadBuffer(device, out, M * N);
    } finally {
      plan.destroy();
      ga.destroy();
      gb.destroy();
      out.destroy();
    }
  }
}

function validateShape(s: Conv3dShape): void {
  const ints = [s.batch, s.cin, s.cout, s.d, s.h, s.w, s.kernel, s.stride];
  if (ints.some((v) => !Number.isInteger(v) || v < 1) || !Number.isInteger(s.pad) || s.pad < 0) {
    throw new Error(`conv3d: invalid shape ${JSON.stringify(s)}`);
  }
  const [od, oh, ow] = convOutputDims(s);
  if (od < 1 || oh < 1 || ow < 1) {
    throw new Error(
      `conv3d: kernel ${s.kernel} does not fit the padded input ${s.d}×${s.h}×${s.w}`,
    );
  }
  const { x, w, y } = convSizes(s);
  if (Math.max(x, w, y) >= 2 ** 31) {
    throw new Error('conv3d: a tensor of 2³¹ or more elements (u32 indexing limit of the kernels)');
  }
}
