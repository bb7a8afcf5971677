#!/usr/bin/env bash
# Installs what the product and its tests need: Debian packages (as root through apt, otherwise a
# clear message naming them) and the npm dependencies. Safe to run again: it skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
# gcc + libc6-dev build the loopback shim that keeps Orthanc off the network (server/native); openssl
# makes the TLS test certificate; python3-torch is the PyTorch reference the SAM checkpoint import is
# tested against (its checkpoints are written by torch.save, its embeddings are the expected ones);
# libopenblas0-pthread gives it an optimised BLAS (Debian's default reference BLAS makes its matrix
# products ~25x slower, which would make any side-by-side speed comparison meaningless).
DEB_PACKAGES=(orthanc orthanc-dicomweb dcmtk dicom3tools mricron-data chromium gcc libc6-dev openssl python3-torch libopenblas0-pthread)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
# WebGPU for the training engine on machines without a GPU: Dawn needs a Vulkan driver, and Debian
# 12's Mesa (22.x) gives it no adapter; Mesa 25's lavapipe from bookworm-backports does.
if [ -f /etc/debian_version ] && grep -q '^12' /etc/debian_version \
  && ! dpkg --compare-versions "$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo 0)" ge 25; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "Installing Mesa 25 Vulkan drivers (lavapipe) from bookworm-backports"
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        >/etc/apt/sources.list.d/bookworm-backports.sources
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    echo "Optional: WebGPU training on this CPU needs mesa-vulkan-drivers (>= 25) and libvulkan1 from bookworm-backports;" >&2
    echo "without them the engine uses the CPU provider." >&2
  fi
fi
# onnxruntime-node's install script would fetch CUDA binaries from outside the npm registry: the
# CPU binaries it ships are all we use. (This replaces a project .npmrc key npm 11 warns about.)
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing npm dependencies"
  npm ci --no-audit --no-fund
fi
# better-sqlite3 (the server's job store) is a native addon: its install script builds it with
# node-gyp when no prebuilt binary can be fetched. npm 11 may skip install scripts that are not
# allowed (`allowScripts`); rebuild it explicitly when it does not load.
if ! node -e "new (require('better-sqlite3'))(':memory:').close()" >/dev/null 2>&1; then
  echo "Building better-sqlite3 (native addon)"
  npm rebuild better-sqlite3 --foreground-scripts
  node -e "new (require('better-sqlite3'))(':memory:').close()"
fi
