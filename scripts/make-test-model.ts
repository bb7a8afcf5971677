// Writes the test-fixture segmentation model (a small real 3-D conv ONNX network, kind
// "test-fixture", not a product model: rule-initialised from the demo atlas and trained for a few
// engine steps on that atlas alone) in the published model format:
//   npx tsx scripts/make-test-model.ts --out <modelsDir> [--grid 48,56,48] [--id <modelId>]
// See test/fixtures/test-model.ts for the network, its initial weights and its training.
import { execFileSync } from 'node:child_process';
import { makeTestModel } from '@rrl/test/fixtures/test-model.js';

function usage(problem: string): never {
  process.stderr.write(
    `${problem}\nUsage: npx tsx scripts/make-test-model.ts --out <modelsDir> [--grid X,Y,Z] [--id <modelId>]\n`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]): { out: string; grid?: [number, number, number]; id?: string } {
  let out: string | undefined;
  let grid: [number, number, number] | undefined;
  let id: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value.`);
      return v;
    };
    if (a === '--out') out = next();
    else if (a === '--id') id = next();
    else if (a === '--grid') {
      const v = next();
      const parts = v.split(',').map((s) => Number(s));
      if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n) || n < 4 || n > 256)) {
        usage(`--grid expects three integers 4..256 separated by commas (x,y,z), found "${v}".`);
      }
      grid = [parts[0]!, parts[1]!, parts[2]!];
    } else usage(`Unknown argument "${a}".`);
  }
  if (!out) usage('--out <modelsDir> is required.');
  return { out, grid, id };
}

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

const args = parseArgs(process.argv.slice(2));
const t0 = Date.now();
const model = await makeTestModel({
  outDir: args.out,
  grid: args.grid,
  id: args.id,
  gitCommit: gitCommit(),
});
process.stdout.write(
  `Wrote test-fixture model ${model.id} (test fixture, not a product model; ${model.losses.length} engine training steps, loss ${model.losses[0]?.toFixed(4)} → ${model.losses[model.losses.length - 1]?.toFixed(4)}) to ${model.dir} in ${Date.now() - t0} ms\n`,
);
