// The Node side as compiled JavaScript (what the product runs; tsx is for development and tests):
//   dist/node/start.js            the product command (scripts/start.ts, run by scripts/start.sh)
//   dist/node/server.js           the companion server alone (server/src/main.ts)
//   dist/node/worker.js           the training job's child process (server/src/jobs/worker.ts)
//   dist/node/trainTask.js        the training task the worker loads (server/src/jobs/trainTask.ts)
//   dist/node/teacher.js          the SAM checkpoint import the server runs (models/src/cli/teacher.ts)
//   dist/node/make-test-model.js  the test-fixture model of a first start (scripts/make-test-model.ts)
//   dist/node/pseudoLabelWorker.js a training's pseudo-label worker thread (models/src/rrl/pseudoLabelWorker.ts)
// Our workspace packages (@rrl/*) are bundled from their TypeScript sources; every other package
// stays in node_modules (native addons, onnxruntime, dcmjs …). Shared code is split into chunks
// beside the entries, so a module that starts a sibling entry finds it in the same folder. The
// folder is not emptied first: a product running from it keeps the chunks it may still import.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'node');

/** Bare imports other than our workspace packages are left to node_modules at run time. */
const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith('@rrl/') ? undefined : { path: args.path, external: true },
    );
  },
};

const t0 = Date.now();
await build({
  absWorkingDir: root,
  entryPoints: {
    start: 'scripts/start.ts',
    server: 'server/src/main.ts',
    worker: 'server/src/jobs/worker.ts',
    trainTask: 'server/src/jobs/trainTask.ts',
    teacher: 'models/src/cli/teacher.ts',
    'make-test-model': 'scripts/make-test-model.ts',
    pseudoLabelWorker: 'models/src/rrl/pseudoLabelWorker.ts',
  },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  plugins: [externalPackages],
  logLevel: 'warning',
});
process.stdout.write(`dist/node built in ${Date.now() - t0} ms\n`);
