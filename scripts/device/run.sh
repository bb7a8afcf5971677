#!/usr/bin/env bash
# Runs on the GPU machine (H100/H200; PyTorch installed, no Node, no network), from the repo root,
# with .device/ carried (made by scripts/device/prepare.sh). Benchmarks the engine's training step
# and forward pass with onnxruntime-node's WebGPU provider (and CPU for the forward pass), the same
# networks in PyTorch + cuDNN, and prints the ratios; then the engine's WGSL 3-D conv kernels per
# layer beside cuDNN. Results: $OUT/ort.json, $OUT/torch.json, $OUT/wgsl-conv.json, $OUT/torch-conv.json.
# Usage: bash scripts/device/run.sh [configs, default: unet-b8-64 unet-b16-128 reg-128]
set -uo pipefail
cd "$(dirname "$0")/../.."
D="$PWD/.device"
OUT="${OUT:-/tmp/rrl-out}"
mkdir -p "$OUT"
CONFIGS="${*:-unet-b8-64 unet-b16-128 reg-128}"
[ -f "$D/node.xz" ] || { echo "no .device/node.xz: run scripts/device/prepare.sh here first and carry .device" >&2; exit 2; }

# Vulkan loader
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  for f in "$D"/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
  ldconfig
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && ! ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json >/dev/null 2>&1; then
  if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
fi

W=/tmp/rrl-engine
mkdir -p "$W/node_modules"
xz -dc "$D/node.xz" >"$W/node" && chmod +x "$W/node"
tar -C "$W/node_modules" -xJf "$D/ort.tar.xz"
[ -f "$D/dawn.tar.xz" ] && tar -C "$W/node_modules" -xJf "$D/dawn.tar.xz"
cp "$D/bench.mjs" "$W/bench.mjs"
[ -f "$D/gpu-conv.mjs" ] && cp "$D/gpu-conv.mjs" "$W/gpu-conv.mjs"
"$W/node" --version
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== onnxruntime-node (WebGPU training; forward on WebGPU and CPU)"
# shellcheck disable=SC2086
timeout 240 "$W/node" "$W/bench.mjs" --providers webgpu,cpu --configs ${CONFIGS// /,} \
  --train-providers webgpu --warmup 2 --steps 5 ${BENCH_EXTRA:-} --json "$OUT/ort.json" 2>&1 | grep -v 'artificially reduced'

echo "== PyTorch (same networks, CUDA)"
PYTHONUNBUFFERED=1 timeout 120 python3 scripts/device/torch_reference.py --configs ${CONFIGS// /,} \
  --warmup 3 --steps 10 --json "$OUT/torch.json"

echo "== ratios (ORT WebGPU / PyTorch)"
python3 scripts/device/compare.py "$OUT/ort.json" "$OUT/torch.json" | tee "$OUT/ratios.txt"

if [ -f "$W/gpu-conv.mjs" ]; then
  LAYERS="${CONV_LAYERS:-8x8@64,16x16@128,32x32@64,64x64@32}"
  echo "== the engine's WGSL conv kernels (Dawn) per layer, then PyTorch + cuDNN on the same layers"
  timeout 60 "$W/node" "$W/gpu-conv.mjs" --layers "$LAYERS" --runs 10 --json "$OUT/wgsl-conv.json" 2>&1 | grep -v 'artificially reduced'
  PYTHONUNBUFFERED=1 timeout 30 python3 scripts/device/torch_conv.py --layers "$LAYERS" \
    --ours "$OUT/wgsl-conv.json" --json "$OUT/torch-conv.json" | tee "$OUT/conv-ratios.txt"
fi
