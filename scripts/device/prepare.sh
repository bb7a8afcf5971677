#!/usr/bin/env bash
# Prepares the git-ignored folder .device/ that scripts/device/run.sh needs on the GPU machine
# (which has no Node and no network): a Node binary, onnxruntime-node for linux-x64 (its WebGPU
# provider is in the main library), the benchmark bundled into one file, and the Vulkan loader.
# Run it here, then carry `.device` in the device call (see scripts/device/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.device
rm -rf "$out"
mkdir -p "$out"

node_bin="$(readlink -f "$(command -v node)")"
echo "node $(node --version) from $node_bin"
xz -T2 -6 -c "$node_bin" >"$out/node.xz"

# onnxruntime-node + onnxruntime-common, linux-x64 binaries only
tar -C node_modules -cJf "$out/ort.tar.xz" \
  --exclude='onnxruntime-node/bin/napi-v6/darwin' \
  --exclude='onnxruntime-node/bin/napi-v6/win32' \
  --exclude='onnxruntime-node/bin/napi-v6/linux/arm64' \
  --exclude='onnxruntime-node/node_modules' \
  onnxruntime-node onnxruntime-common

# Dawn for Node (npm webgpu: index.js + the linux-x64 dawn.node) for the engine's WGSL kernels
tar -C node_modules -cJf "$out/dawn.tar.xz" webgpu/package.json webgpu/index.js webgpu/dist/linux-x64

# the benchmarks (graph builder, autodiff, networks, trainer; the WGSL conv kernels) as ES modules
npx esbuild scripts/bench/engine.ts --bundle --platform=node --format=esm --target=node20 \
  --external:onnxruntime-node --external:onnxruntime-web --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --outfile="$out/bench.mjs"
npx esbuild scripts/bench/gpu-conv.ts --bundle --platform=node --format=esm --target=node20 \
  --external:onnxruntime-node --external:webgpu --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --outfile="$out/gpu-conv.mjs"

# Vulkan loader (Dawn needs libvulkan.so.1; the GPU machine may lack it)
(cd "$out" && apt-get download libvulkan1 >/dev/null 2>&1) || echo "warning: could not download libvulkan1 (.deb); run.sh will rely on the machine's loader" >&2

du -sh "$out" "$out"/*
echo "ready: carry '.device' and run: bash scripts/device/run.sh"
