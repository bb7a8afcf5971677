/**
 * PyTorch (Debian's python3-torch) for the SAM import tests: runs scripts/sam/reference.py and
 * small inline scripts. The interpreter is $RRL_PYTHON, else /usr/bin/python3 (Debian's, where
 * apt installs torch; another python3 first on PATH may lack it). A missing torch fails the test:
 * `.ci/run` installs it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PYTHON = process.env.RRL_PYTHON ?? '/usr/bin/python3';

export function python(code: string, args: string[] = []): string {
  return execFileSync(PYTHON, ['-c', code, ...args], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '2' },
    timeout: 300_000,
  });
}

export interface Reference {
  dir: string;
  size: number;
  imageShape: number[];
  embeddingShape: number[];
  image: Float32Array;
  embeddings: Float32Array;
  forwardMedianMs: number;
}

function f32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** A randomly initialised encoder of `variant`, saved by torch.save under the official keys, and its embeddings of a seeded image. */
export function makeReference(
  variant: string,
  size: number,
  dir: string,
  o: { seed?: number; name?: string } = {},
): Reference {
  execFileSync(
    PYTHON,
    [
      join(ROOT, 'scripts/sam/reference.py'),
      'make',
      '--variant',
      variant,
      '--size',
      String(size),
      '--seed',
      String(o.seed ?? 0),
      '--out',
      dir,
      '--name',
      o.name ?? 'checkpoint.pth',
    ],
    { encoding: 'utf8', timeout: 300_000 },
  );
  const info = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
  return {
    ...info,
    dir,
    image: f32(join(dir, 'image.f32')),
    embeddings: f32(join(dir, 'embeddings.f32')),
  };
}

/** max |a − b| and max |b| (the reference). */
export function maxErrors(a: Float32Array, b: Float32Array): { maxAbs: number; maxRef: number } {
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < b.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
    maxRef = Math.max(maxRef, Math.abs(b[i]!));
  }
  return { maxAbs, maxRef };
}

/**
 * A torch.save file whose pickle calls os.system(command) when torch.load reads it — what a
 * malicious "checkpoint" looks like. Saving does not run it.
 */
export function writeEvilCheckpoint(file: string, command: string): void {
  python(
    `
import os, sys, torch
class Evil:
    def __reduce__(self):
        return (os.system, (sys.argv[2],))
torch.save({'image_encoder.pos_embed': torch.zeros(1), 'w': Evil()}, sys.argv[1])
`,
    [file, command],
  );
}
