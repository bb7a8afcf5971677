/** Deterministic seeded random numbers and parameter initialisers. */

/** splitmix32-style string hash → 32-bit seed. */
export function hashSeed(seed: number, name: string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h = Math.imul(h ^ name.charCodeAt(i), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
  }
  h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** mulberry32: small, fast, deterministic PRNG returning floats in [0, 1). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    let u = this.next();
    while (u <= 1e-12) u = this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
}

export type Initializer =
  | { kind: 'he' } // normal, std = sqrt(2 / fanIn) (Kaiming, for (leaky) ReLU)
  | { kind: 'xavier' } // uniform, limit = sqrt(6 / (fanIn + fanOut))
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number }
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'uniform'; low: number; high: number };

export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length === 0) return { fanIn: 1, fanOut: 1 };
  if (shape.length === 1) return { fanIn: shape[0]!, fanOut: shape[0]! };
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export function initialise(
  shape: readonly number[],
  init: Initializer,
  seed: number,
  fanOverride?: { fanIn?: number; fanOut?: number },
): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const base = fans(shape);
  const f = { fanIn: fanOverride?.fanIn ?? base.fanIn, fanOut: fanOverride?.fanOut ?? base.fanOut };
  const rng = new Rng(seed);
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'constant':
      out.fill(init.value);
      break;
    case 'he': {
      const std = Math.sqrt(2 / f.fanIn);
      for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      break;
    }
    case 'xavier': {
      const lim = Math.sqrt(6 / (f.fanIn + f.fanOut));
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-lim, lim);
      break;
    }
    case 'normal':
      for (let i = 0; i < n; i++) out[i] = (init.mean ?? 0) + rng.normal() * init.std;
      break;
    case 'uniform':
      for (let i = 0; i < n; i++) out[i] = rng.uniform(init.low, init.high);
      break;
  }
  return out;
}
