/** Synthetic volumes the RRL unit tests share. */
import type { Grid } from '@rrl/models/rrl/pseudoLabels.js';

/**
 * A smooth ellipsoid centred at c = [z, y, x] on `grid` [D, H, W] (x fastest), with a texture that
 * moves with it (so local cross-correlation has something to match). `label`: 1 inside; `halves`:
 * 1 for the upper half of the inside (z < c[0]), 2 for the lower half.
 */
export function texturedBlob(
  grid: Grid,
  c: readonly [number, number, number],
): { image: Float32Array; label: Uint8Array; halves: Uint8Array } {
  const [d, h, w] = grid;
  const image = new Float32Array(d * h * w);
  const label = new Uint8Array(d * h * w);
  const halves = new Uint8Array(d * h * w);
  for (let z = 0; z < d; z++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const r2 = ((z - c[0]) / 4) ** 2 + ((y - c[1]) / 3.5) ** 2 + ((x - c[2]) / 3) ** 2;
        const i = (z * h + y) * w + x;
        image[i] =
          Math.exp(-r2) +
          0.3 *
            Math.sin(0.9 * (x - c[2]) + 0.6 * (y - c[1]) + 0.7 * (z - c[0])) *
            Math.exp(-r2 / 4);
        if (r2 < 1) {
          label[i] = 1;
          halves[i] = z < c[0] ? 1 : 2;
        }
      }
  return { image, label, halves };
}
