// Browser bundles of the OHIF extension and mode, as ES modules the prebuilt OHIF 3.13 viewer
// imports at run time by URL:
//   dist/extension/index.js              the extension (bundles its own React 18.3.1, dcmjs)
//   dist/extension/inference-worker.js   the onnxruntime-web module worker
//   dist/extension/ort/                  onnxruntime-web's loader + wasm (loaded by the worker at
//                                        run time, not bundled: the .mjs/.wasm pair stays intact)
//   dist/mode/index.js                   the mode
// `import.meta.url` is left to the browser (parser.importMeta: false) so each bundle finds the
// files beside it wherever the server mounts them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EsbuildPlugin } from 'esbuild-loader';
import webpack from 'webpack';

const root = path.dirname(fileURLToPath(import.meta.url));
const ortDist = path.join(root, 'node_modules', 'onnxruntime-web', 'dist');
/** onnxruntime-web's ESM loader with WebGPU (JSEP) + wasm, and the runtime it loads. */
const ORT_FILES = [
  'ort.min.mjs',
  'ort-wasm-simd-threaded.jsep.mjs',
  'ort-wasm-simd-threaded.jsep.wasm',
];

class CopyOrtPlugin {
  apply(compiler) {
    compiler.hooks.thisCompilation.tap('CopyOrtPlugin', (compilation) => {
      compilation.hooks.processAssets.tap(
        { name: 'CopyOrtPlugin', stage: webpack.Compilation.PROCESS_ASSETS_STAGE_ADDITIONAL },
        () => {
          for (const f of ORT_FILES) {
            const file = path.join(ortDist, f);
            compilation.fileDependencies.add(file);
            compilation.emitAsset(`ort/${f}`, new webpack.sources.RawSource(readFileSync(file)), {
              minimized: true,
            });
          }
        },
      );
    });
  }
}

/** @param {string} name @param {Record<string,string>} entry @param {string} outDir @param {unknown[]} plugins */
function bundle(name, entry, outDir, plugins = []) {
  return (_env, argv) => ({
    name,
    mode: argv.mode ?? 'production',
    target: ['web', 'es2022'],
    entry,
    devtool: argv.mode === 'development' ? 'eval-source-map' : false,
    experiments: { outputModule: true },
    output: {
      path: path.join(root, outDir),
      filename: '[name].js',
      chunkFilename: '[name].[contenthash:8].js',
      library: { type: 'module' },
      module: true,
      clean: true,
      publicPath: 'auto',
    },
    resolve: {
      extensions: ['.ts', '.tsx', '.mjs', '.js', '.json'],
      extensionAlias: { '.js': ['.ts', '.tsx', '.js'] },
      fallback: {
        fs: false,
        path: false,
        crypto: false,
        zlib: false,
        stream: false,
        buffer: false,
      },
    },
    module: {
      parser: { javascript: { importMeta: false, url: false, worker: false } },
      rules: [
        {
          test: /\.tsx?$/,
          loader: 'esbuild-loader',
          options: { loader: 'tsx', target: 'es2022', jsx: 'automatic' },
          exclude: /node_modules/,
        },
      ],
    },
    optimization: {
      splitChunks: false,
      minimizer: [new EsbuildPlugin({ target: 'es2022', format: 'esm' })],
    },
    performance: { hints: false },
    plugins,
    stats: 'errors-warnings',
  });
}

export default [
  bundle(
    'extension',
    {
      index: './extension/src/index.ts',
      'inference-worker': './extension/src/inference/worker.ts',
    },
    'dist/extension',
    [new CopyOrtPlugin()],
  ),
  bundle('mode', { index: './mode/src/index.ts' }, 'dist/mode'),
];
