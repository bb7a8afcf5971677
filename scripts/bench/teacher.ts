/**
 * `npm run bench:teacher`: seconds per slice of each SAM image encoder as our import runs it
 * (onnxruntime-node CPU, the threads given), at several input sizes, side by side with our PyTorch
 * reference of the same encoder on the same weights (scripts/sam/reference.py, Debian's
 * python3-torch, same thread count), and the import's equality to PyTorch at full size.
 *
 * Weights: random (seeded) full-size encoders written by torch.save under the official keys —
 * real checkpoints cannot be downloaded here; speed does not depend on the values.
 *
 *   npm run bench:teacher -- [--variants vit_b,mobile_sam,vit_l,vit_h] [--sizes 256,512,1024]
 *                            [--threads 2] [--repeats 3] [--json FILE]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { importSamCheckpoint } from '@rrl/models/sam/store.js';
import { loadTeacher } from '@rrl/models/rrl/teacher.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const PYTHON = process.env.RRL_PYTHON ?? '/usr/bin/python3';

const { values } = parseArgs({
  options: {
    variants: { type: 'string', default: 'vit_b,mobile_sam' },
    sizes: { type: 'string', default: '256,512,1024' },
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const threads = Number(values.threads);
const repeats = Number(values.repeats);
const sizes = values.sizes!.split(',').map(Number);

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

interface Row {
  variant: string;
  size: number;
  params: number;
  oursSecondsPerSlice: number;
  torchSecondsPerSlice: number;
  ratio: number;
  maxAbsError: number;
  maxRef: number;
  importSeconds: number;
}

const rows: Row[] = [];
const work = mkdtempSync(path.join(tmpdir(), 'bench-teacher-'));
try {
  for (const variant of values.variants!.split(',')) {
    for (const size of sizes) {
      const dir = path.join(work, `${variant}-${size}`);
      const ref = JSON.parse(
        execFileSync(
          PYTHON,
          [
            path.join(ROOT, 'scripts/sam/reference.py'),
            'make',
            '--variant',
            variant,
            '--size',
            String(size),
            '--out',
            dir,
            '--threads',
            String(threads),
            '--repeats',
            String(repeats),
          ],
          { encoding: 'utf8', maxBuffer: 1 << 20 },
        ).trim(),
      ) as { params: number; forwardMedianMs: number };
      const t0 = performance.now();
      const { card } = await importSamCheckpoint(path.join(dir, 'checkpoint.pth'), {
        dir: path.join(dir, 'teachers'),
        inputSize: size,
      });
      const importSeconds = (performance.now() - t0) / 1000;
      rmSync(path.join(dir, 'checkpoint.pth'));
      const t = await loadTeacher(
        card.id,
        { intraOpNumThreads: threads, interOpNumThreads: 1 },
        { teachersDir: path.join(dir, 'teachers') },
      );
      const image = new Float32Array(readFileSync(path.join(dir, 'image.f32')).buffer.slice(0));
      const want = new Float32Array(readFileSync(path.join(dir, 'embeddings.f32')).buffer.slice(0));
      const feed = { [t.inputName]: new ort.Tensor('float32', image, [1, 3, size, size]) };
      await t.session.run(feed); // warm-up
      const times: number[] = [];
      let got: Float32Array = new Float32Array(0);
      for (let i = 0; i < repeats; i++) {
        const s = performance.now();
        const r = await t.session.run(feed);
        times.push((performance.now() - s) / 1000);
        got = r[t.outputName]!.data as Float32Array;
      }
      await t.session.release();
      let maxAbs = 0;
      let maxRef = 0;
      for (let i = 0; i < want.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(got[i]! - want[i]!));
        maxRef = Math.max(maxRef, Math.abs(want[i]!));
      }
      const ours = median(times);
      const torch = ref.forwardMedianMs / 1000;
      const row: Row = {
        variant,
        size,
        params: card.parameters,
        oursSecondsPerSlice: ours,
        torchSecondsPerSlice: torch,
        ratio: ours / torch,
        maxAbsError: maxAbs,
        maxRef,
        importSeconds,
      };
      rows.push(row);
      console.log(
        `${variant.padEnd(11)} ${String(size).padStart(4)} px  ours ${ours.toFixed(3)} s/slice  PyTorch ${torch.toFixed(3)} s/slice  ratio ${row.ratio.toFixed(2)}  max |err| ${maxAbs.toExponential(1)} (|ref| ≤ ${maxRef.toFixed(2)})  import ${importSeconds.toFixed(1)} s`,
      );
      rmSync(dir, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(
  '\n| encoder | input | parameters | ours s/slice | PyTorch 1.13 s/slice | ours / PyTorch | max abs error |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.variant} | ${r.size} | ${(r.params / 1e6).toFixed(1)} M | ${r.oursSecondsPerSlice.toFixed(3)} | ${r.torchSecondsPerSlice.toFixed(3)} | ${r.ratio.toFixed(2)} | ${r.maxAbsError.toExponential(1)} |`,
  );
}
console.log(
  `\n${threads} threads each; medians of ${repeats} runs after a warm-up (ours), of ${repeats} (PyTorch).`,
);
if (values.json) writeFileSync(values.json, JSON.stringify({ threads, repeats, rows }, null, 2));
