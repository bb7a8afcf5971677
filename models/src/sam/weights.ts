/**
 * The image-encoder weights of a SAM-family checkpoint, by their published key names, whatever
 * wraps the state dict (`model.`, `state_dict.`, `module.` prefixes of training checkpoints are
 * looked through), and which encoder they are.
 */
import type { Checkpoint, CheckpointTensor } from '../format/torchCheckpoint.js';

export class SamImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SamImportError';
  }
}

export type SamFamily = 'vit' | 'tiny-vit';

export class SamWeights {
  private constructor(
    private readonly tensors: ReadonlyMap<string, CheckpointTensor>,
    /** What precedes `image_encoder.` in the checkpoint's keys ('' for a published SAM). */
    readonly prefix: string,
  ) {}

  /** Finds the image encoder in a checkpoint; a clear error when there is none. */
  static fromCheckpoint(c: Checkpoint): SamWeights {
    const anchors = [...c.tensors.keys()].filter((k) =>
      /(^|\.)image_encoder\.(patch_embed\.proj\.weight|patch_embed\.seq\.0\.c\.weight)$/.test(k),
    );
    if (anchors.length === 0) {
      const sample = [...c.tensors.keys()].slice(0, 3).join(', ');
      throw new SamImportError(
        `no SAM image encoder in this checkpoint (no image_encoder.patch_embed… key; its first keys: ${sample}). ` +
          'Give a SAM, MedSAM or MobileSAM checkpoint (sam_vit_b_01ec64.pth, medsam_vit_b.pth, mobile_sam.pt).',
      );
    }
    const a = anchors[0]!;
    const prefix = a.slice(0, a.indexOf('image_encoder.'));
    const own = new Map<string, CheckpointTensor>();
    for (const [k, t] of c.tensors) if (k.startsWith(prefix)) own.set(k.slice(prefix.length), t);
    return new SamWeights(own, prefix);
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  get(key: string): CheckpointTensor {
    const t = this.tensors.get(key);
    if (!t) throw new SamImportError(`the checkpoint has no ${this.prefix}${key}`);
    if (!(t.data instanceof Float32Array)) {
      throw new SamImportError(`${this.prefix}${key} is ${t.dtype}, not a floating-point tensor`);
    }
    return t;
  }

  /** The image encoder's keys (without prefix). */
  encoderKeys(): string[] {
    return [...this.tensors.keys()].filter((k) => k.startsWith('image_encoder.'));
  }

  family(): SamFamily {
    return this.has('image_encoder.patch_embed.proj.weight') ? 'vit' : 'tiny-vit';
  }

  /** Parameters of the image encoder (num_batches_tracked counters left out). */
  encoderParameterCount(): number {
    let n = 0;
    for (const k of this.encoderKeys()) {
      if (k.endsWith('num_batches_tracked')) continue;
      n += this.tensors.get(k)!.data.length;
    }
    return n;
  }
}

/** Published names of the encoders: ViT-B/L/H by width and depth, TinyViT for MobileSAM. */
export function variantName(
  family: SamFamily,
  shape: { embedDim?: number; depth?: number },
  sourceName: string,
): string {
  const med = /medsam/i.test(sourceName);
  if (family === 'tiny-vit') return 'MobileSAM TinyViT';
  const base =
    shape.embedDim === 768 && shape.depth === 12
      ? 'ViT-B'
      : shape.embedDim === 1024 && shape.depth === 24
        ? 'ViT-L'
        : shape.embedDim === 1280 && shape.depth === 32
          ? 'ViT-H'
          : `ViT (width ${shape.embedDim}, depth ${shape.depth})`;
  return `${med ? 'MedSAM' : 'SAM'} ${base}`;
}
